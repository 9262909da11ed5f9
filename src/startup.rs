//! Building and running the service from a config, a bound listener and a shutdown signal, so
//! tests run exactly what production runs.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::delivery::{DeliveryWorker, WorkerSettings};
use crate::github::SecretSource;
use crate::github::{SignatureVerifier, WebhookSecrets, load_secrets};
use crate::http::{ApiToken, AppState, BodyBudget, ConnectionLimits, router};
use crate::metrics::Metrics;
use crate::sinks::{
    AnalyticsSink, ConsoleNotifier, EventFilter, RateLimiter, Sink, Sinks, SlackWebhook,
};
use crate::store::{Backend, EventWriter, Store};

/// Bursts Slack tolerates above its steady rate.
const SLACK_BURST: u32 = 5;

/// Runs `herald serve` until `shutdown` fires, then stops accepting, finishes requests in flight,
/// lets delivery attempts under way finish, and closes the store.
#[expect(
    clippy::too_many_lines,
    reason = "one linear start-up and shutdown sequence; the supervisor rewrite splits it"
)]
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    check(&config)?;
    let (secrets, source) = load_secrets(&config.secrets)?;
    let store = Store::connect_limited(&config.database, config.sqlite_max_size_mib).await?;
    if store.backend() == Backend::Sqlite {
        // SQLite has one owner: leases left by a crashed run are ours to take back now.
        let released = store
            .release_leases()
            .await
            .context("releasing stale leases")?;
        if released > 0 {
            tracing::info!(released, "resuming deliveries left by the previous run");
        }
    }
    let metrics = Arc::new(Metrics::new());
    let sinks = Arc::new(build_sinks(&config, &store, &metrics)?);
    let wake = Arc::new(Notify::new());
    let writer_stop = CancellationToken::new();
    let (writer, writer_task) = EventWriter::spawn(
        store.clone(),
        Arc::clone(&wake),
        config.store_timeout,
        writer_stop.clone(),
    );

    let worker_cancel = CancellationToken::new();
    let settings = WorkerSettings {
        schedule: config.retry_schedule.clone(),
        lease: config.delivery_lease,
        concurrency: config.delivery_concurrency,
        poll_interval: config.poll_interval,
    };
    let worker = DeliveryWorker::new(
        store.clone(),
        Arc::clone(&sinks),
        settings,
        Arc::clone(&wake),
        Arc::clone(&metrics),
    );
    let worker_task = tokio::spawn(worker.run(worker_cancel.clone()));
    let listener_task = tokio::spawn(
        store
            .clone()
            .forward_announcements(Arc::clone(&wake), worker_cancel.clone()),
    );
    let checkpoint_task = tokio::spawn(store.clone().checkpoint_forever(worker_cancel.clone()));
    let depth_task = tokio::spawn(crate::metrics::refresh_queue_depth(
        store.clone(),
        Arc::clone(&metrics),
        crate::metrics::QUEUE_DEPTH_REFRESH,
        worker_cancel.clone(),
    ));

    let state = AppState {
        verifier: Arc::new(SignatureVerifier::new(secrets.clone(), config.allow_sha1)),
        writer,
        sinks,
        store: store.clone(),
        metrics,
        gcp_project: config.gcp_project.clone(),
        api_token: config.api_token.as_ref().and_then(ApiToken::new),
        body_budget: BodyBudget::new(config.body_budget_mib),
        body_timeout: config.body_timeout,
    };
    let address = listener.local_addr()?;
    announce(&secrets, &source, &config, address);
    tracing::info!(%address, backend = ?store.backend(), "herald is listening");

    let limits = ConnectionLimits::from_config(&config);
    let mut served = tokio::spawn(crate::http::serve(
        listener,
        router(state),
        limits,
        shutdown.clone(),
    ));
    // Everything after the signal shares one budget: Cloud Run kills ~10 s after SIGTERM.
    let deadline = tokio::select! {
        result = &mut served => {
            result.context("the HTTP server task")?;
            tokio::time::Instant::now() + config.shutdown_grace
        }
        () = shutdown.cancelled() => {
            let deadline = tokio::time::Instant::now() + config.shutdown_grace;
            if tokio::time::timeout_at(deadline, &mut served).await.is_err() {
                tracing::warn!("requests still in flight after the shutdown grace period; closing");
                served.abort();
            }
            deadline
        }
    };
    // No new events: the writer commits what is queued (its callers are still waiting) and ends.
    writer_stop.cancel();
    if tokio::time::timeout_at(deadline, writer_task)
        .await
        .is_err()
    {
        tracing::warn!("the event writer was still committing at the end of the grace period");
    }
    worker_cancel.cancel();
    if tokio::time::timeout_at(deadline, worker_task)
        .await
        .is_err()
    {
        tracing::warn!("delivery attempts still running after the shutdown grace period");
    }
    let _ = listener_task.await;
    let _ = checkpoint_task.await;
    let _ = depth_task.await;
    store.close().await;
    tracing::info!("herald stopped");
    Ok(())
}

/// Refuses configurations that would misbehave only later, in production.
fn check(config: &ServeConfig) -> anyhow::Result<()> {
    let secrets = &config.secrets;
    let would_generate = secrets.webhook_secret.is_none()
        && secrets.webhook_secret_file.is_none()
        && !secrets.secret_path.exists();
    let shared = config.database.database_url.starts_with("postgres");
    if would_generate && (config.cloud_run_service.is_some() || shared) {
        anyhow::bail!(
            "set HERALD_WEBHOOK_SECRET or HERALD_WEBHOOK_SECRET_FILE: on Cloud Run or with a shared \
             PostgreSQL store every instance would generate a different secret"
        );
    }
    if config.slack_webhook_url.is_some() && config.delivery_lease <= config.slack_timeout {
        anyhow::bail!(
            "HERALD_DELIVERY_LEASE ({:?}) must be longer than HERALD_SLACK_TIMEOUT ({:?}), or another \
             worker could take over a message still being sent",
            config.delivery_lease,
            config.slack_timeout
        );
    }
    Ok(())
}

/// The notifier (Slack, or stdout without Slack) and the analytics tables, which every issue
/// event reaches through the outbox.
fn build_sinks(config: &ServeConfig, store: &Store, metrics: &Metrics) -> anyhow::Result<Sinks> {
    let filter = EventFilter::new(&config.notify_events);
    let notifier: Arc<dyn Sink> = match &config.slack_webhook_url {
        Some(url) => {
            let limiter = Arc::new(RateLimiter::new(config.slack_max_per_second, SLACK_BURST));
            Arc::new(SlackWebhook::new(
                url.clone(),
                config.slack_timeout,
                filter,
                limiter,
            )?)
        }
        None => {
            tracing::info!("no Slack configured: notifications are printed to stdout");
            Arc::new(ConsoleNotifier::new(filter))
        }
    };
    let analytics: Arc<dyn Sink> = Arc::new(AnalyticsSink::new(store.clone()));
    metrics.count_sinks(&[notifier.name(), analytics.name()]);
    Ok(Sinks::new(vec![notifier, analytics]))
}

/// Tells the operator how to connect GitHub; prints a generated secret exactly once.
fn announce(
    secrets: &WebhookSecrets,
    source: &SecretSource,
    config: &ServeConfig,
    address: std::net::SocketAddr,
) {
    match source {
        SecretSource::Generated => {
            println!(
                "\nherald generated a webhook secret and saved it to {path} (mode 0600).\n\
                 Add a webhook in GitHub (repository or organization Settings > Webhooks > Add webhook):\n  \
                 Payload URL:  https://<this host>/webhook   (listening on {address})\n  \
                 Content type: application/json\n  \
                 Secret:       {secret}\n  \
                 Events:       Issues and Issue comments (or \"Send me everything\")\n\
                 This secret is not shown again; it stays in {path}.\n",
                path = config.secrets.secret_path.display(),
                secret = secrets.primary(),
            );
        }
        SecretSource::ReusedGenerated => {
            tracing::info!(path = %config.secrets.secret_path.display(), "using the generated webhook secret");
        }
        SecretSource::Environment | SecretSource::File => {
            tracing::info!(secrets = secrets.iter().count(), "webhook secrets loaded");
        }
    }
}
