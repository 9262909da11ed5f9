//! Deletions leave the metrics: live through `issue_comment.deleted`, `issues.deleted` and
//! `issues.transferred` webhooks, and through a backfill, whose complete pass marks what GitHub
//! no longer returns as deleted or transferred (asking GitHub about each missing issue), while
//! an interrupted pass reconciles nothing.

use serde_json::json;

use crate::backfill::{TOKEN, issue, pages, setup};
use crate::fake_github::{ItemAnswer, List, Scripted};
use crate::helpers::{CommentSpec, IssueSpec, Snapshot, TestApp};

/// What GitHub returns after #4 was deleted (with alice's answer on it), #5 transferred to
/// acme/elsewhere, and bob's answer on #1 deleted.
fn pages_after_deletions() -> (Vec<Vec<serde_json::Value>>, Vec<Vec<serde_json::Value>>) {
    let (mut issues, mut comments) = pages();
    issues[1].retain(|item| item["number"] != json!(4));
    issues[2].clear();
    comments[0].retain(|item| item["id"] != json!(1));
    comments[1].retain(|item| item["id"] != json!(5));
    (issues, comments)
}

async fn deleted_reasons(database_url: &str) -> Vec<(i64, Option<String>)> {
    let store = crate::helpers::open_store(database_url).await;
    let herald::store::Store::Sqlite(pool, ..) = &store else {
        unreachable!("the backfill tests run on SQLite")
    };
    let rows = sqlx::query_as(
        "SELECT number, deleted_reason FROM issues WHERE deleted = 1 ORDER BY number",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    store.close().await;
    rows
}

#[tokio::test]
async fn a_complete_backfill_pass_reconciles_deletions_and_transfers() {
    let setup = setup(Some(TOKEN)).await;
    assert!(setup.backfill(&[]).await.success);
    assert_eq!(setup.report().await["issues"]["opened"], json!(4));

    let (issues, comments) = pages_after_deletions();
    setup.github.set_pages(issues, comments);
    setup.github.answer_item(4, ItemAnswer::Status(410));
    setup
        .github
        .answer_item(5, ItemAnswer::MovedTo("acme/elsewhere", 9));
    let output = setup.backfill(&["--restart"]).await;
    assert!(output.success, "{output:?}");
    assert!(
        output.stdout.contains(
            "reconciled acme/widgets: 1 issues deleted, 1 transferred, 2 comments deleted"
        ),
        "{output:?}"
    );
    // Each missing issue was asked about once.
    let asked: Vec<List> = setup
        .github
        .requests()
        .into_iter()
        .map(|(list, _)| list)
        .filter(|list| matches!(list, List::Issue(_)))
        .collect();
    assert_eq!(asked, [List::Issue(4), List::Issue(5)]);
    assert_eq!(setup.github.violations(), Vec::<String>::new());

    // Left: #1 (closed after a day, its only answer deleted) and #3 (open, unanswered).
    let report = setup.report().await;
    assert_eq!(
        report["issues"],
        json!({"opened": 2, "closed": 1, "open_now": 1})
    );
    assert_eq!(
        report["time_to_first_response"],
        json!({"count": 0, "unanswered": 2, "mean_seconds": null, "median_seconds": null,
               "p90_seconds": null})
    );
    assert_eq!(report["time_to_close"]["median_seconds"], json!(86_400));
    assert_eq!(
        deleted_reasons(&setup.database_url).await,
        [(4, Some("deleted".into())), (5, Some("transferred".into()))]
    );
}

#[tokio::test]
async fn an_interrupted_pass_reconciles_nothing() {
    let setup = setup(Some(TOKEN)).await;
    assert!(setup.backfill(&[]).await.success);
    let (issues, comments) = pages_after_deletions();
    setup.github.set_pages(issues, comments);
    setup
        .github
        .script(List::Comments, 2, Scripted::Status(500));
    let interrupted = setup.backfill(&["--restart"]).await;
    assert!(!interrupted.success, "{interrupted:?}");
    assert!(
        !setup
            .github
            .requests()
            .iter()
            .any(|(list, _)| matches!(list, List::Issue(_))),
        "nothing is reconciled before the pass is complete"
    );
    assert_eq!(setup.report().await["issues"]["opened"], json!(4));

    // Resumed to the end: now it reconciles (GitHub answers 404 for both: deleted).
    let resumed = setup.backfill(&[]).await;
    assert!(resumed.success, "{resumed:?}");
    assert!(
        resumed.stdout.contains(
            "reconciled acme/widgets: 2 issues deleted, 0 transferred, 2 comments deleted"
        ),
        "{resumed:?}"
    );
    assert_eq!(setup.report().await["issues"]["opened"], json!(2));
}

#[tokio::test]
async fn issues_created_after_the_pass_began_are_kept() {
    let setup = setup(Some(TOKEN)).await;
    // Stored by a webhook, opened after the pass below begins (so no pass could have seen it).
    let later = IssueSpec::new("acme/widgets", 77, "zoe", "2099-01-01T00:00:00Z");
    let store = crate::helpers::open_store(&setup.database_url).await;
    let changes = herald::analytics::from_webhook(
        "issues",
        &later
            .event("opened", &Snapshot::open("2099-01-01T00:00:00Z"))
            .to_string(),
    )
    .unwrap();
    store.apply_lifecycle(&changes).await.unwrap();
    store.close().await;
    let output = setup.backfill(&[]).await;
    assert!(output.success, "{output:?}");
    assert!(
        output.stdout.contains("0 issues deleted, 0 transferred"),
        "{output:?}"
    );
    assert_eq!(deleted_reasons(&setup.database_url).await, []);
}

#[tokio::test]
async fn deletion_and_transfer_webhooks_leave_the_metrics_live() {
    let app = TestApp::spawn(&[]).await;
    let one = issue(1, "alice", "2020-01-05T00:00:00Z");
    let two = issue(2, "bob", "2020-01-06T00:00:00Z");
    let three = issue(3, "carol", "2020-01-07T00:00:00Z");
    let answer = CommentSpec::new(1, "bob", "2020-01-05T01:00:00Z");
    let open = |at| Snapshot::open(at);
    for (event, delivery, body) in [
        (
            "issues",
            "d1",
            one.event("opened", &open("2020-01-05T00:00:00Z")),
        ),
        (
            "issue_comment",
            "d2",
            one.comment_event("created", &answer, &open("2020-01-05T01:00:00Z")),
        ),
        (
            "issues",
            "d3",
            two.event("opened", &open("2020-01-06T00:00:00Z")),
        ),
        (
            "issues",
            "d4",
            three.event("opened", &open("2020-01-07T00:00:00Z")),
        ),
    ] {
        assert_eq!(app.send(event, delivery, &body).await, 202);
    }
    app.wait_for_deliveries().await;
    let january = "since=2020-01-01&until=2020-01-31";
    let before = app.metrics(january).await;
    assert_eq!(before["issues"]["opened"], json!(3));
    assert_eq!(before["time_to_first_response"]["count"], json!(1));

    for (event, delivery, body) in [
        (
            "issue_comment",
            "d5",
            one.comment_event("deleted", &answer, &open("2020-01-08T00:00:00Z")),
        ),
        (
            "issues",
            "d6",
            two.event("transferred", &open("2020-01-08T00:00:00Z")),
        ),
        (
            "issues",
            "d7",
            three.event("deleted", &open("2020-01-08T00:00:00Z")),
        ),
    ] {
        assert_eq!(app.send(event, delivery, &body).await, 202);
    }
    app.wait_for_deliveries().await;
    let after = app.metrics(january).await;
    assert_eq!(
        after["issues"],
        json!({"opened": 1, "closed": 0, "open_now": 1})
    );
    assert_eq!(
        after["time_to_first_response"],
        json!({"count": 0, "unanswered": 1, "mean_seconds": null, "median_seconds": null,
               "p90_seconds": null})
    );
    assert_eq!(
        deleted_reasons(&app.database_url).await,
        [(2, Some("transferred".into())), (3, Some("deleted".into()))]
    );
}
