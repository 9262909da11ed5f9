//! Group commit: one task appends events for every request in flight, many per transaction, so
//! durable acknowledgements are not capped by the disk's fsync rate. The task also keeps
//! [`StoreHealth`] current: after a failed commit it probes every second until a write commits
//! again, so readiness recovers without waiting for the next webhook.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::health::is_permanent;
use super::{Backend, Intake, NewEvent, Store, StoreHealth};
use crate::domain::Wakers;

/// Most events committed in one transaction.
const MAX_BATCH: usize = 256;
/// Requests waiting for the writer before new ones are told the store is unavailable.
const QUEUE: usize = 4096;
/// Batches committed at once on PostgreSQL (each on its own connection).
const POSTGRES_COMMITS_IN_FLIGHT: usize = 4;
/// How often a failing store is probed until a write commits again.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why an event could not be stored. All but [`WriterError::Refused`] answer 503: GitHub shows
/// the delivery as failed and it can be redelivered once the store is back.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the store did not commit in time")]
    Timeout,
    #[error("the event writer has stopped")]
    Stopped,
    #[error("the store failed to commit")]
    Store(#[source] Arc<sqlx::Error>),
    /// The store refused this event's data (see [`super::is_permanent`]): sending it again
    /// would fail the same way. Only this event is refused; its batch is committed without it.
    #[error("the store refused the event's data")]
    Refused(#[source] Arc<sqlx::Error>),
}

struct Job {
    event: NewEvent,
    reply: oneshot::Sender<Result<Intake, WriterError>>,
}

/// The handle request handlers append through. Cloning is cheap.
#[derive(Clone)]
pub struct EventWriter {
    jobs: mpsc::Sender<Job>,
    timeout: Duration,
    health: StoreHealth,
}

impl EventWriter {
    /// Starts the writer task. After every commit, `stored` wakes the lanes of the destinations
    /// that got new rows. The task ends when every handle is dropped, or when `stop`
    /// fires; either way it first commits what is already queued, and later appends answer
    /// [`WriterError::Stopped`].
    pub fn spawn(
        store: Store,
        stored: Wakers,
        timeout: Duration,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (jobs, receiver) = mpsc::channel(QUEUE);
        let health = StoreHealth::default();
        let task = tokio::spawn(run(store, receiver, stored, stop, health.clone()));
        (
            Self {
                jobs,
                timeout,
                health,
            },
            task,
        )
    }

    /// Whether the store commits, as this writer last saw it (shared with `/readyz`).
    pub fn health(&self) -> &StoreHealth {
        &self.health
    }

    /// Appends one event, returning once it is committed (or it cannot be).
    pub async fn append(&self, event: NewEvent) -> Result<Intake, WriterError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { event, reply };
        let wait = async {
            self.jobs
                .send(job)
                .await
                .map_err(|_| WriterError::Stopped)?;
            answer.await.map_err(|_| WriterError::Stopped)?
        };
        tokio::time::timeout(self.timeout, wait)
            .await
            .unwrap_or(Err(WriterError::Timeout))
    }
}

async fn run(
    store: Store,
    mut receiver: mpsc::Receiver<Job>,
    stored: Wakers,
    stop: CancellationToken,
    health: StoreHealth,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut in_flight = tokio::task::JoinSet::new();
    let mut closed = false;
    loop {
        let received = tokio::select! {
            received = receiver.recv_many(&mut batch, MAX_BATCH) => received,
            () = stop.cancelled(), if !closed => {
                // No new jobs; those already queued are still received and committed below.
                receiver.close();
                closed = true;
                continue;
            }
            () = tokio::time::sleep(PROBE_INTERVAL), if health.commits_failing() && !closed => {
                probe(&store, &health).await;
                continue;
            }
        };
        if received == 0 {
            break;
        }
        // A request that gave up waiting needs no write; its client was told 503.
        batch.retain(|job: &Job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let (events, replies): (Vec<NewEvent>, Vec<_>) =
            batch.drain(..).map(|job| (job.event, job.reply)).unzip();
        let commit = commit(
            store.clone(),
            events,
            replies,
            stored.clone(),
            health.clone(),
        );
        if store.backend() == Backend::Postgres {
            // PostgreSQL flushes concurrent commits together; a batch gathered while another
            // commits need not wait for it.
            while in_flight.len() >= POSTGRES_COMMITS_IN_FLIGHT {
                in_flight.join_next().await;
            }
            in_flight.spawn(commit);
        } else {
            // SQLite has one writer: a second transaction would only wait for the first.
            commit.await;
        }
    }
    // Everything received is committed (or refused) before the task ends.
    while in_flight.join_next().await.is_some() {}
}

/// Commits one batch, keeps [`StoreHealth`] current, wakes the destinations that got rows and
/// answers every request in it.
async fn commit(
    store: Store,
    events: Vec<NewEvent>,
    replies: Vec<oneshot::Sender<Result<Intake, WriterError>>>,
    stored: Wakers,
    health: StoreHealth,
) {
    let started = std::time::Instant::now();
    let results = store.append_isolating(&events).await;
    let failed = results.iter().filter(|result| result.is_err()).count();
    tracing::debug!(
        events = events.len(),
        failed,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "batch committed"
    );
    if failed < results.len() {
        if health.commit_succeeded() {
            tracing::info!("the store commits again");
        }
    } else if results
        .iter()
        .any(|result| matches!(result, Err(error) if !is_permanent(error)))
        && health.commit_failed()
    {
        tracing::error!("the store cannot commit; not ready until a write commits again");
    }
    let intakes: Vec<Intake> = results
        .iter()
        .map(|result| result.as_ref().map_or(Intake::Duplicate, |intake| *intake))
        .collect();
    for destination in super::events::destinations_of_stored(&events, &intakes) {
        stored.wake(destination);
    }
    for (reply, result) in replies.into_iter().zip(results) {
        let answer = result.map_err(|error| {
            if is_permanent(&error) {
                tracing::error!(error = %error, "the store refused an event's data");
                WriterError::Refused(error)
            } else {
                tracing::error!(error = %error, "committing an event failed");
                WriterError::Store(error)
            }
        });
        let _ = reply.send(answer);
    }
}

/// One probe of a failing store; marks it healthy when a write commits.
async fn probe(store: &Store, health: &StoreHealth) {
    match store.probe_write().await {
        Ok(()) => {
            if health.commit_succeeded() {
                tracing::info!("the store commits again");
            }
        }
        Err(error) => tracing::debug!(error = %error, "the store still cannot commit"),
    }
}
