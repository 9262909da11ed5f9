//! `slack-webhook` destinations: one POST of a Block Kit message per event to a Slack incoming
//! webhook. Slack cannot be asked what such a webhook posted, so these deliveries are at most once
//! (see [`Guarantee::AtMostOnce`]); there are no threads. An issue announced because a label was
//! added later is announced once (the store remembers which row announced it).

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use super::render::{Presentation, SlackMessage, render};
use super::routing::SlackRouting;
use super::view::Payload;
use crate::sinks::{BoxFuture, Delivery, Guarantee, Outcome, Sink};
use crate::store::{IssueKey, Store};
use crate::time_util::now_ms;

/// Posts notifications to a Slack incoming webhook URL (itself a secret: never logged).
pub struct SlackWebhook {
    client: reqwest::Client,
    url: SecretString,
    routed: Option<Routed>,
}

/// What a webhook destination needs to apply its routes' options.
struct Routed {
    destination: Arc<str>,
    routing: SlackRouting,
    store: Store,
}

impl SlackWebhook {
    pub fn new(url: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            client: crate::outbound::client(timeout)?,
            url,
            routed: None,
        })
    }

    /// Applies the options of the routes to `destination` (mention, template, a late label
    /// announced once).
    #[must_use]
    pub fn with_routes(
        mut self,
        destination: Arc<str>,
        routing: SlackRouting,
        store: Store,
    ) -> Self {
        self.routed = Some(Routed {
            destination,
            routing,
            store,
        });
        self
    }

    /// The message for a row, or `None` when it says nothing new (a label added again later).
    async fn message(&self, delivery: &Delivery) -> Result<Option<SlackMessage>, Outcome> {
        let event = &delivery.event;
        let payload = Payload::parse(&event.payload);
        let Some(routed) = &self.routed else {
            return Ok(Some(render(
                &event.event,
                &payload,
                &Presentation::default(),
            )));
        };
        let route = routed.routing.of(&routed.destination, event);
        // Only announcements are remembered: the opening event, and a label added later.
        let announces = route.late
            || (event.action.as_deref() == Some("opened")
                && routed.routing.may_announce_late(&routed.destination));
        if announces
            && let (Some(repository), Some(number)) = (&event.repository, event.issue_number)
        {
            let repository = repository.to_lowercase();
            let key = IssueKey {
                destination: &routed.destination,
                repository: &repository,
                number,
            };
            let first = routed
                .store
                .announce_once(key, delivery.row, now_ms())
                .await
                .map_err(|error| Outcome::Retry {
                    after: None,
                    reason: format!("store: {error}"),
                })?;
            if route.late && !first {
                return Ok(None);
            }
        }
        let mention = route.mention();
        if let Some(index) = route.template()
            && let Some(rendered) = routed.routing.templates.render(
                index,
                &event.event,
                &payload,
                mention.as_deref(),
                route.late,
            )
        {
            return rendered
                .map(Some)
                .map_err(|reason| Outcome::Permanent { reason });
        }
        let how = Presentation {
            mention: mention.as_deref(),
            late: route.late,
            also: Vec::new(),
        };
        Ok(Some(render(&event.event, &payload, &how)))
    }

    async fn post(&self, delivery: &Delivery) -> Outcome {
        let message = match self.message(delivery).await {
            Ok(Some(message)) => message,
            Ok(None) => {
                tracing::debug!(
                    row = delivery.row,
                    destination = self.routed.as_ref().map(|routed| &*routed.destination),
                    delivery_id = %delivery.event.delivery_id,
                    event = %delivery.event.event,
                    "issue already announced; nothing to send"
                );
                return Outcome::Delivered;
            }
            Err(outcome) => return outcome,
        };
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
