//! `herald send-test`: sign a payload the way GitHub does and POST it to a running herald.

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
    /// The herald webhook URL.
    #[arg(
        long,
        env = "HERALD_URL",
        default_value = "http://127.0.0.1:8080/webhook"
    )]
    url: String,
    /// A payload file to send instead of the built-in `issues.opened` sample.
    #[arg(long, requires = "event")]
    payload: Option<PathBuf>,
    /// The event name (`X-GitHub-Event`) for `--payload`.
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
                (self.event.clone().unwrap_or_default(), body)
            }
            None => (
                self.event.clone().unwrap_or_else(|| "issues".into()),
                SAMPLE_ISSUE_OPENED.as_bytes().to_vec(),
            ),
        };
        let delivery = self.delivery.clone().unwrap_or_else(random_delivery_id);
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .build()?;
        let response = client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/herald-send-test")
            .header("x-github-event", &event)
            .header("x-github-delivery", &delivery)
            .header("x-github-hook-id", "0")
            .header("x-hub-signature-256", sign_sha256(secrets.primary(), &body))
            .body(body)
            .send()
            .await
            .with_context(|| format!("POST {}", self.url))?;
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
