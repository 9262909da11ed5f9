//! The outbox: claiming per destination under leases, skipping rows other owners hold, taking
//! over expired leases, recording attempts and outcomes in batches, pauses and shared rates, dead
//! letters and their revival.

use std::collections::HashSet;

use herald::domain::{AttemptLog, DeliveryStatus, Finish};
use herald::store::{Intake, QueueDepth, Store};

use crate::databases;
use crate::events::event;

const T0: i64 = 1_700_000_000_000;
const LEASE: i64 = 60_000;

/// Stores `count` events with one `slack` row each (due at `T0`); returns the event ids.
async fn seed(store: &Store, count: usize) -> Vec<i64> {
    seed_to(store, count, &["slack"]).await
}

async fn seed_to(store: &Store, count: usize, destinations: &[&str]) -> Vec<i64> {
    let events: Vec<_> = (0..count)
        .map(|i| event(&format!("d{i}-{}", destinations.join("+")), destinations))
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

fn finish(
    id: i64,
    status: DeliveryStatus,
    attempts: i64,
    next: i64,
    error: Option<&str>,
) -> Finish {
    Finish {
        id,
        status,
        attempts,
        next_attempt_at: next,
        error: error.map(str::to_owned),
        keep_started: false,
        log: error.map(|error| AttemptLog {
            started_at: T0,
            finished_at: T0 + 1,
            outcome: "retry",
            error: Some(error.to_owned()),
        }),
    }
}

fn delivered(id: i64) -> Finish {
    finish(id, DeliveryStatus::Delivered, 1, T0, None)
}

#[tokio::test]
async fn claims_due_rows_once_until_the_lease_expires() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 3).await;
        let claimed = store.claim("slack", "a", T0, LEASE, 2).await.unwrap();
        assert_eq!(claimed.len(), 2, "{}: the limit holds", db.label);
        assert!(
            claimed
                .iter()
                .all(|c| c.destination == "slack" && c.attempts == 0 && !c.interrupted)
        );
        assert_eq!(
            claimed[0].event.delivery_id, "d0-slack",
            "{}: oldest first, with its event",
            db.label
        );
        let rest = store.claim("slack", "b", T0, LEASE, 10).await.unwrap();
        assert_eq!(rest.len(), 1, "{}: leased rows are skipped", db.label);
        assert!(
            store
                .claim("slack", "c", T0 + LEASE - 1, LEASE, 10)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        let taken_over = store
            .claim("slack", "c", T0 + LEASE, LEASE, 10)
            .await
            .unwrap();
        assert_eq!(
            taken_over.len(),
            3,
            "{}: expired leases are taken over",
            db.label
        );
        // The first owner lost its lease: it may neither start nor record an attempt.
        assert!(
            store
                .start_attempts(&[claimed[0].id], "a", T0 + LEASE, LEASE)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        assert_eq!(
            store
                .finish(&[delivered(claimed[0].id)], "a", T0)
                .await
                .unwrap(),
            vec![false]
        );
        assert_eq!(
            store
                .start_attempts(&[claimed[0].id], "c", T0 + LEASE, LEASE)
                .await
                .unwrap(),
            vec![claimed[0].id],
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn each_destination_claims_only_its_own_rows() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed_to(&store, 2, &["slack", "analytics"]).await;
        seed_to(&store, 1, &["bigquery"]).await;
        let slack = store.claim("slack", "a", T0, LEASE, 10).await.unwrap();
        let analytics = store.claim("analytics", "a", T0, LEASE, 10).await.unwrap();
        let unknown = store.claim("nowhere", "a", T0, LEASE, 10).await.unwrap();
        assert_eq!(
            (slack.len(), analytics.len(), unknown.len()),
            (2, 2, 0),
            "{}",
            db.label
        );
        assert!(analytics.iter().all(|c| c.destination == "analytics"));
        assert_eq!(
            store.pending_by_destination().await.unwrap(),
            vec![
                ("analytics".to_owned(), 2),
                ("bigquery".to_owned(), 1),
                ("slack".to_owned(), 2)
            ],
            "{}: waiting rows are counted per destination",
            db.label
        );
    }
}

#[tokio::test]
async fn rows_not_yet_due_are_not_claimed_and_failures_are_logged() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 1).await;
        let claim = store
            .claim("slack", "a", T0, LEASE, 1)
            .await
            .unwrap()
            .remove(0);
        let retry = finish(
            claim.id,
            DeliveryStatus::Pending,
            1,
            T0 + 5_000,
            Some("HTTP 500"),
        );
        assert_eq!(store.finish(&[retry], "a", T0).await.unwrap(), vec![true]);
        assert!(
            store
                .claim("slack", "a", T0 + 4_999, LEASE, 1)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        let again = store
            .claim("slack", "a", T0 + 5_000, LEASE, 1)
            .await
            .unwrap();
        assert_eq!((again.len(), again[0].attempts), (1, 1), "{}", db.label);
        let row = &store.list_deliveries(None, 1).await.unwrap()[0];
        assert_eq!(row.last_error.as_deref(), Some("HTTP 500"), "{}", db.label);
        let attempts = store.attempts(claim.id).await.unwrap();
        assert_eq!(attempts.len(), 1, "{}", db.label);
        assert_eq!(
            (attempts[0].outcome.as_str(), attempts[0].error.as_deref()),
            ("retry", Some("HTTP 500"))
        );
    }
}

#[tokio::test]
async fn an_attempt_started_and_never_finished_is_flagged_interrupted() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 3).await;
        let claims = store.claim("slack", "crashed", T0, LEASE, 3).await.unwrap();
        let ids: Vec<i64> = claims.iter().map(|c| c.id).collect();
        assert_eq!(
            store
                .start_attempts(&ids[..2], "crashed", T0, LEASE)
                .await
                .unwrap()
                .len(),
            2
        );
        // The second start was never sent after all: taking it back clears the record.
        assert!(store.cancel_attempt(ids[1], "crashed").await.unwrap());
        // The process dies here. Its successor (SQLite) frees every lease at start:
        assert_eq!(store.release_leases().await.unwrap(), 2, "{}", db.label);
        let resumed = store
            .claim("slack", "next", T0 + 1, LEASE, 10)
            .await
            .unwrap();
        let flags: Vec<(i64, bool)> = resumed.iter().map(|c| (c.id, c.interrupted)).collect();
        assert_eq!(
            flags,
            vec![(ids[0], true), (ids[1], false), (ids[2], false)],
            "{}: only the started attempt is ambiguous",
            db.label
        );
        // An ambiguous answer from a destination that can be asked keeps the mark.
        let mut keep = finish(
            ids[0],
            DeliveryStatus::Pending,
            1,
            T0 + 2,
            Some("timed out"),
        );
        keep.keep_started = true;
        store.finish(&[keep], "next", T0 + 1).await.unwrap();
        let again = store
            .claim("slack", "other", T0 + 2, LEASE, 1)
            .await
            .unwrap();
        assert!(again[0].interrupted, "{}", db.label);
    }
}

#[tokio::test]
async fn concurrent_owners_never_claim_the_same_row() {
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
                    let batch = store.claim("slack", &owner, T0, LEASE, 7).await.unwrap();
                    if batch.is_empty() {
                        break mine;
                    }
                    let finishes: Vec<Finish> = batch.iter().map(|c| delivered(c.id)).collect();
                    let held = store.finish(&finishes, &owner, T0).await.unwrap();
                    assert!(held.iter().all(|held| *held));
                    mine.extend(batch.iter().map(|c| c.id));
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
        let claims = store.claim("slack", "a", T0, LEASE, 3).await.unwrap();
        let mut finishes: Vec<Finish> = claims[..2]
            .iter()
            .map(|c| finish(c.id, DeliveryStatus::Dead, 3, T0, Some("gave up")))
            .collect();
        finishes.push(delivered(claims[2].id));
        assert_eq!(
            store.finish(&finishes, "a", T0).await.unwrap(),
            vec![true, true, true]
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
        let revived = store.claim("slack", "b", T0 + 10, LEASE, 10).await.unwrap();
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
        let claim = store
            .claim("slack", "a", T0, LEASE, 1)
            .await
            .unwrap()
            .remove(0);
        store.release(&[claim.id], "b").await.unwrap(); // not the owner: no effect
        assert!(
            store
                .claim("slack", "c", T0, LEASE, 1)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        store.release(&[claim.id], "a").await.unwrap();
        let again = store.claim("slack", "c", T0, LEASE, 1).await.unwrap();
        assert_eq!(again.len(), 1, "{}", db.label);
        assert!(
            !again[0].interrupted,
            "{}: released before starting is not ambiguous",
            db.label
        );
    }
}

#[tokio::test]
async fn a_paused_destination_is_not_claimed_until_the_pause_ends() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed_to(&store, 1, &["slack", "analytics"]).await;
        store
            .pause_destination("slack", T0 + 1_000, "HTTP 429")
            .await
            .unwrap();
        // A shorter pause asked later does not shorten it.
        store
            .pause_destination("slack", T0 + 10, "HTTP 429")
            .await
            .unwrap();
        assert_eq!(
            store.paused_until("slack", T0).await.unwrap(),
            Some(T0 + 1_000)
        );
        assert!(
            store
                .claim("slack", "a", T0 + 999, LEASE, 1)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.label
        );
        assert_eq!(
            store
                .claim("analytics", "a", T0, LEASE, 1)
                .await
                .unwrap()
                .len(),
            1,
            "{}: other destinations go on",
            db.label
        );
        assert_eq!(
            store
                .claim("slack", "a", T0 + 1_000, LEASE, 1)
                .await
                .unwrap()
                .len(),
            1,
            "{}",
            db.label
        );
    }
}

#[tokio::test]
async fn send_slots_are_shared_through_the_store() {
    for db in databases::all().await {
        let first = db.connect().await;
        let second = db.connect().await;
        // One per second: each reservation, from either connection, is a second after the last.
        let slots = [
            first.take_slot("slack", T0, 1_000).await.unwrap(),
            second.take_slot("slack", T0, 1_000).await.unwrap(),
            first.take_slot("slack", T0 + 100, 1_000).await.unwrap(),
            second.take_slot("slack", T0 + 10_000, 1_000).await.unwrap(),
        ];
        assert_eq!(
            slots,
            [T0, T0 + 1_000, T0 + 2_000, T0 + 10_000],
            "{}",
            db.label
        );
        assert_eq!(first.take_slot("other", T0, 500).await.unwrap(), T0);
    }
}

#[tokio::test]
async fn pruning_keeps_pending_rows_and_their_events() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 3).await;
        let claims = store.claim("slack", "a", T0, LEASE, 3).await.unwrap();
        let finishes = vec![
            delivered(claims[0].id),
            finish(claims[1].id, DeliveryStatus::Dead, 1, T0, Some("gave up")),
        ];
        store.finish(&finishes, "a", T0).await.unwrap();
        // Finished at T0 (as far as the store knows, `now` was T0): a cutoff after it prunes them.
        let pruned = store.prune(i64::MAX).await.unwrap();
        assert_eq!(
            (pruned.deliveries, pruned.events),
            (2, 2),
            "{}: two finished rows and their events; the pending one stays",
            db.label
        );
        assert_eq!(store.count_events().await.unwrap(), 1, "{}", db.label);
        assert!(store.attempts(claims[1].id).await.unwrap().is_empty());
        let left = store.list_deliveries(None, 10).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].id, claims[2].id, "{}", db.label);
    }
}

#[tokio::test]
async fn claiming_with_the_start_keeps_telling_earlier_attempts_apart() {
    for db in databases::all().await {
        let store = db.connect().await;
        seed(&store, 2).await;
        let first = store.claim("slack", "a", T0, LEASE, 1).await.unwrap();
        store
            .start_attempts(&[first[0].id], "a", T0, LEASE)
            .await
            .unwrap();
        // The owner dies; its lease expires.
        let claimed = store
            .claim_started("slack", "b", T0 + LEASE, LEASE, 10)
            .await
            .unwrap();
        let flags: Vec<(i64, bool)> = claimed.iter().map(|c| (c.id, c.interrupted)).collect();
        assert_eq!(
            flags,
            vec![(first[0].id, true), (first[0].id + 1, false)],
            "{}: the earlier start is reported, this one is recorded",
            db.label
        );
        // This owner dies too: both rows now carry a start.
        let again = store
            .claim("slack", "c", T0 + 2 * LEASE, LEASE, 10)
            .await
            .unwrap();
        assert!(again.iter().all(|c| c.interrupted), "{}", db.label);
    }
}
