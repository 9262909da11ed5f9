//! `herald deliveries`: see what is pending, delivered or dead, and send dead letters again.

use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use crate::config::DatabaseConfig;
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
        #[command(flatten)]
        database: DatabaseConfig,
        /// Which deliveries to show.
        #[arg(long, value_enum, default_value_t = StatusFilter::All)]
        status: StatusFilter,
        /// Most rows shown.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// List dead-lettered deliveries (gave up, or refused by the sink).
    Dead {
        #[command(flatten)]
        database: DatabaseConfig,
        /// Most rows shown.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Queue dead deliveries again, due now, with a fresh retry schedule.
    Retry {
        #[command(flatten)]
        database: DatabaseConfig,
        /// The delivery id (from `list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<i64>,
        /// Every dead delivery.
        #[arg(long)]
        all: bool,
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
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let database = match &self.command {
            DeliveriesCommand::List { database, .. }
            | DeliveriesCommand::Dead { database, .. }
            | DeliveriesCommand::Retry { database, .. } => database,
        };
        let store = Store::connect(database).await?;
        let code = match self.command {
            DeliveriesCommand::List { status, limit, .. } => {
                print_rows(&store.list_deliveries(status.status(), limit).await?);
                ExitCode::SUCCESS
            }
            DeliveriesCommand::Dead { limit, .. } => {
                print_rows(
                    &store
                        .list_deliveries(Some(DeliveryStatus::Dead), limit)
                        .await?,
                );
                ExitCode::SUCCESS
            }
            DeliveriesCommand::Retry { id, all, .. } => {
                let revived = store
                    .retry_dead(if all { None } else { id }, now_ms())
                    .await?;
                println!(
                    "{revived} dead deliveries queued again; a running herald sends them within its poll interval"
                );
                if revived == 0 && !all {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
        };
        store.close().await;
        Ok(code)
    }
}

fn print_rows(rows: &[DeliveryRow]) {
    if rows.is_empty() {
        println!("no deliveries");
        return;
    }
    println!(
        "{:>6}  {:<9} {:<6} {:>8}  {:<20}  {:<28} {:<24} error",
        "id", "status", "sink", "attempts", "next/last", "event", "repository"
    );
    for row in rows {
        let event = match &row.action {
            Some(action) => format!("{}.{action}", row.event),
            None => row.event.clone(),
        };
        let place = match (&row.repository, row.issue_number) {
            (Some(repo), Some(number)) => format!("{repo}#{number}"),
            (Some(repo), None) => repo.clone(),
            _ => String::new(),
        };
        let when = if row.status == "pending" {
            row.next_attempt_at
        } else {
            row.updated_at
        };
        println!(
            "{:>6}  {:<9} {:<6} {:>8}  {:<20}  {:<28} {:<24} {}",
            row.id,
            row.status,
            row.destination,
            row.attempts,
            format_ms(when).chars().take(20).collect::<String>(),
            event,
            place,
            row.last_error.as_deref().unwrap_or("")
        );
    }
}
