//! Sinks: where events go after they are stored. Each is one file implementing [`Sink`]; the
//! registry decides, on the request path, which sinks get an outbox row for an event.

mod analytics;
mod console;
mod rate_limit;
mod slack;
pub mod slack_message;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use analytics::AnalyticsSink;
pub use console::ConsoleNotifier;
pub use rate_limit::RateLimiter;
pub use slack::SlackWebhook;

use crate::delivery::Outcome;
use crate::store::StoredEvent;

/// A boxed future, so sinks can live behind `dyn Sink`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A destination for stored events.
pub trait Sink: Send + Sync {
    /// The name outbox rows carry; stable across releases.
    fn name(&self) -> &'static str;

    /// Whether `event` (with `action`) should reach this sink at all.
    fn wants(&self, event: &str, action: Option<&str>) -> bool;

    /// Whether delivering the same event twice has the effect of delivering it once. Attempts
    /// interrupted mid-flight are repeated only for idempotent sinks.
    fn idempotent(&self) -> bool;

    /// Waits until the sink may be called (rate limits). Called before the attempt is recorded
    /// as started, so waiting here never makes an attempt ambiguous.
    fn ready(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Attempts one delivery.
    fn deliver<'a>(&'a self, event: &'a StoredEvent) -> BoxFuture<'a, Outcome>;
}

/// The configured sinks.
#[derive(Default)]
pub struct Sinks {
    sinks: Vec<Arc<dyn Sink>>,
}

impl Sinks {
    pub fn new(sinks: Vec<Arc<dyn Sink>>) -> Self {
        Self { sinks }
    }

    /// The sinks that want this event, by name: one outbox row each.
    pub fn route(&self, event: &str, action: Option<&str>) -> Vec<String> {
        self.sinks
            .iter()
            .filter(|sink| sink.wants(event, action))
            .map(|sink| sink.name().to_owned())
            .collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Sink>> {
        self.sinks.iter().find(|sink| sink.name() == name)
    }
}

/// Which events a notifier reacts to: `event` (any action) or `event.action` entries.
#[derive(Debug, Clone)]
pub struct EventFilter(Vec<String>);

impl EventFilter {
    pub fn new(rules: &[String]) -> Self {
        Self(
            rules
                .iter()
                .map(|rule| rule.trim().to_owned())
                .filter(|rule| !rule.is_empty())
                .collect(),
        )
    }

    pub fn matches(&self, event: &str, action: Option<&str>) -> bool {
        self.0.iter().any(|rule| match rule.split_once('.') {
            None => rule == event,
            Some((rule_event, rule_action)) => rule_event == event && Some(rule_action) == action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_by_event_and_action() {
        let filter = EventFilter::new(&[
            "issues.opened".into(),
            " issue_comment ".into(),
            String::new(),
        ]);
        assert!(filter.matches("issues", Some("opened")));
        assert!(!filter.matches("issues", Some("closed")));
        assert!(!filter.matches("issues", None));
        assert!(filter.matches("issue_comment", Some("created")));
        assert!(filter.matches("issue_comment", None));
        assert!(!filter.matches("pull_request", Some("opened")));
    }
}
