//! Google Cloud end to end: tokens from a service-account key and from the metadata server,
//! Secret Manager with live rotation, the BigQuery sink against a fake that checks every request
//! and against the real BigQuery emulator (whose answers to the saved SQL must match
//! `herald report`), and Cloud Run's rules.

mod auth;
mod bigquery_sink;
mod cloud_run;
#[expect(
    dead_code,
    reason = "the service harness of tests/api; this binary uses part of it"
)]
#[path = "../api/helpers.rs"]
mod common;
#[expect(
    dead_code,
    reason = "shared with tests/store; this binary uses part of it"
)]
#[path = "../store/databases.rs"]
mod databases;
mod documents;
mod emulator;
mod fake_google;
#[expect(
    dead_code,
    unused_imports,
    reason = "the analytics harness; this binary uses its payload builders"
)]
#[path = "../analytics/helpers.rs"]
mod helpers;
mod plan;
#[expect(
    dead_code,
    reason = "the analytics scenario; this binary uses its history"
)]
#[path = "../analytics/scenario.rs"]
mod scenario;
mod secret_manager;
