//! The retention task of `serve`: with `HERALD_RETENTION` set, once at start and then every hour,
//! forgets finished deliveries and raw events older than the retention (see
//! `Store::prune`). On PostgreSQL several instances may prune at once: deleting is idempotent.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::time_util::{duration_ms, now_ms};

/// How often the store is pruned.
const EVERY: Duration = Duration::from_secs(3600);

/// Prunes what is older than `retention` until `stop` fires. Errors are logged and the next pass
/// tries again.
pub async fn run(store: Store, retention: Duration, stop: CancellationToken) {
    loop {
        let cutoff = now_ms().saturating_sub(duration_ms(retention));
        match store.prune(cutoff).await {
            Ok(pruned) if pruned.deliveries + pruned.events > 0 => tracing::info!(
                deliveries = pruned.deliveries,
                events = pruned.events,
                retention = %humantime::format_duration(retention),
                "pruned what is older than the retention"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "pruning failed; trying again in an hour"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(EVERY) => {}
        }
    }
}
