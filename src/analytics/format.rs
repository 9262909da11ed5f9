//! Rendering a report for people (a terminal table, Markdown for a GitHub issue or a Slack
//! post) and for tools (JSON, the stable interface; CSV for spreadsheets).

use std::fmt::Write;

use super::report::{Backlog, Metrics, Report, Seconds};

/// Output formats of `herald report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Json,
    Csv,
}

/// Renders `report`; `group_by` names the grouping for headings.
pub fn render(report: &Report, format: Format, group_by: Option<&str>) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report).unwrap_or_default();
            text.push('\n');
            text
        }
        Format::Table => table(report, group_by.unwrap_or("group")),
        Format::Markdown => markdown(report, group_by.unwrap_or("group")),
        Format::Csv => csv(report, group_by.unwrap_or("group")),
    }
}

/// `2d 4h`, `3h 12m`, `5m 3s`, `45s`: the two largest units, whole seconds, zero parts dropped.
pub fn human_duration(seconds: f64) -> String {
    let total = seconds.abs().round() as u64;
    let sign = if seconds < 0.0 && total > 0 { "-" } else { "" };
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    let (big, big_unit, small, small_unit) = if days > 0 {
        (days, "d", hours, "h")
    } else if hours > 0 {
        (hours, "h", minutes, "m")
    } else if minutes > 0 {
        (minutes, "m", secs, "s")
    } else {
        return format!("{sign}{secs}s");
    };
    if small == 0 {
        format!("{sign}{big}{big_unit}")
    } else {
        format!("{sign}{big}{big_unit} {small}{small_unit}")
    }
}

fn human(value: Option<Seconds>) -> String {
    value.map_or_else(|| "-".to_owned(), |seconds| human_duration(seconds.0))
}

fn reasons(metrics: &Metrics) -> String {
    metrics
        .time_to_close
        .state_reasons
        .iter()
        .map(|(reason, count)| format!("{reason} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn buckets(backlog: &Backlog) -> String {
    let b = backlog.age_buckets;
    format!(
        "<1d {}, 1-7d {}, 7-30d {}, >30d {}",
        b.under_1d, b.from_1d_to_7d, b.from_7d_to_30d, b.over_30d
    )
}

fn table(report: &Report, group_by: &str) -> String {
    let m = &report.metrics;
    let (r, c) = (&m.time_to_first_response, &m.time_to_close);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Issues created from {} to {}",
        report.window.since, report.window.until
    );
    let _ = writeln!(
        out,
        "  opened {}   closed {}   open now {}\n",
        m.issues.opened, m.issues.closed, m.issues.open_now
    );
    if let Some(hours) = &report.business_hours {
        let _ = writeln!(
            out,
            "durations in business hours: {} {} ({})\n",
            hours.days, hours.hours, hours.zone
        );
    }
    let _ = writeln!(
        out,
        "{:<24} {:>6}  {:>10}  {:>10}  {:>10}",
        "", "count", "mean", "median", "p90"
    );
    let _ = writeln!(
        out,
        "{:<24} {:>6}  {:>10}  {:>10}  {:>10}",
        "time to first response",
        r.count,
        human(r.mean_seconds),
        human(r.median_seconds),
        human(r.p90_seconds)
    );
    let _ = writeln!(out, "  unanswered {:>18}", r.unanswered);
    let _ = writeln!(
        out,
        "{:<24} {:>6}  {:>10}  {:>10}  {:>10}",
        "time to close",
        c.count,
        human(c.mean_seconds),
        human(c.median_seconds),
        human(c.p90_seconds)
    );
    let _ = writeln!(out, "  by reason: {}", reasons(m));
    let _ = writeln!(
        out,
        "backlog: {} open ({})",
        m.backlog.open,
        buckets(&m.backlog)
    );
    if !report.groups.is_empty() {
        let width = report
            .groups
            .iter()
            .map(|group| group.key.chars().count())
            .max()
            .unwrap_or(0)
            .max(group_by.len())
            .min(40);
        let _ = writeln!(
            out,
            "\n{:<width$}  {:>6}  {:>6}  {:>6}  {:>10}  {:>14}  {:>12}",
            group_by, "opened", "closed", "open", "unanswered", "response (med)", "close (med)"
        );
        for group in &report.groups {
            let g = &group.metrics;
            let key: String = group.key.chars().take(40).collect();
            let _ = writeln!(
                out,
                "{:<width$}  {:>6}  {:>6}  {:>6}  {:>10}  {:>14}  {:>12}",
                key,
                g.issues.opened,
                g.issues.closed,
                g.issues.open_now,
                g.time_to_first_response.unanswered,
                human(g.time_to_first_response.median_seconds),
                human(g.time_to_close.median_seconds)
            );
        }
    }
    out
}

/// Escapes text that Markdown (GitHub's or Slack's) would otherwise interpret.
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '<' | '>' | '#' | '~'
        ) {
            out.push('\\');
        }
        if c == '\n' || c == '\r' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

fn markdown(report: &Report, group_by: &str) -> String {
    let m = &report.metrics;
    let (r, c) = (&m.time_to_first_response, &m.time_to_close);
    let ages = m.backlog.age_buckets;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "**Issue flow**, issues created {} → {}\n",
        report.window.since, report.window.until
    );
    if let Some(hours) = &report.business_hours {
        let _ = writeln!(
            out,
            "_Durations in business hours: {} {} ({})_\n",
            escape_markdown(&hours.days),
            escape_markdown(&hours.hours),
            escape_markdown(&hours.zone)
        );
    }
    let _ = writeln!(
        out,
        "- **Issues:** {} opened, {} closed, {} open now",
        m.issues.opened, m.issues.closed, m.issues.open_now
    );
    let _ = writeln!(
        out,
        "- **Time to first response:** median {}, mean {}, p90 {} ({} answered, {} unanswered)",
        human(r.median_seconds),
        human(r.mean_seconds),
        human(r.p90_seconds),
        r.count,
        r.unanswered
    );
    let _ = writeln!(
        out,
        "- **Time to close:** median {}, mean {}, p90 {} ({} closed: {})",
        human(c.median_seconds),
        human(c.mean_seconds),
        human(c.p90_seconds),
        c.count,
        escape_markdown(&reasons(m))
    );
    let _ = writeln!(
        out,
        "- **Backlog:** {} open (`<1d` {}, `1-7d` {}, `7-30d` {}, `>30d` {})",
        m.backlog.open, ages.under_1d, ages.from_1d_to_7d, ages.from_7d_to_30d, ages.over_30d
    );
    if !report.groups.is_empty() {
        let _ = writeln!(
            out,
            "\n| {} | opened | closed | open | unanswered | first response (median) | close (median) |",
            escape_markdown(group_by)
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        for group in &report.groups {
            let g = &group.metrics;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                escape_markdown(&group.key),
                g.issues.opened,
                g.issues.closed,
                g.issues.open_now,
                g.time_to_first_response.unanswered,
                human(g.time_to_first_response.median_seconds),
                human(g.time_to_close.median_seconds)
            );
        }
    }
    out
}

const CSV_HEADER: &str = "scope,key,opened,closed,open_now,\
first_response_count,unanswered,first_response_mean_seconds,first_response_median_seconds,first_response_p90_seconds,\
close_count,close_mean_seconds,close_median_seconds,close_p90_seconds,closed_completed,closed_not_planned,\
backlog_open,backlog_under_1d,backlog_1_7d,backlog_7_30d,backlog_over_30d";

fn csv(report: &Report, group_by: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{CSV_HEADER}");
    csv_row(&mut out, "all", "", &report.metrics);
    for group in &report.groups {
        csv_row(&mut out, group_by, &group.key, &group.metrics);
    }
    out
}

fn csv_row(out: &mut String, scope: &str, key: &str, m: &Metrics) {
    let seconds = |value: Option<Seconds>| {
        value.map_or_else(String::new, |s| {
            serde_json::to_string(&s).unwrap_or_default()
        })
    };
    let (r, c, b) = (
        &m.time_to_first_response,
        &m.time_to_close,
        m.backlog.age_buckets,
    );
    let reason = |name: &str| c.state_reasons.get(name).copied().unwrap_or(0);
    let fields = [
        csv_field(scope),
        csv_field(key),
        m.issues.opened.to_string(),
        m.issues.closed.to_string(),
        m.issues.open_now.to_string(),
        r.count.to_string(),
        r.unanswered.to_string(),
        seconds(r.mean_seconds),
        seconds(r.median_seconds),
        seconds(r.p90_seconds),
        c.count.to_string(),
        seconds(c.mean_seconds),
        seconds(c.median_seconds),
        seconds(c.p90_seconds),
        reason("completed").to_string(),
        reason("not_planned").to_string(),
        m.backlog.open.to_string(),
        b.under_1d.to_string(),
        b.from_1d_to_7d.to_string(),
        b.from_7d_to_30d.to_string(),
        b.over_30d.to_string(),
    ];
    let _ = writeln!(out, "{}", fields.join(","));
}

/// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet does
/// not run a label as a formula.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::{IssueFacts, ReportRequest, build_report};

    #[test]
    fn durations_read_like_people_write_them() {
        let cases = [
            (0.0, "0s"),
            (45.0, "45s"),
            (44.6, "45s"),
            (60.0, "1m"),
            (303.0, "5m 3s"),
            (3600.0, "1h"),
            (11_520.0, "3h 12m"),
            (11_545.0, "3h 12m"),
            (86_400.0, "1d"),
            (187_200.0, "2d 4h"),
            (3_024_000.0, "35d"),
            (-90.0, "-1m 30s"),
        ];
        for (seconds, expected) in cases {
            assert_eq!(human_duration(seconds), expected, "{seconds}");
        }
    }

    fn sample() -> Report {
        let now = 1_769_904_000_000;
        let issue = IssueFacts {
            created_at: now - 187_200_000,
            closed_at: Some(now),
            state_reason: Some("completed".into()),
            first_response_at: Some(now - 187_200_000 + 11_520_000),
            groups: vec!["a|b, \"c\"".into()],
        };
        let query = ReportRequest {
            group_by: Some("label".into()),
            ..ReportRequest::default()
        }
        .parse(now)
        .unwrap();
        build_report(&query, &[issue], now)
    }

    #[test]
    fn table_and_markdown_show_human_durations() {
        let report = sample();
        let table = render(&report, Format::Table, Some("label"));
        assert!(table.contains("3h 12m"), "{table}");
        assert!(table.contains("2d 4h"), "{table}");
        assert!(table.contains("completed 1"), "{table}");
        let markdown = render(&report, Format::Markdown, Some("label"));
        assert!(
            markdown.contains("- **Time to first response:** median 3h 12m"),
            "{markdown}"
        );
        assert!(
            markdown.contains("| a\\|b, \"c\" | 1 | 1 | 0 | 0 | 3h 12m | 2d 4h |"),
            "{markdown}"
        );
    }

    #[test]
    fn says_when_durations_are_business_hours() {
        let mut report = sample();
        assert!(!render(&report, Format::Table, None).contains("business hours"));
        report.business_hours = Some(crate::analytics::BusinessHoursJson {
            zone: "America/New_York".into(),
            days: "Mon-Fri".into(),
            hours: "09:00-17:00".into(),
            holidays: Vec::new(),
        });
        let table = render(&report, Format::Table, None);
        assert!(
            table.contains("durations in business hours: Mon-Fri 09:00-17:00 (America/New_York)"),
            "{table}"
        );
        let markdown = render(&report, Format::Markdown, None);
        assert!(
            markdown.contains(
                "_Durations in business hours: Mon-Fri 09:00-17:00 (America/New\\_York)_"
            ),
            "{markdown}"
        );
    }

    #[test]
    fn csv_quotes_and_uses_seconds() {
        let csv = render(&sample(), Format::Csv, Some("label"));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(
            lines[1],
            "all,,1,1,0,1,0,11520,11520,11520,1,187200,187200,187200,1,0,0,0,0,0,0"
        );
        assert!(
            lines[2].starts_with("label,\"a|b, \"\"c\"\"\",1,"),
            "{}",
            lines[2]
        );
        assert_eq!(csv_field("=cmd()"), "'=cmd()");
    }

    #[test]
    fn json_is_the_report_itself() {
        let report = sample();
        let json: serde_json::Value =
            serde_json::from_str(&render(&report, Format::Json, None)).unwrap();
        assert_eq!(json, serde_json::to_value(&report).unwrap());
    }
}
