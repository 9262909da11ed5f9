//! One bad event never takes its batch down: text PostgreSQL refuses is made storable, data the
//! store still refuses is refused alone, and a batch too large for the space left is split.

use herald::store::{Intake, Store, is_permanent};

use crate::databases;
use crate::events::event;

#[tokio::test]
async fn nul_characters_in_indexed_fields_are_stored_with_their_batch() {
    for db in databases::all().await {
        let store = db.connect().await;
        let mut batch: Vec<_> = (0..5)
            .map(|i| event(&format!("n-{i}"), &["slack"]))
            .collect();
        batch[2].repository = Some("octo/\0app".into());
        batch[2].action = Some("op\0ened".into());
        batch[2].actor = Some("\0".into());
        batch[2].payload = r#"{"repository":{"full_name":"octo/\u0000app"}}"#.into();
        let results = store.append_isolating(&batch).await;
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Ok(Intake::Stored { .. }))),
            "{}: {results:?}",
            db.label
        );
        let Ok(Intake::Stored { event_id }) = results[2] else {
            unreachable!()
        };
        let stored = store.event(event_id).await.unwrap().unwrap();
        assert_eq!(
            stored.repository.as_deref(),
            Some("octo/\u{fffd}app"),
            "{}",
            db.label
        );
        assert_eq!(
            stored.action.as_deref(),
            Some("op\u{fffd}ened"),
            "{}",
            db.label
        );
        assert_eq!(stored.actor.as_deref(), Some("\u{fffd}"), "{}", db.label);
        assert_eq!(
            stored.payload, batch[2].payload,
            "{}: the payload is kept as sent",
            db.label
        );
        assert_eq!(store.count_events().await.unwrap(), 5, "{}", db.label);
        assert_eq!(
            store.list_deliveries(None, 10).await.unwrap().len(),
            5,
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn indexed_fields_too_long_for_an_index_are_cut() {
    for db in databases::all().await {
        let store = db.connect().await;
        let mut long = event("long", &[]);
        long.repository = Some("r".repeat(10_000));
        let results = store.append_isolating(&[long, event("short", &[])]).await;
        assert!(
            results.iter().all(Result::is_ok),
            "{}: {results:?}",
            db.label
        );
        let Ok(Intake::Stored { event_id }) = results[0] else {
            unreachable!()
        };
        let stored = store.event(event_id).await.unwrap().unwrap();
        assert_eq!(
            stored.repository.unwrap().len(),
            herald::store::MAX_INDEXED_BYTES
        );
    }
}

#[tokio::test]
async fn data_the_store_refuses_is_refused_alone() {
    // A NUL in a key column is not rewritten (that could merge two keys): PostgreSQL refuses
    // it, SQLite stores it. Either way the rest of the batch is stored.
    for db in databases::all().await {
        let store = db.connect().await;
        let mut batch: Vec<_> = (0..7)
            .map(|i| event(&format!("k-{i}"), &["slack"]))
            .collect();
        batch[4].hook_id = "4\0".into();
        let results = store.append_isolating(&batch).await;
        for (index, result) in results.iter().enumerate() {
            if index == 4 && db.label == "postgres" {
                let error = result.as_ref().expect_err("PostgreSQL refuses NUL in text");
                assert!(is_permanent(error), "{error}");
            } else {
                assert!(
                    matches!(result, Ok(Intake::Stored { .. })),
                    "{}: {index}: {result:?}",
                    db.label
                );
            }
        }
        let expected = if db.label == "postgres" { 6 } else { 7 };
        assert_eq!(
            store.count_events().await.unwrap(),
            expected,
            "{}",
            db.label
        );
        // The connection that failed was not returned to the pool in a broken state.
        for round in 0..4 {
            let next = store
                .append_events(&[event(&format!("after-{round}"), &[])])
                .await;
            assert!(next.is_ok(), "{}: {next:?}", db.label);
        }
    }
}

#[tokio::test]
async fn a_batch_too_large_for_the_space_left_stores_what_fits() {
    let db = databases::sqlite();
    let store = Store::connect_limited(&db.config(), Some(1)).await.unwrap();
    let mut huge = event("huge", &["slack"]);
    huge.payload = format!("{{\"x\":\"{}\"}}", "y".repeat(2 << 20));
    let batch = [
        event("small-1", &["slack"]),
        huge,
        event("small-2", &["slack"]),
    ];
    let results = store.append_isolating(&batch).await;
    assert!(
        matches!(results[0], Ok(Intake::Stored { .. })),
        "{results:?}"
    );
    assert!(
        matches!(results[2], Ok(Intake::Stored { .. })),
        "{results:?}"
    );
    let error = results[1].as_ref().expect_err("2 MiB do not fit in 1 MiB");
    assert!(
        !is_permanent(error),
        "a full store is not the event's fault: {error}"
    );
    assert_eq!(store.count_events().await.unwrap(), 2);
    // Every pooled connection still commits: none was left inside the failed transaction.
    for round in 0..6 {
        store
            .append_events(&[event(&format!("after-{round}"), &[])])
            .await
            .unwrap();
        store.probe_write().await.unwrap();
    }
}
