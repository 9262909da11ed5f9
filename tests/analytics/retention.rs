//! Retention: `HERALD_RETENTION` forgets finished deliveries and raw events, keeps what the
//! metrics read, and the report does not change.

use std::sync::Arc;

use herald::store::NewEvent;
use herald::time_util::now_ms;

use crate::common::{AppBuilder, wait_until};
use crate::helpers::TestApp;
use crate::scenario::{JANUARY, history, january};

#[tokio::test]
async fn pruning_forgets_deliveries_and_payloads_but_not_the_metrics() {
    let app = TestApp::spawn(&[]).await;
    for (event, delivery, body) in history() {
        assert_eq!(app.send(event, &delivery, &body).await, 202, "{delivery}");
    }
    app.wait_for_deliveries().await;
    let before = app.metrics(JANUARY).await;
    assert_eq!(before, january(false));
    let store = app.store().await;
    let events = store.count_events().await.unwrap();
    let rows = store.list_deliveries(None, 100_000).await.unwrap().len() as u64;
    assert!(events > 0 && rows > 0);
    // Everything was received "now": a cutoff after now prunes it all.
    let pruned = store.prune(now_ms() + 60_000).await.unwrap();
    assert_eq!(
        (pruned.deliveries, pruned.events),
        (rows, events as u64),
        "every finished delivery and every event"
    );
    assert_eq!(store.count_events().await.unwrap(), 0);
    assert!(store.list_deliveries(None, 10).await.unwrap().is_empty());
    assert_eq!(
        app.metrics(JANUARY).await,
        before,
        "the lifecycle tables the metrics read are kept"
    );
    // Nothing older is left: a second pass prunes nothing.
    assert_eq!(
        store.prune(now_ms() + 60_000).await.unwrap(),
        herald::store::Pruned::default()
    );
}

#[tokio::test]
async fn serve_prunes_on_its_own_and_keeps_what_still_waits() {
    let builder = AppBuilder::new().arg("--notify-events", "");
    let store = crate::common::open_store(&builder.database_url()).await;
    let old = now_ms() - 3 * 86_400_000;
    let event = |delivery: &str, destinations: &[&str]| NewEvent {
        hook_id: "1".into(),
        delivery_id: delivery.into(),
        event: "push".into(),
        action: None,
        repository: Some("o/r".into()),
        issue_number: None,
        actor: None,
        received_at: old,
        payload: "{}".into(),
        destinations: destinations.iter().map(|name| Arc::from(*name)).collect(),
    };
    // An old event nobody delivers to, and one still waiting for a destination.
    store
        .append_events(&[event("finished", &[]), event("waiting", &["elsewhere"])])
        .await
        .unwrap();
    assert_eq!(store.count_events().await.unwrap(), 2);
    let app = builder.args(&["--retention", "1d"]).spawn().await;
    wait_until("serve pruned the old event", || async {
        store.count_events().await.unwrap() == 1
    })
    .await;
    let rows = store.list_deliveries(None, 10).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].delivery_id.as_str(), rows[0].status.as_str()),
        ("waiting", "pending"),
        "a delivery still waiting keeps its event"
    );
    drop(app);
}
