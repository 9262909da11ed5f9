//! `herald report`: issue-flow metrics from the store, as a table, Markdown, JSON or CSV, with
//! the `[analytics]` settings of the configuration file (ignored users, business hours).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::analytics::{Format, GroupBy, ReportRequest, render};
use crate::config::{DatabaseConfig, FileConfig};
use crate::insights::{InsightsSettings, ReportError, ReportService};
use crate::store::Store;
use crate::time_util::now_ms;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The configuration file (TOML), for its `[analytics]` table (`ignore_users`,
    /// `business_hours`) and settings such as `database_url`.
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    /// The file's contents (filled by `Cli::load`).
    #[arg(skip)]
    pub(crate) file: FileConfig,
    #[command(flatten)]
    database: DatabaseConfig,
    /// Issues created at or after: a date (2026-01-31), an RFC 3339 time, or `30d`, `12h`, `2w`
    /// ago (`-30d` reads the same). Default: all history.
    #[arg(long, allow_hyphen_values = true)]
    since: Option<String>,
    /// Issues created before (a date includes that whole day). Default: now.
    #[arg(long, allow_hyphen_values = true)]
    until: Option<String>,
    /// Only this repository, OWNER/NAME.
    #[arg(long)]
    repo: Option<String>,
    /// Only issues carrying this label.
    #[arg(long)]
    label: Option<String>,
    /// Also report each repository, label, author or assignee separately.
    #[arg(long, value_enum)]
    group_by: Option<GroupBy>,
    /// Count durations in working time only, as `[analytics] business_hours` of the
    /// configuration file defines it.
    #[arg(long)]
    business_hours: bool,
    /// Output format; JSON is the stable interface (the same as `GET /api/metrics/issues`).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

impl ReportArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let now = now_ms();
        let request = ReportRequest {
            since: self.since,
            until: self.until,
            repo: self.repo,
            label: self.label,
            group_by: self.group_by.map(|group_by| group_by.as_str().to_owned()),
        };
        let query = request.parse(now)?;
        let settings = InsightsSettings::from_config(&self.file.analytics)
            .map_err(|error| anyhow::anyhow!("the configuration is not valid: {error}"))?;
        if self.business_hours && settings.business_hours.is_none() {
            let hint = match &self.config {
                Some(path) => format!("{} has none", path.display()),
                None => "no configuration file was given (--config or HERALD_CONFIG)".to_owned(),
            };
            anyhow::bail!(
                "--business-hours: {} ({hint})",
                ReportError::NoBusinessHours
            );
        }
        let store = Store::open_existing(&self.database).await?;
        let service = ReportService::new(store.clone(), settings);
        let report = service.report(&query, self.business_hours, now).await;
        store.close().await;
        let report = report.context("reading the issue lifecycle tables")?;
        let text = render(&report, self.format, query.group_by.map(GroupBy::as_str));
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing the report")?;
        Ok(ExitCode::SUCCESS)
    }
}
