//! What the store remembers for `herald redeliver`, on every backend: a request is claimed by
//! exactly one instance, abandoned claims are forgotten, and on PostgreSQL one session at a time
//! holds a hook's pass lock, which a dead session gives back.

use herald::store::{NewRequest, RequestState};
use herald::time_util::now_ms;

use crate::databases;
use crate::helpers::wait_until;

const HOOK: &str = "repos/acme/widgets/hooks/42";

fn request(delivery_id: i64, requested_at: i64) -> NewRequest<'static> {
    NewRequest {
        hook: HOOK,
        guid: "g-1",
        delivery_id,
        delivered_at: 1_000 + delivery_id,
        requested_at,
    }
}

#[tokio::test]
async fn one_instance_claims_a_request_and_abandoned_claims_are_forgotten() {
    for database in databases::all().await {
        let label = database.label;
        let (one, two) = (database.connect().await, database.connect().await);
        let now = now_ms();
        let claims = futures_util::future::join_all(
            (0..8)
                .map(|n| if n % 2 == 0 { &one } else { &two })
                .map(|store| store.claim_redelivery(request(7, now))),
        )
        .await;
        let won = claims
            .into_iter()
            .filter(|claim| *claim.as_ref().unwrap())
            .count();
        assert_eq!(won, 1, "{label}: exactly one claim wins");

        one.settle_redelivery(HOOK, 7, RequestState::Asked, None)
            .await
            .unwrap();
        // A claim left by a crash long ago, and one still on its way now.
        assert!(
            one.claim_redelivery(request(8, now - 3_600_000))
                .await
                .unwrap()
        );
        assert!(one.claim_redelivery(request(9, now)).await.unwrap());
        let forgotten = two
            .forget_old_redeliveries(HOOK, now - 60_000, now - 86_400_000)
            .await
            .unwrap();
        assert_eq!(forgotten, 1, "{label}");
        let past = two
            .past_redelivery_requests(HOOK, &["g-1", "g-other"])
            .await
            .unwrap();
        let kept: Vec<(i64, RequestState)> = past["g-1"]
            .iter()
            .map(|request| (request.delivery_id, request.state))
            .collect();
        assert_eq!(
            kept,
            [(7, RequestState::Asked), (9, RequestState::Asking)],
            "{label}"
        );
        assert!(!past.contains_key("g-other"), "{label}");

        // Requests older than the pruning horizon go, whatever their state.
        two.forget_old_redeliveries(HOOK, 0, now + 1).await.unwrap();
        assert!(
            two.past_redelivery_requests(HOOK, &["g-1"])
                .await
                .unwrap()
                .is_empty()
        );
        one.close().await;
        two.close().await;
    }
}

#[tokio::test]
async fn one_postgres_session_at_a_time_holds_a_hooks_pass_lock() {
    let Some(database) = databases::postgres().await else {
        return;
    };
    let (one, two) = (database.connect().await, database.connect().await);
    let held = one
        .try_lock_redeliver(HOOK)
        .await
        .unwrap()
        .expect("free at first");
    assert!(two.try_lock_redeliver(HOOK).await.unwrap().is_none());
    assert!(
        two.try_lock_redeliver("orgs/acme/hooks/42")
            .await
            .unwrap()
            .is_some(),
        "another hook's lock is another lock"
    );
    held.release().await;
    let again = two
        .try_lock_redeliver(HOOK)
        .await
        .unwrap()
        .expect("released");
    // A pass cut short drops its lock without releasing it: the session ends, and so does the lock.
    drop(again);
    wait_until("the dropped session's lock is free", || async {
        match one.try_lock_redeliver(HOOK).await.unwrap() {
            Some(lock) => {
                lock.release().await;
                true
            }
            None => false,
        }
    })
    .await;
}
