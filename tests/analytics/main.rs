//! Issue-flow analytics end to end: lifecycle tables fed by webhooks through the outbox, the
//! metrics API and `herald report`, and `herald backfill` against a fake GitHub.

mod api;
mod backends;
mod backfill;
#[path = "../store/databases.rs"]
mod databases;
mod fake_github;
mod helpers;
mod lifecycle;
mod scenario;
