//! Issue-flow analytics end to end: lifecycle tables fed by webhooks through the outbox, the
//! metrics API and `herald report`, and `herald backfill` against a fake GitHub.

mod api;
mod backends;
mod backfill;
mod browser;
#[expect(
    dead_code,
    reason = "the service harness of tests/api; this binary uses part of it"
)]
#[path = "../api/helpers.rs"]
mod common;
#[path = "../store/databases.rs"]
mod databases;
mod digest;
mod fake_github;
mod helpers;
mod identities;
mod insights;
mod lifecycle;
mod recent;
mod reconcile;
mod retention;
mod scenario;
