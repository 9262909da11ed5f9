//! What an operator meets around the service: commands that only read never create a store,
//! `herald migrate` quiet on PostgreSQL, logs without colour codes off a terminal, and an error
//! answer in JSON for every status the server gives.

use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{AppBuilder, Process, SECRET, TestApp, herald_command};

fn run(dir: &std::path::Path, args: &[&str]) -> Output {
    herald_command()
        .args(args)
        .current_dir(dir)
        // Commands that talk to GitHub check for a token before they open the store; none is
        // asked anything (the store is refused first).
        .env("HERALD_GITHUB_TOKEN", "ghp_unused")
        .env("HERALD_GITHUB_API_URL", "http://127.0.0.1:9")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every command but `serve` and `migrate`, as an operator would type them in the wrong folder
/// (values starting with `-` included: `-30d` means 30 days ago, as `30d` does).
const READING_COMMANDS: [&[&str]; 10] = [
    &["deliveries", "list"],
    &["deliveries", "dead"],
    &["deliveries", "show", "1"],
    &["deliveries", "retry", "--all"],
    &["report", "--since", "-30d", "--until", "-1d"],
    &["digest", "--destination", "stdout"],
    &["replay", "--destination", "stdout", "--since", "-2d"],
    &[
        "redeliver",
        "acme/widgets",
        "--hook-id",
        "1",
        "--since",
        "-3d",
    ],
    &["backfill", "acme/widgets"],
    &["report", "--database-url", "sqlite://typo.db"],
];

#[test]
fn commands_that_read_never_create_a_store_and_say_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    for args in READING_COMMANDS {
        let output = run(dir.path(), args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let file = if args.contains(&"sqlite://typo.db") {
            "typo.db"
        } else {
            "herald.db"
        };
        assert_eq!(
            text(&output.stderr).trim(),
            format!(
                "herald: no herald database at {} (HERALD_DATABASE_URL); run `herald serve` or \
                 `herald migrate` first, or point HERALD_DATABASE_URL at an existing one",
                dir.path().join(file).display()
            ),
            "{args:?}"
        );
        assert_eq!(text(&output.stdout), "", "{args:?} printed a result");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
    }
    // Once `herald migrate` has made the store, the same commands read it.
    let migrated = run(dir.path(), &["migrate"]);
    assert!(migrated.status.success(), "{migrated:?}");
    let listed = run(dir.path(), &["deliveries", "list"]);
    assert!(listed.status.success(), "{listed:?}");
    assert_eq!(text(&listed.stdout), "no deliveries\n");
}

#[test]
fn report_takes_bounds_written_with_a_minus_as_time_ago() {
    let dir = tempfile::tempdir().unwrap();
    assert!(run(dir.path(), &["migrate"]).status.success());
    let before = SystemTime::now();
    let output = run(
        dir.path(),
        &[
            "report", "--since", "-30d", "--until", "-1d", "--format", "json",
        ],
    );
    let after = SystemTime::now();
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let at = |field: &str| {
        let text = report["window"][field].as_str().unwrap();
        SystemTime::from(
            time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .unwrap(),
        )
    };
    let day = Duration::from_secs(86_400);
    // Computed from the command's own clock, which read between `before` and `after`.
    let since = at("since");
    assert!(
        since >= before - 30 * day - Duration::from_millis(1) && since <= after - 30 * day,
        "{report}"
    );
    let until = at("until");
    assert!(
        until >= before - day - Duration::from_millis(1) && until <= after - day,
        "{report}"
    );
}

#[tokio::test]
async fn a_second_migrate_on_postgres_prints_no_notice_or_info() {
    let Some(db) = crate::databases::postgres().await else {
        return;
    };
    let migrate = |rust_log: Option<&str>| {
        let mut command = herald_command();
        command
            .args(["migrate", "--database-url", &db.url])
            .stdin(Stdio::null());
        if let Some(filter) = rust_log {
            command.env("RUST_LOG", filter);
        } else {
            command.env_remove("RUST_LOG");
        }
        command.output().unwrap()
    };
    let first = migrate(None);
    assert!(first.status.success(), "{first:?}");
    // Again: every `CREATE … IF NOT EXISTS` of the migration table finds it, which PostgreSQL
    // reports as a NOTICE ("relation already exists, skipping").
    let second = migrate(None);
    assert!(second.status.success(), "{second:?}");
    assert_eq!(text(&second.stdout), "migrations applied\n");
    assert_eq!(text(&second.stderr), "", "nothing on stderr by default");
    // Even when the operator asks for every INFO line, the server sends no notice to log.
    let verbose = migrate(Some("info"));
    assert!(verbose.status.success(), "{verbose:?}");
    let stderr = text(&verbose.stderr);
    for noise in ["NOTICE", "sqlx", "already exists"] {
        assert!(!stderr.contains(noise), "{noise} in:\n{stderr}");
    }
}

/// What `herald serve` logs (text, default levels) from its start to a SIGTERM, with `env` added.
async fn logs_of_a_start_and_stop(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = herald_command();
    command
        .current_dir(dir.path())
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut server = Process::serve(command).await;
    server.terminate();
    server.child.wait().unwrap();
    let mut logs = String::new();
    std::io::Read::read_to_string(server.child.stderr.as_mut().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("herald is listening"), "{logs}");
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let logs = logs_of_a_start_and_stop(&[]).await;
    assert!(!logs.contains('\u{1b}'), "escape codes in:\n{logs:?}");
    // Dependencies' INFO is filtered: every INFO line is herald's own.
    for line in logs.lines().filter(|line| line.contains(" INFO ")) {
        assert!(line.contains(" INFO herald"), "not herald's: {line}");
    }
}

/// Sends raw bytes (what reqwest will not send: a declared length it does not honour) and reads
/// the answer's status line, headers and body.
async fn raw(app: &TestApp, request: &[u8]) -> (u16, String, String) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0; 4096];
    // Until the answer's body is complete (the server keeps the connection open otherwise).
    loop {
        let read = tokio::time::timeout(crate::helpers::DEADLINE, stream.read(&mut buffer))
            .await
            .expect("an answer within the deadline")
            .unwrap();
        answer.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|value| value.trim().parse::<usize>().ok());
            if read == 0 || length.is_some_and(|length| body.len() >= length) {
                let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                return (status, head.to_ascii_lowercase(), body.to_owned());
            }
        }
        assert!(read > 0, "the connection closed before an answer");
    }
}

fn assert_json_error(what: &str, status: u16, content_type: &str, body: &str) {
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {status} with content-type {content_type:?}: {body}"
    );
    let json: Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: {status} body {body:?}"));
    let error = json["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "{what}: {json}");
    assert_eq!(json.as_object().unwrap().len(), 1, "{what}: {json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_answer_is_json() {
    let app = AppBuilder::new()
        .arg("--api-token", "api-token")
        .arg("--body-timeout", "300ms")
        .arg("--sqlite-max-size-mib", "1")
        .arg("--notify-events", "")
        .spawn()
        .await;
    let body = crate::helpers::payload("issues/opened.payload.json");
    let signature = herald::github::sign_sha256(SECRET, &body);
    let mut huge: Value = serde_json::from_slice(&body).unwrap();
    huge["padding"] = "p".repeat(2 * 1024 * 1024).into();
    let huge = serde_json::to_vec(&huge).unwrap();
    let requests = [
        ("GET /webhook", app.get("/webhook"), 405),
        ("GET /", app.get("/"), 405),
        (
            "PUT /healthz",
            app.client.put(format!("{}/healthz", app.address)),
            405,
        ),
        (
            "DELETE /metrics",
            app.client
                .delete(format!("{}/metrics", app.address))
                .bearer_auth("api-token"),
            405,
        ),
        (
            "DELETE /dashboard/login",
            app.client
                .delete(format!("{}/dashboard/login", app.address)),
            405,
        ),
        ("an unknown path", app.get("/wp-login.php"), 404),
        (
            "an unknown stylesheet",
            app.get("/dashboard/static/old.css"),
            404,
        ),
        (
            "an unsigned webhook",
            app.post("/webhook").body(body.clone()),
            401,
        ),
        (
            "a webhook without its event header",
            app.post("/webhook")
                .header("x-github-delivery", "no-event")
                .header("x-hub-signature-256", &signature)
                .body(body.clone()),
            400,
        ),
        ("/api without a token", app.get("/api/metrics/issues"), 401),
        (
            "/api with a bad bound",
            app.get("/api/metrics/issues?since=soon")
                .bearer_auth("api-token"),
            400,
        ),
        (
            "a webhook the full store cannot hold",
            app.post("/webhook")
                .header("x-github-event", "issues")
                .header("x-github-delivery", "too-big-for-the-store")
                .header(
                    "x-hub-signature-256",
                    herald::github::sign_sha256(SECRET, &huge),
                )
                .body(huge),
            503,
        ),
    ];
    for (what, request, status) in requests {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{what}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = response.text().await.unwrap();
        assert_json_error(what, status, &content_type, &body);
    }
    raw_answers_are_json(&app, &signature).await;
}

/// The 413 and 408 of the webhook, over a raw connection.
async fn raw_answers_are_json(app: &TestApp, signature: &str) {
    let sig = signature.as_bytes();
    let head = |length: usize| {
        let mut head = format!(
            "POST /webhook HTTP/1.1\r\nhost: herald\r\nx-github-event: issues\r\n\
             x-github-delivery: raw\r\ncontent-length: {length}\r\nx-hub-signature-256: "
        )
        .into_bytes();
        head.extend_from_slice(sig);
        head.extend_from_slice(b"\r\n\r\n");
        head
    };
    // Over 25 MiB declared: refused before a byte of the body is read.
    let (status, headers, answer) = raw(app, &head(30 * 1024 * 1024)).await;
    assert_eq!(status, 413);
    assert_json_error("a 30 MiB body", status, content_type(&headers), &answer);
    // A body that stops arriving: 408 after the body timeout.
    let mut stalled = head(1000);
    stalled.extend_from_slice(b"{\"action\":");
    let (status, headers, answer) = raw(app, &stalled).await;
    assert_eq!(status, 408);
    assert_json_error("a stalled body", status, content_type(&headers), &answer);
}

fn content_type(head: &str) -> &str {
    head.lines()
        .find_map(|line| line.strip_prefix("content-type: "))
        .unwrap_or("")
}

/// A short `HERALD_API_TOKEN` is warned about at start (without its length or value); a long one
/// is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_api_token_is_warned_about_without_showing_it() {
    for (token, warned) in [("t0ken", true), ("0123456789abcdef0123", false)] {
        let logs = logs_of_a_start_and_stop(&[("HERALD_API_TOKEN", token)]).await;
        assert_eq!(
            logs.contains("HERALD_API_TOKEN is shorter than 16 characters"),
            warned,
            "{token}: {logs}"
        );
        assert!(!logs.contains(token), "the token is in the logs: {logs}");
    }
}
