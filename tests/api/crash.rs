//! A real `herald` process killed with SIGKILL mid-delivery, then started again on the same
//! database: pending work resumes at once, and the message that was in flight is not sent twice.

use crate::helpers::{
    FakeSlack, Process, Reply, SECRET, default_database, delivery_states, herald_command,
    notified_numbers, open_store, opened_issue, quiet_herald_command, wait_until,
};

async fn start(dir: &std::path::Path, slack: &FakeSlack) -> Process {
    let mut command = quiet_herald_command();
    command
        .current_dir(dir)
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_SLACK_WEBHOOK_URL", slack.url())
        .env("HERALD_SLACK_MAX_PER_SECOND", "0")
        .env("HERALD_DELIVERY_CONCURRENCY", "1")
        .env("HERALD_POLL_INTERVAL", "50ms")
        .env("HERALD_RETRY_SCHEDULE", "0s");
    Process::serve(command).await
}

async fn send(process: &Process, delivery: &str, number: i64) {
    let client = reqwest::Client::new();
    let status = process
        .send_issue(&client, delivery.to_owned(), opened_issue(number))
        .await;
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
    let store = open_store(&default_database(dir.path())).await;
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
    assert_eq!(
        notified_numbers(&slack),
        vec![1, 2],
        "issue 1 once (in flight when killed), issue 2 once"
    );

    // The operator can see it and send it again on purpose.
    let output = herald_command()
        .args(["deliveries", "dead"])
        .current_dir(dir.path())
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
    let output = herald_command()
        .args(["deliveries", "retry", "--all"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    slack.wait_for_requests(3).await;
    drop(second);
}
