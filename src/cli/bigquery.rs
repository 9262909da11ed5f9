//! `herald bigquery schema|setup`: print the event table's schema (JSON for `bq mk`, or DDL),
//! and create the dataset and the table when missing.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};

use crate::config::{DestinationKind, FileConfig, GoogleConfig};
use crate::gcp::bigquery::BigQuery;
use crate::gcp::schema::{
    CLUSTER_COLUMN, PARTITION_COLUMN, ddl, schema_json, schema_problems, table_resource,
};
use crate::gcp::{GoogleAuth, TableRef};

#[derive(Debug, Args)]
pub struct BigqueryArgs {
    #[command(subcommand)]
    command: BigqueryCommand,
    /// The configuration file's contents (filled by `Cli::load`).
    #[arg(skip)]
    pub file: FileConfig,
}

#[derive(Debug, Subcommand)]
enum BigqueryCommand {
    /// Print the table's schema: JSON for `bq mk --table`, or the `CREATE TABLE` statement.
    Schema(SchemaArgs),
    /// Create the dataset and the table when they are missing; check an existing table.
    Setup(SetupArgs),
}

/// Which table: the flag or `HERALD_BIGQUERY_TABLE`, else a `kind = "bigquery"` destination of
/// the configuration file.
#[derive(Debug, Args)]
struct TableChoice {
    /// `project.dataset.table`.
    #[arg(long = "table", env = "HERALD_BIGQUERY_TABLE")]
    bigquery_table: Option<String>,
    /// The configuration file's BigQuery destination to take the table from (when it has
    /// several).
    #[arg(long)]
    destination: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaFormat {
    /// The fields, as `bq mk --table PROJECT:DATASET.TABLE schema.json` takes them.
    Json,
    /// `CREATE TABLE … PARTITION BY DATE(occurred_at) CLUSTER BY repository`.
    Ddl,
}

#[derive(Debug, Args)]
struct SchemaArgs {
    #[arg(long, value_enum, default_value = "json")]
    format: SchemaFormat,
    #[command(flatten)]
    table: TableChoice,
}

#[derive(Debug, Args)]
struct SetupArgs {
    #[command(flatten)]
    table: TableChoice,
    /// Where a new dataset is created (`US`, `EU`, `europe-west1`, …).
    #[arg(long, default_value = "US")]
    location: String,
    /// BigQuery's base URL (a destination's own `api_url` wins).
    #[arg(
        long,
        env = "HERALD_BIGQUERY_API_URL",
        default_value = "https://bigquery.googleapis.com"
    )]
    bigquery_api_url: String,
    #[command(flatten)]
    google: GoogleConfig,
}

impl BigqueryArgs {
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        match self.command {
            BigqueryCommand::Schema(args) => {
                match args.format {
                    SchemaFormat::Json => {
                        println!("{}", serde_json::to_string_pretty(&schema_json())?);
                    }
                    SchemaFormat::Ddl => {
                        let table = match choose(&args.table, &self.file) {
                            Ok((table, _)) => Some(table),
                            Err(_) if args.table.bigquery_table.is_none() => None,
                            Err(error) => return Err(error),
                        };
                        print!("{}", ddl(table.as_ref()));
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            BigqueryCommand::Setup(args) => setup(args, &self.file).await,
        }
    }
}

/// The table to use, and its destination's `api_url` if it came from the file.
fn choose(choice: &TableChoice, file: &FileConfig) -> anyhow::Result<(TableRef, Option<String>)> {
    if let Some(text) = choice
        .bigquery_table
        .as_deref()
        .filter(|t| !t.trim().is_empty())
    {
        let table = text
            .parse::<TableRef>()
            .map_err(|error| anyhow::anyhow!("--table (HERALD_BIGQUERY_TABLE): {error}"))?;
        return Ok((table, None));
    }
    let candidates: Vec<(&String, &crate::config::DestinationConfig)> = file
        .destinations
        .iter()
        .filter(|(_, destination)| destination.kind == DestinationKind::Bigquery)
        .filter(|(name, _)| {
            choice
                .destination
                .as_ref()
                .is_none_or(|wanted| wanted == *name)
        })
        .collect();
    let (name, destination) = match candidates.as_slice() {
        [one] => *one,
        [] => match &choice.destination {
            Some(wanted) => {
                bail!("the configuration file has no BigQuery destination named {wanted:?}")
            }
            None => bail!(
                "which table? Give --table PROJECT.DATASET.TABLE (or HERALD_BIGQUERY_TABLE), or a \
                 configuration file with a kind = \"bigquery\" destination"
            ),
        },
        several => {
            let names: Vec<&str> = several.iter().map(|(name, _)| name.as_str()).collect();
            bail!(
                "the configuration file has several BigQuery destinations ({}); choose one with \
                 --destination NAME",
                names.join(", ")
            )
        }
    };
    let text = destination
        .table
        .as_deref()
        .with_context(|| format!("destinations.{name}.table: required for kind bigquery"))?;
    let table = text
        .parse::<TableRef>()
        .map_err(|error| anyhow::anyhow!("destinations.{name}.table: {error}"))?;
    Ok((table, destination.api_url.clone()))
}

async fn setup(args: SetupArgs, file: &FileConfig) -> anyhow::Result<ExitCode> {
    let (table, api_url) = choose(&args.table, file)?;
    let auth = GoogleAuth::from_config(&args.google)?;
    let api_url = api_url.unwrap_or(args.bigquery_api_url);
    let client = BigQuery::new(&api_url, auth, Duration::from_secs(60))?;
    let dataset = format!("{}.{}", table.project, table.dataset);
    let exists = client
        .dataset_exists(&table.project, &table.dataset)
        .await
        .with_context(|| format!("looking up the dataset {dataset}"))?;
    if exists {
        println!("dataset {dataset} exists");
    } else {
        client
            .create_dataset(&table.project, &table.dataset, &args.location)
            .await
            .with_context(|| format!("creating the dataset {dataset} in {}", args.location))?;
        println!("created dataset {dataset} in {}", args.location);
    }
    match client
        .table(&table)
        .await
        .with_context(|| format!("looking up the table {table}"))?
    {
        Some(resource) => {
            let problems = schema_problems(&resource);
            if !problems.is_empty() {
                bail!(
                    "the table {table} exists but herald cannot write to it: {}. Add the missing \
                     columns (`herald bigquery schema --format ddl` shows them), or choose another \
                     table",
                    problems.join("; ")
                );
            }
            println!("table {table} exists with herald's columns");
        }
        None => {
            client
                .create_table(&table, &table_resource(&table))
                .await
                .with_context(|| format!("creating the table {table}"))?;
            println!(
                "created table {table} (partitioned by day on {PARTITION_COLUMN}, clustered by \
                 {CLUSTER_COLUMN})"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
