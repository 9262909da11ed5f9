//! One redeliver pass over a hook: list its recent deliveries back to `since`, find those that
//! failed and were not redelivered successfully since, ask GitHub to redeliver each (recording
//! the request first, so two instances never both ask), and say what it did.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use anyhow::{Context, anyhow, bail};
use tokio_util::sync::CancellationToken;

use super::plan::{Decision, FailedDelivery, decide, failed_deliveries};
use super::report::{Line, Summary};
use crate::github::{Hook, HookDelivery, RestClient, RestError};
use crate::store::{NewRequest, RequestState, Store};
use crate::time_util::now_ms;

/// Rate-limit waits in a row for one request before the pass gives up.
const MAX_WAITS: u32 = 5;
/// Pages one pass reads at most (a million deliveries): a pagination that never ends is a bug.
const MAX_PAGES: usize = 10_000;
/// A request recorded this long ago but never answered was cut short by a crash: forget it, so
/// the next pass makes it (GitHub's answer takes at most `HERALD_GITHUB_TIMEOUT`).
const ABANDONED_AFTER_MS: i64 = 15 * 60 * 1000;
/// Requests older than this concern deliveries GitHub no longer lists (it keeps ~3 days).
const FORGET_AFTER_MS: i64 = 30 * 24 * 3600 * 1000;
/// GitHub asks for a second between mutating requests: after a first burst of this many
/// redelivery requests, a pass makes one a second.
const BURST: usize = 10;
const PACE: Duration = Duration::from_secs(1);
/// How long to wait on a 403 that says it is a secondary rate limit but gives no time.
const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A redelivery about to be asked for.
#[derive(Debug, Clone, Copy)]
struct Asking<'a> {
    key: &'a str,
    failed: &'a FailedDelivery,
    previous: usize,
}

/// One pass over one hook.
#[derive(Debug)]
pub struct Pass<'a> {
    pub store: &'a Store,
    pub client: &'a RestClient,
    pub hook: &'a Hook,
    /// Attempts made before this (Unix ms) are not looked at; listing stops at the first one.
    pub since_ms: i64,
    /// List and decide, but neither ask GitHub nor write anything.
    pub dry_run: bool,
    /// Longest single wait for GitHub's rate limit.
    pub max_wait: Duration,
    /// Stops the pass between (and during) requests; a request cut short is forgotten.
    pub cancel: CancellationToken,
}

/// How a pass ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassOutcome {
    Done(Summary),
    /// Another instance is running a pass over the same hook (PostgreSQL).
    Busy,
}

/// Spaces out redelivery requests (see [`BURST`]).
#[derive(Debug, Default)]
struct Pacer {
    made: usize,
    last_answer: Option<Instant>,
}

impl Pacer {
    /// When the next request may leave.
    fn next_at(&self) -> Option<Instant> {
        (self.made >= BURST).then_some(self.last_answer? + PACE)
    }

    fn answered(&mut self) {
        self.made += 1;
        self.last_answer = Some(Instant::now());
    }
}

/// Why a request to GitHub did not succeed.
enum Stop {
    Cancelled,
    Failed(RestError),
}

impl Pass<'_> {
    /// Runs the pass, handing each line to `report` as it happens.
    pub async fn run(
        &self,
        report: &mut (dyn FnMut(Line<'_>) + Send),
    ) -> anyhow::Result<PassOutcome> {
        let lock = if self.dry_run {
            None
        } else {
            let key = self.hook.key();
            let Some(lock) = self
                .store
                .try_lock_redeliver(&key)
                .await
                .context("taking the redeliver lock")?
            else {
                return Ok(PassOutcome::Busy);
            };
            let now = now_ms();
            let abandoned = self
                .store
                .forget_old_redeliveries(&key, now - ABANDONED_AFTER_MS, now - FORGET_AFTER_MS)
                .await
                .context("forgetting old redelivery requests")?;
            if abandoned > 0 {
                tracing::warn!(
                    abandoned,
                    hook = %self.hook,
                    "an earlier pass stopped while asking GitHub; those requests are made again"
                );
            }
            Some(lock)
        };
        let result = self.run_locked(report).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        result.map(PassOutcome::Done)
    }

    async fn run_locked(
        &self,
        report: &mut (dyn FnMut(Line<'_>) + Send),
    ) -> anyhow::Result<Summary> {
        let mut summary = Summary {
            dry_run: self.dry_run,
            ..Summary::default()
        };
        let attempts = self.list(&mut summary).await?;
        let failed = failed_deliveries(attempts);
        summary.failed = failed.len();
        if failed.is_empty() {
            return Ok(summary);
        }
        let guids: Vec<&str> = failed.iter().map(|f| f.newest.guid.as_str()).collect();
        let key = self.hook.key();
        let stored = self
            .store
            .stored_deliveries(&self.hook.id().to_string(), &guids)
            .await
            .context("looking for the failed deliveries among stored events")?;
        let past = self
            .store
            .past_redelivery_requests(&key, &guids)
            .await
            .context("reading earlier redelivery requests")?;
        let mut pacer = Pacer::default();
        for failed in &failed {
            let guid = failed.newest.guid.as_str();
            let before = past.get(guid).map_or(&[][..], Vec::as_slice);
            match decide(failed, stored.contains(guid), before) {
                Decision::Stored => {
                    summary.stored += 1;
                    report(Line::Stored(failed));
                }
                Decision::AlreadyAsked => summary.already_asked += 1,
                Decision::GiveUp { requests } => {
                    summary.given_up += 1;
                    report(Line::GaveUp { failed, requests });
                }
                Decision::Ask { previous } if self.dry_run => {
                    summary.asked += 1;
                    report(Line::WouldAsk { failed, previous });
                }
                Decision::Ask { previous } => {
                    let asking = Asking {
                        key: &key,
                        failed,
                        previous,
                    };
                    self.ask(asking, &mut pacer, &mut summary, report).await?;
                }
            }
        }
        Ok(summary)
    }

    /// Every attempt made since `since_ms`, newest first, each once.
    async fn list(&self, summary: &mut Summary) -> anyhow::Result<Vec<HookDelivery>> {
        let mut url = self.hook.deliveries_url(self.client);
        let mut fetched = HashSet::new();
        let mut ids = HashSet::new();
        let mut attempts = Vec::new();
        loop {
            if !fetched.insert(url.clone()) || fetched.len() > MAX_PAGES {
                bail!(
                    "GitHub's pages of deliveries for {} do not end (at {url}); run again later",
                    self.hook
                );
            }
            let page = match self.call(|| self.client.get_page(&url)).await {
                Ok(page) => page,
                Err(Stop::Cancelled) => bail!("stopped"),
                Err(Stop::Failed(error)) => {
                    return Err(anyhow!(self.hook.explain(&error))).with_context(|| {
                        format!("listing the recent deliveries of {}", self.hook)
                    });
                }
            };
            summary.pages += 1;
            let mut reached_since = false;
            for item in page.items {
                match HookDelivery::from_json(item) {
                    Ok(attempt) if attempt.delivered_at < self.since_ms => reached_since = true,
                    Ok(attempt) => {
                        if ids.insert(attempt.id) {
                            attempts.push(attempt);
                        }
                    }
                    Err(error) => {
                        summary.unreadable += 1;
                        tracing::warn!(%error, hook = %self.hook, "skipping an item GitHub listed");
                    }
                }
            }
            match page.next {
                Some(next) if !reached_since => {
                    if !self.client.is_own(&next) {
                        bail!("refusing to follow a pagination link off the API: {next}");
                    }
                    if let Some(wait) = page.exhausted_for {
                        self.wait(wait).await?;
                    }
                    url = next;
                }
                _ => break,
            }
        }
        summary.listed = attempts.len();
        Ok(attempts)
    }

    /// Records the request, makes it, and records GitHub's answer. A request that could not be
    /// made is forgotten again, so the next pass makes it.
    async fn ask(
        &self,
        Asking {
            key,
            failed,
            previous,
        }: Asking<'_>,
        pacer: &mut Pacer,
        summary: &mut Summary,
        report: &mut (dyn FnMut(Line<'_>) + Send),
    ) -> anyhow::Result<()> {
        if let Some(at) = pacer.next_at() {
            tokio::select! {
                () = self.cancel.cancelled() => bail!("stopped"),
                () = tokio::time::sleep_until(at) => {}
            }
        }
        let attempt = &failed.newest;
        let request = NewRequest {
            hook: key,
            guid: &attempt.guid,
            delivery_id: attempt.id,
            delivered_at: attempt.delivered_at,
            requested_at: now_ms(),
        };
        let claimed = self
            .store
            .claim_redelivery(request)
            .await
            .context("recording a redelivery request")?;
        if !claimed {
            // Another instance (or a concurrent run) asked for it a moment ago.
            summary.already_asked += 1;
            return Ok(());
        }
        let url = self.hook.attempts_url(self.client, attempt.id);
        let answer = self.call(|| self.client.post_empty(&url)).await;
        pacer.answered();
        match answer {
            Ok(_) => {
                self.store
                    .settle_redelivery(key, attempt.id, RequestState::Asked, None)
                    .await
                    .context("recording GitHub's answer")?;
                summary.asked += 1;
                report(Line::Asked { failed, previous });
                Ok(())
            }
            // This delivery, not the token or the hook (e.g. 422: too old to redeliver).
            Err(Stop::Failed(RestError::Status { status, message }))
                if (400..500).contains(&status) && !matches!(status, 401 | 403 | 404 | 429) =>
            {
                let reason = format!("{status} {message}");
                self.store
                    .settle_redelivery(key, attempt.id, RequestState::Refused, Some(&reason))
                    .await
                    .context("recording GitHub's answer")?;
                summary.refused += 1;
                report(Line::Refused {
                    failed,
                    reason: &reason,
                });
                Ok(())
            }
            Err(stop) => {
                self.store
                    .release_redelivery(key, attempt.id)
                    .await
                    .context("forgetting a request that was not made")?;
                match stop {
                    Stop::Cancelled => bail!("stopped"),
                    Stop::Failed(error) => {
                        Err(anyhow!(self.hook.explain(&error))).context(format!(
                            "asking GitHub to redeliver {} (attempt {}); the next run asks again",
                            attempt.guid, attempt.id
                        ))
                    }
                }
            }
        }
    }

    /// One request to GitHub, waiting out rate limits, until it answers or the pass is stopped.
    async fn call<T, F, Fut>(&self, mut request: F) -> Result<T, Stop>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, RestError>>,
    {
        let mut waits = 0;
        loop {
            let answer = tokio::select! {
                () = self.cancel.cancelled() => return Err(Stop::Cancelled),
                answer = request() => answer,
            };
            match answer {
                Ok(value) => return Ok(value),
                Err(RestError::RateLimited { wait }) if waits < MAX_WAITS => {
                    waits += 1;
                    self.wait(wait).await.map_err(|_| Stop::Cancelled)?;
                }
                // GitHub's secondary limits sometimes come as a bare 403 that says so.
                Err(RestError::Status {
                    status: 403,
                    message,
                }) if waits < MAX_WAITS && message.to_lowercase().contains("rate limit") => {
                    waits += 1;
                    self.wait(SECONDARY_LIMIT_WAIT)
                        .await
                        .map_err(|_| Stop::Cancelled)?;
                }
                Err(error) => return Err(Stop::Failed(error)),
            }
        }
    }

    /// Waits for GitHub's rate limit, at most `max_wait`, unless the pass is stopped.
    async fn wait(&self, wait: Duration) -> anyhow::Result<()> {
        let wait = wait.min(self.max_wait);
        tracing::warn!(
            wait_ms = wait.as_millis() as u64,
            hook = %self.hook,
            "GitHub's rate limit is reached; waiting {}ms before going on",
            wait.as_millis()
        );
        tokio::select! {
            () = self.cancel.cancelled() => bail!("stopped"),
            () = tokio::time::sleep(wait) => Ok(()),
        }
    }
}
