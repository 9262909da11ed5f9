//! Recovering what GitHub failed to deliver. GitHub does not retry a failed webhook delivery by
//! itself: every minute herald answered 5xx or was unreachable is lost unless someone asks for a
//! redelivery. A pass lists a hook's recent deliveries, finds those none of whose attempts was
//! accepted, and asks GitHub to redeliver each once, remembering what it asked for. It runs as
//! `herald redeliver` and, when configured, periodically inside `herald serve`.

mod pass;
mod periodic;
mod plan;
mod report;

pub use pass::{Pass, PassOutcome};
pub use periodic::{PeriodicRedeliver, run_periodically};
pub use plan::{Decision, FailedDelivery, MAX_REQUESTS, decide, failed_deliveries};
pub use report::{Line, Summary};
