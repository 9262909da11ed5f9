//! `herald routes test PAYLOAD --event NAME`: which routes match a payload, why the others do not,
//! and which destinations would get the event, with the configuration `serve` would use.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::config::ServeConfig;
use crate::github::IndexedEvent;
use crate::routes::{Router, Verdict};

/// Explains the routing of the payload in `path` for `event`.
pub fn run(config: &ServeConfig, path: &Path, event: &str) -> anyhow::Result<ExitCode> {
    let plan = match crate::startup::validate(config) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("herald: {error:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (indexed, _) = IndexedEvent::parse(&body)
        .with_context(|| format!("{} is not a webhook payload", path.display()))?;
    print!("{}", explain(&plan.router, &indexed, event));
    Ok(ExitCode::SUCCESS)
}

/// The explanation as text.
pub fn explain(router: &Router, indexed: &IndexedEvent, event: &str) -> String {
    let subject = indexed.subject(event);
    let mut out = String::new();
    let name = match subject.action {
        Some(action) => format!("{event}.{action}"),
        None => event.to_owned(),
    };
    let _ = writeln!(
        out,
        "event {name} in {} by {}{} with labels [{}]",
        subject.repository.unwrap_or("(no repository)"),
        subject.author.unwrap_or("(unknown author)"),
        if subject.author_is_bot {
            " (a bot)"
        } else {
            ""
        },
        subject.labels.join(", ")
    );
    if router.routes.is_empty() {
        let _ = writeln!(out, "no routes are configured");
    }
    for (route, verdict) in router.explain(&subject) {
        let to = route
            .to
            .iter()
            .map(|name| &**name)
            .collect::<Vec<_>>()
            .join(", ");
        match verdict {
            Verdict::Matched { late: false } => {
                let _ = writeln!(out, "  match  {}  -> {to}", route.name);
            }
            Verdict::Matched { late: true } => {
                let _ = writeln!(
                    out,
                    "  match  {}  -> {to}  (a label it needs was just added: announced as new, once)",
                    route.name
                );
            }
            Verdict::Skipped(reason) => {
                let _ = writeln!(out, "  skip   {}: {reason}", route.name);
            }
        }
    }
    let matches = router.route(&subject);
    let destinations: Vec<&str> = matches.iter().map(|m| &*m.destination).collect();
    let _ = writeln!(
        out,
        "destinations: {}",
        if destinations.is_empty() {
            "none".to_owned()
        } else {
            destinations.join(", ")
        }
    );
    out
}
