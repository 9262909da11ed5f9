//! The lifecycle tables straight through the store, on SQLite and PostgreSQL: any arrival order,
//! with duplicates, gives the same per-issue record; a comment may come before its issue;
//! deletions stick; backfill progress is kept per repository and phase.

use herald::analytics::{IssueFacts, IssueRecord, LifecycleChanges, ReportRequest, from_webhook};
use herald::store::{BackfillPhase, BackfillStep, PhaseProgress, Store};
use serde_json::Value;

use crate::databases;
use crate::helpers::{CommentSpec, IssueSpec, Snapshot};

async fn apply(store: &Store, event: &str, payload: &Value) {
    let changes = from_webhook(event, &payload.to_string()).unwrap();
    store.apply_lifecycle(&changes).await.unwrap();
}

async fn records(store: &Store, repo: &str, label: Option<&str>) -> Vec<IssueRecord> {
    let query = ReportRequest {
        repo: Some(repo.to_owned()),
        label: label.map(str::to_owned),
        ..ReportRequest::default()
    }
    .parse(herald::time_util::now_ms())
    .unwrap();
    store.issue_lifecycles(&query).await.unwrap()
}

/// One issue's history in `repo`, in the order it happened.
fn history(repo: &'static str) -> Vec<(&'static str, Value)> {
    let before = IssueSpec::new(repo, 2, "carol", "2020-01-06T00:00:00Z").labels(&["bug"]);
    let after = before.clone().labels(&["bug", "ui"]).assignees(&["bob"]);
    let gina = CommentSpec::new(20, "gina", "2020-01-06T00:10:00Z");
    vec![
        (
            "issues",
            before.event("opened", &Snapshot::open("2020-01-06T00:00:00Z")),
        ),
        (
            "issue_comment",
            before.comment_event("created", &gina, &Snapshot::open("2020-01-06T00:10:00Z")),
        ),
        (
            "issue_comment",
            before.comment_event(
                "created",
                &CommentSpec::new(21, "carol", "2020-01-06T00:20:00Z"),
                &Snapshot::open("2020-01-06T00:20:00Z"),
            ),
        ),
        (
            "issue_comment",
            before.comment_event(
                "created",
                &CommentSpec::new(22, "github-actions[bot]", "2020-01-06T00:25:00Z").bot(),
                &Snapshot::open("2020-01-06T00:25:00Z"),
            ),
        ),
        (
            "issue_comment",
            before.comment_event(
                "created",
                &CommentSpec::new(23, "bob", "2020-01-06T00:30:00Z"),
                &Snapshot::open("2020-01-06T00:30:00Z"),
            ),
        ),
        (
            "issue_comment",
            before.comment_event("deleted", &gina, &Snapshot::open("2020-01-06T00:40:00Z")),
        ),
        (
            "issues",
            before.event(
                "closed",
                &Snapshot::closed("2020-01-06T01:00:00Z", "not_planned"),
            ),
        ),
        (
            "issues",
            after.event(
                "labeled",
                &Snapshot {
                    updated_at: "2020-01-06T01:30:00Z",
                    state: "closed",
                    closed_at: Some("2020-01-06T01:00:00Z"),
                    state_reason: Some("not_planned"),
                },
            ),
        ),
        (
            "issues",
            after.event(
                "reopened",
                &Snapshot {
                    updated_at: "2020-01-06T02:00:00Z",
                    state: "open",
                    closed_at: Some("2020-01-06T01:00:00Z"),
                    state_reason: Some("reopened"),
                },
            ),
        ),
        (
            "issues",
            after.event(
                "closed",
                &Snapshot::closed("2020-01-06T05:00:00Z", "completed"),
            ),
        ),
    ]
}

fn expected(repo: &str) -> IssueRecord {
    IssueRecord {
        repository: repo.to_owned(),
        number: 2,
        title: "Issue 2".into(),
        author: "carol".into(),
        author_is_bot: false,
        labels: vec!["bug".into(), "ui".into()],
        assignees: vec!["bob".into()],
        // 2020-01-06T00:00:00Z
        created_at: 1_578_268_800_000,
        // The last close, 5 h later.
        closed_at: Some(1_578_268_800_000 + 5 * 3_600_000),
        state: "closed".into(),
        state_reason: Some("completed".into()),
        // gina's comment was deleted, carol is the author, the bot does not count: bob, at 00:30.
        first_response_at: Some(1_578_268_800_000 + 30 * 60_000),
        first_responder: Some("bob".into()),
        // carol, the bot and bob; gina's is deleted.
        comment_count: 3,
    }
}

/// A small deterministic generator, so a failing order can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

#[tokio::test]
async fn every_arrival_order_gives_the_same_record() {
    for database in databases::all().await {
        every_arrival_order_on(&database.connect().await, database.label).await;
    }
}

/// The analytics sink applies a whole batch at once (one statement per table on PostgreSQL):
/// any order within a batch, duplicates included, gives what applying one by one gives.
#[tokio::test]
async fn every_order_within_one_batch_gives_the_same_record() {
    for database in databases::all().await {
        let store = database.connect().await;
        let mut random = XorShift(0x2545_F491_4F6C_DD1D);
        for round in 0..20 {
            let repo: &'static str = Box::leak(format!("batch/r{round}").into_boxed_str());
            let mut events = history(repo);
            for i in (1..events.len()).rev() {
                events.swap(i, random.next(i + 1));
            }
            for _ in 0..3 {
                let again = events[random.next(events.len())].clone();
                events.insert(random.next(events.len() + 1), again);
            }
            let changes: Vec<LifecycleChanges> = events
                .iter()
                .map(|(event, payload)| from_webhook(event, &payload.to_string()).unwrap())
                .collect();
            // All in one batch, or in batches of three.
            let size = if round % 2 == 0 { changes.len() } else { 3 };
            for batch in changes.chunks(size) {
                let batch: Vec<&LifecycleChanges> = batch.iter().collect();
                store.apply_lifecycles(&batch).await.unwrap();
            }
            assert_eq!(
                records(&store, repo, None).await,
                vec![expected(repo)],
                "{}: round {round}",
                database.label
            );
            assert_eq!(
                records(&store, repo, Some("UI")).await.len(),
                1,
                "{}: the label table follows the newest snapshot",
                database.label
            );
        }
    }
}

async fn every_arrival_order_on(store: &Store, backend: &str) {
    for (event, payload) in history("order/in-order") {
        apply(store, event, &payload).await;
    }
    assert_eq!(
        records(store, "order/in-order", None).await,
        vec![expected("order/in-order")],
        "{backend}"
    );

    // Reversed, then 30 shuffles, each with some events applied twice.
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..31 {
        let repo: &'static str = Box::leak(format!("order/r{round}").into_boxed_str());
        let mut events = history(repo);
        if round == 0 {
            events.reverse();
        } else {
            for i in (1..events.len()).rev() {
                events.swap(i, random.next(i + 1));
            }
            for _ in 0..3 {
                let again = events[random.next(events.len())].clone();
                events.insert(random.next(events.len() + 1), again);
            }
        }
        for (event, payload) in &events {
            apply(store, event, payload).await;
        }
        let order: Vec<String> = events
            .iter()
            .map(|(event, payload)| format!("{event}.{}", payload["action"].as_str().unwrap()))
            .collect();
        assert_eq!(
            records(store, repo, None).await,
            vec![expected(repo)],
            "{backend}: order {order:?}"
        );
        // The label table follows the newest snapshot too.
        assert_eq!(
            records(store, repo, Some("UI")).await.len(),
            1,
            "{backend}: order {order:?}"
        );
        assert_eq!(records(store, repo, Some("wontfix")).await.len(), 0);
    }

    // What the report reads: the same issue, with its keys for each grouping.
    let record = expected("order/r7");
    for (group_by, groups) in [
        (None, vec![]),
        (Some("repo"), vec!["order/r7"]),
        (Some("author"), vec!["carol"]),
        (Some("label"), vec!["bug", "ui"]),
        (Some("assignee"), vec!["bob"]),
    ] {
        let query = ReportRequest {
            repo: Some("order/r7".into()),
            group_by: group_by.map(String::from),
            ..ReportRequest::default()
        }
        .parse(herald::time_util::now_ms())
        .unwrap();
        let facts = IssueFacts {
            created_at: record.created_at,
            closed_at: record.closed_at,
            state_reason: record.state_reason.clone(),
            first_response_at: record.first_response_at,
            groups: groups.into_iter().map(String::from).collect(),
        };
        assert_eq!(
            store.issue_facts(&query).await.unwrap(),
            vec![facts],
            "{backend} {group_by:?}"
        );
    }
    // Without filters, every repository.
    let everything = ReportRequest::default()
        .parse(herald::time_util::now_ms())
        .unwrap();
    assert_eq!(store.issue_facts(&everything).await.unwrap().len(), 32);
}

#[tokio::test]
async fn a_comment_before_its_issue_still_counts() {
    for database in databases::all().await {
        let store = database.connect().await;
        let issue = IssueSpec::new("early/bird", 3, "alice", "2020-01-01T00:00:00Z");
        let reply = CommentSpec::new(30, "bob", "2020-01-01T00:05:00Z");
        // Only the comment row, as if the comment's own issue snapshot had been lost.
        let mut changes = from_webhook(
            "issue_comment",
            &issue
                .comment_event("created", &reply, &Snapshot::open("2020-01-01T00:05:00Z"))
                .to_string(),
        )
        .unwrap();
        changes.issues.clear();
        store.apply_lifecycle(&changes).await.unwrap();
        assert!(records(&store, "early/bird", None).await.is_empty());
        let opened = issue.event("opened", &Snapshot::open("2020-01-01T00:00:00Z"));
        apply(&store, "issues", &opened).await;
        let record = &records(&store, "early/bird", None).await[0];
        // 2020-01-01T00:00:00Z plus 5 minutes.
        assert_eq!(
            record.first_response_at,
            Some(1_577_836_800_000 + 5 * 60_000),
            "{}",
            database.label
        );
        assert_eq!(record.first_responder.as_deref(), Some("bob"));
        assert_eq!(record.comment_count, 1);
    }
}

#[tokio::test]
async fn deletions_stick_whatever_comes_after() {
    for database in databases::all().await {
        let store = database.connect().await;
        let issue = IssueSpec::new("gone/away", 5, "erin", "2020-01-08T00:00:00Z");
        // Deleted first; the opened event and a later edit arrive after it.
        for (action, at) in [
            ("deleted", "2020-01-08T01:00:00Z"),
            ("opened", "2020-01-08T00:00:00Z"),
            ("edited", "2020-01-09T00:00:00Z"),
        ] {
            apply(&store, "issues", &issue.event(action, &Snapshot::open(at))).await;
        }
        assert!(
            records(&store, "gone/away", None).await.is_empty(),
            "{}",
            database.label
        );

        let kept = IssueSpec::new("gone/away", 6, "erin", "2020-01-08T00:00:00Z");
        let comment = CommentSpec::new(60, "bob", "2020-01-08T00:01:00Z");
        for (action, at) in [
            ("deleted", "2020-01-08T00:02:00Z"),
            ("created", "2020-01-08T00:01:00Z"),
        ] {
            let payload = kept.comment_event(action, &comment, &Snapshot::open(at));
            apply(&store, "issue_comment", &payload).await;
        }
        let record = &records(&store, "gone/away", None).await[0];
        assert_eq!(
            (record.first_response_at, record.comment_count),
            (None, 0),
            "{}",
            database.label
        );
    }
}

#[tokio::test]
async fn backfill_progress_is_kept_per_repository_and_phase() {
    for database in databases::all().await {
        let store = database.connect().await;
        let label = database.label;
        let none = [PhaseProgress::NotStarted, PhaseProgress::NotStarted];
        assert_eq!(
            store.backfill_progress("o/r").await.unwrap(),
            none,
            "{label}"
        );
        let issue = IssueSpec::new("o/r", 1, "alice", "2020-01-01T00:00:00Z");
        let changes = from_webhook(
            "issues",
            &issue
                .event("opened", &Snapshot::open("2020-01-01T00:00:00Z"))
                .to_string(),
        )
        .unwrap();
        let step = |phase, next_url| BackfillStep {
            repository: "o/r",
            phase,
            next_url,
            pass: Some(1),
        };
        store
            .save_backfill_page(
                &changes,
                step(BackfillPhase::Issues, Some("https://x/?page=2")),
            )
            .await
            .unwrap();
        assert_eq!(
            store.backfill_progress("o/r").await.unwrap(),
            [
                PhaseProgress::ResumeAt("https://x/?page=2".into()),
                PhaseProgress::NotStarted
            ],
            "{label}"
        );
        // The page's data is stored with the progress.
        assert_eq!(
            store.issue_numbers("o/r").await.unwrap(),
            [1].into(),
            "{label}"
        );
        let empty = LifecycleChanges::default();
        store
            .save_backfill_page(&empty, step(BackfillPhase::Issues, None))
            .await
            .unwrap();
        store
            .save_backfill_page(
                &empty,
                step(BackfillPhase::Comments, Some("https://x/c?page=3")),
            )
            .await
            .unwrap();
        assert_eq!(
            store.backfill_progress("o/r").await.unwrap(),
            [
                PhaseProgress::Done,
                PhaseProgress::ResumeAt("https://x/c?page=3".into())
            ],
            "{label}"
        );
        // Another repository is untouched, and a reset forgets only this one.
        assert_eq!(store.backfill_progress("o/other").await.unwrap(), none);
        store.reset_backfill("o/r").await.unwrap();
        assert_eq!(
            store.backfill_progress("o/r").await.unwrap(),
            none,
            "{label}"
        );
    }
}
