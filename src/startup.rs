//! Building and running the service from a config, a bound listener and a shutdown signal, so
//! tests run exactly what production runs.

use std::sync::Arc;

use anyhow::Context;
use rand::Rng;
use secrecy::ExposeSecret;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ServeConfig;
use crate::delivery::{Lane, LaneLimits, LaneSettings, Plan, PlanErrors, Target};
use crate::domain::Wakers;
use crate::gcp::webhook_secret::Refresher;
use crate::gcp::{BigQuery, GoogleAuth, SecretVersionName};
use crate::github::SecretSource;
use crate::github::{SignatureVerifier, WebhookSecrets, load_secrets};
use crate::http::{Access, ApiToken, AppState, BodyBudget, ConnectionLimits, Insights, router};
use crate::insights::{InsightsPlan, run_digest_schedule};
use crate::metrics::Metrics;
use crate::redeliver::{PeriodicRedeliver, run_periodically};
use crate::routes::{BuiltIn, Router};
use crate::sinks::slack::reminders::{ReminderTarget, Reminders, SystemClock};
use crate::sinks::slack::{SlackApi, SlackRouting};
use crate::sinks::{AnalyticsSink, BigQuerySink, ConsoleNotifier, Sink, SlackBot, SlackWebhook};
use crate::store::{Backend, EventWriter, Store};
use crate::supervisor::{Importance, Supervisor, TaskHealth};

/// Destinations added by code rather than configuration (tests use them to inject sinks that
/// misbehave on purpose). Each gets every event.
#[derive(Default)]
pub struct Extras {
    pub sinks: Vec<(String, Arc<dyn Sink>, LaneLimits)>,
}

/// Runs `herald serve` until `shutdown` fires, then stops accepting, finishes requests in flight,
/// lets delivery attempts under way finish, and closes the store.
pub async fn serve(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    serve_with(config, listener, shutdown, Extras::default()).await
}

/// [`serve`] with destinations added by code.
#[expect(
    clippy::too_many_lines,
    reason = "the start-up sequence, read top to bottom"
)]
pub async fn serve_with(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: CancellationToken,
    extras: Extras,
) -> anyhow::Result<()> {
    let mut plan = validate(&config)?;
    let extra_sinks = add_extras(&mut plan, extras);
    let redeliver = PeriodicRedeliver::from_config(&config.redeliver, &config.github)?;
    let secret_name = crate::gcp::webhook_secret::name(&config.secrets.secret_manager)?;
    let google = google_auth(&config, &plan, secret_name.is_some())?;
    check_credentials(google.as_ref(), secret_name.is_some()).await?;
    let (secrets, source, refresher) =
        webhook_secrets(&config, secret_name, google.as_ref()).await?;
    let insights = InsightsPlan::from_config(&config, &plan)?;
    let store = Store::connect_limited(&config.database, config.sqlite_max_size_mib).await?;
    release_stale_leases(&store).await?;
    warn_about_unknown_destinations(&store, &plan).await;
    let metrics = Arc::new(Metrics::new());
    let names: Vec<&str> = plan.names().map(|name| &**name).collect();
    metrics.count_sinks(&names);
    let wakers = Wakers::new(plan.names());
    let health = TaskHealth::default();
    let mut supervisor = Supervisor::new(health.clone(), &shutdown);

    let writer_stop = CancellationToken::new();
    let (writer, writer_task) = EventWriter::spawn(
        store.clone(),
        wakers.clone(),
        config.store_timeout,
        writer_stop.clone(),
    );
    supervisor.spawn("the intake writer", Importance::Critical, async move {
        writer_task.await.context("the intake writer")
    });

    let lanes_stop = CancellationToken::new();
    spawn_lanes(
        &mut supervisor,
        &plan,
        &extra_sinks,
        &config,
        &store,
        google.as_ref(),
        &wakers,
        &metrics,
        &lanes_stop,
    )?;
    spawn_store_tasks(&mut supervisor, &store, &wakers, &lanes_stop);
    let (depth_store, depth_metrics, stop) =
        (store.clone(), Arc::clone(&metrics), lanes_stop.clone());
    supervisor.spawn("the queue depth gauge", Importance::Normal, async move {
        crate::metrics::refresh_queue_depth(
            depth_store,
            depth_metrics,
            crate::metrics::QUEUE_DEPTH_REFRESH,
            stop,
        )
        .await;
        Ok(())
    });

    let verifier = Arc::new(SignatureVerifier::new(secrets.clone(), config.allow_sha1));
    if let Some(refresher) = refresher {
        let (verifier, stop) = (Arc::clone(&verifier), shutdown.child_token());
        supervisor.spawn(
            "the webhook secret refresh",
            Importance::Normal,
            refresher.run(verifier, stop),
        );
    }
    let address = listener.local_addr()?;
    let insights = start_insights(
        insights,
        &store,
        &config,
        address,
        &mut supervisor,
        &shutdown,
    );
    let state = AppState {
        verifier,
        writer,
        router: Arc::clone(&plan.router),
        tasks: health,
        store: store.clone(),
        metrics,
        gcp_project: config.gcp_project.clone(),
        insights,
        body_budget: BodyBudget::new(config.body_budget_mib),
        body_timeout: config.body_timeout,
    };
    announce(&secrets, &source, &config, address);
    announce_plan(&plan);
    tracing::info!(%address, backend = ?store.backend(), "herald is listening");

    spawn_redeliver(&mut supervisor, redeliver, &store, &shutdown);
    if let Some(retention) = config.retention {
        let (store, stop) = (store.clone(), shutdown.child_token());
        supervisor.spawn("retention", Importance::Normal, async move {
            crate::retention::run(store, retention, stop).await;
            Ok(())
        });
    }
    let limits = ConnectionLimits::from_config(&config);
    let mut served = tokio::spawn(crate::http::serve(
        listener,
        router(state),
        limits,
        shutdown.clone(),
    ));
    // Everything after the signal shares one budget: Cloud Run kills ~10 s after SIGTERM.
    let (deadline, failure) = tokio::select! {
        result = &mut served => {
            result.context("the HTTP server task")?;
            (tokio::time::Instant::now() + config.shutdown_grace, None)
        }
        () = shutdown.cancelled() => {
            let deadline = tokio::time::Instant::now() + config.shutdown_grace;
            if tokio::time::timeout_at(deadline, &mut served).await.is_err() {
                tracing::warn!("requests still in flight after the shutdown grace period; closing");
                served.abort();
            }
            (deadline, None)
        }
        watched = supervisor.watch() => {
            let failure = watched.err();
            served.abort();
            (tokio::time::Instant::now() + config.shutdown_grace, failure)
        }
    };
    supervisor.begin_shutdown();
    // No new events: the writer commits what is queued (its callers are still waiting) and ends;
    // then lanes finish the attempts under way and give back the rest.
    writer_stop.cancel();
    lanes_stop.cancel();
    supervisor.join_all(deadline).await;
    store.close().await;
    if let Some(failure) = failure {
        anyhow::bail!("stopping: {}", failure.0);
    }
    tracing::info!("herald stopped");
    Ok(())
}

/// The periodic redeliver pass, when configured. It stops with the shutdown signal, at once: a
/// pass cut short is made again by the next one.
fn spawn_redeliver(
    supervisor: &mut Supervisor,
    redeliver: Option<PeriodicRedeliver>,
    store: &Store,
    shutdown: &CancellationToken,
) {
    if let Some(redeliver) = redeliver {
        let (store, stop) = (store.clone(), shutdown.child_token());
        supervisor.spawn("periodic redeliver", Importance::Normal, async move {
            run_periodically(redeliver, store, stop).await;
            Ok(())
        });
    }
}

/// SQLite has one owner: leases left by a crashed run are ours to take back now.
async fn release_stale_leases(store: &Store) -> anyhow::Result<()> {
    if store.backend() == Backend::Sqlite {
        let released = store
            .release_leases()
            .await
            .context("releasing stale leases")?;
        if released > 0 {
            tracing::info!(released, "resuming deliveries left by the previous run");
        }
    }
    Ok(())
}

/// Fewer characters than this in `HERALD_API_TOKEN` are warned about at start.
const MIN_TOKEN_CHARS: usize = 16;

/// A set token short enough to guess (an empty one means "not set").
fn short_token(token: &str) -> bool {
    let length = token.chars().count();
    length > 0 && length < MIN_TOKEN_CHARS
}

/// The report service behind `/api` and `/dashboard`, who may read them (said once at start when
/// they are closed), and the weekly digest under watch when one is scheduled.
fn start_insights(
    plan: InsightsPlan,
    store: &Store,
    config: &ServeConfig,
    address: std::net::SocketAddr,
    supervisor: &mut Supervisor,
    shutdown: &CancellationToken,
) -> Arc<Insights> {
    let (reports, digest) = plan.start(store.clone());
    let access = Access::decide(
        config.api_token.as_ref().and_then(ApiToken::new),
        address,
        config.insights.public_dashboard,
    );
    if let Some(refusal) = access.refusal() {
        tracing::warn!("{refusal}");
    }
    if let Some(token) = &config.api_token
        && short_token(token.expose_secret())
    {
        // The length is not logged: it would tell a guesser where to start.
        tracing::warn!(
            "HERALD_API_TOKEN is shorter than {MIN_TOKEN_CHARS} characters, and herald does not \
             slow down wrong guesses: use a random one, e.g. `openssl rand -hex 32`"
        );
    }
    // The default dashboard computed once at start, so its first visit is served at once.
    let warm = reports.clone();
    tokio::spawn(async move {
        let _ = warm
            .refresh(&crate::insights::DashboardQuery::default())
            .await;
    });
    if let Some(job) = digest {
        let stop = shutdown.child_token();
        supervisor.spawn("the weekly digest", Importance::Normal, async move {
            run_digest_schedule(job, stop).await;
            Ok(())
        });
    }
    Arc::new(Insights {
        service: reports,
        access,
        public_url: config.insights.public_url.clone(),
    })
}

/// One lane per destination, under watch.
#[expect(
    clippy::too_many_arguments,
    reason = "the pieces serve built, handed over once"
)]
fn spawn_lanes(
    supervisor: &mut Supervisor,
    plan: &Plan,
    extra_sinks: &[(String, Arc<dyn Sink>)],
    config: &ServeConfig,
    store: &Store,
    google: Option<&Arc<GoogleAuth>>,
    wakers: &Wakers,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let owner = format!(
        "{}-{:016x}",
        std::process::id(),
        rand::rng().random::<u64>()
    );
    let settings = LaneSettings {
        schedule: config.retry_schedule.clone(),
        lease: config.delivery_lease,
        poll_interval: config.poll_interval,
    };
    let routing = SlackRouting::new(Arc::clone(&plan.router)).map_err(anyhow::Error::msg)?;
    for destination in &plan.destinations {
        let sink = match extra_sinks
            .iter()
            .find(|(name, _)| name.as_str() == &*destination.name)
        {
            Some((_, sink)) => Arc::clone(sink),
            None => build_sink(destination, store, &routing, google)?,
        };
        let lane = Lane::new(
            Arc::clone(&destination.name),
            sink,
            store.clone(),
            settings.clone(),
            destination.limits,
            owner.clone(),
            wakers.signal(&destination.name),
            Arc::clone(metrics),
        );
        supervisor.spawn(
            format!("the lane of {}", destination.name),
            Importance::Normal,
            lane.run(stop.clone()),
        );
    }
    spawn_reminders(supervisor, plan, config, store, stop)
}

/// The store's own background work: cross-instance wake-ups on PostgreSQL, WAL checkpoints on
/// SQLite.
fn spawn_store_tasks(
    supervisor: &mut Supervisor,
    store: &Store,
    wakers: &Wakers,
    stop: &CancellationToken,
) {
    let (store, wakers, stop) = (store.clone(), wakers.clone(), stop.clone());
    match store.backend() {
        Backend::Postgres => {
            supervisor.spawn("the outbox listener", Importance::Normal, async move {
                store.forward_announcements(wakers, stop).await;
                Ok(())
            });
        }
        Backend::Sqlite => {
            supervisor.spawn("WAL checkpoints", Importance::Normal, async move {
                store.checkpoint_forever(stop).await;
                Ok(())
            });
        }
    }
}

/// Adds code-defined destinations to the plan, each with a built-in route for every event.
fn add_extras(plan: &mut Plan, extras: Extras) -> Vec<(String, Arc<dyn Sink>)> {
    let mut router: Router = (*plan.router).clone();
    let mut sinks = Vec::new();
    for (name, sink, limits) in extras.sinks {
        let name: Arc<str> = Arc::from(name.as_str());
        router.built_in.push(BuiltIn {
            destination: Arc::clone(&name),
            events: Vec::new(),
        });
        plan.destinations.push(crate::delivery::Destination {
            name: Arc::clone(&name),
            target: Target::Stdout,
            limits,
        });
        sinks.push((name.to_string(), sink));
    }
    plan.router = Arc::new(router);
    sinks
}

/// The webhook secrets: from Secret Manager when `name` is configured (then with the task that
/// keeps them current), else from the environment, a file, or generated.
async fn webhook_secrets(
    config: &ServeConfig,
    name: Option<SecretVersionName>,
    google: Option<&Arc<GoogleAuth>>,
) -> anyhow::Result<(WebhookSecrets, SecretSource, Option<Refresher>)> {
    if let (Some(name), Some(auth)) = (name, google) {
        let settings = &config.secrets.secret_manager;
        let (secrets, version, refresher) =
            Refresher::start(settings, name, Arc::clone(auth)).await?;
        return Ok((
            secrets,
            SecretSource::SecretManager(version),
            Some(refresher),
        ));
    }
    let (secrets, source) = load_secrets(&config.secrets)?;
    Ok((secrets, source, None))
}

/// The process's Google credentials, when something needs them (Secret Manager, BigQuery): one
/// token cache for every Google client. A broken key file stops start-up here.
fn google_auth(
    config: &ServeConfig,
    plan: &Plan,
    secret_manager: bool,
) -> anyhow::Result<Option<Arc<GoogleAuth>>> {
    let bigquery = plan
        .destinations
        .iter()
        .any(|destination| matches!(destination.target, Target::Bigquery { .. }));
    if !secret_manager && !bigquery {
        return Ok(None);
    }
    let auth = GoogleAuth::from_config(&config.google)?;
    tracing::info!(credentials = %auth.describe(), "Google credentials");
    Ok(Some(auth))
}

/// BigQuery destinations need a token: credentials that cannot give one (none, a key Google
/// refuses) stop start-up now rather than dead-letter every row later; an outage is only logged.
/// (With Secret Manager, reading the secret has asked already.)
async fn check_credentials(
    google: Option<&Arc<GoogleAuth>>,
    secret_manager: bool,
) -> anyhow::Result<()> {
    let Some(auth) = google.filter(|_| !secret_manager) else {
        return Ok(());
    };
    match auth.token().await {
        Ok(_) => Ok(()),
        Err(error) if error.is_transient() => {
            tracing::warn!(error = %error, "no Google access token yet; BigQuery rows wait and are retried");
            Ok(())
        }
        Err(error) => {
            Err(anyhow::Error::new(error).context("BigQuery destinations need Google credentials"))
        }
    }
}

fn build_sink(
    destination: &crate::delivery::Destination,
    store: &Store,
    routing: &SlackRouting,
    google: Option<&Arc<GoogleAuth>>,
) -> anyhow::Result<Arc<dyn Sink>> {
    let name = Arc::clone(&destination.name);
    Ok(match &destination.target {
        Target::SlackWebhook { url, timeout } => {
            Arc::new(SlackWebhook::new(url.clone(), *timeout)?.with_routes(
                name,
                routing.clone(),
                store.clone(),
            ))
        }
        Target::SlackBot {
            token,
            channel,
            api_url,
            timeout,
        } => Arc::new(SlackBot::new(
            SlackApi::new(api_url, token.clone(), *timeout)?,
            channel.clone(),
            name,
            routing.clone(),
            store.clone(),
            *timeout,
        )),
        Target::Stdout => Arc::new(ConsoleNotifier),
        Target::Analytics => Arc::new(AnalyticsSink::new(store.clone())),
        Target::Bigquery {
            table,
            api_url,
            timeout,
        } => {
            let auth = google.context("BigQuery destinations need Google credentials")?;
            let client = BigQuery::new(api_url, Arc::clone(auth), *timeout)?;
            Arc::new(BigQuerySink::new(client, table.clone()))
        }
    })
}

/// The periodic Slack reminder pass, when a route asks for reminders and a bot destination can
/// post them.
fn spawn_reminders(
    supervisor: &mut Supervisor,
    plan: &Plan,
    config: &ServeConfig,
    store: &Store,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    if !plan
        .router
        .routes
        .iter()
        .any(|route| route.config.remind_after.is_some())
    {
        return Ok(());
    }
    let mut targets = Vec::new();
    for destination in &plan.destinations {
        if let Target::SlackBot {
            token,
            channel,
            api_url,
            timeout,
        } = &destination.target
        {
            targets.push(ReminderTarget {
                destination: Arc::clone(&destination.name),
                channel: channel.clone(),
                api: SlackApi::new(api_url, token.clone(), *timeout)?,
            });
        }
    }
    if targets.is_empty() {
        tracing::warn!("routes ask for reminders, but no slack-bot destination can post them");
        return Ok(());
    }
    let reminders = Reminders {
        store: store.clone(),
        targets,
        clock: Arc::new(SystemClock),
        owner: format!(
            "{}-{:016x}",
            std::process::id(),
            rand::rng().random::<u64>()
        ),
    };
    let interval = config.slack_bot.slack_reminder_interval;
    supervisor.spawn(
        "Slack reminders",
        Importance::Normal,
        reminders.run(interval, stop.clone()),
    );
    Ok(())
}

/// Rows waiting for destinations this instance does not have stay pending (another instance, or
/// the next version, may have them); say so once at start-up.
async fn warn_about_unknown_destinations(store: &Store, plan: &Plan) {
    match store.pending_by_destination().await {
        Ok(pending) => {
            for (destination, rows) in pending {
                if plan.destination(&destination).is_none() {
                    tracing::warn!(
                        destination = %destination,
                        rows,
                        "deliveries are waiting for a destination this instance does not have; \
                         they stay pending until an instance with it runs (`herald deliveries list`)"
                    );
                }
            }
        }
        Err(error) => tracing::warn!(error = %error, "cannot count pending deliveries"),
    }
}

/// Checks everything `serve` would refuse, without opening the store or listening, and resolves
/// the delivery plan (`herald config check`, `routes test` and `replay` use it too). Every problem
/// is reported at once.
pub fn validate(config: &ServeConfig) -> anyhow::Result<Plan> {
    let mut problems = crate::config::check_settings(config);
    problems.extend(production_problems(config));
    match crate::delivery::plan(config, &|name| std::env::var(name).ok()) {
        Ok(plan) if problems.is_empty() => Ok(plan),
        Ok(_) => Err(PlanErrors(problems).into()),
        Err(PlanErrors(more)) => {
            problems.extend(more);
            Err(PlanErrors(problems).into())
        }
    }
}

/// Configurations that would misbehave only later, in production.
fn production_problems(config: &ServeConfig) -> Vec<String> {
    let mut problems = Vec::new();
    let secrets = &config.secrets;
    if secrets.secret_manager.webhook_secret_gcp.is_some()
        && (secrets.webhook_secret.is_some() || secrets.webhook_secret_file.is_some())
    {
        problems.push(
            "HERALD_WEBHOOK_SECRET_GCP is set together with HERALD_WEBHOOK_SECRET or \
             HERALD_WEBHOOK_SECRET_FILE; keep one source of webhook secrets (Secret Manager keeps \
             the previous value verifying during a rotation by itself)"
                .to_owned(),
        );
    }
    let would_generate = !secrets.is_configured() && !secrets.secret_path.exists();
    let shared = config.database.database_url.starts_with("postgres");
    if would_generate && (config.cloud_run_service.is_some() || shared) {
        problems.push(
            "set HERALD_WEBHOOK_SECRET or HERALD_WEBHOOK_SECRET_FILE (or HERALD_WEBHOOK_SECRET_GCP): \
             on Cloud Run or with a shared PostgreSQL store every instance would generate a \
             different secret"
                .to_owned(),
        );
    }
    if config.cloud_run_service.is_some()
        && config.database.database_url.starts_with("sqlite:")
        && !config.allow_ephemeral_store
    {
        problems.push(
            "refusing to keep the store in SQLite on Cloud Run: the container's disk is memory, \
             lost with every event not yet delivered when the instance stops or scales in. Use \
             Cloud SQL for PostgreSQL (HERALD_DATABASE_URL=postgres://USER:PASSWORD@/DB?host=/cloudsql/PROJECT:REGION:INSTANCE, \
             see docs/cloud-run.md), or set HERALD_ALLOW_EPHEMERAL_STORE=true to accept losing it"
                .to_owned(),
        );
    }
    problems
}

/// Says where events go.
fn announce_plan(plan: &Plan) {
    for destination in &plan.destinations {
        tracing::info!(
            destination = %destination.name,
            kind = destination.target.kind(),
            max_per_second = destination.limits.max_per_second,
            "destination configured"
        );
    }
    for route in &plan.router.routes {
        tracing::info!(
            route = %route.name,
            events = ?route.config.events.as_deref().unwrap_or(&["(all)".to_owned()]),
            to = ?route.config.to,
            "route configured"
        );
    }
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
        SecretSource::SecretManager(version) => {
            tracing::info!(
                version = %version,
                refresh_seconds = config.secrets.secret_manager.webhook_secret_refresh.as_secs(),
                "webhook secret read from Secret Manager"
            );
        }
    }
}
