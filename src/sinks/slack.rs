//! Slack incoming webhooks: one POST of a Block Kit message per event.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::slack_message::render;
use super::{BoxFuture, EventFilter, RateLimiter, Sink};
use crate::delivery::Outcome;
use crate::store::StoredEvent;

/// Posts notifications to a Slack incoming webhook URL (itself a secret: never logged).
pub struct SlackWebhook {
    client: reqwest::Client,
    url: SecretString,
    filter: EventFilter,
    limiter: Arc<RateLimiter>,
}

impl SlackWebhook {
    pub fn new(
        url: SecretString,
        timeout: Duration,
        filter: EventFilter,
        limiter: Arc<RateLimiter>,
    ) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("herald/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            url,
            filter,
            limiter,
        })
    }

    async fn post(&self, event: &StoredEvent) -> Outcome {
        let payload: serde_json::Value = match serde_json::from_str(&event.payload) {
            Ok(payload) => payload,
            Err(error) => {
                return Outcome::Permanent {
                    reason: format!("stored payload is not JSON: {error}"),
                };
            }
        };
        let message = render(&event.event, &payload);
        let response = self
            .client
            .post(self.url.expose_secret())
            .json(&message.to_webhook_body())
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.text().await.unwrap_or_default();
                Outcome::from_response(status, &headers, &body)
            }
            Err(error) => Outcome::from_transport_error(error),
        }
    }
}

impl Sink for SlackWebhook {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn wants(&self, event: &str, action: Option<&str>) -> bool {
        self.filter.matches(event, action)
    }

    fn idempotent(&self) -> bool {
        // An incoming webhook posts every request it gets and cannot be asked what it posted.
        false
    }

    fn ready(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.limiter.acquire())
    }

    fn deliver<'a>(&'a self, event: &'a StoredEvent) -> BoxFuture<'a, Outcome> {
        Box::pin(self.post(event))
    }
}
