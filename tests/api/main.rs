//! End-to-end tests of `herald serve` over real HTTP, against a real SQLite file and a fake Slack.

mod cli;
mod crash;
#[expect(
    dead_code,
    reason = "shared with tests/store; this binary uses the PostgreSQL part"
)]
#[path = "../store/databases.rs"]
mod databases;
mod delivery;
mod full_store;
mod hardening;
mod helpers;
mod intake;
mod kill_under_load;
mod lanes;
mod operator;
mod postgres_faults;
mod properties;
mod routing;
mod slow_clients;
mod tcp_proxy;
