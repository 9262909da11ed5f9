//! `herald send-test`: sign a payload the way GitHub does and POST it to the herald that the same
//! settings describe (its listen address, its secret).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use rand::Rng;

use crate::config::{GoogleConfig, SecretConfig};
use crate::github::{load_secrets, sign_sha256};

/// A small `issues.opened` payload, for trying herald out.
pub const SAMPLE_ISSUE_OPENED: &str = include_str!("sample_issue_opened.json");

#[derive(Debug, Args)]
pub struct SendTestArgs {
    /// The herald webhook URL. Default: the address `herald serve` listens on with the same
    /// settings (`HERALD_LISTEN`, or `PORT` on this machine), path `/webhook`.
    #[arg(long, env = "HERALD_URL")]
    url: Option<String>,
    /// Port `serve` listens on when `HERALD_LISTEN` is not set.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    port: u16,
    /// The address `serve` listens on.
    #[arg(long, env = "HERALD_LISTEN", value_parser = crate::config::parse_listen)]
    listen: Option<std::net::SocketAddr>,
    /// A payload file to send instead of the built-in `issues.opened` sample.
    #[arg(long)]
    payload: Option<PathBuf>,
    /// The event name (`X-GitHub-Event`); for `--payload`, inferred from the payload's shape when
    /// left out.
    #[arg(long)]
    event: Option<String>,
    /// The delivery id (`X-GitHub-Delivery`); random by default. Reuse one to see deduplication.
    #[arg(long)]
    delivery: Option<String>,
    #[command(flatten)]
    secrets: SecretConfig,
    #[command(flatten)]
    google: GoogleConfig,
}

impl SendTestArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        if !self.secrets.is_configured() && !self.secrets.secret_path.exists() {
            bail!(
                "no webhook secret: set HERALD_WEBHOOK_SECRET (or _FILE, or _GCP), or run `herald serve` here first so it generates {}",
                self.secrets.secret_path.display()
            );
        }
        let secrets = match crate::gcp::webhook_secret::name(&self.secrets.secret_manager)? {
            Some(name) => {
                let auth = crate::gcp::GoogleAuth::from_config(&self.google)?;
                let manager = crate::gcp::SecretManager::new(
                    &self.secrets.secret_manager.secret_manager_api_url,
                    auth,
                )?;
                crate::gcp::webhook_secret::read(&manager, &name).await?.0
            }
            None => load_secrets(&self.secrets)?.0,
        };
        let (event, body) = match &self.payload {
            Some(path) => {
                let body =
                    std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                let event = match &self.event {
                    Some(event) => event.clone(),
                    None => infer_event(&body).with_context(|| {
                        format!(
                            "cannot tell which event {} is from its fields; pass --event NAME",
                            path.display()
                        )
                    })?,
                };
                (event, body)
            }
            None => (
                self.event.clone().unwrap_or_else(|| "issues".into()),
                sample_issue(crate::time_util::now_ms()),
            ),
        };
        let url = self.url.clone().unwrap_or_else(|| {
            let address = self
                .listen
                .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], self.port)));
            format!("http://{}/webhook", reachable(address))
        });
        let delivery = self.delivery.clone().unwrap_or_else(random_delivery_id);
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()?;
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/herald-send-test")
            .header("x-github-event", &event)
            .header("x-github-delivery", &delivery)
            .header("x-github-hook-id", "0")
            .header("x-hub-signature-256", sign_sha256(secrets.primary(), &body))
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {url}: is `herald serve` running there?"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        println!("{event} delivery {delivery} -> HTTP {status} {text}");
        Ok(if status.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }
}

/// An address to connect to: a server listening on every interface answers on loopback.
fn reachable(address: std::net::SocketAddr) -> std::net::SocketAddr {
    let ip = match address.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    std::net::SocketAddr::new(ip, address.port())
}

/// The sample `issues.opened` payload, opened at `now_ms`, so `herald report --since 1d` shows it.
pub fn sample_issue(now_ms: i64) -> Vec<u8> {
    let now = crate::time_util::format_ms(now_ms);
    SAMPLE_ISSUE_OPENED
        .replace("2026-01-01T12:00:00Z", &now)
        .into_bytes()
}

/// The `X-GitHub-Event` a payload was sent with, told from the fields only that event has.
pub fn infer_event(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let has = |key: &str| value.get(key).is_some_and(|field| !field.is_null());
    let event = if has("zen") && has("hook_id") {
        "ping"
    } else if has("comment") && has("issue") {
        "issue_comment"
    } else if has("issue") {
        "issues"
    } else if has("review") && has("pull_request") {
        "pull_request_review"
    } else if has("comment") && has("pull_request") {
        "pull_request_review_comment"
    } else if has("thread") && has("pull_request") {
        "pull_request_review_thread"
    } else if has("pull_request") {
        "pull_request"
    } else if has("comment") && has("discussion") {
        "discussion_comment"
    } else if has("discussion") {
        "discussion"
    } else if has("release") {
        "release"
    } else if has("commits") && has("ref") {
        "push"
    } else if has("check_run") {
        "check_run"
    } else if has("check_suite") {
        "check_suite"
    } else if has("workflow_run") {
        "workflow_run"
    } else if has("workflow_job") {
        "workflow_job"
    } else if has("milestone") {
        "milestone"
    } else if has("label") {
        "label"
    } else if has("forkee") {
        "fork"
    } else if has("starred_at") {
        "star"
    } else {
        return None;
    };
    Some(event.to_owned())
}

fn random_delivery_id() -> String {
    let bits: u128 = rand::rng().random();
    let hex = format!("{bits:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_the_event_of_every_shared_payload_it_names() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/github-payloads");
        let mut inferred = 0;
        for event in [
            "issues",
            "issue_comment",
            "pull_request",
            "pull_request_review",
            "pull_request_review_comment",
            "release",
            "push",
            "ping",
            "check_run",
            "workflow_run",
        ] {
            for file in std::fs::read_dir(dir.join(event)).unwrap() {
                let body = std::fs::read(file.unwrap().path()).unwrap();
                assert_eq!(infer_event(&body).as_deref(), Some(event));
                inferred += 1;
            }
        }
        assert!(inferred > 50);
        assert_eq!(infer_event(b"{\"x\": 1}"), None);
        assert_eq!(infer_event(b"not json"), None);
    }

    #[test]
    fn the_sample_is_dated_now_and_sent_to_a_reachable_address() {
        let sample = String::from_utf8(sample_issue(1_764_000_000_000)).unwrap();
        assert!(
            sample.contains("\"created_at\": \"2025-11-24T16:00:00Z\""),
            "{sample}"
        );
        assert!(!sample.contains("2026-01-01"));
        assert_eq!(
            reachable("0.0.0.0:9101".parse().unwrap()),
            "127.0.0.1:9101".parse().unwrap()
        );
        assert_eq!(
            reachable("[::]:80".parse().unwrap()),
            "[::1]:80".parse().unwrap()
        );
        assert_eq!(
            reachable("10.0.0.5:80".parse().unwrap()),
            "10.0.0.5:80".parse().unwrap()
        );
    }
}
