//! Sinks: what a destination does with the events routed to it. Each kind is one file
//! implementing [`Sink`]; this module owns the contract between a sink and the lane that feeds
//! it: a batch of claimed rows in, one [`Outcome`] per row out.

mod analytics;
mod bigquery;
mod console;
mod outcome;
mod rate_limit;
pub mod slack;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use analytics::AnalyticsSink;
pub use bigquery::{BigQuerySink, MAX_ROWS as BIGQUERY_MAX_ROWS, classify_insert_errors};
pub use console::ConsoleNotifier;
pub use outcome::{DEFAULT_RATE_LIMIT_PAUSE, Outcome};
pub use rate_limit::RateLimiter;
pub use slack::{SlackBot, SlackWebhook};

use crate::store::StoredEvent;

/// A boxed future, so sinks can live behind `dyn Sink`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One claimed outbox row handed to a sink: one message to send (or one row to write).
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The outbox row.
    pub row: i64,
    /// Attempts already made before this one.
    pub attempts: i64,
    /// An earlier attempt started and its outcome was never recorded (the process died, or the
    /// answer was ambiguous): the destination may already have it. Only sinks that can check
    /// ([`Guarantee::CheckedResend`]) ever see this set.
    pub interrupted: bool,
    pub event: Arc<StoredEvent>,
}

/// What a repeated attempt does at the destination, which decides how the lane records attempts
/// and what it does after a crash or an ambiguous answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Doing it twice is doing it once (upserts, inserts with an id): interrupted and ambiguous
    /// attempts are simply repeated; nothing is recorded before sending.
    Idempotent,
    /// The destination cannot be asked what it received (Slack incoming webhooks): each attempt is
    /// recorded before it leaves, and one that may have arrived is dead-lettered, never resent.
    AtMostOnce,
    /// The destination can be asked (Slack's API with message metadata): each attempt is recorded
    /// before it leaves, and a row whose attempt may have arrived comes back to the sink with
    /// [`Delivery::interrupted`] set so it checks before sending again.
    CheckedResend,
}

/// A destination's implementation.
pub trait Sink: Send + Sync {
    /// The destination kind, for logs and metrics (`slack-webhook`, `analytics`, …).
    fn kind(&self) -> &'static str;

    /// What a repeated attempt does (see [`Guarantee`]).
    fn guarantee(&self) -> Guarantee;

    /// Most rows one call of [`Sink::deliver`] takes; 1 for sinks that send one message per
    /// request.
    fn max_batch(&self) -> usize {
        1
    }

    /// Delivers a batch (at most [`Sink::max_batch`] rows), returning one outcome per row, in
    /// order.
    fn deliver<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Outcome>>;
}

/// The same outcome for every row of a batch (a request that failed as a whole).
pub fn for_all(batch: &[Delivery], outcome: &Outcome) -> Vec<Outcome> {
    vec![outcome.clone(); batch.len()]
}
