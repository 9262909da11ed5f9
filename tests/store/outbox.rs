//! The outbox: claiming under leases, skipping rows other workers hold, taking over expired
//! leases, recording outcomes, dead letters and their revival.

use std::collections::HashSet;

use herald::store::{DeliveryStatus, Finish, Intake, QueueDepth, Store};

use crate::databases;
use crate::events::event;

const T0: i64 = 1_700_000_000_000;
const LEASE: i64 = 60_000;

/// Stores `count` events with one `slack` row each (due at `T0`); returns the event ids.
async fn seed(store: &Store, count: usize) -> Vec<i64> {
    let events: Vec<_> = (0..count)
        .map(|i| event(&format!("d{i}"), &["slack"]))
        .collect();
    store
        .append_events(&events)
        .await
        .unwrap()
        .into_iter()
        .map(|intake| match intake {
            Intake::Stored { event_id } => event_id,
            Intake::Duplicate => panic!("unexpected duplicate"),
        })
        .collect()
}

#[tokio::test]
async fn claims_due_rows_once_until_the_lease_expires() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 3).await;
        let claimed = store.claim_due("a", T0, LEASE, 2).await.unwrap();
        assert_eq!(claimed.len(), 2, "{}: the limit holds", db.label);
        assert!(
            claimed
                .iter()
                .all(|c| c.sink == "slack" && c.attempts == 0 && !c.interrupted)
        );
        assert_eq!(
            claimed[0].event.delivery_id, "d0",
            "{}: oldest first",
            db.label
        );
        let rest = store.claim_due("b", T0, LEASE, 10).await.unwrap();
        assert_eq!(rest.len(), 1, "{}: leased rows are skipped", db.label);
        assert!(
            store
                .claim_due("c", T0 + LEASE - 1, LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        let taken_over = store.claim_due("c", T0 + LEASE, LEASE, 10).await.unwrap();
        assert_eq!(
            taken_over.len(),
            3,
            "{}: expired leases are taken over",
            db.label
        );
        // The first owner lost its lease: it may neither start nor record an attempt.
        assert!(
            !store
                .start_attempt(claimed[0].id, "a", T0 + LEASE, LEASE)
                .await
                .unwrap(),
            "{}",
            db.label
        );
        assert!(
            !store
                .finish(claimed[0].id, "a", T0, &Finish::Delivered { attempts: 1 })
                .await
                .unwrap()
        );
        assert!(
            store
                .start_attempt(claimed[0].id, "c", T0 + LEASE, LEASE)
                .await
                .unwrap(),
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn rows_not_yet_due_are_not_claimed() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 1).await;
        let claim = store.claim_due("a", T0, LEASE, 1).await.unwrap().remove(0);
        let retry = Finish::Retry {
            attempts: 1,
            next_attempt_at: T0 + 5_000,
            error: "HTTP 500".into(),
        };
        assert!(store.finish(claim.id, "a", T0, &retry).await.unwrap());
        assert!(
            store
                .claim_due("a", T0 + 4_999, LEASE, 1)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        let again = store.claim_due("a", T0 + 5_000, LEASE, 1).await.unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 1), "{}", db.label);
        let row = &store.list_deliveries(None, 1).await.unwrap()[0];
        assert_eq!(row.last_error.as_deref(), Some("HTTP 500"), "{}", db.label);
    }
}

#[tokio::test]
async fn an_attempt_started_and_never_finished_is_flagged_interrupted() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 2).await;
        let claims = store.claim_due("crashed", T0, LEASE, 2).await.unwrap();
        assert!(
            store
                .start_attempt(claims[0].id, "crashed", T0, LEASE)
                .await
                .unwrap()
        );
        // The process dies here. Its successor (SQLite) frees every lease at start:
        assert_eq!(store.release_leases().await.unwrap(), 2, "{}", db.label);
        let resumed = store.claim_due("next", T0 + 1, LEASE, 10).await.unwrap();
        let flags: Vec<bool> = resumed.iter().map(|c| c.interrupted).collect();
        assert_eq!(
            flags,
            vec![true, false],
            "{}: only the started attempt is ambiguous",
            db.label
        );
    }
}

#[tokio::test]
async fn concurrent_workers_never_claim_the_same_row() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 400).await;
        let mut workers = Vec::new();
        for worker in 0..4 {
            let store = db.connect().await;
            workers.push(tokio::spawn(async move {
                let owner = format!("w{worker}");
                let mut mine = Vec::new();
                loop {
                    let batch = store.claim_due(&owner, T0, LEASE, 7).await.unwrap();
                    if batch.is_empty() {
                        break mine;
                    }
                    for claim in batch {
                        assert!(
                            store
                                .finish(claim.id, &owner, T0, &Finish::Delivered { attempts: 1 })
                                .await
                                .unwrap()
                        );
                        mine.push(claim.id);
                    }
                }
            }));
        }
        let mut seen = HashSet::new();
        let mut total = 0;
        for worker in workers {
            for id in worker.await.unwrap() {
                total += 1;
                assert!(seen.insert(id), "{}: row {id} claimed twice", db.label);
            }
        }
        assert_eq!(total, 400, "{}", db.label);
        assert_eq!(
            store.queue_depth().await.unwrap(),
            QueueDepth {
                pending: 0,
                dead: 0
            },
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn dead_letters_are_listed_counted_and_revived() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 3).await;
        let claims = store.claim_due("a", T0, LEASE, 3).await.unwrap();
        for claim in &claims[..2] {
            let dead = Finish::Dead {
                attempts: 3,
                error: "gave up".into(),
            };
            assert!(store.finish(claim.id, "a", T0, &dead).await.unwrap());
        }
        assert!(
            store
                .finish(claims[2].id, "a", T0, &Finish::Delivered { attempts: 1 })
                .await
                .unwrap()
        );
        assert_eq!(
            store.queue_depth().await.unwrap(),
            QueueDepth {
                pending: 0,
                dead: 2
            },
            "{}",
            db.label
        );
        let dead = store
            .list_deliveries(Some(DeliveryStatus::Dead), 10)
            .await
            .unwrap();
        assert_eq!(dead.len(), 2, "{}", db.label);
        assert!(
            dead.iter()
                .all(|r| r.status == "dead" && r.attempts == 3 && r.event == "issues")
        );
        assert_eq!(
            store
                .list_deliveries(Some(DeliveryStatus::Delivered), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store.list_deliveries(None, 2).await.unwrap().len(),
            2,
            "{}: the limit holds",
            db.label
        );

        assert_eq!(
            store.retry_dead(Some(dead[0].id), T0 + 10).await.unwrap(),
            1,
            "{}",
            db.label
        );
        assert_eq!(
            store.retry_dead(Some(claims[2].id), T0 + 10).await.unwrap(),
            0,
            "{}: only dead rows",
            db.label
        );
        assert_eq!(
            store.queue_depth().await.unwrap(),
            QueueDepth {
                pending: 1,
                dead: 1
            },
            "{}",
            db.label
        );
        assert_eq!(
            store.retry_dead(None, T0 + 10).await.unwrap(),
            1,
            "{}",
            db.label
        );
        let revived = store.claim_due("b", T0 + 10, LEASE, 10).await.unwrap();
        assert_eq!(revived.len(), 2, "{}", db.label);
        assert!(
            revived.iter().all(|c| c.attempts == 0 && !c.interrupted),
            "{}: a fresh schedule",
            db.label
        );
    }
}

#[tokio::test]
async fn a_released_lease_is_claimable_at_once() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 1).await;
        let claim = store.claim_due("a", T0, LEASE, 1).await.unwrap().remove(0);
        store.release_lease(claim.id, "b").await.unwrap(); // not the owner: no effect
        assert!(
            store.claim_due("c", T0, LEASE, 1).await.unwrap().is_empty(),
            "{}",
            db.label
        );
        store.release_lease(claim.id, "a").await.unwrap();
        let again = store.claim_due("c", T0, LEASE, 1).await.unwrap();
        assert_eq!(again.len(), 1, "{}", db.label);
        assert!(
            !again[0].interrupted,
            "{}: released before starting is not ambiguous",
            db.label
        );
    }
}
