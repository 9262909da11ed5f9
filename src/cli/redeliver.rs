//! `herald redeliver OWNER/REPO --hook-id ID` (or `--org ORG --hook-id ID`): asks GitHub to
//! redeliver the hook's recent deliveries that failed, once each, for cron or Cloud Scheduler.
//! Prints one line per delivery it acted on and a summary; exits non-zero when GitHub refuses.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::analytics::parse_since;
use crate::config::{DatabaseConfig, GithubApiConfig, parse_duration};
use crate::github::{Hook, RestClient};
use crate::redeliver::{Line, Pass, PassOutcome};
use crate::store::Store;
use crate::time_util::{format_ms, now_ms};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("owner").required(true).args(["repository", "org"]))]
pub struct RedeliverArgs {
    /// The repository whose webhook it is, OWNER/NAME.
    repository: Option<String>,
    /// Or the organisation whose webhook it is.
    #[arg(long)]
    org: Option<String>,
    /// The webhook's id: the number at the end of its settings URL (`X-GitHub-Hook-ID`).
    #[arg(long)]
    hook_id: u64,
    /// How far back to look: `3d`, `12h`, a date or an RFC 3339 time. GitHub keeps deliveries
    /// for about 3 days.
    #[arg(long, default_value = "3d", allow_hyphen_values = true)]
    since: String,
    /// Show what would be asked for; ask nothing and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Longest one wait for GitHub's rate limit.
    #[arg(long, env = "HERALD_GITHUB_MAX_RATE_LIMIT_WAIT", default_value = "1h", value_parser = parse_duration)]
    max_rate_limit_wait: Duration,
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    github: GithubApiConfig,
}

impl RedeliverArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let hook = match (&self.repository, &self.org) {
            (Some(repository), None) => Hook::repository(repository, self.hook_id)?,
            (None, Some(org)) => Hook::organization(org, self.hook_id)?,
            _ => bail!("give the repository (OWNER/NAME) or --org ORG, one of them"),
        };
        let since_ms = parse_since(&self.since, now_ms())?;
        let has_token = self.github.github_token.as_ref().is_some_and(|token| {
            !secrecy::ExposeSecret::expose_secret(token)
                .trim()
                .is_empty()
        });
        if !has_token {
            bail!(
                "set HERALD_GITHUB_TOKEN: listing {hook}'s deliveries needs a token with {}",
                hook.permission()
            );
        }
        let client = RestClient::new(
            &self.github.github_api_url,
            self.github.github_token.clone(),
            self.github.github_timeout,
        )
        .context("building the GitHub client")?;
        let store = Store::open_existing(&self.database).await?;
        let cancel = CancellationToken::new();
        let interrupt = tokio::spawn({
            let cancel = cancel.clone();
            async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    cancel.cancel();
                }
            }
        });
        let pass = Pass {
            store: &store,
            client: &client,
            hook: &hook,
            since_ms,
            dry_run: self.dry_run,
            max_wait: self.max_rate_limit_wait,
            cancel,
        };
        let mut print = |line: Line<'_>| println!("{line}");
        let outcome = pass.run(&mut print).await;
        interrupt.abort();
        store.close().await;
        let summary = match outcome? {
            PassOutcome::Done(summary) => summary,
            PassOutcome::Busy => bail!(
                "another herald is running a redeliver pass over {hook} right now; run again when \
                 it is done"
            ),
        };
        eprintln!(
            "checked {} attempts ({} {}) of the deliveries of {hook} since {}",
            summary.listed,
            summary.pages,
            if summary.pages == 1 { "page" } else { "pages" },
            format_ms(since_ms)
        );
        if summary.unreadable > 0 {
            eprintln!(
                "warning: {} items GitHub listed could not be read and were skipped",
                summary.unreadable
            );
        }
        println!("{summary}");
        Ok(if summary.refused > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        })
    }
}
