//! Slack: rendering events as messages anyone can trust (escaping, excerpts, links, times),
//! route templates, the Web API client, and the two kinds of Slack destination: `slack-webhook`
//! (incoming webhooks: at most once, no threads) and `slack-bot` (a bot token: threads that follow
//! an issue, a parent kept current, exactly once, reminders).

mod api;
mod bot;
pub mod card;
pub mod escape;
pub mod reminders;
pub mod render;
pub mod routing;
pub mod template;
pub mod view;
mod webhook;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

pub use api::{EVENT_TYPE, Posted, SlackApi, classify};
pub use bot::SlackBot;
pub use card::Card;
pub use render::{Presentation, SlackMessage, render, render_event};
pub use routing::SlackRouting;
pub use webhook::SlackWebhook;

/// Posts one plain message (mrkdwn, written by herald: escape any user text in it first)
/// through a bot destination's channel, e.g. the weekly digest.
pub async fn post_with_bot(
    api_url: &str,
    token: SecretString,
    channel: &str,
    timeout: Duration,
    message: &SlackMessage,
) -> anyhow::Result<Posted> {
    let api = SlackApi::new(api_url, token, timeout)?;
    let body = json!({
        "channel": channel,
        "text": message.text,
        "blocks": message.blocks,
        "unfurl_links": false,
        "unfurl_media": false,
    });
    api.post_message(&body)
        .await
        .map_err(|outcome| anyhow::anyhow!("posting to Slack failed: {}", outcome.reason()))
}

/// Posts one plain message through an incoming webhook (the URL is a secret and stays out of
/// the error).
pub async fn post_with_webhook(
    url: &SecretString,
    timeout: Duration,
    message: &SlackMessage,
) -> anyhow::Result<()> {
    let client = crate::outbound::client(timeout)?;
    let response = client
        .post(url.expose_secret())
        .json(&message.to_webhook_body())
        .send()
        .await
        .map_err(|error| anyhow::anyhow!("posting to Slack failed: {}", error.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body: String = response
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect();
    anyhow::bail!("Slack answered {status}: {body}")
}
