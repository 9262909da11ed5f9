//! Delivery: one lane per destination takes due rows from the outbox, hands them to the
//! destination's sink in batches, and decides from each outcome whether the row is done, retried
//! later, or dead-lettered. The plan says which destinations exist and where events go.

mod lane;
pub(crate) use lane::ROUNDS_AHEAD;
mod pace;
pub mod plan;
pub mod retry;

pub use lane::{Lane, LaneSettings, panic_text};
pub use plan::{Destination, LaneLimits, Plan, PlanErrors, Target, plan};
