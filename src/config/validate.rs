//! Checking settings that parse but would misbehave: values out of sane bounds, unknown event
//! names, combinations that cannot work. Every problem is reported, each naming the variable (and
//! its file key) to change, the value, and what is allowed. Secrets are never echoed.

use std::time::Duration;

use super::{ServeConfig, closest};

/// Every event GitHub sends to webhooks (its documentation's list), for checking names.
pub const GITHUB_EVENTS: &[&str] = &[
    "branch_protection_configuration",
    "branch_protection_rule",
    "check_run",
    "check_suite",
    "code_scanning_alert",
    "commit_comment",
    "create",
    "custom_property",
    "custom_property_values",
    "delete",
    "dependabot_alert",
    "deploy_key",
    "deployment",
    "deployment_protection_rule",
    "deployment_review",
    "deployment_status",
    "discussion",
    "discussion_comment",
    "fork",
    "github_app_authorization",
    "gollum",
    "installation",
    "installation_repositories",
    "installation_target",
    "issue_comment",
    "issue_dependencies",
    "issues",
    "label",
    "marketplace_purchase",
    "member",
    "membership",
    "merge_group",
    "meta",
    "milestone",
    "org_block",
    "organization",
    "package",
    "page_build",
    "personal_access_token_request",
    "ping",
    "project",
    "project_card",
    "project_column",
    "projects_v2",
    "projects_v2_item",
    "projects_v2_status_update",
    "public",
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "pull_request_review_thread",
    "push",
    "registry_package",
    "release",
    "repository",
    "repository_advisory",
    "repository_dispatch",
    "repository_import",
    "repository_ruleset",
    "repository_vulnerability_alert",
    "secret_scanning_alert",
    "secret_scanning_alert_location",
    "secret_scanning_scan",
    "security_advisory",
    "security_and_analysis",
    "sponsorship",
    "star",
    "status",
    "sub_issues",
    "team",
    "team_add",
    "watch",
    "workflow_dispatch",
    "workflow_job",
    "workflow_run",
];

/// Checks `event` or `event.action` against GitHub's event names.
pub fn check_event_rule(rule: &str) -> Result<(), String> {
    let event = rule.split_once('.').map_or(rule, |(event, _)| event).trim();
    if GITHUB_EVENTS.contains(&event) {
        return Ok(());
    }
    let names: Vec<String> = GITHUB_EVENTS
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let hint = closest(event, &names).map_or_else(
        || "; see GitHub's list of webhook events".to_owned(),
        |name| format!("; did you mean {name:?}?"),
    );
    Err(format!("{event:?} is not a GitHub webhook event{hint}"))
}

fn within(problems: &mut Vec<String>, name: &str, value: Duration, min: Duration, max: Duration) {
    if value < min || value > max {
        problems.push(format!(
            "{name} = {}: must be between {} and {}",
            humantime::format_duration(value),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ));
    }
}

/// Every problem with `config`'s own settings (the plan checks destinations and routes).
pub fn check(config: &ServeConfig) -> Vec<String> {
    let mut problems = Vec::new();
    check_durations(config, &mut problems);
    check_limits(config, &mut problems);
    for rule in config
        .notify_events
        .iter()
        .map(|rule| rule.trim())
        .filter(|rule| !rule.is_empty())
    {
        if let Err(error) = check_event_rule(rule) {
            problems.push(format!("HERALD_NOTIFY_EVENTS (notify_events): {error}"));
        }
    }
    let slack = config.slack_webhook_url.is_some() || config.slack_bot.slack_bot_token.is_some();
    // Without a rate limit a lane records a whole round before sending it, in up to
    // `ROUNDS_AHEAD` waves of requests (see `delivery::plan::lease_problem`).
    let waves = if config.slack_max_per_second > 0.0 {
        1
    } else {
        crate::delivery::ROUNDS_AHEAD
    };
    let needed = config
        .slack_timeout
        .saturating_mul(u32::try_from(waves).unwrap_or(u32::MAX));
    if slack && config.delivery_lease <= needed {
        problems.push(format!(
            "HERALD_DELIVERY_LEASE ({}) must be longer than HERALD_SLACK_TIMEOUT ({}){}, or \
             another worker could take over a message still being sent",
            humantime::format_duration(config.delivery_lease),
            humantime::format_duration(config.slack_timeout),
            if waves > 1 {
                format!(
                    " × {waves} with HERALD_SLACK_MAX_PER_SECOND=0 (up to {waves} waves of \
                     requests per round)"
                )
            } else {
                String::new()
            }
        ));
    }
    problems
}

fn check_durations(config: &ServeConfig, problems: &mut Vec<String>) {
    let ms = Duration::from_millis;
    let s = Duration::from_secs;
    within(
        problems,
        "HERALD_POLL_INTERVAL (poll_interval)",
        config.poll_interval,
        ms(10),
        s(3600),
    );
    within(
        problems,
        "HERALD_DELIVERY_LEASE (delivery_lease)",
        config.delivery_lease,
        s(1),
        s(86_400),
    );
    within(
        problems,
        "HERALD_SLACK_TIMEOUT (slack_timeout)",
        config.slack_timeout,
        ms(100),
        s(300),
    );
    within(
        problems,
        "HERALD_STORE_TIMEOUT (store_timeout)",
        config.store_timeout,
        ms(100),
        s(60),
    );
    within(
        problems,
        "HERALD_SHUTDOWN_GRACE (shutdown_grace)",
        config.shutdown_grace,
        Duration::ZERO,
        s(600),
    );
    within(
        problems,
        "HERALD_DATABASE_STATEMENT_TIMEOUT (database_statement_timeout)",
        config.database.database_statement_timeout,
        ms(100),
        s(3600),
    );
    let schedule = &config.retry_schedule.0;
    if schedule.len() > 100 {
        problems.push(format!(
            "HERALD_RETRY_SCHEDULE (retry_schedule) has {} delays: at most 100",
            schedule.len()
        ));
    }
    if let Some(long) = schedule.iter().find(|delay| **delay > s(7 * 86_400)) {
        problems.push(format!(
            "HERALD_RETRY_SCHEDULE (retry_schedule) has a delay of {}: each must be at most 7 days",
            humantime::format_duration(*long)
        ));
    }
}

fn check_limits(config: &ServeConfig, problems: &mut Vec<String>) {
    let rate = config.slack_max_per_second;
    if !rate.is_finite() || !(0.0..=10_000.0).contains(&rate) {
        problems.push(format!(
            "HERALD_SLACK_MAX_PER_SECOND (slack_max_per_second) = {rate}: must be between 0 (no limit) and 10000"
        ));
    }
    if !(1..=1024).contains(&config.delivery_concurrency) {
        problems.push(format!(
            "HERALD_DELIVERY_CONCURRENCY (delivery_concurrency) = {}: must be between 1 and 1024",
            config.delivery_concurrency
        ));
    }
    let connections = config.database.database_max_connections;
    if !(2..=1000).contains(&connections) {
        problems.push(format!(
            "HERALD_DATABASE_MAX_CONNECTIONS (database_max_connections) = {connections}: must be between 2 and 1000"
        ));
    }
    if config.body_budget_mib > 65_536 {
        problems.push(format!(
            "HERALD_BODY_BUDGET_MIB (body_budget_mib) = {}: must be at most 65536 (one full-size \
             25 MiB body always fits, whatever the setting)",
            config.body_budget_mib
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_githubs_event_names_and_suggests_the_closest() {
        assert_eq!(check_event_rule("issues.opened"), Ok(()));
        assert_eq!(check_event_rule("issue_comment"), Ok(()));
        assert_eq!(
            check_event_rule("isues"),
            Err("\"isues\" is not a GitHub webhook event; did you mean \"issues\"?".to_owned())
        );
        assert_eq!(
            check_event_rule("issue.opened"),
            Err("\"issue\" is not a GitHub webhook event; did you mean \"issues\"?".to_owned())
        );
        assert!(
            check_event_rule("zzz")
                .unwrap_err()
                .contains("GitHub's list")
        );
    }

    #[test]
    fn the_shared_payloads_are_all_known_events() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/github-payloads");
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.path().is_dir() {
                let name = entry.file_name().to_string_lossy().into_owned();
                assert_eq!(check_event_rule(&name), Ok(()), "{name}");
            }
        }
    }
}
