//! Whether the store can commit, what a failed write means, and text both databases accept.
//!
//! The event writer records every commit's result in [`StoreHealth`]; while the last one failed,
//! `/readyz` answers 503 until a probe transaction commits again (see [`Store::probe_write`]).
//! [`is_permanent`] tells an error that lies in one row's data (retrying cannot help) from one
//! of the store itself (disk, connection), and [`storable_text`] makes text PostgreSQL accepts.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::Connection;

use super::{Store, StoreError, dispatch};
use crate::time_util::now_ms;

/// Shared view of whether writes commit, as the last write (or probe) found. Cheap to clone;
/// every clone sees the same state.
#[derive(Debug, Clone, Default)]
pub struct StoreHealth {
    failing: Arc<AtomicBool>,
}

impl StoreHealth {
    /// Whether the last commit (or probe) failed; until one succeeds, the store is not ready.
    pub fn commits_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    /// Records a failed commit. Returns `true` when this is a change (to log it once).
    pub fn commit_failed(&self) -> bool {
        !self.failing.swap(true, Ordering::AcqRel)
    }

    /// Records a successful commit. Returns `true` when this is a change (to log it once).
    pub fn commit_succeeded(&self) -> bool {
        self.failing.swap(false, Ordering::AcqRel)
    }
}

/// Rolls back whatever a failed write left open on a pooled connection and closes it instead of
/// returning it to the pool. A connection whose COMMIT failed (SQLite's disk full) may still be
/// inside the transaction; back in the pool, every later `BEGIN` on it would fail.
macro_rules! discard {
    ($connection:expr) => {{
        let mut connection = $connection.detach();
        let _ = tokio::time::timeout(
            $crate::store::health::rollback_timeout(),
            sqlx::query("ROLLBACK").execute(&mut connection),
        )
        .await;
        let _ = tokio::time::timeout(
            $crate::store::health::rollback_timeout(),
            connection.close(),
        )
        .await;
    }};
}
pub(crate) use discard;

const PROBE_INSERT: &str = "INSERT INTO store_probe (written_at, filler) VALUES ($1, $2)";
const PROBE_DELETE: &str = "DELETE FROM store_probe";
/// A probe writes at least as much as an ordinary event's commit, so "the probe commits" means
/// "an ordinary event would commit". That is more than the payload: on SQLite an event also
/// writes its rows in several indexes and its outbox rows (14 pages of 4 KiB for GitHub's 12 KB
/// issues.opened), while the probe's row has no index, so it needs some 4 pages of its own for
/// each page of an event's. With 16 KiB (6 pages) a log with room for the probe but not for the
/// next event made `/readyz` answer 200 while webhooks got 503.
const PROBE_BYTES: usize = 64 * 1024;
/// Longest an explicit rollback on a failed connection may take before it is closed anyway.
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(2);

impl Store {
    /// Commits a small write transaction (one row inserted and deleted), to learn whether writes
    /// go through again after a failure. Unlike `SELECT 1`, this fails while the disk is full.
    pub async fn probe_write(&self) -> Result<(), StoreError> {
        // Incompressible bytes, so PostgreSQL's TOAST cannot shrink the write to nothing.
        let filler: Vec<u8> = (0..PROBE_BYTES).map(|_| rand::random::<u8>()).collect();
        let _turn = self.write_turn().await;
        dispatch!(self, pool, begin => {
            let mut connection = pool.acquire().await?;
            let written: Result<(), StoreError> = async {
                let mut tx = connection.begin_with(begin).await?;
                sqlx::query(PROBE_INSERT).bind(now_ms()).bind(&filler).execute(&mut *tx).await?;
                sqlx::query(PROBE_DELETE).execute(&mut *tx).await?;
                tx.commit().await
            }
            .await;
            if written.is_err() {
                discard!(connection);
            }
            written
        })
    }
}

pub(crate) fn rollback_timeout() -> Duration {
    ROLLBACK_TIMEOUT
}

/// Whether `error` lies in the data being written, so that the same rows would fail again
/// however often they are retried: PostgreSQL's data exceptions (SQLSTATE class 22, e.g. a NUL
/// in text), integrity violations other than the handled unique key (class 23) and program
/// limits (54, e.g. an index row too large); SQLite's TOOBIG, CONSTRAINT and MISMATCH. A full
/// disk, a lost connection or a timeout is not permanent.
pub fn is_permanent(error: &StoreError) -> bool {
    let StoreError::Database(database) = error else {
        return false;
    };
    if let Some(postgres) = database.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let class = &postgres.code()[..2.min(postgres.code().len())];
        return matches!(class, "22" | "23" | "54");
    }
    if database
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
        || database
            .try_downcast_ref::<super::direct::DirectError>()
            .is_some()
    {
        // Extended result codes keep the primary code in the low byte.
        let code = database.code().and_then(|code| code.parse::<i32>().ok());
        return code.is_some_and(|code| matches!(code & 0xff, 18..=20));
    }
    false
}

/// Whether `error` says nothing about the rows written (the connection or pool failed), so that
/// splitting a batch to find a bad row would only repeat the failure.
pub fn is_connection_error(error: &StoreError) -> bool {
    matches!(
        error,
        StoreError::Io(_)
            | StoreError::Tls(_)
            | StoreError::Protocol(_)
            | StoreError::PoolTimedOut
            | StoreError::PoolClosed
            | StoreError::WorkerCrashed
    )
}

/// Longest text kept in an indexed column: far above any GitHub name, far below PostgreSQL's
/// index row limit (about 2.7 KB), so one odd payload cannot fail its insert.
pub const MAX_INDEXED_BYTES: usize = 256;

/// `text` as both databases accept it: NUL characters (which PostgreSQL's `text` refuses) become
/// U+FFFD. Borrowed when there is nothing to change.
pub fn storable_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{fffd}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// [`storable_text`], cut to at most [`MAX_INDEXED_BYTES`] on a character boundary: for the
/// columns that are indexed (repository, action, actor, …).
pub fn indexed_text(text: &str) -> String {
    let mut end = text.len().min(MAX_INDEXED_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    storable_text(&text[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_characters_become_replacement_characters() {
        assert!(matches!(
            storable_text("octo/app"),
            Cow::Borrowed("octo/app")
        ));
        assert_eq!(storable_text("octo\0app\0"), "octo\u{fffd}app\u{fffd}");
    }

    #[test]
    fn indexed_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let cut = indexed_text(&long);
        assert!(cut.len() <= MAX_INDEXED_BYTES, "{}", cut.len());
        assert_eq!(cut, "é".repeat(128));
        assert_eq!(indexed_text("a\0b"), "a\u{fffd}b");
    }

    /// What a probe writes must not fit where an ordinary event does not: compared in pages of
    /// the write-ahead log (no checkpoint runs, so the log only grows).
    #[tokio::test]
    async fn a_probe_writes_at_least_as_much_as_an_ordinary_event() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("herald.db");
        let store = Store::connect(&crate::config::DatabaseConfig {
            database_url: format!("sqlite://{}", database.display()),
            database_max_connections: 2,
            database_statement_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let log = dir.path().join("herald.db-wal");
        let log_bytes = || std::fs::metadata(&log).unwrap().len();
        let payload = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/github-payloads/issues/opened.payload.json"),
        )
        .unwrap();
        for index in 0..3 {
            let before = log_bytes();
            store.probe_write().await.unwrap();
            let probe = log_bytes() - before;
            let before = log_bytes();
            let event = super::super::NewEvent {
                hook_id: "1".into(),
                delivery_id: format!("delivery-{index}"),
                event: "issues".into(),
                action: Some("opened".into()),
                repository: Some("Codertocat/Hello-World".into()),
                issue_number: Some(index),
                actor: Some("Codertocat".into()),
                received_at: 1_700_000_000_000,
                payload: payload.clone(),
                destinations: vec!["stdout".into(), "analytics".into()],
            };
            store.append_events(&[event]).await.unwrap();
            let event = log_bytes() - before;
            assert!(
                probe >= event,
                "a probe wrote {probe} bytes of log, an event {event}"
            );
        }
        store.close().await;
    }

    #[test]
    fn health_reports_changes_once() {
        let health = StoreHealth::default();
        assert!(!health.commits_failing());
        assert!(health.commit_failed());
        assert!(!health.commit_failed());
        assert!(health.clone().commits_failing());
        assert!(health.commit_succeeded());
        assert!(!health.commit_succeeded());
        assert!(!health.commits_failing());
    }
}
