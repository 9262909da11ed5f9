//! Group commit: one task appends events for every request in flight, many per transaction, so
//! durable acknowledgements are not capped by the disk's fsync rate.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{Intake, NewEvent, Store};
use crate::domain::Wakers;

/// Most events committed in one transaction.
const MAX_BATCH: usize = 256;
/// Requests waiting for the writer before new ones are told the store is unavailable.
const QUEUE: usize = 4096;

/// Why an event could not be stored. All answer 503: GitHub shows the delivery as failed and
/// it can be redelivered.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("the store did not commit in time")]
    Timeout,
    #[error("the event writer has stopped")]
    Stopped,
    #[error("the store failed to commit")]
    Store(#[source] Arc<sqlx::Error>),
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
        let task = tokio::spawn(run(store, receiver, stored, stop));
        (Self { jobs, timeout }, task)
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
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
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
        let started = std::time::Instant::now();
        match store.append_events(&events).await {
            Ok(intakes) => {
                tracing::debug!(
                    events = events.len(),
                    elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                    "batch committed"
                );
                for destination in super::events::destinations_of_stored(&events, &intakes) {
                    stored.wake(destination);
                }
                for (reply, intake) in replies.into_iter().zip(intakes) {
                    let _ = reply.send(Ok(intake));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, events = events.len(), "committing events failed");
                let error = Arc::new(error);
                for reply in replies {
                    let _ = reply.send(Err(WriterError::Store(Arc::clone(&error))));
                }
            }
        }
    }
}
