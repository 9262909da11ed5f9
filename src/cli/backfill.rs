//! `herald backfill OWNER/NAME`: imports a repository's existing issues, then all its issue
//! comments, from GitHub's REST API into the lifecycle tables, so metrics cover history from day
//! one; then reconciles: what a complete pass did not see was deleted or transferred on GitHub and
//! leaves the metrics. Each page is stored together with the link to the next one, so an
//! interrupted run resumes where it stopped; upserts share the webhook path's keys, so nothing
//! counts twice.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::analytics::{
    LifecycleChanges, Removal, comment_from_rest, human_duration, issue_from_rest,
};
use crate::config::{DatabaseConfig, GithubApiConfig, parse_duration};
use crate::github::{Item, Page, RestClient, RestError};
use crate::store::{BackfillPhase, BackfillStep, PhaseProgress, Store};
use crate::time_util::{format_ms, now_ms};

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
    /// Start a new pass from the first page: after a finished backfill, to refresh everything
    /// and reconcile deletions; or instead of resuming an interrupted one.
    #[arg(long)]
    restart: bool,
}

/// What one run imported and reconciled.
#[derive(Debug, Default)]
struct Counts {
    issues: u64,
    pull_requests: u64,
    comments: u64,
    other_comments: u64,
    unreadable: u64,
    pages: u64,
    deleted: u64,
    transferred: u64,
    deleted_comments: u64,
}

struct Backfill<'a> {
    store: &'a Store,
    client: &'a RestClient,
    /// As given, for messages and as a fallback name.
    repository: String,
    /// Lower-cased: GitHub's names are case-insensitive.
    key: String,
    max_wait: Duration,
    progress: Progress,
    counts: Counts,
    /// The pass's start, which names it; `None` for a pass begun before passes were recorded.
    pass: Option<i64>,
    /// Whether requests carry `HERALD_GITHUB_TOKEN`, to explain a 404.
    has_token: bool,
}

/// How a run ended.
enum Finish {
    Imported,
    AlreadyDone { at: Option<i64> },
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
        let has_token = self
            .github
            .github_token
            .as_ref()
            .is_some_and(|token| !secrecy::ExposeSecret::expose_secret(token).is_empty());
        let store = Store::open_existing(&self.database).await?;
        let mut backfill = Backfill {
            store: &store,
            client: &client,
            key: self.repository.to_lowercase(),
            repository: self.repository,
            max_wait: self.max_rate_limit_wait,
            progress: Progress::new(std::io::stderr().is_terminal()),
            counts: Counts::default(),
            pass: None,
            has_token,
        };
        let result = backfill.run(self.restart).await;
        store.close().await;
        let c = &backfill.counts;
        match result? {
            Finish::AlreadyDone { at } => {
                let at = at.map_or_else(String::new, |at| format!(" at {}", format_ms(at)));
                println!(
                    "the backfill of {} already finished{at}; nothing to do (webhooks keep it up \
                     to date). Run `herald backfill {} --restart` to import everything again and \
                     reconcile deletions.",
                    backfill.repository, backfill.repository
                );
                return Ok(ExitCode::SUCCESS);
            }
            Finish::Imported => {}
        }
        println!(
            "backfilled {}: {} issues ({} pull requests skipped), {} comments ({} on pull requests skipped) from {} pages",
            backfill.repository, c.issues, c.pull_requests, c.comments, c.other_comments, c.pages
        );
        if backfill.pass.is_some() {
            println!(
                "reconciled {}: {} issues deleted, {} transferred, {} comments deleted on GitHub left the metrics",
                backfill.repository, c.deleted, c.transferred, c.deleted_comments
            );
        }
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
    async fn run(&mut self, restart: bool) -> anyhow::Result<Finish> {
        let mut state = self.store.backfill_state(&self.key).await?;
        let finished = state.issues == PhaseProgress::Done
            && state.comments == PhaseProgress::Done
            && state.reconcile == PhaseProgress::Done;
        if finished && !restart {
            return Ok(Finish::AlreadyDone {
                at: state.updated_at,
            });
        }
        let untouched = [&state.issues, &state.comments, &state.reconcile]
            .iter()
            .all(|phase| **phase == PhaseProgress::NotStarted);
        if restart || finished {
            self.store.reset_backfill(&self.key).await?;
            state = self.store.backfill_state(&self.key).await?;
            self.pass = Some(now_ms());
        } else if untouched {
            self.pass = Some(now_ms());
        } else {
            self.pass = state.pass_started_at;
        }
        let (owner, name) = self.repository.split_once('/').unwrap_or_default();
        let first_issues = self.client.url(&format!(
            "/repos/{owner}/{name}/issues?state=all&per_page=100&sort=created&direction=asc"
        ));
        let first_comments = self.client.url(&format!(
            "/repos/{owner}/{name}/issues/comments?per_page=100&sort=created&direction=asc"
        ));
        self.phase(BackfillPhase::Issues, state.issues, first_issues)
            .await?;
        self.phase(BackfillPhase::Comments, state.comments, first_comments)
            .await?;
        if state.reconcile != PhaseProgress::Done {
            self.reconcile().await?;
        }
        Ok(Finish::Imported)
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
            BackfillPhase::Comments => Some(self.store.issue_numbers(&self.key).await?),
            BackfillPhase::Issues | BackfillPhase::Reconcile => None,
        };
        self.progress.begin_phase();
        loop {
            let page = match self.fetch(&url).await {
                Ok(page) => page,
                Err(error) => return Err(self.list_failure(error, &url)),
            };
            let next = match page.next {
                Some(next) if !self.client.is_own(&next) => {
                    bail!("refusing to follow a pagination link off the API: {next}")
                }
                next => next,
            };
            let number = page_of(&url);
            let last = page.last_page.unwrap_or(number).max(number);
            let changes = self.read_items(phase, page.items, issues.as_ref());
            let step = BackfillStep {
                repository: &self.key,
                phase,
                next_url: next.as_deref(),
                pass: self.pass,
            };
            self.store
                .save_backfill_page(&changes, step)
                .await
                .context("storing a backfilled page")?;
            self.counts.pages += 1;
            self.progress.page(
                &self.repository,
                phase,
                number,
                last,
                &self.counts,
                next.is_none(),
            );
            if let Some(wait) = page.exhausted_for {
                self.wait(wait).await;
            }
            match next {
                Some(next) => url = next,
                None => return Ok(()),
            }
        }
    }

    /// Why a list page failed, and whether running again helps: it does after an outage or a
    /// rate limit (the stored progress resumes), not when the repository is not there.
    fn list_failure(&self, error: anyhow::Error, url: &str) -> anyhow::Error {
        match error.downcast_ref::<RestError>() {
            Some(RestError::Status {
                status: 404 | 410, ..
            }) if self.has_token => anyhow::anyhow!(
                "GitHub has no repository {}, or the token cannot see it (HERALD_GITHUB_TOKEN needs read access to its issues)",
                self.repository
            ),
            Some(RestError::Status {
                status: 404 | 410, ..
            }) => anyhow::anyhow!(
                "GitHub has no repository {}, or it is private: set HERALD_GITHUB_TOKEN to a token that can read its issues",
                self.repository
            ),
            Some(RestError::Status {
                status: 401,
                message,
            }) => anyhow::anyhow!(
                "GitHub refused HERALD_GITHUB_TOKEN ({message}); set a valid token and run the same command again to resume"
            ),
            _ => error.context(format!(
                "fetching {url}; run the same command again to resume from this page"
            )),
        }
    }

    /// After a complete pass: issues the pass did not see are asked for one by one (GitHub
    /// redirects a transferred issue to its new repository, and answers 404 or 410 for a
    /// deleted one), comments it did not see were deleted. Rows created after the pass began
    /// are left alone: the pass could not have seen them.
    async fn reconcile(&mut self) -> anyhow::Result<()> {
        let Some(pass) = self.pass else {
            eprintln!(
                "this backfill pass began before herald recorded passes, so deletions cannot be \
                 reconciled from it; run `herald backfill {} --restart` to do so",
                self.repository
            );
            return self.finish_reconcile().await;
        };
        let unseen = self.store.unseen_issues(&self.key, pass).await?;
        for (repository, number) in unseen {
            let (owner, name) = repository.split_once('/').unwrap_or_default();
            let url = self
                .client
                .url(&format!("/repos/{owner}/{name}/issues/{number}"));
            let removal = match self.fetch_item(&url).await.with_context(|| {
                format!("asking GitHub about {repository}#{number}; run the same command again to finish reconciling")
            })? {
                Item::Gone { status: 301 } => Some(Removal::Transferred),
                Item::Gone { .. } => Some(Removal::Deleted),
                Item::Found(item) => {
                    let moved = item
                        .get("repository_url")
                        .and_then(serde_json::Value::as_str)
                        .is_some_and(|url| {
                            !url.to_lowercase()
                                .ends_with(&format!("/repos/{}", repository.to_lowercase()))
                        });
                    if moved {
                        Some(Removal::Transferred)
                    } else {
                        tracing::warn!(issue = %format!("{repository}#{number}"), "GitHub still has an issue its list did not return; keeping it");
                        None
                    }
                }
            };
            if let Some(removal) = removal
                && self
                    .store
                    .mark_issue_removed(&repository, number, removal)
                    .await?
            {
                match removal {
                    Removal::Deleted => self.counts.deleted += 1,
                    Removal::Transferred => self.counts.transferred += 1,
                }
                tracing::info!(issue = %format!("{repository}#{number}"), "{} on GitHub: left the metrics", removal.as_str());
            }
        }
        self.counts.deleted_comments = self.store.delete_unseen_comments(&self.key, pass).await?;
        self.finish_reconcile().await
    }

    async fn finish_reconcile(&self) -> anyhow::Result<()> {
        let step = BackfillStep {
            repository: &self.key,
            phase: BackfillPhase::Reconcile,
            next_url: None,
            pass: self.pass,
        };
        self.store
            .save_backfill_page(&LifecycleChanges::default(), step)
            .await
            .context("recording the reconciliation")?;
        Ok(())
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
                BackfillPhase::Reconcile => {}
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

    /// One item, waiting out rate limits.
    async fn fetch_item(&self, url: &str) -> anyhow::Result<Item> {
        let mut waits = 0;
        loop {
            match self.client.get_item(url).await {
                Ok(item) => return Ok(item),
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
        self.progress.interrupt();
        eprintln!("GitHub's rate limit is reached; waiting {shown} before going on");
        tokio::time::sleep(wait).await;
    }
}

/// The page number a list URL asks for (1 without a `page` parameter).
fn page_of(url: &str) -> u64 {
    url.split_once('?')
        .and_then(|(_, query)| {
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("page="))
                .and_then(|page| page.parse().ok())
        })
        .unwrap_or(1)
}

/// Progress: a bar with the page count, total and time left, rewritten in place on a terminal;
/// one log line per page elsewhere (CI, a Cloud Run job), so a redirected run is never silent.
struct Progress {
    terminal: bool,
    /// When the current phase began in this run, and at which page.
    phase_started: Instant,
    first_page: Option<u64>,
}

impl Progress {
    fn new(terminal: bool) -> Self {
        Self {
            terminal,
            phase_started: Instant::now(),
            first_page: None,
        }
    }

    fn begin_phase(&mut self) {
        self.phase_started = Instant::now();
        self.first_page = None;
    }

    /// Ends a bar line before something else is printed.
    fn interrupt(&self) {
        if self.terminal {
            eprintln!();
        }
    }

    fn page(
        &mut self,
        repository: &str,
        phase: BackfillPhase,
        page: u64,
        last: u64,
        counts: &Counts,
        phase_done: bool,
    ) {
        let first = *self.first_page.get_or_insert(page);
        let done_here = page + 1 - first;
        let left = last.saturating_sub(page);
        let eta = if left == 0 {
            "done".to_owned()
        } else {
            let per_page = self.phase_started.elapsed().as_secs_f64() / done_here as f64;
            format!(
                "about {} left",
                human_duration((per_page * left as f64).ceil())
            )
        };
        let percent = page * 100 / last.max(1);
        let counts_text = format!("{} issues, {} comments", counts.issues, counts.comments);
        if self.terminal {
            const WIDTH: u64 = 24;
            let filled = (page * WIDTH / last.max(1)) as usize;
            let bar = format!(
                "{}{}",
                "#".repeat(filled),
                "-".repeat(WIDTH as usize - filled)
            );
            let mut stderr = std::io::stderr().lock();
            let _ = write!(
                stderr,
                "\r\x1b[K{repository} {} [{bar}] page {page}/{last} {percent}%  {counts_text}  {eta}",
                phase.as_str()
            );
            if phase_done {
                let _ = writeln!(stderr);
            }
            let _ = stderr.flush();
        } else {
            tracing::info!(
                "backfill {repository}: {} page {page} of {last} ({percent}%), {counts_text}, {eta}",
                phase.as_str()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_page_of_a_list_url() {
        assert_eq!(
            page_of("https://x/repos/o/r/issues?state=all&per_page=100"),
            1
        );
        assert_eq!(page_of("https://x/repos/o/r/issues?state=all&page=7"), 7);
        assert_eq!(page_of("https://x/repos/o/r/issues"), 1);
    }
}
