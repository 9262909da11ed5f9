//! End-to-end tests of `herald serve` over real HTTP, against a real SQLite file and a fake Slack.

mod cli;
mod crash;
mod delivery;
mod full_store;
mod helpers;
mod intake;
mod properties;
mod slow_clients;
