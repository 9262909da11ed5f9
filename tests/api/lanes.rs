//! Destinations and lanes end to end: one event to two destinations, a slow destination holding
//! back no other, rows waiting for a destination this instance lacks, misbehaving sinks, supervision,
//! per-row batch outcomes, and replay.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use herald::delivery::LaneLimits;
use herald::sinks::{BoxFuture, Delivery, Guarantee, Outcome, Sink};
use herald::startup::Extras;
use herald::store::NewEvent;

use crate::helpers::{AppBuilder, FakeSlack, notified_numbers, opened_issue, wait_until};

fn limits(batch_size: usize) -> LaneLimits {
    LaneLimits {
        concurrency: 1,
        batch_size,
        max_per_second: 0.0,
        burst: 1,
    }
}

/// Two Slack destinations routed by label.
fn two_destinations(slack: &FakeSlack, triage_rate: f64) -> String {
    format!(
        r#"
[destinations.triage]
kind = "slack-webhook"
url = "{triage}"
max_per_second = {triage_rate}

[destinations.everything]
kind = "slack-webhook"
url = "{everything}"
max_per_second = 0

[[routes]]
events = ["issues.opened"]
labels_any = ["bug"]
to = ["triage"]

[[routes]]
events = ["issues.opened"]
to = ["everything", "triage"]
"#,
        triage = slack.url_for("triage"),
        everything = slack.url_for("everything"),
    )
}

#[tokio::test]
async fn one_event_reaches_two_destinations_each_exactly_once() {
    let slack = FakeSlack::start().await;
    let app = AppBuilder::new()
        .config_file(&two_destinations(&slack, 0.0))
        .spawn()
        .await;
    for number in 1..=3 {
        let status = app
            .send("issues", &format!("two-{number}"), &opened_issue(number))
            .await
            .status();
        assert_eq!(status, 202);
    }
    slack.wait_for_requests(6).await;
    let store = app.store().await;
    wait_until("every row is delivered", || async {
        store.queue_depth().await.unwrap().pending == 0
    })
    .await;
    assert_eq!(
        slack.requests_to("triage"),
        3,
        "two routes, one message each"
    );
    assert_eq!(slack.requests_to("everything"), 3);
    let rows = store.list_deliveries(None, 100).await.unwrap();
    let mut destinations: Vec<&str> = rows.iter().map(|row| row.destination.as_str()).collect();
    destinations.sort_unstable();
    assert_eq!(
        destinations,
        [
            "analytics",
            "analytics",
            "analytics",
            "everything",
            "everything",
            "everything",
            "triage",
            "triage",
            "triage"
        ]
    );
}

#[tokio::test]
async fn a_slow_destination_holds_back_no_other() {
    let slack = FakeSlack::start().await;
    // One message per 1000 s to triage (after a burst of 5), no limit to the other.
    let app = AppBuilder::new()
        .config_file(&two_destinations(&slack, 0.001))
        .spawn()
        .await;
    for number in 1..=12 {
        app.send("issues", &format!("slow-{number}"), &opened_issue(number))
            .await;
    }
    let store = app.store().await;
    wait_until(
        "the unlimited destination and analytics have everything",
        || async {
            let rows = store.list_deliveries(None, 100).await.unwrap();
            let delivered = |destination: &str| {
                rows.iter()
                    .filter(|row| row.destination == destination && row.status == "delivered")
                    .count()
            };
            delivered("everything") == 12 && delivered("analytics") == 12
        },
    )
    .await;
    assert_eq!(slack.requests_to("everything"), 12);
    assert!(
        slack.requests_to("triage") <= 5,
        "triage is still held to its burst: {}",
        slack.requests_to("triage")
    );
    let waiting = store
        .list_deliveries(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.destination == "triage" && row.status == "pending")
        .count();
    assert_eq!(waiting + slack.requests_to("triage"), 12);
}

#[tokio::test]
async fn rows_for_a_destination_this_instance_lacks_wait_for_one_that_has_it() {
    let slack = FakeSlack::start().await;
    let old = AppBuilder::new().slack(&slack).spawn().await;
    // A newer instance, with a destination the old one does not know, stored these rows.
    let store = old.store().await;
    let events: Vec<NewEvent> = (1..=3)
        .map(|number| NewEvent {
            hook_id: "1".into(),
            delivery_id: format!("newer-{number}"),
            event: "issues".into(),
            action: Some("opened".into()),
            repository: Some("Codertocat/Hello-World".into()),
            issue_number: Some(number),
            actor: Some("Codertocat".into()),
            received_at: herald::time_util::now_ms(),
            payload: String::from_utf8(opened_issue(number)).unwrap(),
            destinations: vec![Arc::from("audit")],
        })
        .collect();
    store.append_events(&events).await.unwrap();
    old.send("issues", "old-1", &opened_issue(9)).await;
    slack.wait_for_requests(1).await;
    wait_until("the old instance finished its own rows", || async {
        let rows = store.list_deliveries(None, 100).await.unwrap();
        rows.iter()
            .filter(|row| row.destination != "audit")
            .all(|row| row.status == "delivered")
    })
    .await;
    let audit: Vec<_> = store
        .list_deliveries(None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|row| row.destination == "audit")
        .collect();
    assert_eq!(audit.len(), 3);
    assert!(
        audit
            .iter()
            .all(|row| row.status == "pending" && row.attempts == 0),
        "never claimed, never dead-lettered: {audit:?}"
    );
    let listing = crate::helpers::herald_command()
        .args(["deliveries", "list", "--database-url", &old.database_url])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert_eq!(
        listing
            .lines()
            .filter(|line| line.contains("audit")
                && line.contains("waiting (destination not configured here)"))
            .count(),
        3,
        "{listing}"
    );
    let dir = old.dir.clone();
    old.stop().await.unwrap();

    let config = format!(
        "[destinations.audit]\nkind = \"slack-webhook\"\nurl = \"{}\"\nmax_per_second = 0\n\n[[routes]]\nto = [\"audit\"]\n",
        slack.url_for("audit")
    );
    let new = AppBuilder::in_dir(dir).config_file(&config).spawn().await;
    wait_until("the new instance delivered the waiting rows", || async {
        slack.requests_to("audit") == 3
    })
    .await;
    let store = new.store().await;
    wait_until("they are recorded as delivered", || async {
        store
            .list_deliveries(None, 100)
            .await
            .unwrap()
            .iter()
            .filter(|row| row.destination == "audit")
            .all(|row| row.status == "delivered")
    })
    .await;
}

/// A sink that panics on every attempt.
struct Panicking;

impl Sink for Panicking {
    fn kind(&self) -> &'static str {
        "panicking"
    }
    fn guarantee(&self) -> Guarantee {
        Guarantee::Idempotent
    }
    fn deliver<'a>(&'a self, _batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async { panic!("the sink fell over") })
    }
}

#[tokio::test]
async fn a_panicking_sink_dead_letters_its_row_after_the_schedule_and_stays_ready() {
    let extras = Extras {
        sinks: vec![("fragile".into(), Arc::new(Panicking), limits(1))],
    };
    let app = AppBuilder::new()
        .arg("--retry-schedule", "0s,0s")
        .spawn_with(extras)
        .await;
    app.send("issues", "boom", &opened_issue(1)).await;
    let store = app.store().await;
    wait_until("the fragile row is dead", || async {
        store
            .list_deliveries(None, 100)
            .await
            .unwrap()
            .iter()
            .any(|row| row.destination == "fragile" && row.status == "dead")
    })
    .await;
    let row = store
        .list_deliveries(None, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|row| row.destination == "fragile")
        .unwrap();
    assert_eq!(row.attempts, 3, "each panic counts against the schedule");
    assert_eq!(
        row.last_error.as_deref(),
        Some("gave up after 3 attempts; last: the panicking sink panicked: the sink fell over")
    );
    assert_eq!(app.get("/readyz").send().await.unwrap().status(), 200);
}

/// A sink that breaks its lane itself (outside the attempt, where panics are caught): the lane
/// asks for its guarantee when it starts and again for each round; the round's question panics.
#[derive(Default)]
struct Broken {
    asked: AtomicUsize,
}

impl Sink for Broken {
    fn kind(&self) -> &'static str {
        "broken"
    }
    fn guarantee(&self) -> Guarantee {
        assert!(
            self.asked.fetch_add(1, Ordering::SeqCst) == 0,
            "broken beyond repair"
        );
        Guarantee::Idempotent
    }
    fn deliver<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move { vec![Outcome::Delivered; batch.len()] })
    }
}

#[tokio::test]
async fn a_dead_lane_makes_the_instance_unready() {
    let extras = Extras {
        sinks: vec![("broken".into(), Arc::new(Broken::default()), limits(1))],
    };
    let app = AppBuilder::new().spawn_with(extras).await;
    assert_eq!(app.get("/readyz").send().await.unwrap().status(), 200);
    assert_eq!(
        app.send("issues", "kill", &opened_issue(1)).await.status(),
        202
    );
    wait_until("/readyz answers 503", || async {
        app.get("/readyz").send().await.unwrap().status() == 503
    })
    .await;
    let body: serde_json::Value = app
        .get("/readyz")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("the lane of broken"),
        "{body}"
    );
    // Intake goes on: events are still stored and other destinations still served.
    assert_eq!(
        app.send("issues", "still", &opened_issue(2)).await.status(),
        202
    );
}

/// A sink that refuses odd issue numbers once, and counts calls per row.
struct Picky {
    largest: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<(i64, i64)>>>,
}

impl Sink for Picky {
    fn kind(&self) -> &'static str {
        "picky"
    }
    fn guarantee(&self) -> Guarantee {
        Guarantee::Idempotent
    }
    fn max_batch(&self) -> usize {
        16
    }
    fn deliver<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Outcome>> {
        self.largest.fetch_max(batch.len(), Ordering::SeqCst);
        Box::pin(async move {
            batch
                .iter()
                .map(|delivery| {
                    let number = delivery.event.issue_number.unwrap_or_default();
                    self.seen.lock().unwrap().push((number, delivery.attempts));
                    if number % 2 == 1 && delivery.attempts == 0 {
                        Outcome::Retry {
                            after: None,
                            reason: "odd".into(),
                        }
                    } else {
                        Outcome::Delivered
                    }
                })
                .collect()
        })
    }
}

#[tokio::test]
async fn a_batch_gets_an_outcome_per_row_and_only_failed_rows_retry() {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let largest = Arc::new(AtomicUsize::new(0));
    let sink = Picky {
        largest: Arc::clone(&largest),
        seen: Arc::clone(&seen),
    };
    let extras = Extras {
        sinks: vec![("picky".into(), Arc::new(sink), limits(16))],
    };
    // The lane claims nothing until all six are stored: it is paused at first.
    let app = AppBuilder::new()
        .arg("--retry-schedule", "0s")
        .spawn_with(extras)
        .await;
    let store = app.store().await;
    store
        .pause_destination("picky", herald::time_util::now_ms() + 60_000, "test")
        .await
        .unwrap();
    for number in 1..=6 {
        app.send("issues", &format!("batch-{number}"), &opened_issue(number))
            .await;
    }
    // Resume (a pause is never shortened through the store, so end it by hand).
    let url = app.database_url.clone();
    let mut raw = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("UPDATE destination_state SET paused_until = 0")
        .execute(&mut raw)
        .await
        .unwrap();
    wait_until("every picky row is delivered", || async {
        store
            .list_deliveries(None, 100)
            .await
            .unwrap()
            .iter()
            .filter(|row| row.destination == "picky")
            .all(|row| row.status == "delivered")
    })
    .await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(
        seen,
        vec![
            (1, 0),
            (1, 1),
            (2, 0),
            (3, 0),
            (3, 1),
            (4, 0),
            (5, 0),
            (5, 1),
            (6, 0)
        ],
        "even rows once, odd rows twice"
    );
    assert_eq!(
        largest.load(Ordering::SeqCst),
        6,
        "the six rows went to the sink as one batch"
    );
    let rows = store.list_deliveries(None, 100).await.unwrap();
    for row in rows.iter().filter(|row| row.destination == "picky") {
        let expected = if row.issue_number.unwrap() % 2 == 1 {
            2
        } else {
            1
        };
        assert_eq!(row.attempts, expected, "{row:?}");
    }
}

#[tokio::test]
async fn replay_queues_stored_events_to_a_new_destination_once() {
    let slack = FakeSlack::start().await;
    // First no notifications at all: the events are stored (and analysed) only.
    let first = AppBuilder::new().arg("--notify-events", "").spawn().await;
    for number in 1..=4 {
        first
            .send(
                "issues",
                &format!("history-{number}"),
                &opened_issue(number),
            )
            .await;
    }
    first
        .send(
            "issue_comment",
            "history-comment",
            &crate::helpers::payload("issue_comment/created.payload.json"),
        )
        .await;
    let dir = first.dir.clone();
    first.stop().await.unwrap();

    let config = format!(
        "[destinations.late]\nkind = \"slack-webhook\"\nurl = \"{}\"\nmax_per_second = 0\n\n[[routes]]\nevents = [\"issues.opened\"]\nto = [\"late\"]\n",
        slack.url_for("late")
    );
    let builder = AppBuilder::in_dir(dir).config_file(&config);
    let config = builder.config();
    let store = crate::helpers::open_store(&builder.database_url()).await;
    let plan = herald::startup::validate(&config).unwrap();
    let filter = herald::store::ReplayFilter {
        since_ms: 0,
        until_ms: i64::MAX,
        event: None,
        action: None,
    };
    let once = herald::cli::replay(&store, &plan.router, "late", &filter)
        .await
        .unwrap();
    assert_eq!(
        (once.read, once.routed, once.queued),
        (5, 4, 4),
        "the comment is not routed to it"
    );
    let twice = herald::cli::replay(&store, &plan.router, "late", &filter)
        .await
        .unwrap();
    assert_eq!((twice.routed, twice.queued), (4, 0), "never twice");
    let app = builder.spawn().await;
    wait_until("the replayed events are delivered", || async {
        slack.requests_to("late") == 4
    })
    .await;
    assert_eq!(notified_numbers(&slack), vec![1, 2, 3, 4]);
    drop(app);
}
