//! The analytics sink: keeps the issue lifecycle tables up to date from `issues` and
//! `issue_comment` events. It reads the payload stored with the event, so it gets every event
//! through the durable outbox like any other sink.

use super::{BoxFuture, Sink};
use crate::analytics::from_webhook;
use crate::delivery::Outcome;
use crate::store::{Store, StoredEvent};

/// Upserts issue and comment snapshots into the store.
pub struct AnalyticsSink {
    store: Store,
}

impl AnalyticsSink {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn apply(&self, event: &StoredEvent) -> Outcome {
        let changes = match from_webhook(&event.event, &event.payload) {
            Ok(changes) => changes,
            Err(error) => {
                return Outcome::Permanent {
                    reason: format!("cannot read the issue lifecycle: {error}"),
                };
            }
        };
        if changes.is_empty() {
            // A pull request's issue event: not an issue for the metrics.
            return Outcome::Delivered;
        }
        match self.store.apply_lifecycle(&changes).await {
            Ok(()) => Outcome::Delivered,
            Err(error) => Outcome::Retry {
                after: None,
                reason: format!("store: {error}"),
            },
        }
    }
}

impl Sink for AnalyticsSink {
    fn name(&self) -> &'static str {
        "analytics"
    }

    fn wants(&self, event: &str, _action: Option<&str>) -> bool {
        matches!(event, "issues" | "issue_comment")
    }

    fn idempotent(&self) -> bool {
        // Upserts keyed by issue and comment: applying an event twice changes nothing.
        true
    }

    fn deliver<'a>(&'a self, event: &'a StoredEvent) -> BoxFuture<'a, Outcome> {
        Box::pin(self.apply(event))
    }
}
