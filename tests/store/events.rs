//! Appending events: durability of the batch, deduplication, outbox rows per destination.

use herald::store::{Intake, NewEvent};

use crate::databases;

pub fn event(delivery: &str, destinations: &[&str]) -> NewEvent {
    NewEvent {
        hook_id: "1".into(),
        delivery_id: delivery.into(),
        event: "issues".into(),
        action: Some("opened".into()),
        repository: Some("o/r".into()),
        issue_number: Some(7),
        actor: Some("alice".into()),
        received_at: 1_700_000_000_000,
        payload: format!("{{\"delivery\":\"{delivery}\"}}"),
        destinations: destinations
            .iter()
            .map(|s| std::sync::Arc::from(*s))
            .collect(),
    }
}

#[tokio::test]
async fn appends_dedupes_and_fans_out_to_destinations() {
    for db in databases::all().await {
        let store = db.connect().await;
        let batch = [
            event("a", &["slack", "analytics"]),
            event("b", &[]),
            event("a", &["slack"]),
        ];
        let intakes = store.append_events(&batch).await.unwrap();
        assert!(matches!(intakes[0], Intake::Stored { .. }), "{}", db.label);
        assert!(matches!(intakes[1], Intake::Stored { .. }), "{}", db.label);
        assert_eq!(
            intakes[2],
            Intake::Duplicate,
            "{}: duplicate within one batch",
            db.label
        );
        assert_eq!(
            store
                .append_events(&[event("a", &["slack"])])
                .await
                .unwrap(),
            vec![Intake::Duplicate]
        );
        assert_eq!(store.count_events().await.unwrap(), 2, "{}", db.label);
        let rows = store.list_deliveries(None, 10).await.unwrap();
        let mut sinks: Vec<&str> = rows.iter().map(|r| r.destination.as_str()).collect();
        sinks.sort_unstable();
        assert_eq!(sinks, ["analytics", "slack"], "{}", db.label);
        let Intake::Stored { event_id } = intakes[0] else {
            unreachable!()
        };
        let stored = store.event(event_id).await.unwrap().unwrap();
        assert_eq!(
            (
                stored.delivery_id.as_str(),
                stored.issue_number,
                stored.payload.as_str()
            ),
            ("a", Some(7), "{\"delivery\":\"a\"}")
        );
    }
}

#[tokio::test]
async fn the_same_delivery_id_under_another_hook_is_a_new_event() {
    for db in databases::all().await {
        let store = db.connect().await;
        let mut other_hook = event("a", &[]);
        other_hook.hook_id = "2".into();
        let intakes = store
            .append_events(&[event("a", &[]), other_hook])
            .await
            .unwrap();
        assert!(
            intakes.iter().all(|i| matches!(i, Intake::Stored { .. })),
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn concurrent_instances_store_a_redelivery_once() {
    for db in databases::all().await {
        // Eight pools stand for eight instances racing on the same delivery.
        let mut stores = Vec::new();
        for _ in 0..8 {
            stores.push(db.connect().await);
        }
        let attempts = stores.iter().map(|store| async move {
            store
                .append_events(&[event("race", &["slack"])])
                .await
                .unwrap()[0]
        });
        let intakes = futures_util::future::join_all(attempts).await;
        let stored = intakes
            .iter()
            .filter(|i| matches!(i, Intake::Stored { .. }))
            .count();
        assert_eq!(stored, 1, "{}: {intakes:?}", db.label);
        assert_eq!(stores[0].count_events().await.unwrap(), 1, "{}", db.label);
        assert_eq!(
            stores[0].list_deliveries(None, 10).await.unwrap().len(),
            1,
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn migrations_are_idempotent_and_ping_answers() {
    for db in databases::all().await {
        let first = db.connect().await;
        let second = db.connect().await; // applies migrations again: nothing to do
        second.migrate().await.unwrap();
        first.ping().await.unwrap();
        assert_eq!(second.count_events().await.unwrap(), 0, "{}", db.label);
    }
}
