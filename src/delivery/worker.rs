//! The delivery worker: claims due outbox rows under a lease, runs up to `concurrency` attempts
//! at once, records each outcome, and on shutdown lets the attempts under way finish.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Outcome, Step, next_step};
use crate::config::RetrySchedule;
use crate::metrics::Metrics;
use crate::sinks::{Sink, Sinks};
use crate::store::{Claimed, Finish, Store};
use crate::time_util::{duration_ms, now_ms};

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub schedule: RetrySchedule,
    pub lease: Duration,
    pub concurrency: usize,
    pub poll_interval: Duration,
}

/// One process's delivery loop.
pub struct DeliveryWorker {
    store: Store,
    sinks: Arc<Sinks>,
    settings: WorkerSettings,
    owner: String,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl DeliveryWorker {
    /// `wake` is notified when new outbox rows are committed.
    pub fn new(
        store: Store,
        sinks: Arc<Sinks>,
        settings: WorkerSettings,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let owner = format!(
            "{}-{:016x}",
            std::process::id(),
            rand::rng().random::<u64>()
        );
        Self {
            store,
            sinks,
            settings,
            owner,
            wake,
            metrics,
        }
    }

    /// Runs until `cancel` fires, then waits for the attempts under way.
    pub async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let capacity = this.settings.concurrency.max(1);
        let slots = Arc::new(Semaphore::new(capacity));
        let finished = Arc::new(Notify::new());
        let mut attempts = JoinSet::new();
        tracing::info!(owner = %this.owner, concurrency = capacity, "delivery worker started");
        loop {
            while attempts.try_join_next().is_some() {}
            let free = slots.available_permits();
            if free > 0 && !cancel.is_cancelled() {
                let lease_ms = duration_ms(this.settings.lease);
                match this
                    .store
                    .claim_due(&this.owner, now_ms(), lease_ms, free as i64)
                    .await
                {
                    Ok(claims) => {
                        let filled = claims.len() == free;
                        for claim in claims {
                            let slot = Arc::clone(&slots)
                                .try_acquire_owned()
                                .expect("claimed no more than the free slots");
                            let worker = Arc::clone(&this);
                            let finished = Arc::clone(&finished);
                            let cancel = cancel.clone();
                            attempts.spawn(async move {
                                worker.attempt(claim, &cancel).await;
                                drop(slot);
                                finished.notify_one();
                            });
                        }
                        if filled {
                            // More may be due; go again once a slot frees.
                            tokio::select! {
                                () = cancel.cancelled() => break,
                                () = finished.notified() => continue,
                            }
                        }
                    }
                    Err(error) => tracing::error!(error = %error, "claiming deliveries failed"),
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = this.wake.notified() => {}
                () = finished.notified() => {}
                () = tokio::time::sleep(this.settings.poll_interval) => {}
            }
        }
        tracing::info!(
            in_flight = attempts.len(),
            "delivery worker stopping; finishing attempts under way"
        );
        while attempts.join_next().await.is_some() {}
    }

    async fn attempt(&self, claim: Claimed, cancel: &CancellationToken) {
        let Some(sink) = self.sinks.get(&claim.sink) else {
            self.record(
                &claim,
                Finish::Dead {
                    attempts: claim.attempts,
                    error: format!("sink {:?} is not configured", claim.sink),
                },
            )
            .await;
            return;
        };
        if claim.interrupted && !sink.idempotent() {
            // The last attempt may have reached the sink; sending again could duplicate it.
            let error = "interrupted while sending: the sink may have received it; \
                         check, then `herald deliveries retry` to send again"
                .to_owned();
            tracing::warn!(delivery = claim.id, sink = %claim.sink, "attempt interrupted mid-flight; dead-lettered to avoid a duplicate");
            self.record(
                &claim,
                Finish::Dead {
                    attempts: claim.attempts,
                    error,
                },
            )
            .await;
            return;
        }
        tokio::select! {
            () = cancel.cancelled() => {
                // Shutting down before this attempt began: hand the row back untouched.
                self.release(&claim).await;
                return;
            }
            () = sink.ready() => {}
        }
        let lease_ms = duration_ms(self.settings.lease);
        // Only an attempt that could be duplicated needs to be on record before it leaves.
        let recorded = if sink.idempotent() {
            Ok(true)
        } else {
            self.store
                .start_attempt(claim.id, &self.owner, now_ms(), lease_ms)
                .await
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => return, // Another worker took the row over after our lease expired.
            Err(error) => {
                tracing::error!(delivery = claim.id, error = %error, "recording an attempt failed; not sending");
                return;
            }
        }
        let started = std::time::Instant::now();
        let outcome = sink.deliver(&claim.event).await;
        let elapsed = started.elapsed().as_secs_f64();
        let attempts = claim.attempts + 1;
        let jitter = rand::rng().random_range(-1.0..=1.0);
        let finish = match next_step(&self.settings.schedule, attempts, &outcome, jitter) {
            Step::Done => Finish::Delivered { attempts },
            Step::RetryIn(delay) => Finish::Retry {
                attempts,
                next_attempt_at: now_ms() + duration_ms(delay),
                error: reason(&outcome),
            },
            Step::DeadLetter(error) => Finish::Dead { attempts, error },
        };
        log_attempt(&claim, sink.as_ref(), &finish);
        let label = match finish {
            Finish::Delivered { .. } => "delivered",
            Finish::Retry { .. } => "retry",
            Finish::Dead { .. } => "dead",
        };
        self.metrics.delivery(sink.name(), label, elapsed);
        self.record(&claim, finish).await;
    }

    /// Records the outcome, retrying a failing database a few times: an outcome left unrecorded
    /// turns a known result into an "interrupted" one after the lease expires.
    async fn record(&self, claim: &Claimed, finish: Finish) {
        for pause_ms in [100, 500, 2_000, 0] {
            match self
                .store
                .finish(claim.id, &self.owner, now_ms(), &finish)
                .await
            {
                Ok(true) => return,
                Ok(false) => {
                    tracing::warn!(
                        delivery = claim.id,
                        "lease lost before the outcome was recorded"
                    );
                    return;
                }
                Err(error) if pause_ms > 0 => {
                    tracing::warn!(delivery = claim.id, error = %error, "recording a delivery outcome failed; retrying");
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                }
                Err(error) => {
                    tracing::error!(delivery = claim.id, error = %error, "recording a delivery outcome failed");
                }
            }
        }
    }

    async fn release(&self, claim: &Claimed) {
        if let Err(error) = self.store.release_lease(claim.id, &self.owner).await {
            tracing::warn!(delivery = claim.id, error = %error, "releasing a lease failed; it will expire");
        }
    }
}

fn reason(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Delivered => String::new(),
        Outcome::Retry { reason, .. } | Outcome::Permanent { reason } => reason.clone(),
    }
}

fn log_attempt(claim: &Claimed, sink: &dyn Sink, finish: &Finish) {
    let (delivery, sink, event) = (claim.id, sink.name(), claim.event.delivery_id.as_str());
    match finish {
        Finish::Delivered { attempts } => {
            tracing::info!(delivery, sink, event, attempts, "delivered");
        }
        Finish::Retry {
            attempts, error, ..
        } => {
            tracing::warn!(delivery, sink, event, attempts, error = %error, "delivery failed; will retry");
        }
        Finish::Dead { attempts, error } => {
            tracing::error!(delivery, sink, event, attempts, error = %error, "delivery dead-lettered");
        }
    }
}
