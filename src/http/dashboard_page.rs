//! The dashboard as HTML: escaped by hand, charts drawn on the server as SVG with a title and a
//! description (and the same numbers in tables), no script, styles from one versioned file.

use std::fmt::Write;

use crate::analytics::{WeekPoint, human_duration};
use crate::insights::{Dashboard, DashboardQuery, PERIODS};
use crate::time_util::format_ms;

/// Escapes text for HTML content and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

fn day(ms: i64) -> String {
    format_ms(ms).chars().take(10).collect()
}

fn duration(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "–".to_owned(), human_duration)
}

/// The frame every page shares.
pub fn layout(title: &str, css: &str, header_extra: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"{}\"></head>\
         <body><header><h1>herald · issue flow</h1>{header_extra}</header><main>{body}</main></body></html>\n",
        esc(title),
        esc(css)
    )
}

/// A page that only says something (an error, a refusal).
pub fn message_page(css: &str, title: &str, message: &str) -> String {
    layout(
        title,
        css,
        "",
        &format!(
            "<section><h2>{}</h2><p>{}</p></section>",
            esc(title),
            esc(message)
        ),
    )
}

/// The login form; `error` is shown above it.
pub fn login_page(css: &str, error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |error| {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(error))
    });
    layout(
        "herald · log in",
        css,
        "",
        &format!(
            "<section class=\"login\"><h2>Log in</h2>{error}\
             <form method=\"post\" action=\"/dashboard/login\">\
             <label for=\"token\">API token (<code>HERALD_API_TOKEN</code>)</label>\
             <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" required autofocus>\
             <button type=\"submit\">Log in</button></form>\
             <p class=\"note\">A cookie keeps you logged in for 7 days; the token itself is never stored in it.</p></section>"
        ),
    )
}

/// The dashboard page.
pub fn dashboard_page(
    data: &Dashboard,
    css: &str,
    business_hours_available: bool,
    logout: bool,
) -> String {
    let mut body = String::new();
    filters(&mut body, &data.query, business_hours_available);
    summary(&mut body, data);
    trends(&mut body, &data.weeks);
    unanswered(&mut body, data);
    health(&mut body, data);
    let header = if logout {
        "<form method=\"post\" action=\"/dashboard/logout\"><button class=\"plain\" type=\"submit\">Log out</button></form>"
    } else {
        ""
    };
    let header = format!(
        "<span class=\"muted\">as of {} UTC</span>{header}",
        esc(&format_ms(data.now_ms).replace('T', " ").replace('Z', ""))
    );
    layout("herald · issue flow", css, &header, &body)
}

fn filters(out: &mut String, query: &DashboardQuery, business_hours_available: bool) {
    let periods = PERIODS.iter().fold(String::new(), |mut options, weeks| {
        let selected = if *weeks == query.weeks {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            options,
            "<option value=\"{weeks}\"{selected}>last {weeks} weeks</option>"
        );
        options
    });
    let hours = if business_hours_available {
        let checked = if query.business_hours { " checked" } else { "" };
        format!(
            "<label class=\"check\"><input type=\"checkbox\" name=\"business_hours\" value=\"true\"{checked}> business hours</label>"
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<section aria-label=\"Filters\"><form class=\"filters\" method=\"get\" action=\"/dashboard\">\
         <label>Repository<input name=\"repo\" placeholder=\"OWNER/NAME\" value=\"{}\"></label>\
         <label>Label<input name=\"label\" placeholder=\"any\" value=\"{}\"></label>\
         <label>Period<select name=\"weeks\">{periods}</select></label>{hours}\
         <button type=\"submit\">Apply</button></form></section>",
        esc(query.repo.as_deref().unwrap_or("")),
        esc(query.label.as_deref().unwrap_or(""))
    );
}

fn summary(out: &mut String, data: &Dashboard) {
    let m = &data.summary.metrics;
    let closed: u64 = data.weeks.iter().map(|week| week.closed).sum();
    let backlog = data.weeks.last().map_or(0, |week| week.backlog);
    let cards = [
        ("opened", "opened", m.issues.opened.to_string()),
        ("closed", "closed", closed.to_string()),
        ("backlog", "open now", backlog.to_string()),
        (
            "first-response-median",
            "first response (median)",
            duration(m.time_to_first_response.median_seconds.map(|s| s.0)),
        ),
        (
            "unanswered",
            "unanswered",
            m.time_to_first_response.unanswered.to_string(),
        ),
        (
            "close-median",
            "time to close (median)",
            duration(m.time_to_close.median_seconds.map(|s| s.0)),
        ),
    ];
    let first = data.weeks.first().map_or(data.now_ms, |week| week.start_ms);
    let clock = if data.summary.business_hours.is_some() {
        "; durations in business hours"
    } else {
        ""
    };
    let _ = write!(
        out,
        "<section aria-labelledby=\"summary\"><h2 id=\"summary\">Since {}</h2><div class=\"cards\">",
        day(first)
    );
    for (key, label, value) in cards {
        let _ = write!(
            out,
            "<div class=\"card\" data-metric=\"{key}\"><div class=\"value\">{}</div><div class=\"label\">{label}</div></div>",
            esc(&value)
        );
    }
    let _ = write!(
        out,
        "</div><p class=\"note\">Opened, first response and close: issues created in the period; \
         closed: closes in the period, whenever the issue was opened{clock}.</p></section>"
    );
}

/// A chart's frame: 480×240 user units, plot area from x 66 to 472 and y 12 to 204.
const WIDTH: f64 = 480.0;
const LEFT: f64 = 66.0;
const RIGHT: f64 = 472.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 204.0;

/// A round top for an axis holding `max`.
fn axis_top(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10_f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn y_of(value: f64, top: f64) -> f64 {
    BOTTOM - (value / top) * (BOTTOM - TOP)
}

fn chart_open(out: &mut String, id: &str, title: &str, desc: &str) {
    let _ = write!(
        out,
        "<svg class=\"chart\" id=\"{id}\" viewBox=\"0 0 {WIDTH} 240\" role=\"img\" aria-labelledby=\"{id}-t {id}-d\">\
         <title id=\"{id}-t\">{}</title><desc id=\"{id}-d\">{}</desc>",
        esc(title),
        esc(desc)
    );
}

fn axes(out: &mut String, labels: &[String], top: f64, unit: &dyn Fn(f64) -> String) {
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{BOTTOM}\" x2=\"{RIGHT}\" y2=\"{BOTTOM}\"/>"
    );
    for fraction in [0.0, 0.5, 1.0] {
        let y = y_of(top * fraction, top);
        let _ = write!(
            out,
            "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{RIGHT}\" y2=\"{y:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 4.0,
            y + 4.0,
            esc(&unit(top * fraction))
        );
    }
    let slot = (RIGHT - LEFT) / labels.len().max(1) as f64;
    let every = labels.len().div_ceil(6).max(1);
    for (index, label) in labels.iter().enumerate() {
        if index % every == 0 {
            let x = LEFT + slot * (index as f64 + 0.5);
            let _ = write!(
                out,
                "<text x=\"{x:.1}\" y=\"222\" text-anchor=\"middle\">{}</text>",
                esc(label)
            );
        }
    }
}

/// Bars per label: side by side, or stacked.
fn bar_chart(
    out: &mut String,
    id: &str,
    title: &str,
    labels: &[String],
    series: &[(&str, Vec<f64>)],
    stacked: bool,
) {
    let totals: Vec<f64> = (0..labels.len())
        .map(|index| {
            let values = series.iter().map(|(_, values)| values[index]);
            if stacked {
                values.sum()
            } else {
                values.fold(0.0, f64::max)
            }
        })
        .collect();
    let top = axis_top(totals.iter().copied().fold(0.0, f64::max));
    let desc = series
        .iter()
        .map(|(name, values)| {
            let values: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
            format!("{name}: {}", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    chart_open(
        out,
        id,
        title,
        &format!(
            "{title}, per week from {}. {desc}.",
            labels.first().map_or("", String::as_str)
        ),
    );
    axes(out, labels, top, &|v| format!("{v}"));
    let slot = (RIGHT - LEFT) / labels.len().max(1) as f64;
    let width = if stacked {
        slot * 0.7
    } else {
        slot * 0.8 / series.len() as f64
    };
    for (index, label) in labels.iter().enumerate() {
        let mut base = 0.0;
        for (number, (name, values)) in series.iter().enumerate() {
            let value = values[index];
            let x = if stacked {
                LEFT + slot * index as f64 + slot * 0.15
            } else {
                LEFT + slot * index as f64 + slot * 0.1 + width * number as f64
            };
            let (from, to) = if stacked {
                (base, base + value)
            } else {
                (0.0, value)
            };
            base += value;
            let (y, height) = (y_of(to, top), y_of(from, top) - y_of(to, top));
            let _ = write!(
                out,
                "<rect class=\"s{number}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{width:.1}\" height=\"{height:.1}\"><title>{}: {} {value}</title></rect>",
                esc(label),
                esc(name)
            );
        }
    }
    out.push_str("</svg>");
    legend(out, series.iter().map(|(name, _)| *name));
}

/// Lines per series; a missing value breaks the line.
fn line_chart(
    out: &mut String,
    id: &str,
    title: &str,
    labels: &[String],
    series: &[(&str, Vec<Option<f64>>)],
) {
    let max = series
        .iter()
        .flat_map(|(_, values)| values.iter().flatten())
        .copied()
        .fold(0.0, f64::max)
        / 3600.0;
    let top = axis_top(max);
    let desc = series
        .iter()
        .map(|(name, values)| {
            let values: Vec<String> = values.iter().map(|v| duration(*v)).collect();
            format!("{name}: {}", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    chart_open(
        out,
        id,
        title,
        &format!(
            "{title}, per week from {}. {desc}.",
            labels.first().map_or("", String::as_str)
        ),
    );
    axes(out, labels, top, &|hours| human_duration(hours * 3600.0));
    let slot = (RIGHT - LEFT) / labels.len().max(1) as f64;
    for (number, (name, values)) in series.iter().enumerate() {
        let mut path = String::new();
        let mut pen_down = false;
        for (index, value) in values.iter().enumerate() {
            let x = LEFT + slot * (index as f64 + 0.5);
            match value {
                Some(seconds) => {
                    let y = y_of(seconds / 3600.0, top);
                    let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
                    pen_down = true;
                    let _ = write!(
                        out,
                        "<circle class=\"d{number}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\"><title>{}: {} {}</title></circle>",
                        esc(&labels[index]),
                        esc(name),
                        esc(&human_duration(*seconds))
                    );
                }
                None => pen_down = false,
            }
        }
        if !path.is_empty() {
            let _ = write!(out, "<path class=\"l{number}\" d=\"{}\"/>", path.trim_end());
        }
    }
    out.push_str("</svg>");
    legend(out, series.iter().map(|(name, _)| *name));
}

fn legend<'a>(out: &mut String, names: impl Iterator<Item = &'a str>) {
    out.push_str("<div class=\"legend\" aria-hidden=\"true\">");
    for (number, name) in names.enumerate() {
        let _ = write!(out, "<span class=\"k{number}\">{}</span>", esc(name));
    }
    out.push_str("</div>");
}

fn trends(out: &mut String, weeks: &[WeekPoint]) {
    let labels: Vec<String> = weeks
        .iter()
        .map(|week| day(week.start_ms)[5..].to_owned())
        .collect();
    let count =
        |f: fn(&WeekPoint) -> u64| -> Vec<f64> { weeks.iter().map(|w| f(w) as f64).collect() };
    out.push_str("<section aria-labelledby=\"trends\"><h2 id=\"trends\">Week by week</h2><div class=\"grid\">");
    out.push_str("<figure><figcaption>Opened and closed</figcaption>");
    bar_chart(
        out,
        "chart-flow",
        "Issues opened and closed per week",
        &labels,
        &[
            ("opened", count(|w| w.opened)),
            ("closed", count(|w| w.closed)),
        ],
        false,
    );
    out.push_str("</figure><figure><figcaption>Time to first response</figcaption>");
    line_chart(
        out,
        "chart-response",
        "Time to first response of each week's new issues",
        &labels,
        &[
            (
                "median",
                weeks.iter().map(|w| w.first_response_median).collect(),
            ),
            ("p90", weeks.iter().map(|w| w.first_response_p90).collect()),
        ],
    );
    out.push_str("</figure><figure><figcaption>Time to close</figcaption>");
    line_chart(
        out,
        "chart-close",
        "Time to close of each week's new issues",
        &labels,
        &[
            ("median", weeks.iter().map(|w| w.close_median).collect()),
            ("p90", weeks.iter().map(|w| w.close_p90).collect()),
        ],
    );
    out.push_str("</figure><figure><figcaption>Backlog by age</figcaption>");
    bar_chart(
        out,
        "chart-backlog",
        "Open issues at the end of each week, by age",
        &labels,
        &[
            ("<1d", count(|w| w.backlog_ages.under_1d)),
            ("1-7d", count(|w| w.backlog_ages.from_1d_to_7d)),
            ("7-30d", count(|w| w.backlog_ages.from_7d_to_30d)),
            (">30d", count(|w| w.backlog_ages.over_30d)),
        ],
        true,
    );
    out.push_str("</figure></div>");
    out.push_str(
        "<div class=\"table-wrap\"><table id=\"weeks\"><caption class=\"muted\">The charts' numbers</caption><thead><tr>\
         <th>week of</th><th>opened</th><th>closed</th><th>first response median</th><th>p90</th>\
         <th>close median</th><th>p90</th><th>open at end</th><th>&lt;1d</th><th>1-7d</th><th>7-30d</th><th>&gt;30d</th>\
         </tr></thead><tbody>",
    );
    for week in weeks {
        let a = week.backlog_ages;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            day(week.start_ms),
            week.opened,
            week.closed,
            duration(week.first_response_median),
            duration(week.first_response_p90),
            duration(week.close_median),
            duration(week.close_p90),
            week.backlog,
            a.under_1d,
            a.from_1d_to_7d,
            a.from_7d_to_30d,
            a.over_30d
        );
    }
    out.push_str("</tbody></table></div></section>");
}

/// A link only for http(s) addresses.
fn issue_link(url: Option<&str>, text: &str) -> String {
    match url {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            format!("<a href=\"{}\">{}</a>", esc(url), esc(text))
        }
        _ => esc(text),
    }
}

fn unanswered(out: &mut String, data: &Dashboard) {
    out.push_str("<section aria-labelledby=\"unanswered\"><h2 id=\"unanswered\">Oldest unanswered issues</h2>");
    if data.unanswered.is_empty() {
        out.push_str("<p class=\"muted\">Every open issue has an answer.</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"table-wrap\"><table id=\"unanswered-issues\"><thead><tr><th>issue</th><th class=\"text\">title</th><th>waiting</th></tr></thead><tbody>",
    );
    for issue in &data.unanswered {
        let name = format!("{}#{}", issue.repository, issue.number);
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"text\">{}</td><td>{}</td></tr>",
            issue_link(issue.html_url.as_deref(), &name),
            esc(&issue.title),
            human_duration(((data.now_ms - issue.created_at) / 1000) as f64)
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn health(out: &mut String, data: &Dashboard) {
    let health = &data.health;
    out.push_str("<section aria-labelledby=\"health\"><h2 id=\"health\">Delivery health</h2><div class=\"grid\"><figure><figcaption>Events received per hour</figcaption>");
    let labels: Vec<String> = (0..health.events_per_hour.len())
        .map(|hour| {
            let at = format_ms(health.since_ms + hour as i64 * 3_600_000);
            at.get(11..16).unwrap_or("").to_owned()
        })
        .collect();
    bar_chart(
        out,
        "chart-events",
        "Webhook events received per hour, last 24 hours (UTC)",
        &labels,
        &[(
            "events",
            health.events_per_hour.iter().map(|n| *n as f64).collect(),
        )],
        false,
    );
    out.push_str("</figure><div><div class=\"table-wrap\"><table id=\"destinations\"><thead><tr><th>destination</th><th>pending</th><th>failing</th><th>dead</th></tr></thead><tbody>");
    let mut dead = 0;
    for row in &health.destinations {
        dead += row.dead;
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&row.destination),
            row.pending,
            row.failing,
            row.dead
        );
    }
    if health.destinations.is_empty() {
        out.push_str("<tr><td colspan=\"4\" class=\"text muted\">No deliveries yet.</td></tr>");
    }
    out.push_str("</tbody></table></div>");
    let _ = write!(
        out,
        "<p class=\"note\">Pending: waiting for a first attempt; failing: failed at least once, retried on schedule; \
         dead: gave up ({dead} in all). <code>herald deliveries dead</code> lists the dead ones; \
         <code>herald deliveries retry --all</code> (or <code>herald deliveries retry ID</code>) queues them again.</p>"
    );
    out.push_str("</div></div></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn axes_end_on_round_numbers() {
        assert_eq!(axis_top(0.0) as i64, 1);
        assert_eq!(axis_top(3.0) as i64, 5);
        assert_eq!(axis_top(7.0) as i64, 10);
        assert_eq!(axis_top(12.0) as i64, 20);
        assert_eq!(axis_top(240.0) as i64, 250);
    }

    #[test]
    fn links_only_web_addresses() {
        assert_eq!(issue_link(Some("javascript:alert(1)"), "o/r#1"), "o/r#1");
        assert_eq!(
            issue_link(Some("https://github.com/o/r/issues/1"), "o/r#1"),
            "<a href=\"https://github.com/o/r/issues/1\">o/r#1</a>"
        );
    }
}
