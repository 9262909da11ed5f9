//! `herald deliveries`: see what is pending, delivered or dead (and what waits for a destination
//! this configuration does not have), one delivery's attempts, and send dead letters again.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::config::ServeConfig;
use crate::domain::DeliveryStatus;
use crate::store::{DeliveryRow, Store};
use crate::time_util::{format_ms, now_ms};

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    #[command(subcommand)]
    command: DeliveriesCommand,
}

#[derive(Debug, Subcommand)]
enum DeliveriesCommand {
    /// List deliveries, newest first.
    List {
        /// Which deliveries to show.
        #[arg(long, value_enum, default_value_t = StatusFilter::All)]
        status: StatusFilter,
        /// Most rows shown.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        serve: Box<ServeConfig>,
    },
    /// List dead-lettered deliveries (gave up, or refused by the destination).
    Dead {
        /// Most rows shown.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        serve: Box<ServeConfig>,
    },
    /// One delivery: its event, destination, state and every attempt that did not deliver.
    Show {
        /// The delivery id (from `list`).
        id: i64,
        #[command(flatten)]
        serve: Box<ServeConfig>,
    },
    /// Queue dead deliveries again, due now, with a fresh retry schedule.
    Retry {
        /// The delivery id (from `list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every dead delivery.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        serve: Box<ServeConfig>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StatusFilter {
    All,
    Pending,
    Delivered,
    Dead,
}

impl StatusFilter {
    fn status(self) -> Option<DeliveryStatus> {
        match self {
            Self::All => None,
            Self::Pending => Some(DeliveryStatus::Pending),
            Self::Delivered => Some(DeliveryStatus::Delivered),
            Self::Dead => Some(DeliveryStatus::Dead),
        }
    }
}

impl DeliveriesArgs {
    /// The configuration, to read the file into (see `Cli::load`).
    pub fn serve_mut(&mut self) -> &mut ServeConfig {
        match &mut self.command {
            DeliveriesCommand::List { serve, .. }
            | DeliveriesCommand::Dead { serve, .. }
            | DeliveriesCommand::Show { serve, .. }
            | DeliveriesCommand::Retry { serve, .. } => serve,
        }
    }

    pub async fn run(mut self) -> anyhow::Result<ExitCode> {
        let serve = self.serve_mut().clone();
        // The destinations this configuration has, to tell which rows wait for another instance.
        let configured: Option<Vec<String>> =
            crate::delivery::plan(&serve, &|name| std::env::var(name).ok())
                .ok()
                .map(|plan| plan.names().map(ToString::to_string).collect());
        let store = Store::open_existing(&serve.database).await?;
        let result = self.command.run(&store, configured.as_deref()).await;
        store.close().await;
        result
    }
}

impl DeliveriesCommand {
    async fn run(self, store: &Store, configured: Option<&[String]>) -> anyhow::Result<ExitCode> {
        match self {
            Self::List { status, limit, .. } => {
                let rows = store.list_deliveries(status.status(), limit).await?;
                print!("{}", table(&rows, configured));
                Ok(ExitCode::SUCCESS)
            }
            Self::Dead { limit, .. } => {
                let rows = store
                    .list_deliveries(Some(DeliveryStatus::Dead), limit)
                    .await?;
                print!("{}", table(&rows, configured));
                Ok(ExitCode::SUCCESS)
            }
            Self::Show { id, .. } => {
                let Some(row) = store.delivery(id).await? else {
                    eprintln!("herald: no delivery {id} (see `herald deliveries list`)");
                    return Ok(ExitCode::FAILURE);
                };
                let attempts = store.attempts(id).await?;
                print!("{}", details(&row, &attempts, configured));
                Ok(ExitCode::SUCCESS)
            }
            Self::Retry { id, all, .. } => {
                let revived = store
                    .retry_dead(if all { None } else { id }, now_ms())
                    .await?;
                match (revived, id) {
                    (0, Some(id)) if !all => {
                        let why = match store.delivery(id).await? {
                            None => format!("no delivery {id}"),
                            Some(row) => format!("delivery {id} is {}, not dead", row.status),
                        };
                        eprintln!(
                            "herald: {why}; nothing queued (`herald deliveries dead` lists dead ones)"
                        );
                        Ok(ExitCode::FAILURE)
                    }
                    (0, _) => {
                        println!("no dead deliveries");
                        Ok(ExitCode::SUCCESS)
                    }
                    (count, _) => {
                        let noun = if count == 1 { "delivery" } else { "deliveries" };
                        println!(
                            "{count} dead {noun} queued again; a running herald sends them within its poll interval"
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                }
            }
        }
    }
}

/// The status shown: a pending row for a destination the configuration lacks waits for another
/// instance.
fn status_of(row: &DeliveryRow, configured: Option<&[String]>) -> String {
    let unknown = configured.is_some_and(|names| !names.contains(&row.destination));
    if row.status == "pending" && unknown {
        "waiting (destination not configured here)".to_owned()
    } else {
        row.status.clone()
    }
}

fn event_name(row: &DeliveryRow) -> String {
    match &row.action {
        Some(action) => format!("{}.{action}", row.event),
        None => row.event.clone(),
    }
}

fn place(row: &DeliveryRow) -> String {
    match (&row.repository, row.issue_number) {
        (Some(repo), Some(number)) => format!("{repo}#{number}"),
        (Some(repo), None) => repo.clone(),
        _ => String::new(),
    }
}

/// Rows as an aligned table, newest first.
fn table(rows: &[DeliveryRow], configured: Option<&[String]>) -> String {
    if rows.is_empty() {
        return "no deliveries\n".to_owned();
    }
    let header = [
        "id",
        "status",
        "destination",
        "attempts",
        "next or last",
        "event",
        "where",
        "last error",
    ];
    let mut lines: Vec<[String; 8]> = vec![header.map(str::to_owned)];
    for row in rows {
        let when = if row.status == "pending" {
            row.next_attempt_at
        } else {
            row.updated_at
        };
        lines.push([
            row.id.to_string(),
            status_of(row, configured),
            row.destination.clone(),
            row.attempts.to_string(),
            format_ms(when),
            event_name(row),
            place(row),
            row.last_error.clone().unwrap_or_default(),
        ]);
    }
    let mut widths = [0; 8];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let mut text = String::new();
        for (index, cell) in line.iter().enumerate() {
            let last = index == line.len() - 1;
            if index == 0 || index == 3 {
                let _ = write!(text, "{cell:>width$}", width = widths[index]);
            } else if last {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}", width = widths[index]);
            }
            if !last {
                text.push_str("  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    }
    out
}

/// One delivery and its attempts.
fn details(
    row: &DeliveryRow,
    attempts: &[crate::store::AttemptRow],
    configured: Option<&[String]>,
) -> String {
    let mut out = format!(
        "delivery    {}\nevent       {} ({}), delivery id {}\nwhere       {}\ndestination {}\nstatus      {}\nattempts    {}\n",
        row.id,
        event_name(row),
        row.event_id,
        row.delivery_id,
        place(row),
        row.destination,
        status_of(row, configured),
        row.attempts,
    );
    match row.status.as_str() {
        "pending" => {
            let _ = writeln!(out, "next        {}", format_ms(row.next_attempt_at));
        }
        "delivered" => {
            let _ = writeln!(out, "delivered   {}", format_ms(row.updated_at));
        }
        _ => {
            let _ = writeln!(out, "dead since  {}", format_ms(row.updated_at));
        }
    }
    if let Some(error) = &row.last_error {
        let _ = writeln!(out, "last error  {error}");
    }
    if attempts.is_empty() {
        out.push_str("no failed attempts\n");
    } else {
        out.push_str("attempts that did not deliver:\n");
        for attempt in attempts {
            let _ = writeln!(
                out,
                "  {}  {:<12}  {} ms  {}",
                format_ms(attempt.started_at),
                attempt.outcome,
                attempt.finished_at - attempt.started_at,
                attempt.error.as_deref().unwrap_or("")
            );
        }
    }
    out
}
