//! `herald digest --destination NAME`: posts the past week's numbers to a destination of the
//! configuration (a Slack incoming webhook, or stdout) in one short message with the dashboard
//! link. The same message the weekly schedule inside `serve` posts.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::config::ServeConfig;
use crate::insights::{InsightsSettings, ReportService, dashboard_url, digest_message, post_to};
use crate::store::Store;
use crate::time_util::now_ms;

#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The destination to post to, by name (`slack` for `HERALD_SLACK_WEBHOOK_URL`, `stdout`
    /// without it, or a `[destinations.NAME]` of the configuration file).
    #[arg(long)]
    destination: String,
    /// Count durations in working time only (`[analytics] business_hours`).
    #[arg(long)]
    business_hours: bool,
    /// The settings `serve` uses: destinations, the store, `HERALD_PUBLIC_URL`.
    #[command(flatten)]
    pub(crate) serve: ServeConfig,
}

impl DigestArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let plan = crate::delivery::plan(&self.serve, &|name| std::env::var(name).ok())?;
        let destination = plan.destination(&self.destination).with_context(|| {
            let names: Vec<&str> = plan.names().map(|name| &**name).collect();
            format!(
                "no destination {:?}; configured: {}",
                self.destination,
                names.join(", ")
            )
        })?;
        let settings = InsightsSettings::from_config(&self.serve.file.analytics)
            .map_err(|error| anyhow::anyhow!("the configuration is not valid: {error}"))?;
        let store = Store::open_existing(&self.serve.database).await?;
        let service = ReportService::new(store.clone(), settings);
        let digest = service.digest(now_ms(), self.business_hours).await;
        store.close().await;
        let digest = digest.context("computing the digest")?;
        let url = self.serve.insights.public_url.as_deref().map(dashboard_url);
        let message = digest_message(&digest, url.as_deref());
        post_to(&destination.target, &message)
            .await
            .with_context(|| format!("posting the digest to {}", self.destination))?;
        if !matches!(destination.target, crate::delivery::Target::Stdout) {
            println!("posted the digest to {}", self.destination);
        }
        Ok(ExitCode::SUCCESS)
    }
}
