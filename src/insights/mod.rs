//! The one report service behind `herald report`, `GET /api/metrics/issues`, the dashboard and
//! the weekly digest: the `[analytics]` settings (users to ignore, working time) applied the same
//! way everywhere, store reads in parallel, and the computation itself off the async threads.

mod dashboard;
mod digest;
mod settings;

use std::sync::Arc;

pub use dashboard::{Dashboard, DashboardCache, DashboardQuery, Health, PERIODS, UNANSWERED_SHOWN};
pub use digest::{Digest, DigestJob, DigestSchedule, digest_message, post_to, run_digest_schedule};
pub use settings::{IgnoredUsers, InsightsSettings};

use crate::analytics::{Durations, Report, ReportQuery, build_report_with};
use crate::store::{Excluded, Store, StoreError};

/// Why a report could not be made; the messages are safe to show to API clients.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(
        "business hours are not configured: add `business_hours = {{ zone = \"UTC\", days = \"Mon-Fri\", hours = \"09:00-17:00\" }}` to the [analytics] table of the configuration file (--config / HERALD_CONFIG)"
    )]
    NoBusinessHours,
    #[error("store unavailable")]
    Store(#[from] StoreError),
    #[error("the report computation failed")]
    Computation(#[from] tokio::task::JoinError),
}

/// Reports over the store with the configured settings.
#[derive(Debug, Clone)]
pub struct ReportService {
    store: Store,
    settings: Arc<InsightsSettings>,
    /// The configured destinations, listed by the health panel even when idle.
    destinations: Arc<Vec<String>>,
    /// Dashboards computed recently.
    cache: Arc<DashboardCache>,
}

impl ReportService {
    pub fn new(store: Store, settings: InsightsSettings) -> Self {
        Self {
            store,
            settings: Arc::new(settings),
            destinations: Arc::default(),
            cache: Arc::default(),
        }
    }

    /// Names the configured destinations for the delivery-health panel.
    #[must_use]
    pub fn with_destinations(mut self, names: Vec<String>) -> Self {
        self.destinations = Arc::new(names);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn settings(&self) -> &InsightsSettings {
        &self.settings
    }

    /// Refuses `business_hours` when no working time is configured, before any work is done.
    pub fn check(&self, business_hours: bool) -> Result<(), ReportError> {
        if business_hours && self.settings.business_hours.is_none() {
            return Err(ReportError::NoBusinessHours);
        }
        Ok(())
    }

    /// Who the metrics leave out, with the ids every ignored login was seen with (so a rename
    /// does not bring an ignored account back).
    pub async fn excluded(&self) -> Result<Excluded, StoreError> {
        let ignored = &self.settings.ignore;
        let mut ids = ignored.ids.clone();
        ids.extend(self.store.ids_of_logins(&ignored.logins).await?);
        ids.sort_unstable();
        ids.dedup();
        Ok(Excluded {
            ids,
            logins: ignored.logins.clone(),
        })
    }

    /// The report of `query`; durations in working time with `business_hours`.
    pub async fn report(
        &self,
        query: &ReportQuery,
        business_hours: bool,
        now_ms: i64,
    ) -> Result<Report, ReportError> {
        self.check(business_hours)?;
        let excluded = self.excluded().await?;
        let facts = self.store.issue_facts_excluding(query, &excluded).await?;
        let settings = Arc::clone(&self.settings);
        let query = query.clone();
        let report = tokio::task::spawn_blocking(move || {
            build_report_with(&query, &facts, now_ms, settings.durations(business_hours))
        })
        .await?;
        Ok(report)
    }
}

impl InsightsSettings {
    /// The clock durations are counted on.
    pub fn durations(&self, business_hours: bool) -> Durations<'_> {
        match (&self.business_hours, business_hours) {
            (Some((hours, config)), true) => Durations::Working { hours, config },
            _ => Durations::WallClock,
        }
    }
}

/// What `serve` needs for the insights, checked before anything starts: the `[analytics]`
/// settings and the weekly digest's destination and schedule.
pub struct InsightsPlan {
    settings: InsightsSettings,
    destinations: Vec<String>,
    digest: Option<(String, crate::delivery::Target, DigestSchedule)>,
    public_url: Option<String>,
}

impl InsightsPlan {
    /// Checks the configuration; errors name the setting to change.
    pub fn from_config(
        config: &crate::config::ServeConfig,
        plan: &crate::delivery::Plan,
    ) -> anyhow::Result<Self> {
        let settings = InsightsSettings::from_config(&config.file.analytics)
            .map_err(|error| anyhow::anyhow!("the configuration is not valid: {error}"))?;
        let insights = &config.insights;
        let digest = match insights.digest_destination.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => {
                let destination = plan.destination(name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "HERALD_DIGEST_DESTINATION names {name:?}, which is not a configured destination"
                    )
                })?;
                if matches!(destination.target, crate::delivery::Target::Analytics) {
                    anyhow::bail!(
                        "HERALD_DIGEST_DESTINATION: the analytics destination cannot take a digest; name a slack-webhook or stdout destination"
                    );
                }
                let schedule =
                    DigestSchedule::parse(&insights.digest_schedule, &insights.digest_zone)
                        .map_err(|error| anyhow::anyhow!(error))?;
                Some((name.to_owned(), destination.target.clone(), schedule))
            }
        };
        if let Some(url) = &insights.public_url {
            crate::delivery::plan::check_url(url)
                .map_err(|error| anyhow::anyhow!("HERALD_PUBLIC_URL: {error}"))?;
        }
        Ok(Self {
            settings,
            destinations: plan.names().map(ToString::to_string).collect(),
            digest,
            public_url: insights.public_url.clone(),
        })
    }

    /// The report service over `store`, and the digest job when one is scheduled.
    pub fn start(self, store: Store) -> (ReportService, Option<DigestJob>) {
        let service = ReportService::new(store, self.settings).with_destinations(self.destinations);
        let dashboard_url = self.public_url.as_deref().map(dashboard_url);
        let job = self
            .digest
            .map(|(destination, target, schedule)| DigestJob {
                service: service.clone(),
                destination,
                target,
                schedule,
                dashboard_url,
            });
        (service, job)
    }
}

/// The dashboard's address under a public URL.
pub fn dashboard_url(public_url: &str) -> String {
    format!("{}/dashboard", public_url.trim_end_matches('/'))
}
