//! What the dashboard shows, computed in one go: the period's report, the week-by-week series,
//! the oldest unanswered issues and the delivery health of each destination.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{ReportError, ReportService};
use crate::analytics::{
    QueryError, Report, ReportQuery, WEEK_MS, WeekPoint, Window, build_report_with,
    is_repository_name, week_start, weekly,
};
use crate::store::{DestinationHealth, UnansweredIssue};

/// The periods the dashboard offers, in weeks; the first is the default.
pub const PERIODS: [u32; 4] = [12, 4, 26, 52];
/// How many unanswered issues the dashboard lists.
pub const UNANSWERED_SHOWN: i64 = 10;
const HOUR_MS: i64 = 3_600_000;
/// Hours of intake the health panel shows.
const HEALTH_HOURS: i64 = 24;

/// A dashboard this young is served as it is.
const FRESH: Duration = Duration::from_secs(30);
/// Up to this age it is served while a new one is computed in the background.
const KEEP: Duration = Duration::from_secs(600);
/// Filter combinations kept at once.
const CACHED: usize = 64;

/// Dashboards computed recently, by filters: the page answers from here while a fresher one is
/// computed in the background (stale-while-revalidate), so one slow computation over a big store
/// is paid by nobody waiting for the page, except on the first visit of a filter combination.
#[derive(Debug, Default)]
pub struct DashboardCache {
    entries: Mutex<HashMap<DashboardQuery, (Instant, Arc<Dashboard>)>>,
    refreshing: Mutex<HashSet<DashboardQuery>>,
}

/// The dashboard's filters, as the URL carries them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DashboardQuery {
    pub repo: Option<String>,
    pub label: Option<String>,
    pub weeks: u32,
    pub business_hours: bool,
}

impl Default for DashboardQuery {
    fn default() -> Self {
        Self {
            repo: None,
            label: None,
            weeks: PERIODS[0],
            business_hours: false,
        }
    }
}

impl DashboardQuery {
    /// Reads `repo`, `label`, `weeks` and `business_hours` from a query string; empty values
    /// mean "any". Errors say which parameter and what is allowed.
    pub fn parse(query: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim();
            match name.as_ref() {
                "repo" | "label" if value.is_empty() => {}
                "repo" if is_repository_name(value) => parsed.repo = Some(value.to_owned()),
                "repo" => {
                    return Err(QueryError::Repo(value.chars().take(64).collect()).to_string());
                }
                "label" => parsed.label = Some(value.chars().take(100).collect()),
                "weeks" => {
                    parsed.weeks = value
                        .parse()
                        .ok()
                        .filter(|weeks| PERIODS.contains(weeks))
                        .ok_or_else(|| {
                            format!("invalid weeks {value:?}: expected one of 4, 12, 26 or 52")
                        })?;
                }
                "business_hours" => {
                    parsed.business_hours = match value {
                        "true" | "1" | "on" => true,
                        "false" | "0" | "off" | "" => false,
                        _ => {
                            return Err(format!(
                                "invalid business_hours {value:?}: expected true or false"
                            ));
                        }
                    }
                }
                other => {
                    let other: String = other.chars().take(40).collect();
                    return Err(format!(
                        "unknown parameter {other:?}: expected repo, label, weeks, business_hours"
                    ));
                }
            }
        }
        Ok(parsed)
    }

    /// The query string that gives these filters back (for links that keep them).
    pub fn to_query_string(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(repo) = &self.repo {
            query.append_pair("repo", repo);
        }
        if let Some(label) = &self.label {
            query.append_pair("label", label);
        }
        query.append_pair("weeks", &self.weeks.to_string());
        if self.business_hours {
            query.append_pair("business_hours", "true");
        }
        query.finish()
    }
}

/// The delivery-health panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The start of the first hour shown.
    pub since_ms: i64,
    /// Events received in each hour since then.
    pub events_per_hour: Vec<i64>,
    pub destinations: Vec<DestinationHealth>,
}

/// Everything the page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Dashboard {
    pub query: DashboardQuery,
    pub now_ms: i64,
    /// The report over the whole period (issues created since the first week began).
    pub summary: Report,
    pub weeks: Vec<WeekPoint>,
    pub unanswered: Vec<UnansweredIssue>,
    pub health: Health,
}

impl ReportService {
    /// The dashboard for `query`: a cached one under 30 s old as it is; one under 10 minutes old
    /// while a new one is computed in the background; else computed now.
    pub async fn dashboard_cached(
        &self,
        query: &DashboardQuery,
    ) -> Result<Arc<Dashboard>, ReportError> {
        let cache = Arc::clone(&self.cache);
        let cached = cache
            .entries
            .lock()
            .expect("dashboard cache")
            .get(query)
            .map(|(at, dashboard)| (at.elapsed(), Arc::clone(dashboard)));
        match cached {
            Some((age, dashboard)) if age < FRESH => Ok(dashboard),
            Some((age, dashboard)) if age < KEEP => {
                let first = cache
                    .refreshing
                    .lock()
                    .expect("dashboard cache")
                    .insert(query.clone());
                if first {
                    let (service, query) = (self.clone(), query.clone());
                    tokio::spawn(async move {
                        if let Err(error) = service.refresh(&query).await {
                            tracing::warn!(error = %error, "refreshing a dashboard failed");
                        }
                        service
                            .cache
                            .refreshing
                            .lock()
                            .expect("dashboard cache")
                            .remove(&query);
                    });
                }
                Ok(dashboard)
            }
            _ => self.refresh(query).await,
        }
    }

    /// Computes the dashboard for `query` now and keeps it.
    pub async fn refresh(&self, query: &DashboardQuery) -> Result<Arc<Dashboard>, ReportError> {
        let dashboard = Arc::new(self.dashboard(query, crate::time_util::now_ms()).await?);
        let mut entries = self.cache.entries.lock().expect("dashboard cache");
        entries.retain(|_, (at, _)| at.elapsed() < KEEP);
        if entries.len() >= CACHED {
            entries.clear();
        }
        entries.insert(query.clone(), (Instant::now(), Arc::clone(&dashboard)));
        Ok(dashboard)
    }

    /// The dashboard for `query` as of `now_ms`: the store's reads run at once, the
    /// computation off the async threads.
    pub async fn dashboard(
        &self,
        query: &DashboardQuery,
        now_ms: i64,
    ) -> Result<Dashboard, ReportError> {
        self.check(query.business_hours)?;
        let first = week_start(now_ms) - i64::from(query.weeks.saturating_sub(1)) * WEEK_MS;
        let window = Window::new(first, now_ms.max(first + 1)).unwrap_or(Window {
            since_ms: first,
            until_ms: first + 1,
        });
        let report_query = ReportQuery {
            window,
            repo: query.repo.clone(),
            label: query.label.clone(),
            group_by: None,
        };
        let excluded = self.excluded().await?;
        let store = self.store();
        let health_since = now_ms - now_ms.rem_euclid(HOUR_MS) - (HEALTH_HOURS - 1) * HOUR_MS;
        let (facts, spans, unanswered, destinations, events_per_hour) = tokio::try_join!(
            store.issue_facts_excluding(&report_query, &excluded),
            store.open_spans(&report_query, &excluded),
            store.oldest_unanswered(&report_query, &excluded, UNANSWERED_SHOWN),
            store.destination_health(&self.destinations),
            store.events_per_hour(health_since, HEALTH_HOURS),
        )?;
        let settings = Arc::clone(&self.settings);
        let (weeks, business_hours) = (query.weeks, query.business_hours);
        let (summary, weeks) = tokio::task::spawn_blocking(move || {
            let durations = settings.durations(business_hours);
            let summary = build_report_with(&report_query, &facts, now_ms, durations);
            (summary, weekly(&facts, &spans, weeks, now_ms, durations))
        })
        .await?;
        Ok(Dashboard {
            query: query.clone(),
            now_ms,
            summary,
            weeks,
            unanswered,
            health: Health {
                since_ms: health_since,
                events_per_hour,
                destinations,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_writes_back_the_filters() {
        let query = DashboardQuery::parse(
            "repo=acme%2Fwidgets&label=good+first+issue&weeks=4&business_hours=true",
        )
        .unwrap();
        assert_eq!(
            query,
            DashboardQuery {
                repo: Some("acme/widgets".into()),
                label: Some("good first issue".into()),
                weeks: 4,
                business_hours: true,
            }
        );
        assert_eq!(
            DashboardQuery::parse(&query.to_query_string()).unwrap(),
            query
        );
        assert_eq!(
            DashboardQuery::parse("repo=&label=").unwrap(),
            DashboardQuery::default()
        );
    }

    #[test]
    fn refuses_bad_filters() {
        for bad in [
            "weeks=5",
            "repo=..%2Fx",
            "colour=red",
            "business_hours=maybe",
        ] {
            assert!(DashboardQuery::parse(bad).is_err(), "{bad}");
        }
    }
}
