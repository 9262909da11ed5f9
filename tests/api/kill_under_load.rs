//! `herald serve` killed with SIGKILL while many signed webhooks are in flight, then started
//! again on the same database: every delivery that was answered 2xx is stored exactly once and
//! reaches Slack (at most once; an attempt cut off mid-send is dead-lettered, never repeated).

use std::collections::{HashMap, HashSet};

use crate::helpers::{
    FakeSlack, Process, SECRET, default_database, open_store, opened_issue, quiet_herald_command,
    wait_until,
};

async fn start(dir: &std::path::Path, slack: &FakeSlack) -> Process {
    let mut command = quiet_herald_command();
    command
        .current_dir(dir)
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_SLACK_WEBHOOK_URL", slack.url())
        .env("HERALD_SLACK_MAX_PER_SECOND", "0")
        .env("HERALD_POLL_INTERVAL", "50ms")
        .env("HERALD_RETRY_SCHEDULE", "0s");
    Process::serve(command).await
}

#[tokio::test]
async fn sigkill_under_load_loses_no_acknowledged_event() {
    crate::helpers::install_crypto();
    let dir = tempfile::tempdir().unwrap();
    let slack = FakeSlack::start().await;
    let mut first = start(dir.path(), &slack).await;
    let client = reqwest::Client::new();
    // 32 senders, 25 deliveries each; the process is killed once 200 have been acknowledged.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
    let (enough_tx, enough_rx) = tokio::sync::oneshot::channel::<()>();
    let enough_tx = std::sync::Mutex::new(Some(enough_tx));
    let (address, pid) = (first.address.clone(), first.child.id().to_string());
    let senders = (0..32).map(|sender| {
        let (client, acknowledged, address, enough_tx) =
            (&client, &acknowledged, &address, &enough_tx);
        async move {
            for round in 0..25 {
                let number = sender * 100 + round;
                let delivery = format!("load-{number}");
                let sent = client
                    .post(format!("{address}/webhook"))
                    .header("x-github-event", "issues")
                    .header("x-github-delivery", &delivery)
                    .header(
                        "x-hub-signature-256",
                        herald::github::sign_sha256(SECRET, &opened_issue(number)),
                    )
                    .body(opened_issue(number))
                    .send()
                    .await;
                let Ok(response) = sent else { return }; // the process is gone
                if response.status().is_success() {
                    let mut acknowledged = acknowledged.lock().unwrap();
                    acknowledged.insert(number);
                    if acknowledged.len() >= 200
                        && let Some(tx) = enough_tx.lock().unwrap().take()
                    {
                        let _ = tx.send(());
                    }
                }
            }
        }
    });
    let load = futures_util::future::join_all(senders);
    let kill = async {
        let _ = enough_rx.await;
        // SIGKILL while requests are in flight.
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        assert!(killed.unwrap().success());
    };
    let ((), ()) = futures_util::future::join(
        async {
            load.await;
        },
        kill,
    )
    .await;
    first.child.wait().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() >= 200, "{}", acknowledged.len());

    let _second = start(dir.path(), &slack).await;
    let store = open_store(&default_database(dir.path())).await;
    check_every_acknowledged_event_was_kept(&store, &slack, &acknowledged).await;
}

/// Each acknowledged delivery is stored once and its Slack row settled: delivered (and received
/// once) or dead-lettered as interrupted mid-send; no message reached Slack twice.
async fn check_every_acknowledged_event_was_kept(
    store: &herald::store::Store,
    slack: &FakeSlack,
    acknowledged: &HashSet<i64>,
) {
    wait_until("every stored event's deliveries are settled", || async {
        store
            .list_deliveries(Some(herald::domain::DeliveryStatus::Pending), 1)
            .await
            .unwrap()
            .is_empty()
    })
    .await;
    let rows = store.list_deliveries(None, 100_000).await.unwrap();
    let mut slack_rows: HashMap<i64, (String, Option<String>)> = HashMap::new();
    for row in rows.iter().filter(|row| row.destination == "slack") {
        let number: i64 = row.delivery_id.trim_start_matches("load-").parse().unwrap();
        let previous = slack_rows.insert(number, (row.status.clone(), row.last_error.clone()));
        assert!(previous.is_none(), "event {number} stored twice");
    }
    for number in acknowledged {
        assert!(
            slack_rows.contains_key(number),
            "acknowledged event {number} was lost"
        );
    }
    let notified = crate::helpers::notified_numbers(slack);
    let unique: HashSet<i64> = notified.iter().copied().collect();
    assert_eq!(
        unique.len(),
        notified.len(),
        "a Slack message was sent twice"
    );
    for (number, (status, error)) in &slack_rows {
        match status.as_str() {
            "delivered" => assert!(
                unique.contains(number),
                "{number} delivered but not received"
            ),
            "dead" => assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("interrupted while sending")),
                "{number}: {error:?}"
            ),
            other => panic!("{number} is {other}"),
        }
    }
}
