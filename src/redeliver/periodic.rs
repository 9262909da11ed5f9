//! The redeliver pass inside `herald serve`: one pass at start, then one every
//! `HERALD_REDELIVER_INTERVAL`, until shutdown. Errors are logged and the next pass comes anyway;
//! on PostgreSQL only one instance runs a pass over a hook at a time.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use super::pass::{Pass, PassOutcome};
use super::report::Line;
use crate::config::{GithubApiConfig, RedeliverConfig};
use crate::github::{Hook, RestClient};
use crate::store::Store;
use crate::time_util::{duration_ms, now_ms};

/// Longest single wait for GitHub's rate limit inside `serve` (the wait ends at shutdown).
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(3600);

/// A configured periodic redelivery: which hook, how often, how far back.
#[derive(Debug, Clone)]
pub struct PeriodicRedeliver {
    hook: Hook,
    client: RestClient,
    interval: Duration,
    since: Duration,
}

impl PeriodicRedeliver {
    /// The periodic redelivery `config` describes: `None` when no hook is configured, an error
    /// (with what to set) for half a configuration.
    pub fn from_config(
        config: &RedeliverConfig,
        github: &GithubApiConfig,
    ) -> anyhow::Result<Option<Self>> {
        let given = |value: &Option<String>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let (repo, org) = (given(&config.redeliver_repo), given(&config.redeliver_org));
        let hook_id = match given(&config.redeliver_hook_id) {
            None => None,
            Some(id) => Some(id.parse::<u64>().map_err(|_| {
                anyhow::anyhow!(
                    "HERALD_REDELIVER_HOOK_ID must be the hook's numeric id (the number at the end \
                     of its settings URL), not {:?}",
                    id.chars().take(64).collect::<String>()
                )
            })?),
        };
        let missing_id = |name: &str| {
            anyhow::anyhow!(
                "{name} is set but HERALD_REDELIVER_HOOK_ID is not: set it to the hook's id (the \
                 number at the end of the hook's settings URL)"
            )
        };
        let hook = match (repo, org, hook_id) {
            (None, None, None) => return Ok(None),
            (Some(_), Some(_), _) => bail!(
                "set HERALD_REDELIVER_REPO or HERALD_REDELIVER_ORG, not both: a hook belongs to \
                 one repository or one organisation"
            ),
            (None, None, Some(_)) => bail!(
                "HERALD_REDELIVER_HOOK_ID is set, but not whose hook it is: set \
                 HERALD_REDELIVER_REPO=OWNER/NAME or HERALD_REDELIVER_ORG=ORG"
            ),
            (Some(_), None, None) => return Err(missing_id("HERALD_REDELIVER_REPO")),
            (None, Some(_), None) => return Err(missing_id("HERALD_REDELIVER_ORG")),
            (Some(repo), None, Some(id)) => {
                Hook::repository(&repo, id).context("HERALD_REDELIVER_REPO")?
            }
            (None, Some(org), Some(id)) => {
                Hook::organization(&org, id).context("HERALD_REDELIVER_ORG")?
            }
        };
        let has_token = github.github_token.as_ref().is_some_and(|token| {
            !secrecy::ExposeSecret::expose_secret(token)
                .trim()
                .is_empty()
        });
        if !has_token {
            bail!(
                "redelivering failed deliveries of {hook} needs HERALD_GITHUB_TOKEN: a token with {}",
                hook.permission()
            );
        }
        if config.redeliver_interval.is_zero() {
            bail!("HERALD_REDELIVER_INTERVAL must be longer than 0s (the default is 10m)");
        }
        if config.redeliver_since.is_zero() {
            bail!("HERALD_REDELIVER_SINCE must be longer than 0s (the default is 3d)");
        }
        let client = RestClient::new(
            &github.github_api_url,
            github.github_token.clone(),
            github.github_timeout,
        )
        .context("building the GitHub client")?;
        Ok(Some(Self {
            hook,
            client,
            interval: config.redeliver_interval,
            since: config.redeliver_since,
        }))
    }

    pub fn hook(&self) -> &Hook {
        &self.hook
    }

    /// One pass, logged; errors are logged, never returned.
    async fn pass(&self, store: &Store, cancel: &CancellationToken) {
        let pass = Pass {
            store,
            client: &self.client,
            hook: &self.hook,
            since_ms: now_ms().saturating_sub(duration_ms(self.since)),
            dry_run: false,
            max_wait: MAX_RATE_LIMIT_WAIT,
            cancel: cancel.clone(),
        };
        let hook = self.hook.to_string();
        let mut report = |line: Line<'_>| {
            // The field names intake and the lanes use for the same delivery.
            let delivery = &line.delivery().newest;
            let (delivery_id, event) = (delivery.guid.as_str(), delivery.event.as_str());
            if line.is_warning() {
                tracing::warn!(%hook, delivery_id, event, "{line}");
            } else {
                tracing::info!(%hook, delivery_id, event, "{line}");
            }
        };
        match pass.run(&mut report).await {
            Ok(PassOutcome::Done(summary)) => {
                let acted = summary.asked + summary.stored + summary.given_up + summary.refused;
                if acted > 0 {
                    tracing::info!(%hook, listed = summary.listed, "redeliver pass: {summary}");
                } else {
                    tracing::debug!(%hook, listed = summary.listed, "redeliver pass: {summary}");
                }
            }
            Ok(PassOutcome::Busy) => {
                tracing::debug!(%hook, "another instance is running a redeliver pass; skipping");
            }
            Err(_) if cancel.is_cancelled() => {}
            Err(error) => tracing::error!(
                %hook,
                error = format!("{error:#}"),
                "redeliver pass failed; the next one is in {}",
                humantime::format_duration(self.interval)
            ),
        }
    }
}

/// Runs a redeliver pass at once and then every interval until `cancel` fires; a pass under way
/// stops at its next request (one cut short is made again by the next pass).
pub async fn run_periodically(
    redeliver: PeriodicRedeliver,
    store: Store,
    cancel: CancellationToken,
) {
    tracing::info!(
        hook = %redeliver.hook,
        every = %humantime::format_duration(redeliver.interval),
        "asking GitHub to redeliver failed deliveries periodically"
    );
    loop {
        redeliver.pass(&store, &cancel).await;
        tokio::select! {
            () = cancel.cancelled() => break,
            () = tokio::time::sleep(redeliver.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn github(token: Option<&str>) -> GithubApiConfig {
        let _ = rustls::crypto::ring::default_provider().install_default();
        GithubApiConfig {
            github_token: token.map(SecretString::from),
            github_api_url: "https://api.github.com".into(),
            github_timeout: Duration::from_secs(1),
        }
    }

    fn config(repo: Option<&str>, org: Option<&str>, hook_id: Option<u64>) -> RedeliverConfig {
        RedeliverConfig {
            redeliver_repo: repo.map(str::to_owned),
            redeliver_org: org.map(str::to_owned),
            redeliver_hook_id: hook_id.map(|id| id.to_string()),
            redeliver_interval: Duration::from_secs(600),
            redeliver_since: Duration::from_secs(3 * 86_400),
        }
    }

    fn refusal(config: &RedeliverConfig, github: &GithubApiConfig) -> String {
        format!(
            "{:#}",
            PeriodicRedeliver::from_config(config, github).unwrap_err()
        )
    }

    #[test]
    fn off_unless_a_hook_is_configured() {
        let none = PeriodicRedeliver::from_config(&config(None, None, None), &github(None));
        assert!(none.unwrap().is_none());
        // Empty values (an unset variable in a deployment template) count as unset.
        let empty =
            PeriodicRedeliver::from_config(&config(Some(" "), Some(""), None), &github(None));
        assert!(empty.unwrap().is_none());
    }

    #[test]
    fn builds_a_repository_or_organisation_hook() {
        let token = github(Some("ghp_x"));
        let repo =
            PeriodicRedeliver::from_config(&config(Some("acme/widgets"), None, Some(42)), &token)
                .unwrap()
                .unwrap();
        assert_eq!(repo.hook().key(), "repos/acme/widgets/hooks/42");
        let org = PeriodicRedeliver::from_config(&config(None, Some("acme"), Some(7)), &token)
            .unwrap()
            .unwrap();
        assert_eq!(org.hook().key(), "orgs/acme/hooks/7");
    }

    #[test]
    fn refuses_half_a_configuration_with_what_to_set() {
        let token = github(Some("ghp_x"));
        let cases = [
            (
                config(None, None, Some(42)),
                "HERALD_REDELIVER_REPO=OWNER/NAME",
            ),
            (
                config(Some("acme/widgets"), None, None),
                "HERALD_REDELIVER_HOOK_ID is not",
            ),
            (
                config(None, Some("acme"), None),
                "HERALD_REDELIVER_ORG is set",
            ),
            (
                config(Some("acme/widgets"), Some("acme"), Some(1)),
                "not both",
            ),
            (config(Some("widgets"), None, Some(1)), "OWNER/NAME"),
            (config(None, Some("ac/me"), Some(1)), "organisation's login"),
            (
                config(Some("acme/widgets"), None, Some(0)),
                "positive number",
            ),
        ];
        for (config, expected) in cases {
            let message = refusal(&config, &token);
            assert!(message.contains(expected), "{message}");
        }
        let not_a_number = RedeliverConfig {
            redeliver_hook_id: Some("abc".into()),
            ..config(Some("acme/widgets"), None, None)
        };
        let message = refusal(&not_a_number, &token);
        assert!(
            message.contains("HERALD_REDELIVER_HOOK_ID must be the hook's numeric id")
                && message.contains("not \"abc\""),
            "{message}"
        );
        let zero = RedeliverConfig {
            redeliver_interval: Duration::ZERO,
            ..config(Some("acme/widgets"), None, Some(1))
        };
        assert!(refusal(&zero, &token).contains("HERALD_REDELIVER_INTERVAL"));
    }

    #[test]
    fn refuses_to_run_without_a_token() {
        for token in [None, Some(""), Some("  ")] {
            let message = refusal(
                &config(Some("acme/widgets"), None, Some(42)),
                &github(token),
            );
            assert!(message.contains("needs HERALD_GITHUB_TOKEN"), "{message}");
            assert!(message.contains("admin:repo_hook"), "{message}");
        }
    }
}
