//! `slack-webhook` destinations: one POST of a Block Kit message per event to a Slack incoming
//! webhook. Slack cannot be asked what such a webhook posted, so these deliveries are at most once
//! (see [`Guarantee::AtMostOnce`]).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::slack_message::render;
use super::{BoxFuture, Delivery, Guarantee, Outcome, Sink};

/// Posts notifications to a Slack incoming webhook URL (itself a secret: never logged).
pub struct SlackWebhook {
    client: reqwest::Client,
    url: SecretString,
}

impl SlackWebhook {
    pub fn new(url: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            client: crate::outbound::client(timeout)?,
            url,
        })
    }

    async fn post(&self, delivery: &Delivery) -> Outcome {
        let payload: serde_json::Value = match serde_json::from_str(&delivery.event.payload) {
            Ok(payload) => payload,
            Err(error) => {
                return Outcome::Permanent {
                    reason: format!("stored payload is not JSON: {error}"),
                };
            }
        };
        let message = render(&delivery.event.event, &payload);
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
    fn kind(&self) -> &'static str {
        "slack-webhook"
    }

    fn guarantee(&self) -> Guarantee {
        // An incoming webhook posts every request it gets and cannot be asked what it posted.
        Guarantee::AtMostOnce
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            let mut outcomes = Vec::with_capacity(batch.len());
            for delivery in batch {
                outcomes.push(self.post(delivery).await);
            }
            outcomes
        })
    }
}
