//! Waking delivery workers across instances: on PostgreSQL every commit that adds due outbox rows
//! sends `NOTIFY herald_outbox`, and each instance listens, so a row stored by one instance is
//! picked up at once by whichever is free, without polling the database hard when idle.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{NOTIFY_OUTBOX, OUTBOX_CHANNEL, Store, StoreError};
use crate::domain::Wakers;

/// How often the SQLite write-ahead log is folded back into the database.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

impl Store {
    /// On SQLite, checkpoints the write-ahead log every second until `cancel` fires (PASSIVE:
    /// never blocks writers or readers), keeping it small without stalling a commit. Returns at
    /// once on PostgreSQL.
    pub async fn checkpoint_forever(self, cancel: CancellationToken) {
        let Self::Sqlite(pool, ..) = self else { return };
        let mut ticks = tokio::time::interval(CHECKPOINT_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticks.tick() => {}
            }
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                tracing::warn!(error = %error, "WAL checkpoint failed");
            }
        }
        // Fold everything in before the process exits, so the WAL does not outlive it.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&pool)
            .await;
    }

    /// Tells every listening instance that outbox rows became due (no-op on SQLite, whose
    /// only instance is woken in process).
    pub async fn announce_outbox(&self) -> Result<(), StoreError> {
        if let Self::Postgres(pool) = self {
            sqlx::query(NOTIFY_OUTBOX).bind("").execute(pool).await?;
        }
        Ok(())
    }

    /// On PostgreSQL, wakes the lanes each outbox announcement names until `cancel` fires,
    /// reconnecting after errors. Returns at once on SQLite.
    pub async fn forward_announcements(self, wake: Wakers, cancel: CancellationToken) {
        let Self::Postgres(pool) = self else { return };
        while !cancel.is_cancelled() {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(error = %error, "cannot listen for outbox announcements; polling meanwhile");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                    }
                }
            };
            if let Err(error) = listener.listen(OUTBOX_CHANNEL).await {
                tracing::warn!(error = %error, "LISTEN failed; polling meanwhile");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => continue,
                }
            }
            // A commit may have happened while we were not listening.
            wake.wake_all();
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    received = listener.recv() => match received {
                        Ok(notification) => wake.wake_named(notification.payload()),
                        Err(error) => {
                            tracing::warn!(error = %error, "outbox announcements interrupted; reconnecting");
                            break;
                        }
                    },
                }
            }
        }
    }
}
