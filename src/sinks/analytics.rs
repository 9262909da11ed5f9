//! The analytics sink: keeps the issue lifecycle tables up to date from `issues` and
//! `issue_comment` events. It reads the payload stored with each event, so it gets every event
//! through the durable outbox like any other destination, and applies a whole batch in one
//! transaction.

use super::{BoxFuture, Delivery, Guarantee, Outcome, Sink};
use crate::analytics::{LifecycleChanges, from_webhook};
use crate::store::{Store, StoreError, is_data_error};

/// Upserts issue and comment snapshots into the store.
pub struct AnalyticsSink {
    store: Store,
}

impl AnalyticsSink {
    /// Rows one transaction applies.
    pub const BATCH: usize = 128;

    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn apply(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes = vec![Outcome::Delivered; batch.len()];
        // (position in the batch, what it changes); unreadable payloads are refused alone.
        let mut work: Vec<(usize, LifecycleChanges)> = Vec::with_capacity(batch.len());
        for (position, delivery) in batch.iter().enumerate() {
            match from_webhook(&delivery.event.event, &delivery.event.payload) {
                Ok(changes) if changes.is_empty() => {} // a pull request: not an issue
                Ok(changes) => work.push((position, changes)),
                Err(error) => {
                    outcomes[position] = Outcome::Permanent {
                        reason: format!("cannot read the issue lifecycle: {error}"),
                    };
                }
            }
        }
        if work.is_empty() {
            return outcomes;
        }
        let all: Vec<&LifecycleChanges> = work.iter().map(|(_, changes)| changes).collect();
        let Err(error) = self.store.apply_lifecycles(&all).await else {
            return outcomes;
        };
        if !is_data_error(&error) || work.len() == 1 {
            for (position, _) in &work {
                outcomes[*position] = store_outcome(&error);
            }
            return outcomes;
        }
        // One row's data broke the transaction: apply them one by one, so only it is refused.
        for (position, changes) in &work {
            if let Err(error) = self.store.apply_lifecycle(changes).await {
                outcomes[*position] = store_outcome(&error);
            }
        }
        outcomes
    }
}

/// A row the database refuses for its data is refused for good; anything else passes.
fn store_outcome(error: &StoreError) -> Outcome {
    if is_data_error(error) {
        Outcome::Permanent {
            reason: format!("the store refused this event's data: {error}"),
        }
    } else {
        Outcome::Retry {
            after: None,
            reason: format!("store: {error}"),
        }
    }
}

impl Sink for AnalyticsSink {
    fn kind(&self) -> &'static str {
        "analytics"
    }

    fn guarantee(&self) -> Guarantee {
        // Upserts keyed by issue and comment: applying an event twice changes nothing.
        Guarantee::Idempotent
    }

    fn max_batch(&self) -> usize {
        Self::BATCH
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(self.apply(batch))
    }
}
