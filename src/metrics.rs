//! Prometheus metrics: what came in, what was rejected and why, what was stored, how deliveries
//! ended, how deep the queue is, and how long things took. Every family is present from the
//! start with zero values; the queue depth is refreshed in the background, never per scrape.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::store::{QueueDepth, Store};

/// Every reason a webhook can be rejected for (see `ApiError::reason`), counted from zero.
pub const REJECTION_REASONS: &[&str] = &[
    "signature_missing",
    "signature_malformed",
    "signature_mismatch",
    "bad_request",
    "too_large",
    "body_timeout",
    "busy",
    "store_unavailable",
    "unstorable",
];
/// The events herald handles specially, counted from zero (others appear when they arrive).
const KNOWN_EVENTS: &[&str] = &["issues", "issue_comment", "pull_request", "ping"];
const OUTCOMES: &[&str] = &["delivered", "retry", "dead"];
/// How often the queue depth is counted; a scrape reads the last count.
pub const QUEUE_DEPTH_REFRESH: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    sink: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric herald exports, registered once.
pub struct Metrics {
    registry: Registry,
    received: Family<EventLabel, Counter>,
    rejected: Family<ReasonLabel, Counter>,
    stored: Counter,
    duplicates: Counter,
    deliveries: Family<DeliveryLabels, Counter>,
    queue: Family<StatusLabel, Gauge>,
    webhook_latency: Histogram,
    delivery_latency: Family<SinkLabel, Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("herald");
        let received = Family::<EventLabel, Counter>::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        let stored = Counter::default();
        let duplicates = Counter::default();
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let queue = Family::<StatusLabel, Gauge>::default();
        let webhook_latency = latency_histogram();
        let delivery_latency = Family::<SinkLabel, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register(
            "webhooks_received",
            "Signed webhook deliveries received, by event",
            received.clone(),
        );
        registry.register(
            "webhooks_rejected",
            "Webhook requests rejected, by reason",
            rejected.clone(),
        );
        registry.register(
            "events_stored",
            "Events committed to the store",
            stored.clone(),
        );
        registry.register(
            "events_duplicate",
            "Redeliveries recognised as duplicates",
            duplicates.clone(),
        );
        registry.register(
            "deliveries",
            "Delivery attempts by sink and outcome",
            deliveries.clone(),
        );
        registry.register(
            "queue_depth",
            "Outbox rows by status (pending, dead)",
            queue.clone(),
        );
        registry.register(
            "webhook_duration_seconds",
            "Time to answer a webhook",
            webhook_latency.clone(),
        );
        registry.register(
            "delivery_duration_seconds",
            "Time of one delivery attempt, by sink",
            delivery_latency.clone(),
        );
        let metrics = Self {
            registry,
            received,
            rejected,
            stored,
            duplicates,
            deliveries,
            queue,
            webhook_latency,
            delivery_latency,
        };
        for reason in REJECTION_REASONS {
            let _ = metrics.rejected.get_or_create(&ReasonLabel {
                reason: (*reason).to_owned(),
            });
        }
        for event in KNOWN_EVENTS {
            let _ = metrics.received.get_or_create(&EventLabel {
                event: (*event).to_owned(),
            });
        }
        metrics.set_queue_depth(QueueDepth::default());
        metrics
    }

    /// Starts the per-sink families at zero for the sinks this process delivers to.
    pub fn count_sinks(&self, sinks: &[&str]) {
        for sink in sinks {
            for outcome in OUTCOMES {
                let _ = self.deliveries.get_or_create(&DeliveryLabels {
                    sink: (*sink).to_owned(),
                    outcome: (*outcome).to_owned(),
                });
            }
            let _ = self.delivery_latency.get_or_create(&SinkLabel {
                sink: (*sink).to_owned(),
            });
        }
    }

    /// Records the outbox counts that scrapes report.
    pub fn set_queue_depth(&self, depth: QueueDepth) {
        for (status, value) in [("pending", depth.pending), ("dead", depth.dead)] {
            self.queue
                .get_or_create(&StatusLabel {
                    status: status.to_owned(),
                })
                .set(value);
        }
    }

    pub fn received(&self, event: &str) {
        self.received
            .get_or_create(&EventLabel {
                event: event.to_owned(),
            })
            .inc();
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn stored(&self) {
        self.stored.inc();
    }

    pub fn duplicate(&self) {
        self.duplicates.inc();
    }

    pub fn webhook_answered(&self, seconds: f64) {
        self.webhook_latency.observe(seconds);
    }

    pub fn delivery(&self, sink: &str, outcome: &str, seconds: f64) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                sink: sink.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.delivery_latency
            .get_or_create(&SinkLabel {
                sink: sink.to_owned(),
            })
            .observe(seconds);
    }

    /// Renders the text exposition format. Reads no database: the queue depth is the last
    /// count of [`refresh_queue_depth`].
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Counts the outbox every `interval` until `cancel` fires, off the request path, so a scrape
/// costs no query however large the outbox grows or however many scrapers there are.
pub async fn refresh_queue_depth(
    store: Store,
    metrics: Arc<Metrics>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match store.queue_depth().await {
            Ok(depth) => metrics.set_queue_depth(depth),
            Err(error) => tracing::warn!(error = %error, "counting the outbox failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let metrics = Metrics::new();
        metrics.received("issues");
        metrics.rejected("signature_mismatch");
        metrics.rejected("signature_mismatch");
        metrics.delivery("slack", "delivered", 0.01);
        metrics.set_queue_depth(QueueDepth {
            pending: 3,
            dead: 1,
        });
        let text = metrics.render();
        assert!(
            text.contains("herald_webhooks_received_total{event=\"issues\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_webhooks_rejected_total{reason=\"signature_mismatch\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("herald_deliveries_total{sink=\"slack\",outcome=\"delivered\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_queue_depth{status=\"pending\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn every_family_starts_at_zero() {
        let metrics = Metrics::new();
        metrics.count_sinks(&["slack"]);
        let text = metrics.render();
        for line in [
            "herald_webhooks_rejected_total{reason=\"signature_mismatch\"} 0",
            "herald_webhooks_rejected_total{reason=\"busy\"} 0",
            "herald_webhooks_received_total{event=\"issues\"} 0",
            "herald_events_stored_total 0",
            "herald_events_duplicate_total 0",
            "herald_deliveries_total{sink=\"slack\",outcome=\"dead\"} 0",
            "herald_queue_depth{status=\"pending\"} 0",
            "herald_queue_depth{status=\"dead\"} 0",
            "herald_webhook_duration_seconds_count 0",
            "herald_delivery_duration_seconds_count{sink=\"slack\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
