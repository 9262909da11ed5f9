//! `herald report`: issue-flow metrics from the store, as a table, Markdown, JSON or CSV.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::analytics::{Format, GroupBy, ReportRequest, build_report, render};
use crate::config::DatabaseConfig;
use crate::store::Store;
use crate::time_util::now_ms;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    database: DatabaseConfig,
    /// Issues created at or after: a date (2026-01-31), an RFC 3339 time, or `30d`, `12h`, `2w`
    /// ago. Default: all history.
    #[arg(long)]
    since: Option<String>,
    /// Issues created before (a date includes that whole day). Default: now.
    #[arg(long)]
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
        let store = Store::connect(&self.database).await?;
        let issues = store.issue_facts(&query).await;
        store.close().await;
        let issues = issues.context("reading the issue lifecycle tables")?;
        let report = build_report(&query, &issues, now);
        let text = render(&report, self.format, query.group_by.map(GroupBy::as_str));
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .context("writing the report")?;
        Ok(ExitCode::SUCCESS)
    }
}
