//! Domain types shared by the store and the layers above it: what a delivery is and how its
//! attempts end. The store reads and writes them; it does not decide anything about them.

mod delivery;

pub use delivery::{AttemptLog, Claimed, DeliveryStatus, Finish};
mod wake;

pub use wake::Wakers;
