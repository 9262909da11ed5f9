//! `herald config check`: resolves the configuration exactly as `serve` would (defaults < file <
//! environment < flags), validates all of it, and prints the effective settings, destinations and
//! routes with every secret redacted.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

use crate::config::ServeConfig;
use crate::delivery::{Plan, Target};

/// Checks `config` and prints it; `command` and `matches` are the `serve` arguments as parsed,
/// to show where each value came from.
pub fn run(config: &ServeConfig, command: &Command, matches: &ArgMatches) -> ExitCode {
    let plan = match crate::startup::validate(config) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("herald: {error:#}");
            return ExitCode::from(2);
        }
    };
    print!("{}", render(config, command, matches, &plan));
    println!("# the configuration is valid");
    ExitCode::SUCCESS
}

/// The effective configuration as TOML-like text.
pub fn render(
    config: &ServeConfig,
    command: &Command,
    matches: &ArgMatches,
    plan: &Plan,
) -> String {
    let mut out = String::new();
    let file = config.config.as_ref().map_or_else(
        || "no configuration file".to_owned(),
        |path| path.display().to_string(),
    );
    let _ = writeln!(
        out,
        "# effective configuration ({file}); each value's source after #"
    );
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if arg.is_hide_set() || matches!(id, "config" | "help" | "version") {
            continue;
        }
        let Some(values) = matches.get_raw(id) else {
            continue;
        };
        let text: Vec<String> = values
            .map(|value| value.to_string_lossy().into_owned())
            .collect();
        let source = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => "flag".to_owned(),
            Some(ValueSource::EnvVariable) => {
                arg.get_env().map_or("environment".to_owned(), |name| {
                    name.to_string_lossy().into_owned()
                })
            }
            Some(ValueSource::DefaultValue) if config.file.settings.contains_key(id) => {
                "file".to_owned()
            }
            _ => "default".to_owned(),
        };
        let shown = if id == "database_url" {
            format!("{:?}", crate::store::redact_url(&text.join(",")))
        } else if arg.is_hide_env_values_set() {
            "\"[redacted]\"".to_owned()
        } else {
            format!("{:?}", text.join(","))
        };
        let _ = writeln!(out, "{id} = {shown}  # {source}");
    }
    for destination in &plan.destinations {
        let _ = writeln!(out, "\n[destinations.{}]", destination.name);
        let _ = writeln!(out, "kind = {:?}", destination.target.kind());
        match &destination.target {
            Target::SlackWebhook { timeout, .. } => {
                let _ = writeln!(out, "url = \"[redacted]\"");
                let _ = writeln!(
                    out,
                    "timeout = {:?}",
                    humantime::format_duration(*timeout).to_string()
                );
            }
            Target::SlackBot {
                channel,
                api_url,
                timeout,
                ..
            } => {
                let _ = writeln!(out, "channel = {channel:?}");
                let _ = writeln!(out, "token = \"[redacted]\"");
                let _ = writeln!(out, "api_url = {api_url:?}");
                let _ = writeln!(
                    out,
                    "timeout = {:?}",
                    humantime::format_duration(*timeout).to_string()
                );
            }
            Target::Bigquery {
                table,
                api_url,
                timeout,
            } => {
                let _ = writeln!(out, "table = {:?}", table.to_string());
                let _ = writeln!(out, "api_url = {api_url:?}");
                let _ = writeln!(
                    out,
                    "timeout = {:?}",
                    humantime::format_duration(*timeout).to_string()
                );
            }
            Target::Stdout | Target::Analytics => {}
        }
        let limits = destination.limits;
        let _ = writeln!(out, "max_per_second = {}", limits.max_per_second);
        let _ = writeln!(out, "concurrency = {}", limits.concurrency);
        let _ = writeln!(out, "batch_size = {}", limits.batch_size);
    }
    render_routes(plan, &mut out);
    out
}

/// The routes and the built-in destinations, as TOML-like text.
fn render_routes(plan: &Plan, out: &mut String) {
    for route in &plan.router.routes {
        let route_config = &route.config;
        let _ = writeln!(out, "\n[[routes]]  # {}", route.name);
        let list = |name: &str, values: &Option<Vec<String>>, out: &mut String| {
            if let Some(values) = values {
                let _ = writeln!(out, "{name} = {values:?}");
            }
        };
        list("repositories", &route_config.repositories, out);
        list("events", &route_config.events, out);
        list("labels_any", &route_config.labels_any, out);
        list("labels_all", &route_config.labels_all, out);
        list("labels_none", &route_config.labels_none, out);
        list("authors_include", &route_config.authors_include, out);
        list("authors_exclude", &route_config.authors_exclude, out);
        let _ = writeln!(out, "include_bots = {}", route_config.include_bots);
        let _ = writeln!(out, "to = {:?}", route_config.to);
    }
    for built_in in &plan.router.built_in {
        let events: Vec<String> = built_in
            .events
            .iter()
            .map(|rule| match &rule.action {
                Some(action) => format!("{}.{action}", rule.event),
                None => rule.event.clone(),
            })
            .collect();
        let _ = writeln!(
            out,
            "\n# built in: {} gets {}",
            built_in.destination,
            if events.is_empty() {
                "every event".to_owned()
            } else {
                events.join(", ")
            }
        );
    }
}
