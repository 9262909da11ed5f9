//! What the routes say about one outbox row of a Slack destination: whether it matched only
//! because a label was just added (`late`), and the options of the routes that matched (thread,
//! mention, template, reminder, coalescing). The router is pure and evaluated again here, from the
//! stored payload, so nothing but the row has to be kept.

use std::sync::Arc;
use std::time::Duration;

use crate::business_hours::BusinessHours;
use crate::config::{BusinessHoursConfig, DestinationKind, RouteConfig, parse_duration};
use crate::github::IndexedEvent;
use crate::routes::{Route, Router, Verdict};
use crate::store::StoredEvent;

use super::template::Templates;

/// Longest coalescing window a route may ask for.
const MAX_COALESCE: Duration = Duration::from_secs(600);

/// The routing a Slack sink consults, shared by every Slack destination of an instance.
#[derive(Debug, Clone)]
pub struct SlackRouting {
    pub router: Arc<Router>,
    pub templates: Arc<Templates>,
}

impl SlackRouting {
    /// Compiles the routes' templates (the error names the route).
    pub fn new(router: Arc<Router>) -> Result<Self, String> {
        let templates = Templates::compile(&router)?;
        Ok(Self {
            router,
            templates: Arc::new(templates),
        })
    }

    /// Whether a route to `destination` has label conditions, so a label added later can
    /// announce an issue there (only then are announcements remembered).
    pub fn may_announce_late(&self, destination: &str) -> bool {
        self.router.routes.iter().any(|route| {
            route.to.iter().any(|to| &**to == destination)
                && (route.config.labels_any.is_some()
                    || route.config.labels_all.is_some()
                    || route.config.labels_none.is_some())
        })
    }

    /// The routes that sent `event` to `destination`.
    pub fn of(&self, destination: &str, event: &StoredEvent) -> RowRoute<'_> {
        let Ok((indexed, _)) = IndexedEvent::parse(event.payload.as_bytes()) else {
            return RowRoute::default();
        };
        let subject = indexed.subject(&event.event);
        let Some(matched) = self
            .router
            .route(&subject)
            .into_iter()
            .find(|m| &*m.destination == destination)
        else {
            return RowRoute::default();
        };
        let routes: Vec<(usize, &Route)> = matched
            .routes
            .iter()
            .filter_map(|index| Some((*index, self.router.routes.get(*index)?)))
            .collect();
        let newly = routes
            .iter()
            .filter(|(_, route)| route.verdict(&subject) == Verdict::Matched { late: true })
            .map(|(index, _)| *index)
            .collect();
        RowRoute {
            late: matched.late,
            routes,
            newly,
        }
    }
}

/// The routes that matched one row.
#[derive(Debug, Default)]
pub struct RowRoute<'r> {
    /// Every route matched only because a label was just added: the issue is new here.
    pub late: bool,
    pub routes: Vec<(usize, &'r Route)>,
    /// The routes that hold only since this event added a label (`P0` added to a `bug`).
    pub newly: Vec<usize>,
}

/// A reminder as a route asks for it.
#[derive(Debug, Clone)]
pub struct RemindPolicy {
    pub after: Duration,
    pub business_hours: Option<BusinessHoursConfig>,
    pub mention: Option<String>,
}

impl RowRoute<'_> {
    fn configs(&self) -> impl Iterator<Item = &RouteConfig> {
        self.routes.iter().map(|(_, route)| &route.config)
    }

    /// The distinct mentions of the matching routes, space separated.
    pub fn mention(&self) -> Option<String> {
        let mut mentions: Vec<&str> = Vec::new();
        for mention in self.configs().filter_map(|c| c.mention.as_deref()) {
            let mention = mention.trim();
            if !mention.is_empty() && !mentions.contains(&mention) {
                mentions.push(mention);
            }
        }
        (!mentions.is_empty()).then(|| mentions.join(" "))
    }

    /// The mentions of the routes this event newly made hold (a label they need was just
    /// added): what pings inside a thread.
    pub fn newly_mention(&self) -> Option<String> {
        let mut mentions: Vec<&str> = Vec::new();
        for (index, route) in &self.routes {
            if let (true, Some(mention)) =
                (self.newly.contains(index), route.config.mention.as_deref())
            {
                let mention = mention.trim();
                if !mention.is_empty() && !mentions.contains(&mention) {
                    mentions.push(mention);
                }
            }
        }
        (!mentions.is_empty()).then(|| mentions.join(" "))
    }

    /// Later events about an issue go into its thread: what the routes say, `true` unless one
    /// of them says `thread = false`.
    pub fn thread(&self) -> bool {
        !self.configs().any(|c| c.thread == Some(false))
    }

    /// A close in a thread is also sent to the channel.
    pub fn also_send_to_channel(&self) -> bool {
        self.configs().any(|c| c.also_send_to_channel == Some(true))
    }

    /// The first matching route with a template.
    pub fn template(&self) -> Option<usize> {
        self.routes
            .iter()
            .find(|(_, route)| route.config.template.is_some())
            .map(|(index, _)| *index)
    }

    /// The first matching route's reminder.
    pub fn remind(&self) -> Option<RemindPolicy> {
        self.routes.iter().find_map(|(_, route)| {
            let after = parse_duration(route.config.remind_after.as_deref()?).ok()?;
            Some(RemindPolicy {
                after,
                business_hours: route.config.business_hours.clone(),
                mention: route.config.mention.clone(),
            })
        })
    }

    /// The longest coalescing window of the matching routes.
    pub fn coalesce(&self) -> Option<Duration> {
        self.configs()
            .filter_map(|c| parse_duration(c.coalesce.as_deref()?).ok())
            .max()
            .filter(|window| !window.is_zero())
    }
}

/// Checks the Slack options of a route (mention, template, reminder, coalescing); one message per
/// problem, naming the route and the key.
pub fn check_route(route: &Route) -> Vec<String> {
    let config = &route.config;
    let name = &route.name;
    let mut problems = Vec::new();
    if let Some(mention) = &config.mention
        && let Err(error) = check_mention(mention)
    {
        problems.push(format!("{name}: mention: {error}"));
    }
    if let Some(source) = &config.template
        && let Err(error) = Templates::check(name, source)
    {
        problems.push(error);
    }
    if let Some(after) = &config.remind_after {
        match parse_duration(after) {
            Ok(after) if after >= Duration::from_secs(60) => {}
            Ok(_) => problems.push(format!(
                "{name}: remind_after: {after:?} is shorter than a minute"
            )),
            Err(error) => problems.push(format!("{name}: remind_after: {error}")),
        }
    }
    if let Some(hours) = &config.business_hours {
        if config.remind_after.is_none() {
            problems.push(format!(
                "{name}: business_hours applies to remind_after, which is not set"
            ));
        }
        if let Err(error) = BusinessHours::parse(hours) {
            problems.push(format!("{name}: business_hours: {error}"));
        }
    }
    if let Some(window) = &config.coalesce {
        match parse_duration(window) {
            Ok(window) if window <= MAX_COALESCE => {}
            Ok(_) => problems.push(format!(
                "{name}: coalesce: {window:?} is longer than 10m (messages would wait that long)"
            )),
            Err(error) => problems.push(format!("{name}: coalesce: {error}")),
        }
    }
    problems
}

/// Every route's Slack options ([`check_route`], [`check_route_kinds`]).
pub fn check_routes(routes: &[Route], known: &[(String, DestinationKind)]) -> Vec<String> {
    routes
        .iter()
        .flat_map(|route| {
            let mut problems = check_route(route);
            problems.extend(check_route_kinds(route, known));
            problems
        })
        .collect()
}

/// Options only a bot destination can honour (reminders, coalescing), on a route that sends to
/// none: said at start-up rather than silently ignored.
pub fn check_route_kinds(route: &Route, known: &[(String, DestinationKind)]) -> Vec<String> {
    let to_bot = route.to.iter().any(|to| {
        known
            .iter()
            .any(|(name, kind)| name.as_str() == &**to && *kind == DestinationKind::SlackBot)
    });
    let config = &route.config;
    let mut problems = Vec::new();
    for (key, set) in [
        ("remind_after", config.remind_after.is_some()),
        ("coalesce", config.coalesce.is_some()),
    ] {
        if set && !to_bot {
            problems.push(format!(
                "{}: {key} needs a slack-bot destination in `to` (incoming webhooks cannot thread, \
                 update or be asked what they posted)",
                route.name
            ));
        }
    }
    problems
}

/// A mention in Slack syntax: `<!subteam^ID>`, `<@U…>`/`<@W…>`, `<!here>`, `<!channel>`, or
/// several separated by spaces.
pub fn check_mention(text: &str) -> Result<(), String> {
    let hint = "write it in Slack syntax: `<!subteam^S0123ABC>` for a user group, `<@U0123ABC>` \
                for a user, `<!here>` or `<!channel>`";
    let parts: Vec<&str> = text.split_whitespace().collect();
    if parts.is_empty() {
        return Err(format!("empty; {hint}"));
    }
    for part in parts {
        let inner = part
            .strip_prefix('<')
            .and_then(|rest| rest.strip_suffix('>'))
            .ok_or_else(|| format!("{part:?} is not a Slack mention; {hint}"))?;
        let id_ok = |id: &str| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        };
        let ok = match inner {
            "!here" | "!channel" | "!everyone" => true,
            _ => {
                if let Some(id) = inner.strip_prefix("!subteam^") {
                    id_ok(id)
                } else if let Some(id) = inner.strip_prefix('@') {
                    (id.starts_with('U') || id.starts_with('W')) && id_ok(id)
                } else {
                    false
                }
            }
        };
        if !ok {
            return Err(format!("{part:?} is not a Slack mention; {hint}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_must_be_slack_syntax() {
        for good in ["<!subteam^S0123>", "<@U024BE7LH>", "<!here> <@W1>"] {
            assert_eq!(check_mention(good), Ok(()), "{good}");
        }
        for bad in ["@oncall", "<!subteam^s01>", "<@U1|x>", "<https://x>", ""] {
            let error = check_mention(bad).unwrap_err();
            assert!(error.contains("Slack syntax"), "{bad}: {error}");
        }
    }

    #[test]
    fn route_options_are_checked_with_the_key() {
        let config: RouteConfig = toml::from_str(
            "name = 'p0'\nto = ['t']\nmention = '@oncall'\nremind_after = 'soon'\ncoalesce = '1h'\n\
             business_hours = { zone = 'Mars/Olympus', days = 'Mon-Fri', hours = '09:00-17:00' }\n\
             template = '{{ oops'",
        )
        .unwrap();
        let problems = check_route(&Route::new(0, &config).unwrap());
        let keys: Vec<&str> = problems
            .iter()
            .map(|p| p.split(':').nth(1).unwrap().trim())
            .collect();
        assert_eq!(
            keys,
            vec![
                "mention",
                "template",
                "remind_after",
                "business_hours",
                "coalesce"
            ],
            "{problems:?}"
        );
    }
}
