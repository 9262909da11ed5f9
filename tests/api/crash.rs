//! A real `herald` process killed with SIGKILL mid-delivery, then started again on the same
//! database: pending work resumes at once, and the message that was in flight is not sent twice.

use std::process::{Child, Command, Stdio};

use crate::helpers::{FakeSlack, Reply, SECRET, delivery_states, payload, wait_until};
use herald::config::DatabaseConfig;
use herald::github::sign_sha256;
use herald::store::Store;

struct Process {
    child: Child,
    address: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(dir: &std::path::Path, slack: &FakeSlack) -> Process {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("serve")
        .current_dir(dir)
        .env("HERALD_LISTEN", format!("127.0.0.1:{port}"))
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_SLACK_WEBHOOK_URL", slack.url())
        .env("HERALD_SLACK_MAX_PER_SECOND", "0")
        .env("HERALD_DELIVERY_CONCURRENCY", "1")
        .env("HERALD_POLL_INTERVAL", "50ms")
        .env("HERALD_RETRY_SCHEDULE", "0s")
        .env_remove("HERALD_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting herald");
    let process = Process {
        child,
        address: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    wait_until("herald answers /readyz", || async {
        client
            .get(format!("{}/readyz", process.address))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    process
}

async fn send(process: &Process, delivery: &str, number: i64) {
    let mut body: serde_json::Value =
        serde_json::from_slice(&payload("issues/opened.payload.json")).unwrap();
    body["issue"]["number"] = number.into();
    let body = serde_json::to_vec(&body).unwrap();
    let status = reqwest::Client::new()
        .post(format!("{}/webhook", process.address))
        .header("x-github-event", "issues")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sign_sha256(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
}

#[tokio::test]
async fn a_killed_process_resumes_without_sending_twice() {
    crate::helpers::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    // Slack hangs on the first message, so it is in flight when the process dies.
    let slack = FakeSlack::with_script(vec![Reply::Hang]).await;
    let mut first = start(dir.path(), &slack).await;
    send(&first, "in-flight", 1).await;
    slack.wait_for_requests(1).await;
    send(&first, "queued", 2).await; // One delivery at a time: this one waits.
    first.child.kill().unwrap(); // SIGKILL: no graceful anything.
    first.child.wait().unwrap();

    let second = start(dir.path(), &slack).await;
    let store = Store::connect(&DatabaseConfig {
        database_url: format!("sqlite://{}", dir.path().join("herald.db").display()),
        database_max_connections: 2,
        database_statement_timeout: std::time::Duration::from_secs(5),
    })
    .await
    .unwrap();
    wait_until("both deliveries are settled", || async {
        delivery_states(&store)
            .await
            .iter()
            .all(|(status, _, _)| status != "pending")
    })
    .await;
    let states = delivery_states(&store).await;
    assert_eq!(
        states[1],
        ("delivered".to_owned(), 1, None),
        "the queued event resumed"
    );
    let (status, _, error) = &states[0];
    assert_eq!(
        status, "dead",
        "the interrupted send is not repeated blindly"
    );
    assert!(
        error
            .as_deref()
            .unwrap()
            .starts_with("interrupted while sending"),
        "{error:?}"
    );
    let texts: Vec<String> = slack
        .requests()
        .iter()
        .map(|r| r.json["text"].to_string())
        .collect();
    assert_eq!(
        texts.len(),
        2,
        "issue 1 once (in flight when killed), issue 2 once: {texts:?}"
    );
    assert!(
        texts[0].contains("#1 ") && texts[1].contains("#2 "),
        "{texts:?}"
    );

    // The operator can see it and send it again on purpose.
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["deliveries", "dead"])
        .current_dir(dir.path())
        .env_remove("HERALD_DATABASE_URL")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{listing}");
    assert!(
        listing.contains("dead")
            && listing.contains("issues.opened")
            && listing.contains("interrupted"),
        "{listing}"
    );
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["deliveries", "retry", "--all"])
        .current_dir(dir.path())
        .env_remove("HERALD_DATABASE_URL")
        .output()
        .unwrap();
    assert!(output.status.success());
    slack.wait_for_requests(3).await;
    drop(second);
}
