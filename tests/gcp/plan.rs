//! BigQuery destinations in the plan: from `HERALD_BIGQUERY_TABLE`, or `kind = "bigquery"` in the
//! configuration file; every event unless a route names the destination; the table checked at
//! start-up.

use clap::Parser;
use herald::config::{FileConfig, ServeConfig};
use herald::delivery::{Plan, PlanErrors, Target, plan};
use herald::routes::Subject;

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    config: ServeConfig,
}

fn resolve(args: &[&str], file: &str) -> Result<Plan, PlanErrors> {
    let mut full = vec!["herald", "--notify-events", "issues.opened"];
    full.extend_from_slice(args);
    let mut config = Wrapper::try_parse_from(full).unwrap().config;
    config.file = FileConfig::parse(file).unwrap();
    plan(&config, &|_| None)
}

/// The destinations an event goes to, sorted.
fn destinations(plan: &Plan, event: &str, action: &str) -> Vec<String> {
    let subject = Subject {
        event,
        action: Some(action),
        repository: Some("acme/widgets"),
        labels: &[],
        author: Some("alice"),
        author_id: Some(1),
        author_is_bot: false,
        added_label: None,
        open: true,
    };
    let mut names: Vec<String> = plan
        .router
        .route(&subject)
        .into_iter()
        .map(|matched| matched.destination.to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn the_environments_table_gets_every_event() {
    let plan = resolve(&["--bigquery-table", "p1.herald.events"], "").unwrap();
    let Some(Target::Bigquery { table, api_url, .. }) =
        plan.destination("bigquery").map(|d| &d.target)
    else {
        panic!("a bigquery destination: {plan:?}");
    };
    assert_eq!(table.to_string(), "p1.herald.events");
    assert_eq!(api_url, "https://bigquery.googleapis.com");
    assert_eq!(plan.destination("bigquery").unwrap().limits.batch_size, 500);
    assert_eq!(plan.destination("bigquery").unwrap().limits.concurrency, 2);
    assert_eq!(destinations(&plan, "push", ""), ["bigquery"]);
    assert_eq!(
        destinations(&plan, "issues", "opened"),
        ["analytics", "bigquery", "stdout"]
    );
}

#[test]
fn a_file_destination_gets_every_event_unless_a_route_names_it() {
    let file = r#"
[destinations.warehouse]
kind = "bigquery"
table = "p1.herald.events"
api_url = "http://127.0.0.1:9050"
timeout = "5s"

[destinations.console]
kind = "stdout"

[[routes]]
events = ["issues.opened"]
to = ["console"]
"#;
    let plan = resolve(&[], file).unwrap();
    assert_eq!(destinations(&plan, "star", "created"), ["warehouse"]);
    assert_eq!(
        destinations(&plan, "issues", "opened"),
        ["analytics", "console", "warehouse"]
    );
    let routed = format!("{file}\n[[routes]]\nevents = [\"issues\"]\nto = [\"warehouse\"]\n");
    let plan = resolve(&[], &routed).unwrap();
    assert_eq!(destinations(&plan, "star", "created"), Vec::<String>::new());
    assert_eq!(
        destinations(&plan, "issues", "closed"),
        ["analytics", "warehouse"]
    );
}

#[test]
fn tables_are_checked_at_start_up() {
    let errors = resolve(&["--bigquery-table", "herald.events"], "").unwrap_err();
    assert!(
        errors
            .to_string()
            .contains("HERALD_BIGQUERY_TABLE: \"herald.events\" is not a BigQuery table"),
        "{errors}"
    );
    let file = "[destinations.warehouse]\nkind = \"bigquery\"\n";
    let errors = resolve(&[], file).unwrap_err().to_string();
    assert!(
        errors.contains("destinations.warehouse.table: required for kind bigquery"),
        "{errors}"
    );
    let file = "[destinations.warehouse]\nkind = \"bigquery\"\ntable = \"p.d.t\"\napi_url = \"ftp://x\"\nbatch_size = 501\n";
    let errors = resolve(&[], file).unwrap_err().to_string();
    assert!(
        errors.contains("destinations.warehouse.api_url: expected an http"),
        "{errors}"
    );
    assert!(
        errors.contains("destinations.warehouse.batch_size: 501 must be between 1 and 500"),
        "{errors}"
    );
    let file = "[destinations.bigquery]\nkind = \"bigquery\"\ntable = \"p.d.t\"\n";
    let errors = resolve(&["--bigquery-table", "p.d.t"], file)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("HERALD_BIGQUERY_TABLE describes the `bigquery` destination too"),
        "{errors}"
    );
}
