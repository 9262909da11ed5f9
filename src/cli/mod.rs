//! The command line: one binary, one subcommand per job.

mod backfill;
mod bigquery;
mod config_check;
mod deliveries;
mod digest;
mod redeliver;
mod replay;
mod report;
mod routes_test;
mod send_test;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{DatabaseConfig, LogFormat, ServeConfig};
use crate::store::Store;

pub use backfill::BackfillArgs;
pub use bigquery::BigqueryArgs;
pub use deliveries::DeliveriesArgs;
pub use digest::DigestArgs;
pub use redeliver::RedeliverArgs;
pub use replay::{ReplayArgs, Replayed, replay};
pub use report::ReportArgs;
pub use send_test::SendTestArgs;

/// GitHub webhooks to Slack notifications and issue-flow metrics, durably.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
pub struct Cli {
    /// Log format (default: json on Cloud Run, where K_SERVICE is set; text elsewhere).
    #[arg(long, env = "HERALD_LOG_FORMAT", global = true, value_enum)]
    log_format: Option<LogFormat>,
    /// Set by Cloud Run; switches logs to JSON.
    #[arg(long, env = "K_SERVICE", hide = true, global = true)]
    k_service: Option<String>,
    #[command(subcommand)]
    command: Command,
    /// The parsed arguments, for commands that show where values came from.
    #[arg(skip)]
    matches: Option<clap::ArgMatches>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Receive webhooks, deliver notifications, serve the API and /metrics.
    Serve(Box<ServeConfig>),
    /// Sign a sample payload and POST it to a running herald.
    SendTest(SendTestArgs),
    /// Inspect the outbox and retry dead letters.
    Deliveries(DeliveriesArgs),
    /// Apply database migrations and exit (`serve` also applies them at start).
    Migrate(DatabaseConfig),
    /// Issue-flow metrics: time to first response, time to close, backlog.
    Report(ReportArgs),
    /// Import a repository's existing issues and comments from the GitHub REST API.
    Backfill(BackfillArgs),
    /// Ask GitHub to redeliver a webhook's recent deliveries that failed, once each.
    Redeliver(RedeliverArgs),
    /// Post the past week's issue-flow numbers to a destination (Slack or stdout).
    Digest(Box<DigestArgs>),
    /// The BigQuery event table: print its schema, or create it.
    Bigquery(BigqueryArgs),
    /// Queue stored events to a destination (one added later, or one that missed events).
    Replay(Box<ReplayArgs>),
    /// Check the configuration and print it as `serve` would use it.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// See where events go.
    #[command(subcommand)]
    Routes(RoutesCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate every setting, destination and route, and print the effective configuration
    /// (secrets redacted). Exits 2 when something is wrong.
    Check(Box<ServeConfig>),
}

#[derive(Debug, Subcommand)]
enum RoutesCommand {
    /// Which routes match a payload, why the others do not, and which destinations get it.
    Test {
        /// A webhook payload (JSON), as GitHub sends it.
        payload: std::path::PathBuf,
        /// The event name (`X-GitHub-Event`), e.g. `issues`.
        #[arg(long)]
        event: String,
        #[command(flatten)]
        serve: Box<ServeConfig>,
    },
}

impl Cli {
    /// Parses the command line over the configuration file and the environment (see
    /// `config::parse_layered`).
    pub fn load(args: &[std::ffi::OsString]) -> Result<Self, crate::config::LoadError> {
        let (mut cli, matches, file) =
            crate::config::parse_layered::<Self>(args, &|name| std::env::var(name).ok())?;
        match &mut cli.command {
            Command::Report(args) => args.file = file,
            Command::Digest(args) => args.serve.file = file,
            Command::Bigquery(args) => args.file = file,
            Command::Serve(config) | Command::Config(ConfigCommand::Check(config)) => {
                config.file = file;
            }
            Command::Routes(RoutesCommand::Test { serve, .. }) => serve.file = file,
            Command::Replay(args) => args.serve.file = file,
            Command::Deliveries(args) => args.serve_mut().file = file,
            _ => {}
        }
        cli.matches = Some(matches);
        Ok(cli)
    }

    pub fn log_format(&self) -> LogFormat {
        self.log_format.unwrap_or(if self.k_service.is_some() {
            LogFormat::Json
        } else {
            LogFormat::Text
        })
    }

    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve(config) => {
                // A configuration that cannot work is refused before anything is bound or opened.
                crate::startup::validate(&config)?;
                let listener = tokio::net::TcpListener::bind(config.listen_addr())
                    .await
                    .with_context(|| {
                        format!(
                            "cannot listen on {}: set HERALD_LISTEN (or PORT) to a free address",
                            config.listen_addr()
                        )
                    })?;
                let shutdown = CancellationToken::new();
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                crate::startup::serve(*config, listener, shutdown).await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::SendTest(args) => args.run().await,
            Command::Deliveries(args) => args.run().await,
            Command::Report(args) => args.run().await,
            Command::Backfill(args) => args.run().await,
            Command::Redeliver(args) => args.run().await,
            Command::Digest(args) => args.run().await,
            Command::Bigquery(args) => args.run().await,
            Command::Replay(args) => args.run().await,
            Command::Config(ConfigCommand::Check(config)) => {
                let command = <Self as clap::CommandFactory>::command();
                let check = command
                    .find_subcommand("config")
                    .and_then(|config| config.find_subcommand("check"))
                    .expect("the config check subcommand exists");
                let matches = self
                    .matches
                    .as_ref()
                    .and_then(|m| m.subcommand_matches("config"))
                    .and_then(|m| m.subcommand_matches("check"))
                    .expect("config check was parsed");
                Ok(config_check::run(&config, check, matches))
            }
            Command::Routes(RoutesCommand::Test {
                payload,
                event,
                serve,
            }) => routes_test::run(&serve, &payload, &event),
            Command::Migrate(database) => {
                let store = Store::connect(&database).await?;
                store.close().await;
                println!("migrations applied");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// A command's error on one line, each cause once. `{:#}` prints every error of the chain, and
/// sqlx's errors repeat their source in their own words ("error returned from database: X"
/// caused by "X"), so a store failure read "X: X".
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    let mut previous = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || previous.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
        previous = text;
    }
    line
}

/// Cancels `token` on SIGTERM (Cloud Run, Kubernetes) or SIGINT (Ctrl-C).
async fn cancel_on_signal(token: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown requested");
    token.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("error returned from database: {0}")]
    struct Wrapper(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("(code: 1) no such table: outbox")]
    struct Inner;

    #[test]
    fn each_cause_is_printed_once() {
        let error = anyhow::Error::new(Wrapper(Inner)).context("releasing stale leases");
        assert_eq!(
            error_line(&error),
            "releasing stale leases: error returned from database: (code: 1) no such table: outbox"
        );
        let plain = anyhow::anyhow!("no herald database at /x");
        assert_eq!(error_line(&plain), "no herald database at /x");
        let distinct = anyhow::Error::new(Inner).context("reading the outbox");
        assert_eq!(
            error_line(&distinct),
            "reading the outbox: (code: 1) no such table: outbox"
        );
    }
}
