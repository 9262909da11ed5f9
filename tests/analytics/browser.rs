//! The dashboard in a real headless Chromium: herald with seeded data, the page loaded and
//! rendered, its charts and tables checked for the seeded numbers, and screenshots (desktop and
//! phone) saved under the build output (`target/tmp/`). `.ci/run` installs Debian's `chromium`
//! and sets `HERALD_REQUIRE_BROWSER=1`, which turns a missing browser into a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::TestApp;
use crate::recent;

/// `HERALD_CHROMIUM`, else the first Chromium on the `PATH`.
fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("HERALD_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs Chromium headless with `args`, killed after the common deadline; returns stdout.
async fn run_chromium(browser: PathBuf, profile: PathBuf, args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--no-first-run",
                "--disable-extensions",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromium");
        let mut stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
            text
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(status.success(), "chromium {args:?} failed: {status}");
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium {args:?} did not finish in time");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        reader.join().unwrap()
    })
    .await
    .unwrap()
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is a PNG",
        path.display()
    );
    assert!(bytes.len() > 20_000, "{} has content", path.display());
}

#[tokio::test]
async fn the_dashboard_renders_the_seeded_numbers_in_a_real_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("HERALD_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "HERALD_REQUIRE_BROWSER=1 but no chromium was found (install Debian's `chromium`)"
        );
        eprintln!("NOTICE: no chromium found; skipping the browser test");
        return;
    };
    let app =
        TestApp::spawn_with_file(&[], "[analytics]\nignore_users = [\"k8s-ci-robot\"]\n").await;
    recent::seed(&app).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("{}/dashboard", app.address);
    // Computed now, after the seed (the page then serves it for 30 s).
    let refreshed = app
        .get("/dashboard")
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);

    // The DOM after Chromium loaded and laid out the page (and its stylesheet).
    let dom = run_chromium(
        browser.clone(),
        profile.path().join("dom"),
        vec!["--dump-dom".into(), url.clone()],
    )
    .await;
    for (metric, value) in [
        ("opened", "5"),
        ("closed", "1"),
        ("backlog", "4"),
        ("unanswered", "3"),
        ("first-response-median", "2h"),
        ("close-median", "2d"),
    ] {
        assert!(
            dom.contains(&format!(
                "data-metric=\"{metric}\"><div class=\"value\">{value}</div>"
            )),
            "card {metric} = {value} in the rendered page"
        );
    }
    // The charts' bars and points carry the numbers; so does the week table.
    let total_opened: usize = dom.matches(": opened 1</title>").count()
        + 2 * dom.matches(": opened 2</title>").count()
        + 3 * dom.matches(": opened 3</title>").count();
    assert_eq!(total_opened, 5, "opened bars add up to the seeded issues");
    assert!(dom.contains(": median 1h</title>") || dom.contains(": median 2h</title>"));
    assert!(
        dom.contains("acme/gadgets#4</a>"),
        "oldest unanswered listed"
    );
    assert!(dom.contains("<td>analytics</td><td>0</td><td>0</td><td>0</td>"));

    // Screenshots: a desktop and a phone.
    let out = Path::new(env!("CARGO_TARGET_TMPDIR"));
    for (name, size) in [
        ("dashboard.png", "1280,2300"),
        ("dashboard-phone.png", "390,3600"),
    ] {
        let path = out.join(name);
        let _ = std::fs::remove_file(&path);
        run_chromium(
            browser.clone(),
            profile.path().join(name),
            vec![
                format!("--screenshot={}", path.display()),
                format!("--window-size={size}"),
                url.clone(),
            ],
        )
        .await;
        assert_png(&path);
        eprintln!("screenshot: {}", path.display());
    }
}
