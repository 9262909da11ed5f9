//! herald: GitHub webhooks in, durable events, Slack notifications and issue-flow metrics out.
//!
//! The binary (`src/main.rs`) only parses the command line and dispatches here; everything a test
//! needs to run the real service lives in this library.

pub mod analytics;
pub mod business_hours;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod gcp;
pub mod github;
pub mod http;
pub mod insights;
pub mod metrics;
pub mod outbound;
pub mod redeliver;
pub mod retention;
pub mod routes;
pub mod sinks;
pub mod startup;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod time_util;
