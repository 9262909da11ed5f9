//! The `[analytics]` settings and the dashboard end to end: users ignored by login or id (also
//! after a rename), business-hours durations from the API and `herald report --config`, the
//! dashboard page's numbers, the login cookie, the default refusal on a public address, and the
//! backfill's progress lines when stderr is not a terminal.

use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::json;

use crate::backfill::{TOKEN, setup};
use crate::common::{free_port, herald_command, wait_until};
use crate::helpers::{CommentSpec, IssueSpec, Snapshot, TestApp, run_herald, user_id};
use crate::recent;

const IGNORE: &str = "[analytics]\nignore_users = [\"k8s-ci-robot\", \"%ID%\"]\n";

fn ignore_file(id: i64) -> String {
    IGNORE.replace("%ID%", &id.to_string())
}

#[tokio::test]
async fn ignored_users_never_answer_and_their_issues_are_left_out() {
    // erin is ignored by id (her issue #4 is left out); k8s-ci-robot by login (its comment on
    // #5 is no answer).
    let app = TestApp::spawn_with_file(&[], &ignore_file(user_id("erin"))).await;
    recent::seed(&app).await;
    let plain = TestApp::spawn(&[]).await;
    recent::seed(&plain).await;
    let query = "since=12w";
    let ignoring = app.metrics(query).await;
    let counting = plain.metrics(query).await;
    assert_eq!(counting["issues"]["opened"], json!(5));
    assert_eq!(ignoring["issues"]["opened"], json!(4));
    // [10 min, 1 h, 3 h] when the robot counts; [1 h, 3 h] when it does not.
    assert_eq!(counting["time_to_first_response"]["count"], json!(3));
    assert_eq!(
        counting["time_to_first_response"]["median_seconds"],
        json!(3600)
    );
    assert_eq!(
        ignoring["time_to_first_response"],
        json!({"count": 2, "unanswered": 2, "mean_seconds": 7200, "median_seconds": 7200,
               "p90_seconds": 10_080})
    );

    // The robot renamed: its comments under the new login are still ignored (same id).
    let six = IssueSpec::new("acme/widgets", 6, "gina", "2026-01-01T00:00:00Z");
    let renamed = CommentSpec::new(601, "k8s-ci-robot-renamed", "2026-01-01T00:05:00Z")
        .by_id(user_id("k8s-ci-robot"));
    for (event, delivery, body) in [
        (
            "issues",
            "six-1",
            six.event("opened", &Snapshot::open("2026-01-01T00:00:00Z")),
        ),
        (
            "issue_comment",
            "six-2",
            six.comment_event("created", &renamed, &Snapshot::open("2026-01-01T00:05:00Z")),
        ),
    ] {
        assert_eq!(app.send(event, delivery, &body).await, 202);
    }
    app.wait_for_deliveries().await;
    let january = app.metrics("since=2026-01-01&until=2026-01-01").await;
    assert_eq!(
        january["time_to_first_response"]["unanswered"],
        json!(1),
        "{january}"
    );
}

const BUSINESS_HOURS: &str = "[analytics]\nbusiness_hours = { zone = \"America/New_York\", days = \"Mon-Fri\", hours = \"09:00-17:00\", holidays = [\"2026-12-25\"] }\n";

/// An issue opened Friday 16:00 New York time and answered Monday 10:00: 66 hours on the wall
/// clock, 2 working hours.
fn weekend_issue() -> Vec<(&'static str, &'static str, serde_json::Value)> {
    let issue = IssueSpec::new("acme/widgets", 1, "alice", "2026-11-27T21:00:00Z");
    let answer = CommentSpec::new(1, "bob", "2026-11-30T15:00:00Z");
    vec![
        (
            "issues",
            "bh-1",
            issue.event("opened", &Snapshot::open("2026-11-27T21:00:00Z")),
        ),
        (
            "issue_comment",
            "bh-2",
            issue.comment_event("created", &answer, &Snapshot::open("2026-11-30T15:00:00Z")),
        ),
    ]
}

#[tokio::test]
async fn business_hours_count_working_time_in_the_api_and_the_report() {
    let app = TestApp::spawn_with_file(&[], BUSINESS_HOURS).await;
    for (event, delivery, body) in weekend_issue() {
        assert_eq!(app.send(event, delivery, &body).await, 202);
    }
    app.wait_for_deliveries().await;
    let window = "since=2026-11-27&until=2026-11-30";
    let wall = app.metrics(window).await;
    assert_eq!(
        wall["time_to_first_response"]["median_seconds"],
        json!(66 * 3600)
    );
    assert!(wall.get("business_hours").is_none(), "{wall}");
    let working = app.metrics(&format!("{window}&business_hours=true")).await;
    assert_eq!(
        working["time_to_first_response"]["median_seconds"],
        json!(2 * 3600)
    );
    assert_eq!(working["business_hours"]["zone"], json!("America/New_York"));

    // `herald report --config F --business-hours` reads the same file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.toml");
    std::fs::write(&file, BUSINESS_HOURS).unwrap();
    let args = [
        "report",
        "--config",
        file.to_str().unwrap(),
        "--business-hours",
        "--since",
        "2026-11-27",
        "--until",
        "2026-11-30",
        "--format",
        "json",
    ];
    let output = run_herald(&args, &[("HERALD_DATABASE_URL", &app.database_url)]).await;
    assert!(output.success, "{output:?}");
    let report: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(report, working);
}

#[tokio::test]
async fn business_hours_without_the_setting_is_an_error_naming_the_key() {
    let app = TestApp::spawn(&[]).await;
    let response = app
        .get("/api/metrics/issues?business_hours=true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("[analytics]"),
        "{body}"
    );
    let output = run_herald(
        &["report", "--business-hours"],
        &[("HERALD_DATABASE_URL", &app.database_url)],
    )
    .await;
    assert!(!output.success);
    assert!(
        output.stderr.contains("business_hours = {")
            && output.stderr.contains("[analytics]")
            && output.stderr.contains("no configuration file was given"),
        "{output:?}"
    );
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_dashboard_shows_the_seeded_numbers_without_script() {
    let app = TestApp::spawn_with_file(&[], &ignore_file(0)).await;
    recent::seed(&app).await;
    // Computed now (a hard reload), not the one computed at start, before the seed.
    let response = app
        .get("/dashboard")
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = response.text().await.unwrap();
    assert!(!page.contains("<script"), "no script at all");
    for (metric, value) in [
        ("opened", "5"),
        ("closed", "1"),
        ("backlog", "4"),
        ("unanswered", "3"),
        ("first-response-median", "2h"),
        ("close-median", "2d"),
    ] {
        let card = format!("data-metric=\"{metric}\"><div class=\"value\">{value}</div>");
        assert!(page.contains(&card), "{metric} {value} missing");
    }
    // The oldest unanswered, oldest first, linked to GitHub.
    let erin = page
        .find("<a href=\"https://github.com/acme/gadgets/issues/4\">acme/gadgets#4</a>")
        .expect("#4 listed");
    let dave = page.find("acme/widgets#3</a>").expect("#3 listed");
    let frank = page.find("acme/widgets#5</a>").expect("#5 listed");
    assert!(erin < dave && dave < frank);
    // Charts have text alternatives; the health panel names the retry command.
    for id in [
        "chart-flow",
        "chart-response",
        "chart-close",
        "chart-backlog",
        "chart-events",
    ] {
        assert!(page.contains(&format!("<title id=\"{id}-t\">")), "{id}");
        assert!(page.contains(&format!("<desc id=\"{id}-d\">")), "{id}");
    }
    assert!(page.contains("<td>analytics</td><td>0</td><td>0</td><td>0</td>"));
    assert!(page.contains("herald deliveries retry --all"));

    // Filters are in the URL: a repository narrows everything.
    let gadgets = app
        .get("/dashboard?repo=acme%2Fgadgets&weeks=12")
        .header("cache-control", "no-cache")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(gadgets.contains("data-metric=\"opened\"><div class=\"value\">1</div>"));
    assert!(gadgets.contains("value=\"acme/gadgets\""));
    let bad = app.get("/dashboard?weeks=5").send().await.unwrap();
    assert_eq!(bad.status(), 400);
    // Whatever a filter holds is shown as text, never markup.
    let hostile = app
        .get("/dashboard?label=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .send()
        .await
        .unwrap();
    assert_eq!(hostile.status(), 200);
    let hostile = hostile.text().await.unwrap();
    assert!(!hostile.contains("<script>"), "escaped");
    assert!(hostile.contains("value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;\""));

    // Served from the cache: still the seeded numbers.
    let again = app
        .get("/dashboard")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(again.contains("data-metric=\"opened\"><div class=\"value\">5</div>"));

    // The stylesheet: versioned, cached for a year.
    let href = page
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let css = app.get(&href).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert_eq!(
        app.get("/dashboard/static/dashboard-0.css")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn the_dashboard_login_sets_a_session_cookie_not_the_token() {
    let token = "correct-horse-battery-staple";
    let app = TestApp::spawn(&["--api-token", token]).await;
    let client = no_redirects();
    let url = |path: &str| format!("{}{path}", app.address);

    let anonymous = client.get(url("/dashboard")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()[LOCATION], "/dashboard/login");
    let form = client.get(url("/dashboard/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    assert!(form.text().await.unwrap().contains("type=\"password\""));

    let wrong = client
        .post(url("/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(SET_COOKIE).is_none());

    let login = client
        .post(url("/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .body(format!("token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()[LOCATION], "/dashboard");
    let set_cookie = login.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains(token),
        "the cookie never holds the token"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let page = client
        .get(url("/dashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Log out"));
    // The session reads the API too; bearer tokens keep working; nothing else does.
    let api = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    assert_eq!(
        api(client
            .get(url("/api/metrics/issues"))
            .header("cookie", &cookie))
        .await,
        200
    );
    assert_eq!(
        api(client.get(url("/api/metrics/issues")).bearer_auth(token)).await,
        200
    );
    assert_eq!(api(client.get(url("/api/metrics/issues"))).await, 401);
    let forged = format!("herald_session=9999999999.{}", "0".repeat(64));
    assert_eq!(
        client
            .get(url("/dashboard"))
            .header("cookie", forged)
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    // The cookie is no key to the webhook: it still needs its signature.
    let webhook = client
        .post(url("/webhook"))
        .header("cookie", &cookie)
        .header("x-github-event", "issues")
        .header("x-github-delivery", "cookie-1")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status(), 401);

    let logout = client
        .post(url("/dashboard/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    assert!(
        logout.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

/// `herald serve` on 0.0.0.0 (a public address), with `env` added.
async fn serve_publicly(env: &[(&str, &str)]) -> (crate::common::Process, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = herald_command();
    command
        .arg("serve")
        .env("HERALD_LISTEN", format!("0.0.0.0:{port}"))
        .env(
            "HERALD_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("herald.db").display()),
        )
        .env("HERALD_WEBHOOK_SECRET", "s")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let address = format!("http://127.0.0.1:{port}");
    let process = crate::common::Process {
        child: command.spawn().unwrap(),
        address: address.clone(),
    };
    let client = reqwest::Client::new();
    wait_until("herald answers /readyz", || async {
        client
            .get(format!("{address}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    // The directory lives as long as the test process: leak it with the server.
    std::mem::forget(dir);
    (process, address)
}

#[tokio::test]
async fn on_a_public_address_the_api_and_dashboard_refuse_without_a_token() {
    let client = no_redirects();
    let (_server, address) = serve_publicly(&[]).await;
    let api = client
        .get(format!("{address}/api/metrics/issues"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 403);
    let body: serde_json::Value = api.json().await.unwrap();
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("HERALD_API_TOKEN") && message.contains("HERALD_PUBLIC_DASHBOARD=true"),
        "{message}"
    );
    let dashboard = client
        .get(format!("{address}/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(dashboard.status(), 403);
    assert!(dashboard.text().await.unwrap().contains("HERALD_API_TOKEN"));
    // The rest of herald answers as before.
    assert_eq!(
        client
            .get(format!("{address}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Opting in opens them; a token closes them to all but its holders.
    let (_open, open) = serve_publicly(&[("HERALD_PUBLIC_DASHBOARD", "true")]).await;
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(format!("{open}/api/metrics/issues")).await, 200);
    assert_eq!(status(format!("{open}/dashboard")).await, 200);
    let (_closed, closed) = serve_publicly(&[("HERALD_API_TOKEN", "t0ken")]).await;
    assert_eq!(status(format!("{closed}/api/metrics/issues")).await, 401);
    assert_eq!(status(format!("{closed}/dashboard")).await, 303);
}

#[tokio::test]
async fn backfill_progress_is_logged_when_not_on_a_terminal() {
    let setup = setup(Some(TOKEN)).await;
    let output = setup.backfill(&[]).await;
    assert!(output.success, "{output:?}");
    // stderr is a pipe here: one line per page, with the page count, total and percentage.
    for line in [
        "backfill acme/widgets: issues page 1 of 3 (33%), 1 issues, 0 comments, about ",
        "backfill acme/widgets: issues page 3 of 3 (100%), 4 issues, 0 comments, done",
        "backfill acme/widgets: comments page 1 of 2 (50%), 4 issues, 1 comments, about ",
        "backfill acme/widgets: comments page 2 of 2 (100%), 4 issues, 4 comments, done",
    ] {
        assert!(
            output.stderr.contains(line),
            "{line:?} in {}",
            output.stderr
        );
    }
    assert!(!output.stderr.contains('\r'), "no terminal bar in a log");
}

#[tokio::test]
async fn the_dashboard_reads_the_same_on_both_backends() {
    let now = time::OffsetDateTime::now_utc();
    let now_ms = herald::time_util::to_ms(now);
    let mut pages = Vec::new();
    for database in crate::databases::all().await {
        let store = database.connect().await;
        for (event, _, body) in recent::history(now) {
            let changes = herald::analytics::from_webhook(event, &body.to_string()).unwrap();
            store.apply_lifecycle(&changes).await.unwrap();
        }
        let settings = herald::insights::InsightsSettings::from_config(
            &herald::config::FileConfig::parse(IGNORE.replace("%ID%", "1").as_str())
                .unwrap()
                .analytics,
        )
        .unwrap();
        let service = herald::insights::ReportService::new(store.clone(), settings)
            .with_destinations(vec!["analytics".into()]);
        let dashboard = service
            .dashboard(&herald::insights::DashboardQuery::default(), now_ms)
            .await
            .unwrap();
        assert_eq!(
            dashboard.summary.metrics.issues.opened, 5,
            "{}",
            database.label
        );
        assert_eq!(dashboard.weeks.len(), 12);
        assert_eq!(dashboard.weeks.last().unwrap().backlog, 4);
        assert_eq!(dashboard.unanswered.len(), 3);
        assert_eq!(dashboard.health.events_per_hour.len(), 24);
        assert_eq!(dashboard.health.destinations[0].destination, "analytics");
        pages.push((dashboard.summary, dashboard.weeks, dashboard.unanswered));
        store.close().await;
    }
    if let [sqlite, postgres] = pages.as_slice() {
        assert_eq!(sqlite, postgres);
    }
}
