//! Delivery: workers take due rows from the outbox, hand each event to its sink, and decide from
//! the outcome whether it is done, retried later, or dead-lettered.

mod outcome;
mod retry;
mod worker;

pub use outcome::{Outcome, parse_retry_after};
pub use retry::{MAX_RETRY_AFTER, Step, next_step};
pub use worker::{DeliveryWorker, WorkerSettings};
