//! A small client for the four Slack Web API methods herald uses: `chat.postMessage`,
//! `chat.update`, and `conversations.history` / `conversations.replies` (with
//! `include_all_metadata`) to find a message by its metadata after an attempt that may have
//! arrived. Every answer is classified into an [`Outcome`]: Slack answers most refusals with
//! HTTP 200 and `{"ok": false, "error": "…"}`.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::outbound::parse_retry_after;
use crate::sinks::{DEFAULT_RATE_LIMIT_PAUSE, Outcome};

/// The `event_type` of the metadata every herald message carries.
pub const EVENT_TYPE: &str = "herald_delivery";
/// Pages of history read when looking for a message (200 messages each).
const MAX_PAGES: usize = 10;

/// The Web API of one workspace, with one bot token (a secret: never logged).
pub struct SlackApi {
    client: reqwest::Client,
    base: String,
    token: SecretString,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A posted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub channel: String,
    pub ts: String,
}

impl SlackApi {
    /// `base` is `https://slack.com/api` (tests: a local fake).
    pub fn new(base: &str, token: SecretString, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            client: crate::outbound::client(timeout)?,
            base: base.trim_end_matches('/').to_owned(),
            token,
        })
    }

    /// `chat.postMessage` with a body herald built (channel, text, blocks, thread, metadata).
    pub async fn post_message(&self, body: &Value) -> Result<Posted, Outcome> {
        let answer = self.call("chat.postMessage", body).await?;
        let ts = answer["ts"].as_str().unwrap_or_default().to_owned();
        if ts.is_empty() {
            return Err(Outcome::Ambiguous {
                reason: "chat.postMessage answered ok without a message ts".to_owned(),
            });
        }
        Ok(Posted {
            channel: answer["channel"].as_str().unwrap_or_default().to_owned(),
            ts,
        })
    }

    /// `chat.update` of a message herald posted.
    pub async fn update(
        &self,
        channel: &str,
        ts: &str,
        text: &str,
        blocks: &[Value],
    ) -> Result<(), Outcome> {
        let body = json!({ "channel": channel, "ts": ts, "text": text, "blocks": blocks });
        self.call("chat.update", &body).await.map(drop)
    }

    /// Looks for a message whose metadata `matches` in a channel (or in one thread, when
    /// `thread_ts` is given), among the messages posted since `oldest_ms`. Returns its ts.
    pub async fn find_by_metadata(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        oldest_ms: i64,
        matches: &(dyn Fn(&Value) -> bool + Sync),
    ) -> Result<Option<String>, Outcome> {
        let oldest = format!("{}.000000", oldest_ms.div_euclid(1000).max(0));
        let mut cursor = String::new();
        for _ in 0..MAX_PAGES {
            let mut query: Vec<(&str, &str)> = vec![
                ("channel", channel),
                ("oldest", &oldest),
                ("include_all_metadata", "true"),
                ("limit", "200"),
            ];
            let method = match thread_ts {
                Some(ts) => {
                    query.push(("ts", ts));
                    "conversations.replies"
                }
                None => "conversations.history",
            };
            if !cursor.is_empty() {
                query.push(("cursor", &cursor));
            }
            let answer = self.get(method, &query).await?;
            for message in answer["messages"].as_array().into_iter().flatten() {
                let metadata = &message["metadata"];
                if metadata["event_type"] == EVENT_TYPE && matches(&metadata["event_payload"]) {
                    return Ok(message["ts"].as_str().map(str::to_owned));
                }
            }
            answer["response_metadata"]["next_cursor"]
                .as_str()
                .unwrap_or_default()
                .clone_into(&mut cursor);
            if cursor.is_empty() {
                return Ok(None);
            }
        }
        // Too much history to be sure: sending again could double the message.
        Err(Outcome::Retry {
            after: None,
            reason: format!(
                "could not check {channel} for an earlier copy within {MAX_PAGES} pages of history"
            ),
        })
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value, Outcome> {
        let response = self
            .client
            .post(format!("{}/{method}", self.base))
            .bearer_auth(self.token.expose_secret())
            .header("content-type", "application/json; charset=utf-8")
            .body(body.to_string())
            .send()
            .await;
        answer(method, response).await
    }

    async fn get(&self, method: &str, query: &[(&str, &str)]) -> Result<Value, Outcome> {
        let response = self
            .client
            .get(format!(
                "{}/{method}?{}",
                self.base,
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(query)
                    .finish()
            ))
            .bearer_auth(self.token.expose_secret())
            .send()
            .await;
        answer(method, response).await
    }
}

async fn answer(
    method: &str,
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<Value, Outcome> {
    let response = response.map_err(Outcome::from_transport_error)?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(Outcome::from_response(status, &headers, &text));
    }
    let Ok(body) = serde_json::from_str::<Value>(&text) else {
        return Err(Outcome::Retry {
            after: None,
            reason: format!("{method}: the answer is not JSON"),
        });
    };
    if body["ok"] == true {
        return Ok(body);
    }
    let code = body["error"].as_str().unwrap_or("unknown_error");
    Err(classify(method, code, &headers))
}

/// Classifies Slack's `ok: false` error codes.
pub fn classify(method: &str, code: &str, headers: &HeaderMap) -> Outcome {
    let reason = match hint(code) {
        Some(hint) => format!("{method}: Slack answered {code}: {hint}"),
        None => format!("{method}: Slack answered {code}"),
    };
    match code {
        "ratelimited" | "rate_limited" => Outcome::RateLimited {
            after: headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()))
                .unwrap_or(DEFAULT_RATE_LIMIT_PAUSE),
            reason,
        },
        "internal_error"
        | "fatal_error"
        | "service_unavailable"
        | "request_timeout"
        | "team_added_to_org"
        | "unknown_error" => Outcome::Retry {
            after: None,
            reason,
        },
        _ if is_permanent(code) => Outcome::Permanent { reason },
        // An error Slack may add later: retried on the schedule, dead-lettered at its end.
        _ => Outcome::Retry {
            after: None,
            reason,
        },
    }
}

fn is_permanent(code: &str) -> bool {
    matches!(
        code,
        "channel_not_found"
            | "not_in_channel"
            | "is_archived"
            | "invalid_auth"
            | "not_authed"
            | "account_inactive"
            | "token_revoked"
            | "token_expired"
            | "no_permission"
            | "missing_scope"
            | "not_allowed_token_type"
            | "ekm_access_denied"
            | "restricted_action"
            | "restricted_action_read_only_channel"
            | "restricted_action_thread_only_channel"
            | "restricted_action_non_threadable_channel"
            | "msg_too_long"
            | "msg_blocks_too_long"
            | "too_many_attachments"
            | "invalid_blocks"
            | "invalid_blocks_format"
            | "invalid_metadata_format"
            | "invalid_metadata_schema"
            | "metadata_too_large"
            | "invalid_arguments"
            | "invalid_arg_name"
            | "invalid_charset"
            | "invalid_form_data"
            | "invalid_post_type"
            | "missing_post_type"
            | "no_text"
            | "thread_not_found"
            | "message_not_found"
            | "cant_update_message"
            | "edit_window_closed"
            | "duplicate_channel_not_found"
            | "team_access_not_granted"
    )
}

fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "channel_not_found" => {
            "check the channel id (C0123…, in the channel's details) and that the app can see it"
        }
        "not_in_channel" => "invite the app to the channel (`/invite @app` in Slack)",
        "is_archived" => "the channel is archived; unarchive it or configure another",
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => {
            "check the bot token (xoxb-…, under OAuth & Permissions)"
        }
        "missing_scope" | "no_permission" => {
            "the app needs the chat:write scope, and channels:history (groups:history for private channels) to check for duplicates"
        }
        "ratelimited" | "rate_limited" => "pausing this destination as Slack asks",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn classifies_ok_false_answers() {
        let none = HeaderMap::new();
        for code in [
            "channel_not_found",
            "not_in_channel",
            "invalid_auth",
            "missing_scope",
        ] {
            assert!(
                matches!(
                    classify("chat.postMessage", code, &none),
                    Outcome::Permanent { .. }
                ),
                "{code}"
            );
        }
        let mut retry_after = HeaderMap::new();
        retry_after.insert(RETRY_AFTER, HeaderValue::from_static("12"));
        assert_eq!(
            classify("chat.postMessage", "ratelimited", &retry_after),
            Outcome::RateLimited {
                after: Duration::from_secs(12),
                reason: "chat.postMessage: Slack answered ratelimited: pausing this destination as Slack asks".into()
            }
        );
        assert!(matches!(
            classify("chat.postMessage", "internal_error", &none),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            classify("chat.postMessage", "something_new", &none),
            Outcome::Retry { .. }
        ));
        let Outcome::Permanent { reason } = classify("chat.postMessage", "not_in_channel", &none)
        else {
            panic!()
        };
        assert!(reason.contains("/invite"), "{reason}");
    }
}
