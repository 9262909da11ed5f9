//! Several `herald serve` processes on one PostgreSQL database: intake spread across them, every
//! event stored once and notified once, and a killed instance's work finished by the others.

#[expect(
    dead_code,
    reason = "shared with tests/store; this binary uses the PostgreSQL part"
)]
#[path = "../store/databases.rs"]
mod databases;
#[expect(
    dead_code,
    reason = "shared with tests/api; this binary uses part of it"
)]
#[path = "../api/helpers.rs"]
mod helpers;

use std::time::Duration;

use futures_util::StreamExt;
use herald::store::{QueueDepth, Store};

use helpers::{FakeSlack, Process, SECRET, notified_numbers, opened_issue};

/// These tests move thousands of events; they get longer than the usual deadline.
const LONG: Duration = Duration::from_secs(120);

async fn start(database_url: &str, slack_url: &str, extra: &[(&str, &str)]) -> Process {
    let dir = tempfile::tempdir().unwrap();
    let mut command = helpers::quiet_herald_command();
    command
        .current_dir(dir.path())
        .env("HERALD_DATABASE_URL", database_url)
        .env("HERALD_WEBHOOK_SECRET", SECRET)
        .env("HERALD_SLACK_MAX_PER_SECOND", "0")
        .env("HERALD_DELIVERY_LEASE", "5s")
        .env("HERALD_SLACK_TIMEOUT", "1s")
        .env("HERALD_POLL_INTERVAL", "200ms")
        .env("HERALD_RETRY_SCHEDULE", "0s,0s,0s")
        .envs(extra.iter().copied());
    if !slack_url.is_empty() {
        command.env("HERALD_SLACK_WEBHOOK_URL", slack_url);
    }
    let process = Process::serve(command).await;
    // Nothing is written there (the database is PostgreSQL); it only needs to outlive the process.
    std::mem::forget(dir);
    process
}

async fn wait_long(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LONG;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn two_instances_store_and_notify_every_event_exactly_once() {
    const EVENTS: usize = 2000;
    helpers::install_crypto();
    let Some(db) = databases::postgres().await else {
        return;
    };
    let slack = FakeSlack::start().await;
    let first = start(&db.url, &slack.url_for("first"), &[]).await;
    let second = start(&db.url, &slack.url_for("second"), &[]).await;
    let instances = [&first, &second];
    let client = reqwest::Client::new();
    let statuses: Vec<u16> = futures_util::stream::iter(0..EVENTS)
        .map(|n| {
            instances[n % 2].send_issue(&client, format!("delivery-{n}"), opened_issue(n as i64))
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(
        statuses.iter().all(|s| *s == 202),
        "every distinct event is stored"
    );
    // GitHub redelivering to the other instance: recognised there too.
    let redelivered: Vec<u16> = futures_util::stream::iter(0..100)
        .map(|n| {
            instances[(n + 1) % 2].send_issue(
                &client,
                format!("delivery-{n}"),
                opened_issue(n as i64),
            )
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(
        redelivered.iter().all(|s| *s == 200),
        "redeliveries are duplicates"
    );

    let store: Store = db.connect().await;
    wait_long("every delivery is settled", async || {
        store.queue_depth().await.unwrap()
            == QueueDepth {
                pending: 0,
                dead: 0,
            }
            && store.list_deliveries(None, 1).await.unwrap().len() == 1
            && slack.requests().len() >= EVENTS
    })
    .await;
    assert_eq!(store.count_events().await.unwrap(), EVENTS as i64);
    assert_eq!(
        notified_numbers(&slack),
        (0..EVENTS as i64).collect::<Vec<_>>(),
        "each event notified exactly once"
    );
    let (by_first, by_second) = (slack.requests_to("first"), slack.requests_to("second"));
    assert!(
        by_first > 0 && by_second > 0,
        "both instances delivered ({by_first} + {by_second})"
    );
}

#[tokio::test]
async fn a_killed_instances_claims_are_finished_by_another_after_the_lease() {
    const EVENTS: usize = 50;
    helpers::install_crypto();
    let Some(db) = databases::postgres().await else {
        return;
    };
    let slack = FakeSlack::start().await;
    // The first instance may send a burst of 5, then one message per 1000 s: what it claims
    // next stays leased (not started) until it dies.
    let mut first = start(
        &db.url,
        &slack.url_for("first"),
        &[("HERALD_SLACK_MAX_PER_SECOND", "0.001")],
    )
    .await;
    let client = reqwest::Client::new();
    for n in 0..EVENTS {
        assert_eq!(
            first
                .send_issue(&client, format!("k-{n}"), opened_issue(n as i64))
                .await,
            202
        );
    }
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let held = async || -> i64 {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND lease_owner IS NOT NULL",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    wait_long(
        "the first instance sent its burst and holds more claims",
        async || slack.requests_to("first") == 5 && held().await > 0,
    )
    .await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();

    let second = start(&db.url, &slack.url_for("second"), &[]).await;
    let store: Store = db.connect().await;
    wait_long("the survivor delivered everything", async || {
        store.queue_depth().await.unwrap()
            == QueueDepth {
                pending: 0,
                dead: 0,
            }
            && slack.requests().len() >= EVENTS
    })
    .await;
    assert_eq!(
        notified_numbers(&slack),
        (0..EVENTS as i64).collect::<Vec<_>>(),
        "each event notified exactly once"
    );
    assert_eq!(
        slack.requests_to("second"),
        EVENTS - 5,
        "including the claims the dead instance held"
    );
    drop(second);
}

#[tokio::test]
async fn two_instances_share_one_destinations_rate() {
    const EVENTS: usize = 13;
    const RATE: f64 = 4.0;
    const BURST: usize = 5;
    helpers::install_crypto();
    let Some(db) = databases::postgres().await else {
        return;
    };
    let slack = FakeSlack::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut instances = Vec::new();
    for name in ["a", "b"] {
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "[destinations.limited]\nkind = \"slack-webhook\"\nurl = \"{}\"\nmax_per_second = {RATE}\ntimeout = \"1s\"\n\n[[routes]]\nevents = [\"issues.opened\"]\nto = [\"limited\"]\n",
                slack.url_for(name)
            ),
        )
        .unwrap();
        let config = config.display().to_string();
        instances.push(start(&db.url, "", &[("HERALD_CONFIG", config.as_str())]).await);
    }
    let client = reqwest::Client::new();
    for n in 0..EVENTS {
        let instance = &instances[n % 2];
        assert_eq!(
            instance
                .send_issue(&client, format!("rate-{n}"), opened_issue(n as i64))
                .await,
            202
        );
    }
    wait_long("every message is sent", async || {
        slack.requests().len() >= EVENTS
    })
    .await;
    let requests = slack.requests();
    assert_eq!(requests.len(), EVENTS, "each event notified once");
    assert!(
        slack.requests_to("a") > 0 && slack.requests_to("b") > 0,
        "both instances sent: a {} b {}",
        slack.requests_to("a"),
        slack.requests_to("b")
    );
    // One shared limiter: after the burst, 4 per second in all. Two separate limiters would have
    // allowed two bursts and 8 per second, finishing in well under half the time.
    let first = requests.iter().map(|r| r.at).min().unwrap();
    let last = requests.iter().map(|r| r.at).max().unwrap();
    let fastest = Duration::from_secs_f64((EVENTS - BURST) as f64 / RATE * 0.95);
    assert!(
        last - first >= fastest,
        "{EVENTS} messages went out in {:?}, faster than the shared rate allows ({fastest:?})",
        last - first
    );
}
