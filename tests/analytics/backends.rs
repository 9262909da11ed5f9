//! The same history on SQLite and on PostgreSQL gives the same hand-computed report: the store's
//! per-backend SQL feeds one computation, and both must agree to the millisecond.

use herald::analytics::{ReportRequest, build_report, from_webhook};
use herald::store::Store;
use herald::time_util::now_ms;
use serde_json::Value;

use crate::databases;
use crate::scenario::{history, january, january_bug, january_gadgets};

async fn report(
    store: &Store,
    repo: Option<&str>,
    label: Option<&str>,
    group_by: Option<&str>,
) -> Value {
    let now = now_ms();
    let query = ReportRequest {
        since: Some("2020-01-01".into()),
        until: Some("2020-01-31".into()),
        repo: repo.map(str::to_owned),
        label: label.map(str::to_owned),
        group_by: group_by.map(str::to_owned),
    }
    .parse(now)
    .unwrap();
    let facts = store.issue_facts(&query).await.unwrap();
    serde_json::to_value(build_report(&query, &facts, now)).unwrap()
}

#[tokio::test]
async fn both_backends_compute_the_same_hand_computed_reports() {
    for database in databases::all().await {
        let store = database.connect().await;
        for (event, _delivery, body) in history() {
            let changes = from_webhook(event, &body.to_string()).unwrap();
            store.apply_lifecycle(&changes).await.unwrap();
        }
        let label = database.label;
        assert_eq!(
            report(&store, None, None, None).await,
            january(false),
            "{label}"
        );
        assert_eq!(
            report(&store, None, None, Some("repo")).await,
            january(true),
            "{label}"
        );
        assert_eq!(
            report(&store, None, Some("bug"), None).await,
            january_bug(),
            "{label}"
        );
        assert_eq!(
            report(&store, Some("acme/gadgets"), None, None).await,
            january_gadgets(),
            "{label}"
        );
    }
}
