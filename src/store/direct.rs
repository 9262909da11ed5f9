//! SQLite's hot paths on one dedicated thread: appending events, claiming and recording
//! deliveries, and the analytics upserts run as whole operations on a connection of their own.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement (and every
//! row) over a channel: a profile of intake under load found a third of herald's CPU in the
//! thread wake-ups that costs. Here one operation, however many statements it runs, is one
//! hand-off: the closure is sent to the thread, which runs it in a transaction and sends the
//! result back. Statements are prepared once and cached. Writes take the same in-process write
//! gate as sqlx's (see `Store::write_turn`), so the two never wait on SQLite's busy handler.
//!
//! Group commits of webhooks go ahead of the queue ([`Direct::append`]): under load the lanes
//! keep claims, outcomes and analytics batches queued, and a webhook waiting behind them is
//! latency that 32 connections turn straight into fewer requests a second (10 % more here).
//!
//! The thread also watches the write-ahead log: once a commit leaves it longer than
//! [`CHECKPOINT_FRAMES`], it asks for a checkpoint ([`Direct::wal_grown`]) instead of waiting for
//! the next periodic one, so a burst of writes cannot grow the log without bound.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::os::raw::c_int;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::{Notify, oneshot};

use super::{StoreError, WriteGate};

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Frames in the write-ahead log (4 KiB pages: 1 MiB) past which a commit asks for a checkpoint.
/// Each event costs tens of frames (its row, the outbox rows, indexes, then the deliveries'
/// bookkeeping), so waiting for the periodic checkpoint would let a burst add megabytes: on a
/// nearly full disk, all the space just freed, after which even the checkpoint fails for want of
/// room to copy the log into the database, and nothing commits again.
pub const CHECKPOINT_FRAMES: c_int = 256;

thread_local! {
    /// Frames in the log after the last commit on this thread's connection (set by its WAL hook;
    /// each `Direct` has a thread of its own).
    static WAL_FRAMES: Cell<c_int> = const { Cell::new(0) };
}

#[expect(
    clippy::unnecessary_wraps,
    reason = "the signature rusqlite's WAL hook takes"
)]
fn count_wal_frames(_: &rusqlite::hooks::Wal, frames: c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(frames);
    Ok(())
}

/// A handle on the thread. Cloning is cheap; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct Direct {
    jobs: mpsc::Sender<Job>,
    /// Group commits of webhooks, run before any job queued on `jobs` (see [`Direct::append`]).
    first: Arc<FirstJobs>,
    gate: WriteGate,
    wal_grown: Arc<Notify>,
}

impl fmt::Debug for Direct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Direct")
    }
}

impl Direct {
    /// Opens `path` (already created and migrated through sqlx) with the pool's settings, on a
    /// new thread.
    pub fn open(
        path: &Path,
        max_page_count: Option<u64>,
        gate: WriteGate,
    ) -> Result<Self, StoreError> {
        let connection = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(into_store_error)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 0; \
                 PRAGMA journal_size_limit = 4194304; \
                 PRAGMA cache_size = -32768;",
            )
            .map_err(into_store_error)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(into_store_error)?;
        if let Some(pages) = max_page_count {
            connection
                .pragma_update(
                    None,
                    "max_page_count",
                    i64::try_from(pages).unwrap_or(i64::MAX),
                )
                .map_err(into_store_error)?;
        }
        connection.set_prepared_statement_cache_capacity(64);
        // After `wal_autocheckpoint`, which would replace it.
        connection.wal_hook(Some(count_wal_frames));
        let wal_grown = Arc::new(Notify::new());
        let grown = Arc::clone(&wal_grown);
        let (jobs, receiver) = mpsc::channel::<Job>();
        let first = Arc::new(FirstJobs::default());
        let queued_first = Arc::clone(&first);
        std::thread::Builder::new()
            .name("herald-sqlite".into())
            .spawn(move || {
                let mut connection = connection;
                // However the thread ends (a panic included), jobs still queued first are
                // dropped, as the channel drops its own: their callers learn the worker is gone.
                let _forget = Forget(Arc::clone(&queued_first));
                while let Ok(job) = receiver.recv() {
                    while let Some(urgent) = queued_first.pop() {
                        urgent(&mut connection);
                    }
                    job(&mut connection);
                    // After the job has answered: its caller does not wait for the checkpoint.
                    if WAL_FRAMES.replace(0) >= CHECKPOINT_FRAMES {
                        grown.notify_one();
                    }
                }
            })
            .map_err(StoreError::Io)?;
        Ok(Self {
            jobs,
            first,
            gate,
            wal_grown,
        })
    }

    /// Returns once a commit on this thread has left the write-ahead log longer than
    /// [`CHECKPOINT_FRAMES`] (at once if one did since the last call).
    pub async fn wal_grown(&self) {
        self.wal_grown.notified().await;
    }

    /// Runs `work` in one write transaction (`BEGIN IMMEDIATE`), committed when it returns `Ok`
    /// and rolled back otherwise. With `durable`, the commit is synced to disk before this
    /// returns (`synchronous = FULL`): what a 2xx or a record that prevents duplicates needs.
    pub async fn write<T, F>(&self, durable: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write_queued(false, durable, work).await
    }

    /// [`Direct::write`] for a group commit of webhooks: it runs before every job already
    /// queued for the thread (claims, outcomes, analytics), as soon as the one running ends. A
    /// webhook's answer waits for it; a delivery can wait a moment longer.
    pub async fn append<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write_queued(true, true, work).await
    }

    async fn write_queued<T, F>(&self, first: bool, durable: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    {
        let gate = self.gate.clone();
        self.run_queued(first, move |connection| {
            let _turn = gate.blocking_lock();
            if durable {
                connection.pragma_update(None, "synchronous", "FULL")?;
            }
            let result = (|| {
                let tx = Transaction::new_unchecked(connection, TransactionBehavior::Immediate)?;
                let value = work(&tx)?;
                tx.commit()?;
                Ok(value)
            })();
            if result.is_err() && !connection.is_autocommit() {
                // A failed commit (a full disk) must not leave the transaction open.
                let _ = connection.execute_batch("ROLLBACK");
            }
            if durable && let Err(error) = connection.pragma_update(None, "synchronous", "NORMAL") {
                // What was committed stays committed: the connection merely keeps syncing
                // every commit fully until the next durable write restores the mode.
                tracing::warn!(%error, "could not restore synchronous = NORMAL");
            }
            result
        })
        .await
    }

    /// Runs `work` on the thread's connection (reads, or writes that open their own
    /// transaction).
    async fn run_queued<T, F>(&self, first: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |connection| {
            let _ = reply.send(work(connection));
        });
        if first {
            self.first.push(job);
            // Wakes the thread, which runs what is queued first before this empty job.
            self.jobs
                .send(Box::new(|_| {}))
                .map_err(|_| StoreError::WorkerCrashed)?;
        } else {
            self.jobs.send(job).map_err(|_| StoreError::WorkerCrashed)?;
        }
        answer
            .await
            .map_err(|_| StoreError::WorkerCrashed)?
            .map_err(into_store_error)
    }
}

/// Jobs the thread runs before the next one from its channel, oldest first.
#[derive(Default)]
struct FirstJobs(Mutex<VecDeque<Job>>);

impl FirstJobs {
    /// The queue, also after a job panicked while another thread held the lock: a job never
    /// runs under it, so its contents stay whole.
    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Job>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn push(&self, job: Job) {
        self.queue().push_back(job);
    }

    fn pop(&self) -> Option<Job> {
        self.queue().pop_front()
    }
}

/// Empties the queue of first jobs when dropped.
struct Forget(Arc<FirstJobs>);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0.queue().clear();
    }
}

/// Binds `values` to `$1`, `$2`, … by name, whatever order they appear in the SQL.
pub fn bind(
    statement: &mut rusqlite::CachedStatement<'_>,
    values: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    for (position, value) in values.iter().enumerate() {
        let name = format!("${}", position + 1);
        if let Some(index) = statement.parameter_index(&name)? {
            statement.raw_bind_parameter(index, value)?;
        }
    }
    Ok(())
}

/// A SQLite error from this thread, as the rest of the store sees database errors: its extended
/// result code (as sqlx reports SQLite's) and message.
#[derive(Debug)]
pub struct DirectError {
    code: i32,
    message: String,
}

impl fmt::Display for DirectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DirectError {}

impl sqlx::error::DatabaseError for DirectError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        match self.code {
            2067 | 1555 => sqlx::error::ErrorKind::UniqueViolation,
            787 => sqlx::error::ErrorKind::ForeignKeyViolation,
            1299 => sqlx::error::ErrorKind::NotNullViolation,
            275 => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}

fn into_store_error(error: rusqlite::Error) -> StoreError {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => {
            let message = message.unwrap_or_else(|| failure.to_string());
            StoreError::Database(Box::new(DirectError {
                code: failure.extended_code,
                message,
            }))
        }
        rusqlite::Error::ToSqlConversionFailure(error) => StoreError::Encode(error),
        rusqlite::Error::FromSqlConversionFailure(_, _, error) => StoreError::Decode(error),
        other => StoreError::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Waker};

    use super::*;

    /// Polls `future` once, which queues its job on the thread.
    fn queue<F: Future + Unpin>(future: &mut F) {
        let mut context = Context::from_waker(Waker::noop());
        assert!(Pin::new(future).poll(&mut context).is_pending());
    }

    fn insert(text: &'static str) -> impl FnOnce(&Transaction<'_>) -> rusqlite::Result<()> {
        move |tx| {
            tx.execute("INSERT INTO t (x) VALUES (?1)", [text])
                .map(drop)
        }
    }

    #[tokio::test]
    async fn a_group_commit_runs_before_jobs_queued_earlier() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x TEXT)")
            .unwrap();
        let direct = Direct::open(&path, None, WriteGate::default()).unwrap();
        // Keep the thread busy until both jobs below are queued.
        let (started, running) = oneshot::channel();
        let (release, held) = mpsc::channel::<()>();
        let busy = tokio::spawn({
            let direct = direct.clone();
            async move {
                direct
                    .run_queued(false, move |_| {
                        let _ = started.send(());
                        let _ = held.recv();
                        Ok(())
                    })
                    .await
            }
        });
        running.await.unwrap();
        let mut bookkeeping = Box::pin(direct.write(false, insert("queued first: bookkeeping")));
        queue(&mut bookkeeping);
        let mut commit = Box::pin(direct.append(insert("queued second: webhooks")));
        queue(&mut commit);
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        bookkeeping.await.unwrap();
        commit.await.unwrap();
        let order: Vec<String> = direct
            .run_queued(false, |connection| {
                let mut rows = connection.prepare("SELECT x FROM t ORDER BY rowid")?;
                rows.query_map([], |row| row.get(0))?.collect()
            })
            .await
            .unwrap();
        assert_eq!(
            order,
            ["queued second: webhooks", "queued first: bookkeeping"]
        );
    }
}
