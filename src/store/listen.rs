//! Waking delivery workers across instances: on PostgreSQL every commit that adds due outbox rows
//! sends `NOTIFY herald_outbox`, and each instance listens, so a row stored by one instance is
//! picked up at once by whichever is free, without polling the database hard when idle.

use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{NOTIFY_OUTBOX, OUTBOX_CHANNEL, Store, StoreError};
use crate::domain::Wakers;

/// How often the SQLite write-ahead log is folded back into the database, at the latest (a
/// commit that leaves it long asks for a checkpoint at once; see `direct::CHECKPOINT_FRAMES`).
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Copies what the log holds into the database without blocking writers or readers.
const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

impl Store {
    /// On SQLite, checkpoints the write-ahead log every second, and whenever a commit has left it
    /// long, until `cancel` fires. Returns at once on PostgreSQL.
    pub async fn checkpoint_forever(self, cancel: CancellationToken) {
        self.checkpoint_every(CHECKPOINT_INTERVAL, cancel).await;
    }

    async fn checkpoint_every(self, interval: Duration, cancel: CancellationToken) {
        let Self::Sqlite(pool, _, direct) = &self else {
            return;
        };
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticks.tick() => {}
                () = direct.wal_grown() => {}
            }
            if let Err(error) = self.checkpoint().await {
                tracing::warn!(error = %error, "WAL checkpoint failed");
            }
        }
        // Fold everything in before the process exits, so the WAL does not outlive it.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await;
    }

    /// One checkpoint that lets the next write start the log over from its beginning.
    ///
    /// SQLite only reuses the log once every frame in it is in the database and a writer begins
    /// after that; a frame committed while the checkpoint copies leaves the log growing at its
    /// end, and under steady writes that is nearly always, so the file grew by every commit
    /// (on a full disk, into all the space freed). So: copy the bulk while writers go on, then,
    /// holding the write gate, copy what was committed meanwhile (little, so the gate is held
    /// briefly). No-op on PostgreSQL.
    pub(crate) async fn checkpoint(&self) -> Result<(), StoreError> {
        let Self::Sqlite(pool, ..) = self else {
            return Ok(());
        };
        // A connection first: the gate is never held waiting for the pool.
        let mut connection = pool.acquire().await?;
        sqlx::query(CHECKPOINT).execute(&mut *connection).await?;
        let _turn = self.write_turn().await;
        sqlx::query(CHECKPOINT).execute(&mut *connection).await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::super::direct::CHECKPOINT_FRAMES;
    use super::super::{NewEvent, Store};
    use crate::config::DatabaseConfig;

    /// One frame of the log: a 4 KiB page and its 24-byte header.
    const FRAME_BYTES: u64 = 4096 + 24;

    fn event(index: i64) -> NewEvent {
        NewEvent {
            hook_id: "1".into(),
            delivery_id: format!("delivery-{index}"),
            event: "issues".into(),
            action: Some("opened".into()),
            repository: Some("octo/app".into()),
            issue_number: Some(index),
            actor: Some("alice".into()),
            received_at: 1_700_000_000_000 + index,
            // About the size of GitHub's issues.opened payload.
            payload: format!(
                "{{\"index\":{index},\"body\":\"{}\"}}",
                "x".repeat(12 * 1024)
            ),
            destinations: vec!["stdout".into(), "analytics".into()],
        }
    }

    /// A burst of commits, faster than the periodic checkpoint: the log must still start over
    /// from its beginning every so often instead of growing by every commit (on a nearly full
    /// disk, into all the space there is).
    #[tokio::test]
    async fn a_burst_of_commits_does_not_grow_the_log_without_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.db");
        let store = Store::connect(&DatabaseConfig {
            database_url: format!("sqlite://{}", path.display()),
            database_max_connections: 2,
            database_statement_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let stop = CancellationToken::new();
        // No periodic checkpoint during the test: only the log's length can trigger one.
        let checkpoints = tokio::spawn(
            store
                .clone()
                .checkpoint_every(Duration::from_secs(3600), stop.clone()),
        );
        // Some 14 frames each: 2,800 frames (11 MiB) if the log were never reused.
        for index in 0..200 {
            store.append_events(&[event(index)]).await.unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("herald.db-wal"))
            .unwrap()
            .len();
        let bound = 4 * FRAME_BYTES * u64::try_from(CHECKPOINT_FRAMES).unwrap();
        assert!(wal < bound, "the log grew to {wal} bytes (bound {bound})");
        stop.cancel();
        checkpoints.await.unwrap();
        store.close().await;
    }
}
