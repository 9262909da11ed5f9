//! Sending a message of a bot destination exactly once: with metadata naming the delivery, and,
//! when an earlier attempt may have arrived, after looking for it in the channel or the thread.

use serde_json::{Value, json};

use super::super::api::{EVENT_TYPE, Posted};
use super::super::render::SlackMessage;
use super::{About, Role, SlackBot};
use crate::sinks::{Delivery, Outcome};

/// How far before an event's arrival an earlier copy of its message is looked for (clock skew).
const SKEW_MS: i64 = 60_000;

impl SlackBot {
    /// Posts `message` for `delivery` in the role given, unless an earlier attempt that may have
    /// arrived did post it (then that message is the result).
    pub(super) async fn send_once(
        &self,
        delivery: &Delivery,
        role: Role,
        thread_ts: Option<&str>,
        message: &SlackMessage,
        broadcast: bool,
    ) -> Result<Posted, Outcome> {
        let metadata = self.metadata(delivery, role, None);
        self.send_checked(
            delivery,
            thread_ts,
            message,
            broadcast,
            metadata,
            delivery.interrupted,
            false,
        )
        .await
    }

    /// [`Self::send_once`] for a parent, which any row about the issue may have posted: with
    /// `check`, any parent of the issue found in the channel is the result.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, each argument distinct"
    )]
    pub(super) async fn send_once_as(
        &self,
        delivery: &Delivery,
        role: Role,
        thread_ts: Option<&str>,
        message: &SlackMessage,
        broadcast: bool,
        check: bool,
        about: &About<'_>,
    ) -> Result<Posted, Outcome> {
        let metadata = self.metadata(delivery, role, Some(about));
        self.send_checked(
            delivery,
            thread_ts,
            message,
            broadcast,
            metadata,
            check || delivery.interrupted,
            true,
        )
        .await
    }

    fn metadata(&self, delivery: &Delivery, role: Role, about: Option<&About<'_>>) -> Value {
        let mut payload = json!({
            "delivery_id": delivery.event.delivery_id,
            "destination": &*self.destination,
            "row": delivery.row,
            "role": role.as_str(),
        });
        if let Some(about) = about {
            payload["repository"] = json!(about.key_repository);
            payload["number"] = json!(about.number);
        }
        json!({ "event_type": EVENT_TYPE, "event_payload": payload })
    }

    /// Looks for the message first when `check`; `any_row`: a message of the same role about the
    /// same issue counts, whichever row posted it.
    #[expect(clippy::too_many_arguments, reason = "internal, two callers")]
    async fn send_checked(
        &self,
        delivery: &Delivery,
        thread_ts: Option<&str>,
        message: &SlackMessage,
        broadcast: bool,
        metadata: Value,
        check: bool,
        any_row: bool,
    ) -> Result<Posted, Outcome> {
        let role = metadata["event_payload"]["role"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if check {
            let wanted = &metadata["event_payload"];
            let matches = |found: &Value| {
                let same = |field: &str| found[field] == wanted[field];
                same("destination")
                    && same("role")
                    && if any_row {
                        same("repository") && same("number")
                    } else {
                        same("delivery_id") && same("row")
                    }
            };
            let oldest = delivery.event.received_at.saturating_sub(SKEW_MS);
            if let Some(ts) = self
                .api
                .find_by_metadata(&self.channel, thread_ts, oldest, &matches)
                .await?
            {
                tracing::info!(
                    row = delivery.row,
                    destination = %self.destination,
                    delivery_id = %delivery.event.delivery_id,
                    event = %delivery.event.event,
                    role = %role,
                    "an earlier attempt had posted this message; not sending it again"
                );
                return Ok(Posted {
                    channel: self.channel.clone(),
                    ts,
                });
            }
        }
        let mut body = json!({
            "channel": self.channel,
            "text": message.text,
            "blocks": message.blocks,
            "unfurl_links": false,
            "unfurl_media": false,
            "metadata": metadata,
        });
        if let Some(ts) = thread_ts {
            body["thread_ts"] = json!(ts);
            if broadcast {
                body["reply_broadcast"] = json!(true);
            }
        }
        self.api.post_message(&body).await
    }
}
