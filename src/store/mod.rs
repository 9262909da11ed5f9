//! The store: the only code that speaks SQL. SQLite (embedded, one instance) or PostgreSQL
//! (shared by several instances), chosen by the URL scheme. Each query is written once and run
//! on whichever pool is configured (see [`dispatch!`]); only the statements whose SQL differs
//! between the two are spelled twice.

mod analytics;
mod analytics_batch;
mod connect;
mod destinations;
mod direct;
mod events;
mod health;
mod insights;
mod listen;
mod outbox;
mod outbox_direct;
mod redeliver;
mod replay;
mod retention;
mod slack;
mod slack_reminders;
mod writer;

use std::sync::Arc;

use sqlx::{PgPool, SqlitePool};
use tokio::sync::{Mutex, MutexGuard};

pub use analytics::{BackfillPhase, BackfillState, BackfillStep, Excluded, PhaseProgress};
pub use connect::redact_url;
pub use health::{
    MAX_INDEXED_BYTES, StoreHealth, indexed_text, is_connection_error, is_permanent, storable_text,
};
pub use insights::{DestinationHealth, UnansweredIssue};
pub use outbox::{AttemptRow, DeliveryRow, QueueDepth};
pub use redeliver::{NewRequest, PassLock, PastRequest, RequestState};
pub use replay::ReplayFilter;
pub use retention::Pruned;
pub use slack::{IssueKey, ParentSlot, ThreadRow};
pub use slack_reminders::{NewReminder, ReminderEnd, ReminderRow, ResponseState};
pub use writer::{EventWriter, WriterError};

/// Runs the same body against whichever pool the store holds. `$pool` is bound to the pool and
/// `$begin` to the statement that opens a write transaction on that backend (`BEGIN IMMEDIATE` on
/// SQLite, so concurrent writers queue on the busy timeout instead of failing).
macro_rules! dispatch {
    ($store:expr, $pool:ident, $begin:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool, ..) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN IMMEDIATE";
                $body
            }
            $crate::store::Store::Postgres($pool) => {
                #[allow(unused_variables)]
                let $begin = "BEGIN";
                $body
            }
        }
    };
    ($store:expr, $pool:ident => $body:expr) => {
        dispatch!($store, $pool, _begin => $body)
    };
}
pub(crate) use dispatch;

/// A connection pool to one of the two backends.
#[derive(Debug, Clone)]
pub enum Store {
    /// The gate orders this process's write transactions (see [`Store::write_turn`]); the hot
    /// paths run on a connection of their own (see `direct`).
    Sqlite(SqlitePool, WriteGate, direct::Direct),
    Postgres(PgPool),
}

/// One write transaction at a time in this process, in arrival order. SQLite allows one writer;
/// left to its busy handler, a writer that finds the database locked sleeps in growing steps
/// (up to 100 ms), so a webhook's commit could wait behind a stream of delivery bookkeeping far
/// longer than the writes themselves take. A fair async lock queues them instead.
pub type WriteGate = Arc<Mutex<()>>;

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL channel on which commits that add outbox rows are announced.
pub const OUTBOX_CHANNEL: &str = "herald_outbox";
/// Announces new due rows; the payload names their destinations, comma separated (empty: any).
const NOTIFY_OUTBOX: &str = "SELECT pg_notify('herald_outbox', $1)";

/// SQLite commits that must survive power loss switch their connection to a full sync, and back
/// to the pool's NORMAL afterwards.
const SYNC_FULL: &str = "PRAGMA synchronous = FULL";
const SYNC_NORMAL: &str = "PRAGMA synchronous = NORMAL";

/// Errors from the store; the cause chain is logged, never sent to clients.
pub type StoreError = sqlx::Error;

/// Whether the database refused a statement for the data it carried (see [`is_permanent`]), or
/// the data could not even be encoded: retrying the same data cannot help.
pub fn is_data_error(error: &StoreError) -> bool {
    is_permanent(error) || matches!(error, sqlx::Error::Encode(_))
}

/// One delivery as it arrives, ready to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub hook_id: String,
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub issue_number: Option<i64>,
    pub actor: Option<String>,
    pub received_at: i64,
    pub payload: String,
    /// The destinations that get an outbox row for this event (one each).
    pub destinations: Vec<Arc<str>>,
}

/// What appending an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intake {
    Stored {
        event_id: i64,
    },
    /// The same (hook, delivery) pair was stored before; nothing was written.
    Duplicate,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredEvent {
    pub id: i64,
    pub hook_id: String,
    pub delivery_id: String,
    pub event: String,
    pub action: Option<String>,
    pub repository: Option<String>,
    pub issue_number: Option<i64>,
    pub actor: Option<String>,
    pub received_at: i64,
    pub payload: String,
}

impl Store {
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(..) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Waits for this process's turn to write (SQLite); no wait on PostgreSQL, whose row locks
    /// let writers proceed together. Hold the guard for the whole write transaction.
    pub(crate) async fn write_turn(&self) -> Option<MutexGuard<'_, ()>> {
        match self {
            Self::Sqlite(_, gate, _) => Some(gate.lock().await),
            Self::Postgres(_) => None,
        }
    }

    /// Answers when the database does (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every connection, waiting for those in use.
    pub async fn close(&self) {
        dispatch!(self, pool => pool.close().await);
    }
}
