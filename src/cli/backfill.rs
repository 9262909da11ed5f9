//! `herald backfill OWNER/NAME`: imports a repository's existing issues, then all its issue
//! comments, from GitHub's REST API into the lifecycle tables, so metrics cover history from day
//! one. Each page is stored together with the link to the next one, so an interrupted run
//! resumes where it stopped; upserts share the webhook path's keys, so nothing counts twice.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;

use crate::analytics::{LifecycleChanges, comment_from_rest, human_duration, issue_from_rest};
use crate::config::{DatabaseConfig, GithubApiConfig, parse_duration};
use crate::github::{Page, RestClient, RestError};
use crate::store::{BackfillPhase, BackfillStep, PhaseProgress, Store};

/// Rate-limit waits in a row on one page before giving up (the progress is kept).
const MAX_WAITS_PER_PAGE: u32 = 20;

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The repository, OWNER/NAME.
    repository: String,
    #[command(flatten)]
    database: DatabaseConfig,
    #[command(flatten)]
    github: GithubApiConfig,
    /// Longest one wait for GitHub's rate limit; a later reset is waited for in several steps.
    #[arg(long, env = "HERALD_GITHUB_MAX_RATE_LIMIT_WAIT", default_value = "1h", value_parser = parse_duration)]
    max_rate_limit_wait: Duration,
    /// Start again from the first page instead of resuming an interrupted backfill.
    #[arg(long)]
    restart: bool,
}

/// What one run imported.
#[derive(Debug, Default)]
struct Counts {
    issues: u64,
    pull_requests: u64,
    comments: u64,
    other_comments: u64,
    unreadable: u64,
    pages: u64,
}

struct Backfill<'a> {
    store: &'a Store,
    client: &'a RestClient,
    /// As given, for messages and as a fallback name.
    repository: String,
    /// Lower-cased: GitHub's names are case-insensitive.
    key: String,
    max_wait: Duration,
    show_progress: bool,
    counts: Counts,
}

impl BackfillArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        if !crate::analytics::is_repository_name(&self.repository) {
            bail!(
                "expected the repository as OWNER/NAME, not {:?}",
                self.repository
            );
        }
        let client = RestClient::new(
            &self.github.github_api_url,
            self.github.github_token.clone(),
            self.github.github_timeout,
        )
        .context("building the GitHub client")?;
        let store = Store::connect(&self.database).await?;
        let mut backfill = Backfill {
            store: &store,
            client: &client,
            key: self.repository.to_lowercase(),
            repository: self.repository,
            max_wait: self.max_rate_limit_wait,
            show_progress: std::io::stderr().is_terminal(),
            counts: Counts::default(),
        };
        let result = backfill.run(self.restart).await;
        store.close().await;
        result?;
        let c = &backfill.counts;
        println!(
            "backfilled {}: {} issues ({} pull requests skipped), {} comments ({} on pull requests skipped) from {} pages",
            backfill.repository, c.issues, c.pull_requests, c.comments, c.other_comments, c.pages
        );
        if c.unreadable > 0 {
            eprintln!(
                "warning: {} items could not be read and were skipped",
                c.unreadable
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Backfill<'_> {
    async fn run(&mut self, restart: bool) -> anyhow::Result<()> {
        let mut progress = self.store.backfill_progress(&self.key).await?;
        let finished = progress.iter().all(|phase| *phase == PhaseProgress::Done);
        if restart || finished {
            // A finished backfill run again refreshes everything from the first page.
            self.store.reset_backfill(&self.key).await?;
            progress = [PhaseProgress::NotStarted, PhaseProgress::NotStarted];
        }
        let [issues, comments] = progress;
        let (owner, name) = self.repository.split_once('/').unwrap_or_default();
        let first_issues = self.client.url(&format!(
            "/repos/{owner}/{name}/issues?state=all&per_page=100&sort=created&direction=asc"
        ));
        let first_comments = self.client.url(&format!(
            "/repos/{owner}/{name}/issues/comments?per_page=100&sort=created&direction=asc"
        ));
        self.phase(BackfillPhase::Issues, issues, first_issues)
            .await?;
        self.phase(BackfillPhase::Comments, comments, first_comments)
            .await
    }

    async fn phase(
        &mut self,
        phase: BackfillPhase,
        progress: PhaseProgress,
        first: String,
    ) -> anyhow::Result<()> {
        let mut url = match progress {
            PhaseProgress::Done => return Ok(()),
            PhaseProgress::NotStarted => first,
            PhaseProgress::ResumeAt(next) if self.client.is_own(&next) => {
                eprintln!(
                    "resuming the {} of {} at {next}",
                    phase.as_str(),
                    self.repository
                );
                next
            }
            PhaseProgress::ResumeAt(next) => {
                eprintln!(
                    "the saved page {next} is not on this API; starting the {} again",
                    phase.as_str()
                );
                first
            }
        };
        // Comments on pull requests come with the rest; only those on known issues are kept.
        let issues: Option<HashSet<i64>> = match phase {
            BackfillPhase::Issues => None,
            BackfillPhase::Comments => Some(self.store.issue_numbers(&self.key).await?),
        };
        loop {
            let page = self.fetch(&url).await.with_context(|| {
                format!("fetching {url}; run the same command again to resume from this page")
            })?;
            let next = match page.next {
                Some(next) if !self.client.is_own(&next) => {
                    bail!("refusing to follow a pagination link off the API: {next}")
                }
                next => next,
            };
            let changes = self.read_items(phase, page.items, issues.as_ref());
            let step = BackfillStep {
                repository: &self.key,
                phase,
                next_url: next.as_deref(),
            };
            self.store
                .save_backfill_page(&changes, step)
                .await
                .context("storing a backfilled page")?;
            self.counts.pages += 1;
            self.show(phase, next.is_none());
            if let Some(wait) = page.exhausted_for {
                self.wait(wait).await;
            }
            match next {
                Some(next) => url = next,
                None => return Ok(()),
            }
        }
    }

    fn read_items(
        &mut self,
        phase: BackfillPhase,
        items: Vec<serde_json::Value>,
        known_issues: Option<&HashSet<i64>>,
    ) -> LifecycleChanges {
        let mut changes = LifecycleChanges::default();
        for item in items {
            match phase {
                BackfillPhase::Issues => match issue_from_rest(item, &self.repository) {
                    Ok(Some(issue)) => {
                        self.counts.issues += 1;
                        changes.issues.push(issue);
                    }
                    Ok(None) => self.counts.pull_requests += 1,
                    Err(error) => self.unreadable(&error),
                },
                BackfillPhase::Comments => match comment_from_rest(item, &self.repository) {
                    Ok(comment)
                        if known_issues
                            .is_some_and(|known| known.contains(&comment.issue_number)) =>
                    {
                        self.counts.comments += 1;
                        changes.comments.push(comment);
                    }
                    Ok(_) => self.counts.other_comments += 1,
                    Err(error) => self.unreadable(&error),
                },
            }
        }
        changes
    }

    fn unreadable(&mut self, error: &dyn std::error::Error) {
        self.counts.unreadable += 1;
        tracing::warn!(error = %error, "skipping an item GitHub returned");
    }

    /// One page, waiting out rate limits.
    async fn fetch(&self, url: &str) -> anyhow::Result<Page> {
        let mut waits = 0;
        loop {
            match self.client.get_page(url).await {
                Ok(page) => return Ok(page),
                Err(RestError::RateLimited { wait }) if waits < MAX_WAITS_PER_PAGE => {
                    waits += 1;
                    self.wait(wait).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Waits for the rate limit to reset, at most `max_wait` at a time.
    async fn wait(&self, wait: Duration) {
        let wait = wait.min(self.max_wait);
        let shown = if wait < Duration::from_secs(1) {
            format!("{}ms", wait.as_millis())
        } else {
            human_duration(wait.as_secs_f64().ceil())
        };
        eprintln!("GitHub's rate limit is reached; waiting {shown} before going on");
        tokio::time::sleep(wait).await;
    }

    /// A progress line on stderr, rewritten in place, when stderr is a terminal.
    fn show(&self, phase: BackfillPhase, phase_done: bool) {
        if !self.show_progress {
            return;
        }
        let c = &self.counts;
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r{}: {} {}: {} issues, {} comments, {} pages",
            self.repository,
            phase.as_str(),
            if phase_done { "done" } else { "..." },
            c.issues,
            c.comments,
            c.pages
        );
        if phase_done {
            let _ = writeln!(stderr);
        }
        let _ = stderr.flush();
    }
}
