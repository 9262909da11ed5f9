//! A lane: the delivery loop of one destination. It claims that destination's due rows a round at
//! a time (oldest first, at most `concurrency × batch_size`, fewer when rate limited), paces each
//! request, records attempts that must be on record before they leave, hands batches to the sink,
//! and records every outcome in one transaction. Lanes share nothing but the store, so a slow or
//! rate-limited destination holds back no other.

use std::collections::HashSet;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use rand::Rng;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pace::Pacer;
use super::retry::{self, Attempt};
use crate::config::RetrySchedule;
use crate::domain::{Claimed, Finish};
use crate::metrics::Metrics;
use crate::sinks::{Delivery, Guarantee, Outcome, Sink};
use crate::store::Store;
use crate::time_util::{duration_ms, now_ms};

/// Rows claimed per request slot when nothing paces a lane.
pub(crate) const ROUNDS_AHEAD: usize = 4;

/// How lanes behave, whatever their destination.
#[derive(Debug, Clone)]
pub struct LaneSettings {
    pub schedule: RetrySchedule,
    /// How long a claimed row belongs to this instance before another may take it over.
    pub lease: Duration,
    /// How often an idle lane looks for due rows when nothing wakes it.
    pub poll_interval: Duration,
}

/// One destination's delivery loop.
pub struct Lane {
    pub destination: Arc<str>,
    sink: Arc<dyn Sink>,
    store: Store,
    settings: LaneSettings,
    concurrency: usize,
    batch_size: usize,
    /// What the sink promised when the lane was built.
    guarantee: Guarantee,
    pacer: Pacer,
    owner: String,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

/// What became of one request.
enum Sent {
    /// Outcomes to record.
    Finished(Vec<Finish>),
    /// Not attempted (shutdown, or the attempt could not be put on record): give the rows back.
    Unsent(Vec<i64>),
}

impl Lane {
    #[expect(clippy::too_many_arguments, reason = "built in one place, by startup")]
    pub fn new(
        destination: Arc<str>,
        sink: Arc<dyn Sink>,
        store: Store,
        settings: LaneSettings,
        limits: super::LaneLimits,
        owner: String,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let pacer = Pacer::new(
            Arc::clone(&destination),
            limits.max_per_second,
            limits.burst,
            &store,
        );
        let batch_size = limits.batch_size.clamp(1, sink.max_batch().max(1));
        let guarantee = sink.guarantee();
        Self {
            guarantee,
            destination,
            sink,
            store,
            settings,
            concurrency: limits.concurrency.max(1),
            batch_size,
            pacer,
            owner,
            wake,
            metrics,
        }
    }

    /// Runs until `cancel` fires, then lets the requests under way finish and gives back the rows
    /// it had not started. Returns only then: a lane that ends before is a failure the supervisor
    /// reports.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let this = Arc::new(self);
        this.run_shared(cancel).await
    }

    async fn run_shared(self: &Arc<Self>, cancel: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(
            destination = %self.destination,
            kind = self.sink.kind(),
            concurrency = self.concurrency,
            batch_size = self.batch_size,
            "lane started"
        );
        while !cancel.is_cancelled() {
            if let Some(wait) = self.pacer.paused_for(now_ms()) {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
            let limit = self.round_size();
            let lease_ms = duration_ms(self.settings.lease);
            // A lane that sends all it claims at once records the attempts with the claim.
            let started = self.guarantee != Guarantee::Idempotent && !self.pacer.is_limited();
            let claimed = if started {
                self.store
                    .claim_started(&self.destination, &self.owner, now_ms(), lease_ms, limit)
                    .await
            } else {
                self.store
                    .claim(&self.destination, &self.owner, now_ms(), lease_ms, limit)
                    .await
            };
            match claimed {
                Ok(claims) if !claims.is_empty() => {
                    let full = claims.len() == limit;
                    self.round(claims, started, &cancel).await;
                    if full {
                        continue; // more may be due
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::error!(destination = %self.destination, error = %error, "claiming deliveries failed");
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        tracing::info!(destination = %self.destination, "lane stopped");
        Ok(())
    }

    /// Delivers one round of claimed rows and records every outcome.
    /// Rows claimed at once: enough for every request slot, several times over when nothing
    /// paces the lane (fewer, larger transactions); about a second's worth when rate limited.
    fn round_size(&self) -> usize {
        let slots = self.concurrency * self.batch_size;
        if self.pacer.is_limited() {
            slots.min(self.pacer.per_second_budget())
        } else {
            slots * ROUNDS_AHEAD
        }
    }

    async fn round(
        self: &Arc<Self>,
        claims: Vec<Claimed>,
        started: bool,
        cancel: &CancellationToken,
    ) {
        let deadline = Instant::now() + self.settings.lease;
        let guarantee = self.sink.guarantee();
        let mut finishes = Vec::new();
        let mut ready = Vec::with_capacity(claims.len());
        for claim in claims {
            if claim.interrupted && guarantee == Guarantee::AtMostOnce {
                // The last attempt may have arrived; sending again could duplicate it.
                tracing::error!(
                    row = claim.id,
                    destination = %self.destination,
                    delivery_id = %claim.event.delivery_id,
                    event = %claim.event.event,
                    "an attempt was interrupted mid-flight; dead-lettered rather than risk a duplicate"
                );
                finishes.push(retry::interrupted(&claim, now_ms()));
            } else {
                ready.push(claim);
            }
        }
        // Without a rate limit every request of the round leaves at once: one durable record
        // for all of them. With one, each request is recorded when its slot comes.
        let record_each = guarantee != Guarantee::Idempotent && self.pacer.is_limited();
        if guarantee != Guarantee::Idempotent && !record_each && !started && !ready.is_empty() {
            ready = self.put_on_record(ready, deadline).await;
        }
        let mut requests = Vec::new();
        let mut rows = ready.into_iter().peekable();
        while rows.peek().is_some() {
            requests.push(rows.by_ref().take(self.batch_size).collect::<Vec<_>>());
        }
        let recorded = guarantee != Guarantee::Idempotent && !record_each;
        // Each request runs as its own task (at most `concurrency` at once), so a request holding
        // the store's write turn keeps going while this loop records what is done.
        let slots = Arc::new(tokio::sync::Semaphore::new(self.concurrency));
        let mut results = tokio::task::JoinSet::new();
        for request in requests {
            let (lane, slots, cancel) = (Arc::clone(self), Arc::clone(&slots), cancel.clone());
            results.spawn(async move {
                let _slot = slots.acquire_owned().await;
                lane.request(request, record_each, recorded, &cancel, deadline)
                    .await
            });
        }
        let mut unsent = Vec::new();
        while let Some(first) = results.join_next().await {
            let mut done = vec![first];
            while let Some(more) = results.try_join_next() {
                done.push(more);
            }
            for result in done {
                match result {
                    Ok(Sent::Finished(mut finished)) => finishes.append(&mut finished),
                    Ok(Sent::Unsent(mut ids)) => unsent.append(&mut ids),
                    Err(error) => {
                        // Sink panics are caught inside; this is a bug in the lane itself.
                        tracing::error!(destination = %self.destination, error = %error, "a delivery task failed; its rows will be retried after their lease");
                    }
                }
            }
            self.record(&finishes, deadline).await;
            finishes.clear();
        }
        self.record(&finishes, deadline).await;
        if !unsent.is_empty()
            && let Err(error) = self.store.release(&unsent, &self.owner).await
        {
            tracing::warn!(destination = %self.destination, error = %error, "giving rows back failed; their leases will expire");
        }
    }

    /// Records that requests for `claims` are about to leave; returns those still ours. When the
    /// record cannot be made, nothing is sent and the rows are given back.
    async fn put_on_record(&self, claims: Vec<Claimed>, deadline: Instant) -> Vec<Claimed> {
        let ids: Vec<i64> = claims.iter().map(|claim| claim.id).collect();
        let lease_ms = duration_ms(self.settings.lease);
        match self
            .store
            .start_attempts(&ids, &self.owner, now_ms(), lease_ms)
            .await
        {
            Ok(held) => {
                let held: HashSet<i64> = held.into_iter().collect();
                claims
                    .into_iter()
                    .filter(|claim| held.contains(&claim.id))
                    .collect()
            }
            Err(error) => {
                tracing::warn!(destination = %self.destination, error = %error, "recording attempts failed; not sending");
                // The record may or may not have been committed: take it back, so these rows are
                // not mistaken for interrupted sends.
                for id in ids {
                    self.take_back(id, deadline).await;
                }
                Vec::new()
            }
        }
    }

    /// Clears a start record for a request that never left, retrying until the lease ends.
    async fn take_back(&self, id: i64, deadline: Instant) {
        let mut pause = Duration::from_millis(100);
        loop {
            match self.store.cancel_attempt(id, &self.owner).await {
                Ok(_) => return,
                Err(error) if Instant::now() + pause < deadline => {
                    tracing::debug!(row = id, error = %error, "taking back an attempt record failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(error) => {
                    tracing::error!(row = id, error = %error, "could not take back an attempt record; the row will count as interrupted");
                    return;
                }
            }
        }
    }

    /// One request: wait for its slot, record it when needed, send, decide.
    async fn request(
        &self,
        rows: Vec<Claimed>,
        record_each: bool,
        recorded: bool,
        cancel: &CancellationToken,
        deadline: Instant,
    ) -> Sent {
        if cancel.is_cancelled() {
            return self.unsent(rows, recorded, deadline).await;
        }
        if self.pacer.is_limited() {
            let wait = match self.pacer.reserve().await {
                Ok(wait) => wait,
                Err(error) => {
                    tracing::warn!(destination = %self.destination, error = %error, "reserving a send slot failed; waiting a second");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return self.unsent(rows, recorded, deadline).await,
                () = tokio::time::sleep(wait) => {}
            }
        }
        if self.pacer.paused_for(now_ms()).is_some() {
            // The destination asked to slow down while this request waited its turn: give the
            // rows back; they keep their place in line for when the pause ends.
            return self.unsent(rows, recorded, deadline).await;
        }
        let rows = if record_each {
            let held = self.put_on_record(rows, deadline).await;
            if held.is_empty() {
                return Sent::Finished(Vec::new());
            }
            held
        } else {
            rows
        };
        let started_at = now_ms();
        let clock = std::time::Instant::now();
        let outcomes = self.call_sink(&rows).await;
        let elapsed = clock.elapsed().as_secs_f64();
        let now = now_ms();
        if let Some((after, reason)) = outcomes.iter().find_map(|outcome| match outcome {
            Outcome::RateLimited { after, reason } => Some((*after, reason)),
            _ => None,
        }) {
            let until = now.saturating_add(duration_ms(after.min(retry::MAX_RETRY_AFTER)));
            tracing::warn!(destination = %self.destination, pause_ms = until - now, reason = %reason, "the destination asked to slow down; pausing it");
            self.pacer.pause(until, reason).await;
        }
        let guarantee = self.sink.guarantee();
        let jitter: f64 = rand::rng().random_range(-1.0..=1.0);
        let finishes: Vec<Finish> = rows
            .iter()
            .zip(&outcomes)
            .map(|(claim, outcome)| {
                let attempt = Attempt {
                    claim,
                    guarantee,
                    started_at,
                    now,
                    jitter,
                };
                let finish = retry::decide(&self.settings.schedule, attempt, outcome);
                self.log(claim, &finish);
                self.metrics
                    .delivery(&self.destination, outcome_label(outcome), elapsed);
                finish
            })
            .collect();
        Sent::Finished(finishes)
    }

    /// Hands a batch to the sink; a panic, or a wrong number of outcomes, is a failed attempt for
    /// every row.
    async fn call_sink(&self, rows: &[Claimed]) -> Vec<Outcome> {
        let batch: Vec<Delivery> = rows
            .iter()
            .map(|claim| Delivery {
                row: claim.id,
                attempts: claim.attempts,
                interrupted: claim.interrupted,
                event: Arc::clone(&claim.event),
            })
            .collect();
        let reason = match AssertUnwindSafe(self.sink.deliver(&batch))
            .catch_unwind()
            .await
        {
            Ok(outcomes) if outcomes.len() == rows.len() => return outcomes,
            Ok(outcomes) => format!(
                "the {} sink returned {} outcomes for {} rows",
                self.sink.kind(),
                outcomes.len(),
                rows.len()
            ),
            Err(panic) => format!(
                "the {} sink panicked: {}",
                self.sink.kind(),
                panic_text(&*panic)
            ),
        };
        tracing::error!(destination = %self.destination, rows = rows.len(), "{reason}");
        vec![
            Outcome::Retry {
                after: None,
                reason
            };
            rows.len()
        ]
    }

    /// Rows that will not be sent in this round: their start records (if any) are taken back.
    async fn unsent(&self, rows: Vec<Claimed>, recorded: bool, deadline: Instant) -> Sent {
        let ids: Vec<i64> = rows.iter().map(|claim| claim.id).collect();
        if recorded {
            for id in &ids {
                self.take_back(*id, deadline).await;
            }
        }
        Sent::Unsent(ids)
    }

    /// Records outcomes, retrying a failing database until the lease ends: an outcome left
    /// unrecorded turns a known result into an unknown one.
    async fn record(&self, finishes: &[Finish], deadline: Instant) {
        if finishes.is_empty() {
            return;
        }
        let mut pause = Duration::from_millis(100);
        loop {
            match self.store.finish(finishes, &self.owner, now_ms()).await {
                Ok(held) => {
                    let lost = held.iter().filter(|held| !**held).count();
                    if lost > 0 {
                        tracing::warn!(destination = %self.destination, rows = lost, "leases lost before the outcomes were recorded");
                    }
                    return;
                }
                Err(error) if Instant::now() + pause < deadline => {
                    tracing::warn!(destination = %self.destination, error = %error, "recording delivery outcomes failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    tracing::error!(destination = %self.destination, rows = finishes.len(), error = %error, "recording delivery outcomes failed until the lease ran out");
                    return;
                }
            }
        }
    }

    fn log(&self, claim: &Claimed, finish: &Finish) {
        let (row, destination, delivery_id) = (
            claim.id,
            &*self.destination,
            claim.event.delivery_id.as_str(),
        );
        let (event, attempts) = (claim.event.event.as_str(), finish.attempts);
        let error = finish.error.as_deref().unwrap_or("");
        match (finish.status, &finish.log) {
            (crate::domain::DeliveryStatus::Delivered, _) => {
                tracing::debug!(row, destination, delivery_id, event, attempts, "delivered");
            }
            (crate::domain::DeliveryStatus::Pending, _) => {
                tracing::warn!(
                    row,
                    destination,
                    delivery_id,
                    event,
                    attempts,
                    error,
                    "delivery not done; will retry"
                );
            }
            (crate::domain::DeliveryStatus::Dead, _) => {
                tracing::error!(
                    row,
                    destination,
                    delivery_id,
                    event,
                    attempts,
                    error,
                    "delivery dead-lettered"
                );
            }
        }
    }
}

fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::RateLimited { .. } => "rate_limited",
        Outcome::Ambiguous { .. } => "ambiguous",
        Outcome::Defer { .. } => "deferred",
        Outcome::Permanent { .. } => "dead",
    }
}

/// The message a panic carried.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
        .unwrap_or_else(|| "unknown panic".to_owned())
}
