//! The binary as an operator meets it: the first run's generated secret, `send-test`,
//! `deliveries list`, and a graceful SIGTERM that lets the attempt in flight finish.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{
    AppBuilder, FakeSlack, Process, Reply, SECRET, default_database, delivery_states,
    herald_command, open_store, quiet_herald_command, wait_until,
};

fn herald() -> Command {
    herald_command()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_generates_a_private_secret_and_prints_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = || async {
        let mut command = herald();
        command
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut server = Process::serve(command).await;
        server.terminate();
        let status = server.child.wait().unwrap();
        let mut stdout = String::new();
        std::io::Read::read_to_string(server.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        (status, stdout)
    };
    let (status, first) = run().await;
    assert!(status.success(), "a SIGTERM is a clean exit");
    let secret = std::fs::read_to_string(dir.path().join("herald.secret"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(secret.len(), 64);
    assert!(
        first.contains(&format!("Secret:       {secret}")),
        "{first}"
    );
    assert!(
        first.contains("Payload URL:") && first.contains("application/json"),
        "{first}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("herald.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let (_, second) = run().await;
    assert!(!second.contains(&secret), "printed once only: {second}");
    assert!(
        dir.path().join("herald.db").exists(),
        "the embedded default database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_signs_posts_and_reports_the_answer() {
    let app = AppBuilder::new().spawn().await;
    let url = format!("{}/webhook", app.address);
    let send = |extra: &[&str], secret: &str| {
        let mut command = herald();
        command
            .args(["send-test", "--url", &url])
            .args(extra)
            .env("HERALD_WEBHOOK_SECRET", secret);
        command.output().unwrap()
    };
    let output = send(&["--delivery", "try-1"], SECRET);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("issues delivery try-1 -> HTTP 202 Accepted"),
        "{stdout}"
    );
    let again = send(&["--delivery", "try-1"], SECRET);
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("HTTP 200 OK"),
        "deduplicated"
    );
    let payload = crate::helpers::payloads_dir().join("issue_comment/created.payload.json");
    // The event is told from the payload's fields.
    let custom = send(&["--payload", payload.to_str().unwrap()], SECRET);
    assert!(
        String::from_utf8_lossy(&custom.stdout).contains("issue_comment delivery"),
        "custom payload: {custom:?}"
    );
    let wrong = send(&[], "not-the-secret");
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("HTTP 401"));
    let store = app.store().await;
    assert_eq!(store.count_events().await.unwrap(), 2);
    let event = store.event(1).await.unwrap().unwrap();
    assert_eq!(
        (event.event.as_str(), event.action.as_deref()),
        ("issues", Some("opened"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_finds_a_server_on_a_non_default_port_and_sends_todays_issue() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = crate::helpers::quiet_herald_command();
    command
        .current_dir(dir.path())
        .env("HERALD_WEBHOOK_SECRET", SECRET);
    let server = Process::serve(command).await;
    let listen = server.address.trim_start_matches("http://").to_owned();
    let output = herald()
        .arg("send-test")
        .current_dir(dir.path())
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_LISTEN", &listen)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("-> HTTP 202 Accepted"), "{stdout}");
    // The sample issue is dated now, so the README's `report --since 1d` shows it.
    crate::helpers::wait_until("the sample issue is analysed", || async {
        let report = herald()
            .args(["report", "--since", "1d", "--format", "json"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap_or_default();
        json["issues"]["opened"] == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_test_without_any_secret_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let output = herald()
        .arg("send-test")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no webhook secret: set HERALD_WEBHOOK_SECRET"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_list_shows_the_outbox() {
    let slack = FakeSlack::with_script(vec![Reply::Status(404)]).await;
    let app = AppBuilder::new().slack(&slack).spawn().await;
    app.send(
        "issues",
        "listed",
        &crate::helpers::payload("issues/opened.payload.json"),
    )
    .await;
    let store = app.store().await;
    wait_until("the delivery is dead", || async {
        delivery_states(&store)
            .await
            .first()
            .is_some_and(|s| s.0 == "dead")
    })
    .await;
    let output = herald()
        .args([
            "deliveries",
            "list",
            "--status",
            "dead",
            "--database-url",
            &app.database_url,
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{listing}");
    let line = listing
        .lines()
        .find(|l| l.contains("slack"))
        .unwrap_or_else(|| panic!("{listing}"));
    for expected in [
        "dead",
        "issues.opened",
        "Codertocat/Hello-World#1",
        "HTTP 404",
    ] {
        assert!(line.contains(expected), "{expected} missing from {line}");
    }
    let none = herald()
        .args([
            "deliveries",
            "list",
            "--status",
            "pending",
            "--database-url",
            &app.database_url,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&none.stdout).trim(),
        "no deliveries"
    );
    let missing = herald()
        .args([
            "deliveries",
            "retry",
            "999",
            "--database-url",
            &app.database_url,
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success(), "retrying an unknown id fails");
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr).trim(),
        "herald: no delivery 999; nothing queued (`herald deliveries dead` lists dead ones)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_attempt_in_flight_finish() {
    let slack = FakeSlack::with_script(vec![Reply::Slow(Duration::from_millis(1500))]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut command = quiet_herald_command();
    command
        .current_dir(dir.path())
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_SLACK_WEBHOOK_URL", slack.url());
    let mut server = Process::serve(command).await;
    let body = crate::helpers::payload("issues/opened.payload.json");
    let response = reqwest::Client::new()
        .post(format!("{}/webhook", server.address))
        .header("x-github-event", "issues")
        .header("x-github-delivery", "graceful")
        .header(
            "x-hub-signature-256",
            herald::github::sign_sha256(SECRET, &body),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    slack.wait_for_requests(1).await; // Slack is now slowly answering.
    server.terminate();
    assert!(server.child.wait().unwrap().success());
    let store = open_store(&default_database(dir.path())).await;
    assert_eq!(
        delivery_states(&store).await,
        vec![("delivered".to_owned(), 1, None)],
        "the attempt was finished and recorded"
    );
    assert_eq!(slack.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_follow_cloud_logging_and_never_contain_secrets() {
    // A 404 from "Slack" makes the delivery fail, so errors mentioning it are logged too.
    let slack = FakeSlack::with_script(vec![Reply::Status(404)]).await;
    let slack_url = slack.url_for("T000/B000/sl4ck-s3cret-t0ken");
    let dir = tempfile::tempdir().unwrap();
    let mut command = herald();
    command
        .current_dir(dir.path())
        .env("HERALD_WEBHOOK_SECRET", "w3bh00k-s3cret,0ld-s3cret")
        .env("HERALD_SLACK_WEBHOOK_URL", &slack_url)
        .env("HERALD_RETRY_SCHEDULE", "0s")
        .env("K_SERVICE", "herald")
        // A SQLite store on Cloud Run is refused unless accepted explicitly.
        .env("HERALD_ALLOW_EPHEMERAL_STORE", "true")
        .env("GOOGLE_CLOUD_PROJECT", "proj")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Process::serve(command).await;
    let client = reqwest::Client::new();
    let body = crate::helpers::payload("issues/opened.payload.json");
    for (delivery, secret) in [("good", "w3bh00k-s3cret"), ("bad", "guess")] {
        client
            .post(format!("{}/webhook", server.address))
            .header("x-github-event", "issues")
            .header("x-github-delivery", delivery)
            .header(
                "x-cloud-trace-context",
                "105445aa7843bc8bf206b12000100000/1;o=1",
            )
            .header(
                "x-hub-signature-256",
                herald::github::sign_sha256(secret, &body),
            )
            .body(body.clone())
            .send()
            .await
            .unwrap();
    }
    slack.wait_for_requests(1).await;
    let store = open_store(&default_database(dir.path())).await;
    wait_until("the failed delivery is recorded", || async {
        delivery_states(&store)
            .await
            .first()
            .is_some_and(|s| s.0 == "dead")
    })
    .await;
    server.terminate();
    server.child.wait().unwrap();
    let mut logs = String::new();
    std::io::Read::read_to_string(server.child.stderr.as_mut().unwrap(), &mut logs).unwrap();
    for secret in ["w3bh00k-s3cret", "0ld-s3cret", "sl4ck-s3cret-t0ken"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
    let entries: Vec<serde_json::Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(
        entries.iter().all(|e| e["severity"].is_string()
            && e["message"].is_string()
            && e["time"].is_string())
    );
    let stored = entries
        .iter()
        .find(|e| e["message"] == "event stored")
        .expect("an 'event stored' entry");
    assert_eq!(
        stored["logging.googleapis.com/trace"],
        "projects/proj/traces/105445aa7843bc8bf206b12000100000"
    );
    let dead = entries
        .iter()
        .find(|e| e["severity"] == "ERROR" && e["message"] == "delivery dead-lettered")
        .expect("a 'delivery dead-lettered' entry");
    // One vocabulary across intake and delivery: `delivery_id` is GitHub's, `event` its event
    // name, `event_id` the stored event, `row` the outbox row, `destination` where it goes.
    assert_eq!(
        (&stored["delivery_id"], &stored["event"]),
        (&"good".into(), &"issues".into())
    );
    assert!(stored["event_id"].is_i64(), "{stored}");
    assert_eq!(
        (&dead["delivery_id"], &dead["event"], &dead["destination"]),
        (&"good".into(), &"issues".into(), &"slack".into())
    );
    assert!(dead["row"].is_i64(), "{dead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_even_when_a_client_never_finishes_its_request() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let mut command = quiet_herald_command();
    command
        .current_dir(dir.path())
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_SHUTDOWN_GRACE", "1s");
    let mut server = Process::serve(command).await;
    // Headers promise 1000 bytes; 7 arrive, then the client goes quiet.
    let address = server.address.trim_start_matches("http://").to_owned();
    let mut stalled = tokio::net::TcpStream::connect(&address).await.unwrap();
    stalled
        .write_all(b"POST /webhook HTTP/1.1\r\nHost: herald\r\nContent-Length: 1000\r\n\r\npartial")
        .await
        .unwrap();
    stalled.flush().await.unwrap();
    server.terminate();
    let mut exited = None;
    wait_until("herald exits after its grace period", || {
        exited = server.child.try_wait().unwrap();
        std::future::ready(exited.is_some())
    })
    .await;
    assert!(exited.unwrap().success(), "a clean exit");
    drop(stalled);
}

#[test]
fn serve_refuses_settings_that_would_fail_in_production() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut command = herald();
        command
            .arg("serve")
            .current_dir(dir.path())
            .env("HERALD_LISTEN", "127.0.0.1:0")
            .envs(env.iter().copied());
        let output = command.output().unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stderr) = run(&[("K_SERVICE", "herald")]);
    assert!(
        !ok && stderr.contains("set HERALD_WEBHOOK_SECRET or HERALD_WEBHOOK_SECRET_FILE"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("herald.secret").exists(),
        "nothing generated on Cloud Run"
    );
    let (ok, stderr) = run(&[
        ("HERALD_WEBHOOK_SECRET", SECRET),
        ("HERALD_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/hook"),
        ("HERALD_DELIVERY_LEASE", "5s"),
    ]);
    assert!(
        !ok && stderr
            .contains("HERALD_DELIVERY_LEASE (5s) must be longer than HERALD_SLACK_TIMEOUT (10s)"),
        "{stderr}"
    );
    let (ok, stderr) = run(&[
        ("HERALD_WEBHOOK_SECRET", SECRET),
        (
            "HERALD_DATABASE_URL",
            "postgres://app:hunter2@127.0.0.1:9/db",
        ),
    ]);
    assert!(
        !ok && stderr.contains("postgres://app:[redacted]@127.0.0.1:9/db")
            && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[tokio::test]
async fn deliveries_show_lists_every_failed_attempt_and_retry_revives_one() {
    let slack = FakeSlack::with_script(vec![Reply::Status(404)]).await;
    let app = AppBuilder::new().slack(&slack).spawn().await;
    app.send(
        "issues",
        "shown",
        &crate::helpers::payload("issues/opened.payload.json"),
    )
    .await;
    let store = app.store().await;
    wait_until("the delivery is dead", || async {
        delivery_states(&store)
            .await
            .first()
            .is_some_and(|s| s.0 == "dead")
    })
    .await;
    let id = store
        .list_deliveries(None, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.destination == "slack")
        .unwrap()
        .id;
    let show = herald()
        .args([
            "deliveries",
            "show",
            &id.to_string(),
            "--database-url",
            &app.database_url,
        ])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&show.stdout);
    assert!(show.status.success(), "{shown}");
    for expected in [
        format!("delivery    {id}"),
        "event       issues.opened".to_owned(),
        "destination slack".to_owned(),
        "status      dead".to_owned(),
        "attempts that did not deliver:".to_owned(),
        "dead          ".to_owned(),
        "HTTP 404 Not Found: invalid_payload".to_owned(),
    ] {
        assert!(
            shown.contains(&expected),
            "{expected:?} missing from:\n{shown}"
        );
    }
    let retried = herald()
        .args([
            "deliveries",
            "retry",
            &id.to_string(),
            "--database-url",
            &app.database_url,
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&retried.stdout).trim(),
        "1 dead delivery queued again; a running herald sends them within its poll interval",
        "{}",
        String::from_utf8_lossy(&retried.stderr)
    );
}

/// Every setting that would fail later is refused at start-up, naming the variable, the value and
/// what is allowed (secrets are never echoed).
#[test]
fn serve_refuses_each_bad_setting_with_an_exact_message() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "HERALD_SLACK_WEBHOOK_URL",
            "not a url",
            "  - HERALD_SLACK_WEBHOOK_URL: not a URL (relative URL without a base); expected https://… (for Slack: https://hooks.slack.com/services/…)",
        ),
        (
            "HERALD_NOTIFY_EVENTS",
            "issues.opened,isues",
            "  - HERALD_NOTIFY_EVENTS (notify_events): \"isues\" is not a GitHub webhook event; did you mean \"issues\"?",
        ),
        (
            "HERALD_POLL_INTERVAL",
            "0",
            "  - HERALD_POLL_INTERVAL (poll_interval) = 0s: must be between 10ms and 1h",
        ),
        (
            "HERALD_SLACK_MAX_PER_SECOND",
            "-3",
            "  - HERALD_SLACK_MAX_PER_SECOND (slack_max_per_second) = -3: must be between 0 (no limit) and 10000",
        ),
        (
            "HERALD_DELIVERY_CONCURRENCY",
            "0",
            "  - HERALD_DELIVERY_CONCURRENCY (delivery_concurrency) = 0: must be between 1 and 1024",
        ),
        (
            "HERALD_RETRY_SCHEDULE",
            "5s,5 parsecs",
            "herald: HERALD_RETRY_SCHEDULE=\"5s,5 parsecs\": not a duration (unknown time unit \"parsecs\"); durations look like 500ms, 30s, 5m, 2h or 1d",
        ),
        (
            "HERALD_ALLOW_SHA1",
            "maybe",
            "herald: HERALD_ALLOW_SHA1=\"maybe\": \"maybe\" is not a boolean: use true or false (1/0, yes/no, on/off)",
        ),
        (
            "HERALD_LISTEN",
            "example.com:9101",
            "herald: HERALD_LISTEN=\"example.com:9101\": \"example.com:9101\" is not an address to listen on: use IP:PORT, e.g. 0.0.0.0:8080 (every interface) or 127.0.0.1:8080 (this machine only)",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, value, expected) in cases {
        let output = herald()
            .arg("serve")
            .current_dir(dir.path())
            .env("HERALD_WEBHOOK_SECRET", SECRET)
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(
            stderr.lines().any(|line| line == *expected),
            "{name}={value}: expected the line\n{expected}\nin\n{stderr}"
        );
    }
    // Accepted the way people write them.
    for (name, value) in [
        ("HERALD_ALLOW_SHA1", "YES"),
        ("HERALD_LISTEN", "localhost:0"),
    ] {
        let output = herald()
            .args(["config", "check"])
            .current_dir(dir.path())
            .env("HERALD_WEBHOOK_SECRET", SECRET)
            .env(name, value)
            .output()
            .unwrap();
        assert!(output.status.success(), "{name}={value}: {output:?}");
    }
}
