//! The weekly digest against a fake Slack, with an injected clock: nothing before the slot, one
//! post at it with the hand-computed numbers and the dashboard link, never a second one for the
//! week (after a restart, or with two instances at once, on both backends), a failed post tried
//! again, a slot long missed skipped; and `herald digest --destination NAME`.

use std::time::Duration;

use herald::analytics::from_webhook;
use herald::delivery::Target;
use herald::insights::{DigestJob, DigestSchedule, InsightsSettings, ReportService};
use herald::store::Store;
use secrecy::SecretString;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{FakeSlack, Reply};
use crate::databases;
use crate::helpers::{TestApp, run_herald};
use crate::recent;

/// Monday 30 November 2026, 09:00 in New York.
const SLOT: &str = "2026-11-30T14:00:00Z";
const MINUTE: i64 = 60_000;
const WEEK: i64 = 7 * 24 * 60 * MINUTE;

fn slot() -> (OffsetDateTime, i64) {
    let at = OffsetDateTime::parse(SLOT, &Rfc3339).unwrap();
    (at, herald::time_util::to_ms(at))
}

async fn seeded(store: &Store) {
    crate::common::install_crypto();
    for (event, _, body) in recent::history(slot().0) {
        let changes = from_webhook(event, &body.to_string()).unwrap();
        store.apply_lifecycle(&changes).await.unwrap();
    }
}

fn job(store: &Store, slack: &FakeSlack) -> DigestJob {
    DigestJob {
        service: ReportService::new(store.clone(), InsightsSettings::default()),
        destination: "team".into(),
        target: Target::SlackWebhook {
            url: SecretString::from(slack.url()),
            timeout: Duration::from_secs(5),
        },
        schedule: DigestSchedule::parse("Mon 09:00", "America/New_York").unwrap(),
        dashboard_url: Some("https://herald.example/dashboard".into()),
    }
}

/// The week before the slot, worked out from `recent::history`: #2, #3 and #5 opened; no close
/// in the week (#1 closed 8 days before); first responses [10 min (the robot), 3 h]: median
/// 1 h 35 m, p90 600 + 0.9·10200 = 9780 s; open now #2 (3 d), #3 (2 d), #4 (40 d), #5 (20 h).
const EXPECTED: &str = "*Issue flow, 2026-11-23 to 2026-11-30*\n\
    • 3 opened, 0 closed; backlog 4 open (<1d 1, 1-7d 2, 7-30d 0, >30d 1)\n\
    • First response: median 1h 35m, p90 2h 43m (2 of 3 answered)\n\
    • Time to close: median –, p90 – (0 closed)\n\
    • Oldest unanswered: <https://github.com/acme/gadgets/issues/4|acme/gadgets#4> (40d), \
    <https://github.com/acme/widgets/issues/3|acme/widgets#3> (2d)\n\
    <https://herald.example/dashboard|Open the dashboard>";

#[tokio::test]
async fn posts_once_per_week_at_the_slot() {
    for database in databases::all().await {
        let store = database.connect().await;
        seeded(&store).await;
        let slack = FakeSlack::start().await;
        let (_, at) = slot();
        let job = job(&store, &slack);
        let label = database.label;
        assert_eq!(job.tick(at - MINUTE).await.unwrap(), None, "{label}");
        assert!(slack.requests().is_empty(), "{label}: not before the slot");
        assert_eq!(
            job.tick(at).await.unwrap().as_deref(),
            Some("2026-W49"),
            "{label}"
        );
        let requests = slack.requests();
        assert_eq!(requests.len(), 1, "{label}");
        assert_eq!(requests[0].json["text"], EXPECTED, "{label}");
        assert_eq!(requests[0].json["blocks"][0]["text"]["text"], EXPECTED);
        assert_eq!(requests[0].content_type, "application/json");

        // Later that week, and after a restart (a new job on the same store): nothing more.
        assert_eq!(job.tick(at + 60 * MINUTE).await.unwrap(), None, "{label}");
        let restarted = self::job(&store, &slack);
        assert_eq!(restarted.tick(at + 61 * MINUTE).await.unwrap(), None);
        assert_eq!(slack.requests().len(), 1, "{label}");

        // Next week, two instances at once: exactly one posts.
        let other = database.connect().await;
        let second = self::job(&other, &slack);
        let (a, b) = tokio::join!(restarted.tick(at + WEEK), second.tick(at + WEEK));
        let posted: Vec<String> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
        assert_eq!(posted, ["2026-W50"], "{label}");
        assert_eq!(slack.requests().len(), 2, "{label}");
        other.close().await;
        store.close().await;
    }
}

#[tokio::test]
async fn a_failed_post_is_tried_again_and_a_long_missed_slot_skipped() {
    let database = databases::sqlite();
    let store = database.connect().await;
    seeded(&store).await;
    let slack = FakeSlack::with_script(vec![Reply::Status(500)]).await;
    let job = job(&store, &slack);
    let (_, at) = slot();
    let error = job.tick(at).await.unwrap_err();
    assert!(
        format!("{error:#}").contains("Slack answered 500"),
        "{error:#}"
    );
    assert_eq!(
        job.tick(at + MINUTE).await.unwrap().as_deref(),
        Some("2026-W49")
    );
    assert_eq!(slack.requests().len(), 2);
    // Herald down for two days over the next slot: that week's digest is skipped, not late.
    assert_eq!(
        job.tick(at + WEEK + 2 * 24 * 60 * MINUTE).await.unwrap(),
        None
    );
    assert_eq!(slack.requests().len(), 2);
    store.close().await;
}

#[tokio::test]
async fn the_digest_command_posts_to_a_named_destination() {
    let app = TestApp::spawn(&[]).await;
    recent::seed(&app).await;
    let slack = FakeSlack::start().await;
    let output = run_herald(
        &["digest", "--destination", "slack"],
        &[
            ("HERALD_DATABASE_URL", &app.database_url),
            ("HERALD_SLACK_WEBHOOK_URL", &slack.url()),
            ("HERALD_PUBLIC_URL", "https://herald.example/"),
        ],
    )
    .await;
    assert!(output.success, "{output:?}");
    assert_eq!(output.stdout.trim(), "posted the digest to slack");
    let requests = slack.wait_for_requests(1).await;
    let text = requests[0].json["text"].as_str().unwrap();
    assert!(
        text.contains("• 3 opened, 0 closed; backlog 4 open"),
        "{text}"
    );
    assert!(
        text.ends_with("<https://herald.example/dashboard|Open the dashboard>"),
        "{text}"
    );

    // Without Slack the `stdout` destination prints it; an unknown name lists the known ones.
    let printed = run_herald(
        &["digest", "--destination", "stdout"],
        &[("HERALD_DATABASE_URL", &app.database_url)],
    )
    .await;
    assert!(printed.success, "{printed:?}");
    assert!(printed.stdout.starts_with("*Issue flow, "), "{printed:?}");
    let unknown = run_herald(
        &["digest", "--destination", "triage"],
        &[("HERALD_DATABASE_URL", &app.database_url)],
    )
    .await;
    assert!(!unknown.success);
    assert!(
        unknown
            .stderr
            .contains("no destination \"triage\"; configured: stdout, analytics"),
        "{unknown:?}"
    );
}
