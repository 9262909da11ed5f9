//! `herald replay --destination NAME [--since T] [--until T] [--event E]`: queues stored events to
//! a destination (one added later, or one that missed events), through the same routes intake uses,
//! never twice for the same event.

use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;

use crate::analytics::{parse_since, parse_until};
use crate::config::ServeConfig;
use crate::github::IndexedEvent;
use crate::store::{ReplayFilter, Store};
use crate::time_util::now_ms;

/// Events read from the store at a time.
const PAGE: i64 = 500;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The destination to queue events to (as configured).
    #[arg(long)]
    destination: String,
    /// Only events received at or after: a date, an RFC 3339 time, or `30d`, `12h` ago.
    #[arg(long, allow_hyphen_values = true)]
    since: Option<String>,
    /// Only events received before (a date includes that whole day).
    #[arg(long, allow_hyphen_values = true)]
    until: Option<String>,
    /// Only this event (`issues`) or event and action (`issues.opened`).
    #[arg(long)]
    event: Option<String>,
    #[command(flatten)]
    pub serve: ServeConfig,
}

/// What a replay did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    /// Stored events read.
    pub read: u64,
    /// Of those, the routes send to the destination.
    pub routed: u64,
    /// Of those, newly queued (the rest had a row for it already).
    pub queued: u64,
}

impl ReplayArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let plan = crate::startup::validate(&self.serve)?;
        if plan.destination(&self.destination).is_none() {
            let names: Vec<&str> = plan.names().map(|name| &**name).collect();
            bail!(
                "no destination named {:?} is configured (configured: {}); add it to the \
                 configuration first",
                self.destination,
                names.join(", ")
            );
        }
        let now = now_ms();
        let since_ms = match &self.since {
            Some(text) => parse_since(text, now)?,
            None => 0,
        };
        let until_ms = match &self.until {
            Some(text) => parse_until(text, now)?,
            None => i64::MAX,
        };
        let (event, action) = match self.event.as_deref().map(str::trim) {
            Some(text) => match text.split_once('.') {
                Some((event, action)) => (Some(event.to_owned()), Some(action.to_owned())),
                None => (Some(text.to_owned()), None),
            },
            None => (None, None),
        };
        let filter = ReplayFilter {
            since_ms,
            until_ms,
            event,
            action,
        };
        let store = Store::open_existing(&self.serve.database).await?;
        let result = replay(&store, &plan.router, &self.destination, &filter).await;
        store.close().await;
        let done = result.context("replaying stored events")?;
        println!(
            "{} events queued to {} ({} of {} stored events are routed to it; {} had been queued before)",
            done.queued,
            self.destination,
            done.routed,
            done.read,
            done.routed - done.queued
        );
        Ok(ExitCode::SUCCESS)
    }
}

/// Queues every stored event that `filter` selects and the routes send to `destination`.
pub async fn replay(
    store: &Store,
    router: &crate::routes::Router,
    destination: &str,
    filter: &ReplayFilter,
) -> anyhow::Result<Replayed> {
    let mut done = Replayed::default();
    let mut after = 0;
    loop {
        let events = store.events_page(after, PAGE, filter).await?;
        let Some(last) = events.last() else {
            return Ok(done);
        };
        after = last.id;
        done.read += events.len() as u64;
        let routed: Vec<i64> = events
            .iter()
            .filter(|event| {
                IndexedEvent::parse(event.payload.as_bytes()).is_ok_and(|(indexed, _)| {
                    router
                        .route(&indexed.subject(&event.event))
                        .iter()
                        .any(|matched| &*matched.destination == destination)
                })
            })
            .map(|event| event.id)
            .collect();
        done.routed += routed.len() as u64;
        done.queued += store.queue_to(destination, &routed, now_ms()).await?;
    }
}
