//! Routes: which destinations get an event. A pure table over the fields intake indexes
//! (repository, event and action, labels, author), evaluated on the request path to write one
//! outbox row per destination, and again by sinks and `herald routes test` to explain a match.

use std::sync::Arc;

use globset::{GlobSet, GlobSetBuilder};

use crate::config::{DestinationKind, RouteConfig};

/// What a route looks at, borrowed from an indexed event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    /// `X-GitHub-Event`.
    pub event: &'a str,
    pub action: Option<&'a str>,
    /// `owner/name`.
    pub repository: Option<&'a str>,
    /// The labels of the issue or pull request the event is about.
    pub labels: &'a [String],
    /// Who wrote what the event is about: the comment's author for comments, else the or
    /// pull request's, else the sender.
    pub author: Option<&'a str>,
    pub author_id: Option<i64>,
    pub author_is_bot: bool,
    /// `issues.labeled` / `pull_request.labeled`: the label just added.
    pub added_label: Option<&'a str>,
    /// The issue or pull request is open (false when unknown).
    pub open: bool,
}

/// One destination an event goes to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub destination: Arc<str>,
    /// Indexes (in the file's order) of the routes that matched for this destination; empty for
    /// a built-in route (analytics, BigQuery without a file, today's environment settings).
    pub routes: Vec<usize>,
    /// Matched only because a label the route needs was just added to an open issue: present it
    /// as the issue being new to this destination.
    pub late: bool,
}

/// A checked route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    repositories: Option<GlobSet>,
    events: Option<Vec<EventRule>>,
    labels_any: Option<Vec<String>>,
    labels_all: Option<Vec<String>>,
    labels_none: Option<Vec<String>>,
    authors_include: Option<Vec<Author>>,
    authors_exclude: Vec<Author>,
    include_bots: bool,
    pub to: Vec<Arc<str>>,
    /// The route as written, for the options sinks read (thread, mention, template, …).
    pub config: RouteConfig,
}

/// `event` or `event.action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRule {
    pub event: String,
    pub action: Option<String>,
}

impl EventRule {
    pub fn parse(text: &str) -> Self {
        match text.trim().split_once('.') {
            Some((event, action)) => Self {
                event: event.to_owned(),
                action: Some(action.to_owned()),
            },
            None => Self {
                event: text.trim().to_owned(),
                action: None,
            },
        }
    }

    pub fn matches(&self, event: &str, action: Option<&str>) -> bool {
        self.event == event
            && self
                .action
                .as_deref()
                .is_none_or(|wanted| Some(wanted) == action)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Author {
    Id(i64),
    Login(String),
}

impl Author {
    fn parse(text: &str) -> Self {
        match text.trim().parse::<i64>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Login(text.trim().to_lowercase()),
        }
    }

    fn is(&self, subject: &Subject<'_>) -> bool {
        match self {
            Self::Id(id) => subject.author_id == Some(*id),
            Self::Login(login) => subject
                .author
                .is_some_and(|author| author.eq_ignore_ascii_case(login)),
        }
    }
}

/// Why a route did or did not match, for `herald routes test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Matched { late: bool },
    Skipped(String),
}

impl Route {
    /// Checks a route from the file; `index` names it when it has no name. Errors say which key
    /// is wrong.
    pub fn new(index: usize, config: &RouteConfig) -> Result<Self, String> {
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| format!("routes[{index}]"));
        let repositories = match &config.repositories {
            None => None,
            Some(globs) => {
                let mut set = GlobSetBuilder::new();
                for glob in globs {
                    let compiled = globset::GlobBuilder::new(glob)
                        .case_insensitive(true)
                        .literal_separator(true)
                        .build()
                        .map_err(|error| format!("{name}: repositories: {glob:?}: {error}"))?;
                    set.add(compiled);
                }
                Some(
                    set.build()
                        .map_err(|error| format!("{name}: repositories: {error}"))?,
                )
            }
        };
        if config.to.is_empty() {
            return Err(format!("{name}: `to` must name at least one destination"));
        }
        let lower = |list: &Option<Vec<String>>| {
            list.as_ref()
                .map(|list| list.iter().map(|item| item.trim().to_lowercase()).collect())
        };
        Ok(Self {
            repositories,
            events: config
                .events
                .as_ref()
                .map(|events| events.iter().map(|event| EventRule::parse(event)).collect()),
            labels_any: lower(&config.labels_any),
            labels_all: lower(&config.labels_all),
            labels_none: lower(&config.labels_none),
            authors_include: config
                .authors_include
                .as_ref()
                .map(|list| list.iter().map(|author| Author::parse(author)).collect()),
            authors_exclude: config
                .authors_exclude
                .iter()
                .flatten()
                .map(|author| Author::parse(author))
                .collect(),
            include_bots: config.include_bots,
            to: config
                .to
                .iter()
                .map(|name| Arc::from(name.as_str()))
                .collect(),
            config: config.clone(),
            name,
        })
    }

    /// Whether `subject` matches, and if not, the first condition that failed.
    pub fn verdict(&self, subject: &Subject<'_>) -> Verdict {
        if let Some(globs) = &self.repositories {
            match subject.repository {
                Some(repository) if globs.is_match(repository) => {}
                Some(repository) => {
                    return Verdict::Skipped(format!(
                        "repository {repository} matches none of {:?}",
                        self.config.repositories.as_deref().unwrap_or_default()
                    ));
                }
                None => return Verdict::Skipped("the event has no repository".into()),
            }
        }
        if !self.include_bots && subject.author_is_bot {
            return Verdict::Skipped(format!(
                "the author {} is a bot (include_bots = false)",
                subject.author.unwrap_or("?")
            ));
        }
        if let Some(include) = &self.authors_include
            && !include.iter().any(|author| author.is(subject))
        {
            return Verdict::Skipped(format!(
                "the author {} is not in authors_include",
                subject.author.unwrap_or("?")
            ));
        }
        if self.authors_exclude.iter().any(|author| author.is(subject)) {
            return Verdict::Skipped(format!(
                "the author {} is in authors_exclude",
                subject.author.unwrap_or("?")
            ));
        }
        let labels: Vec<String> = subject
            .labels
            .iter()
            .map(|label| label.to_lowercase())
            .collect();
        let labels_hold = self.labels_fail(&labels);
        let event_holds = self.events.as_ref().is_none_or(|rules| {
            rules
                .iter()
                .any(|rule| rule.matches(subject.event, subject.action))
        });
        match (event_holds, labels_hold) {
            (true, None) => Verdict::Matched { late: false },
            (true, Some(reason)) => Verdict::Skipped(reason),
            (false, _) if self.late_match(subject, &labels) => Verdict::Matched { late: true },
            (false, _) => Verdict::Skipped(format!(
                "{} is not in events {:?}",
                event_name(subject),
                self.config.events.as_deref().unwrap_or_default()
            )),
        }
    }

    /// The first label condition that fails, if any.
    fn labels_fail(&self, labels: &[String]) -> Option<String> {
        let has = |wanted: &String| labels.contains(wanted);
        if let Some(any) = &self.labels_any
            && !any.iter().any(has)
        {
            return Some(format!("none of labels_any {any:?} is on the item"));
        }
        if let Some(all) = &self.labels_all
            && let Some(missing) = all.iter().find(|label| !has(label))
        {
            return Some(format!("labels_all: {missing:?} is not on the item"));
        }
        if let Some(none) = &self.labels_none
            && let Some(present) = none.iter().find(|label| has(label))
        {
            return Some(format!("labels_none: {present:?} is on the item"));
        }
        None
    }

    /// A label just added to an open item makes a route with label conditions that listens for
    /// `opened` hold now, where it did not before: the item is new to this route.
    fn late_match(&self, subject: &Subject<'_>, labels: &[String]) -> bool {
        let (Some(added), true) = (subject.added_label, subject.open) else {
            return false;
        };
        if subject.action != Some("labeled") || !self.has_label_conditions() {
            return false;
        }
        let listens_for_opened = self.events.as_ref().is_none_or(|rules| {
            rules
                .iter()
                .any(|rule| rule.matches(subject.event, Some("opened")))
        });
        if !listens_for_opened || self.labels_fail(labels).is_some() {
            return false;
        }
        let added = added.to_lowercase();
        let before: Vec<String> = labels.iter().filter(|l| **l != added).cloned().collect();
        self.labels_fail(&before).is_some()
    }

    fn has_label_conditions(&self) -> bool {
        self.labels_any.is_some() || self.labels_all.is_some() || self.labels_none.is_some()
    }
}

fn event_name(subject: &Subject<'_>) -> String {
    match subject.action {
        Some(action) => format!("{}.{action}", subject.event),
        None => subject.event.to_owned(),
    }
}

/// A destination every event of some kinds goes to, whatever the routes say.
#[derive(Debug, Clone)]
pub struct BuiltIn {
    pub destination: Arc<str>,
    /// Empty: every event.
    pub events: Vec<EventRule>,
}

/// The routing table: the file's routes (or today's environment settings as one route) and the
/// built-in destinations.
#[derive(Debug, Clone, Default)]
pub struct Router {
    pub routes: Vec<Route>,
    pub built_in: Vec<BuiltIn>,
}

impl Router {
    /// The destinations `subject` goes to, each once, in the order first matched.
    pub fn route(&self, subject: &Subject<'_>) -> Vec<RouteMatch> {
        let mut matches: Vec<RouteMatch> = Vec::new();
        for built_in in &self.built_in {
            if built_in.events.is_empty()
                || built_in
                    .events
                    .iter()
                    .any(|rule| rule.matches(subject.event, subject.action))
            {
                add(&mut matches, &built_in.destination, None, false);
            }
        }
        for (index, route) in self.routes.iter().enumerate() {
            if let Verdict::Matched { late } = route.verdict(subject) {
                for destination in &route.to {
                    add(&mut matches, destination, Some(index), late);
                }
            }
        }
        matches
    }

    /// Every route's verdict on `subject`, in order, for `herald routes test`.
    pub fn explain(&self, subject: &Subject<'_>) -> Vec<(&Route, Verdict)> {
        self.routes
            .iter()
            .map(|route| (route, route.verdict(subject)))
            .collect()
    }

    /// The routes that send `subject` to `destination` (for the options a sink reads).
    pub fn routes_to<'r>(&'r self, destination: &str, subject: &Subject<'_>) -> Vec<&'r Route> {
        self.routes
            .iter()
            .filter(|route| route.to.iter().any(|to| &**to == destination))
            .filter(|route| matches!(route.verdict(subject), Verdict::Matched { .. }))
            .collect()
    }

    /// Checks that every route names a configured destination.
    pub fn check_destinations(&self, known: &[(String, DestinationKind)]) -> Result<(), String> {
        for route in &self.routes {
            for to in &route.to {
                if !known.iter().any(|(name, _)| name.as_str() == &**to) {
                    let names: Vec<&str> = known.iter().map(|(name, _)| name.as_str()).collect();
                    return Err(format!(
                        "{}: `to` names {to:?}, which is not a destination (configured: {})",
                        route.name,
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ));
                }
            }
        }
        Ok(())
    }
}

fn add(matches: &mut Vec<RouteMatch>, destination: &Arc<str>, route: Option<usize>, late: bool) {
    match matches
        .iter_mut()
        .find(|existing| existing.destination == *destination)
    {
        Some(existing) => {
            existing.routes.extend(route);
            // A regular match wins over a late one: the event itself is wanted.
            existing.late &= late;
        }
        None => matches.push(RouteMatch {
            destination: Arc::clone(destination),
            routes: route.into_iter().collect(),
            late,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(text: &str) -> Route {
        let config: RouteConfig = toml::from_str(text).unwrap();
        Route::new(0, &config).unwrap()
    }

    fn subject<'a>(event: &'a str, action: Option<&'a str>, labels: &'a [String]) -> Subject<'a> {
        Subject {
            event,
            action,
            repository: Some("Octo-Org/app"),
            labels,
            author: Some("alice"),
            author_id: Some(7),
            open: true,
            ..Subject::default()
        }
    }

    fn labels(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn a_table_of_conditions() {
        let bug = labels(&["Bug"]);
        let none = labels(&[]);
        let cases: Vec<(&str, Subject<'_>, bool)> = vec![
            ("to = ['t']", subject("push", None, &none), true),
            (
                "repositories = ['octo-org/*']\nto = ['t']",
                subject("issues", Some("opened"), &none),
                true,
            ),
            (
                "repositories = ['other/*']\nto = ['t']",
                subject("issues", Some("opened"), &none),
                false,
            ),
            (
                "events = ['issues.opened']\nto = ['t']",
                subject("issues", Some("closed"), &none),
                false,
            ),
            (
                "events = ['issues']\nto = ['t']",
                subject("issues", Some("closed"), &none),
                true,
            ),
            (
                "labels_any = ['bug', 'P0']\nto = ['t']",
                subject("issues", Some("opened"), &bug),
                true,
            ),
            (
                "labels_any = ['P0']\nto = ['t']",
                subject("issues", Some("opened"), &bug),
                false,
            ),
            (
                "labels_all = ['bug', 'P0']\nto = ['t']",
                subject("issues", Some("opened"), &bug),
                false,
            ),
            (
                "labels_none = ['bug']\nto = ['t']",
                subject("issues", Some("opened"), &bug),
                false,
            ),
            (
                "authors_exclude = ['ALICE']\nto = ['t']",
                subject("issues", Some("opened"), &none),
                false,
            ),
            (
                "authors_exclude = ['7']\nto = ['t']",
                subject("issues", Some("opened"), &none),
                false,
            ),
            (
                "authors_include = ['bob']\nto = ['t']",
                subject("issues", Some("opened"), &none),
                false,
            ),
        ];
        for (text, subject, expected) in cases {
            let verdict = route(text).verdict(&subject);
            assert_eq!(
                matches!(verdict, Verdict::Matched { .. }),
                expected,
                "{text}: {verdict:?}"
            );
        }
    }

    #[test]
    fn bots_are_left_out_unless_asked() {
        let none = labels(&[]);
        let mut by_bot = subject("issues", Some("opened"), &none);
        by_bot.author_is_bot = true;
        assert!(matches!(
            route("to = ['t']").verdict(&by_bot),
            Verdict::Skipped(reason) if reason.contains("bot")
        ));
        assert_eq!(
            route("include_bots = true\nto = ['t']").verdict(&by_bot),
            Verdict::Matched { late: false }
        );
    }

    #[test]
    fn a_label_added_later_matches_once_as_late() {
        let route = route("events = ['issues.opened']\nlabels_any = ['bug']\nto = ['t']");
        let now = labels(&["bug", "ui"]);
        let mut labeled = subject("issues", Some("labeled"), &now);
        labeled.added_label = Some("bug");
        assert_eq!(route.verdict(&labeled), Verdict::Matched { late: true });
        // Another label added to an issue that already matched: nothing new.
        labeled.added_label = Some("ui");
        assert!(matches!(route.verdict(&labeled), Verdict::Skipped(_)));
        // A closed issue is not announced.
        labeled.added_label = Some("bug");
        labeled.open = false;
        assert!(matches!(route.verdict(&labeled), Verdict::Skipped(_)));
    }

    #[test]
    fn each_destination_once_and_built_ins_first() {
        let routes = vec![
            route("events = ['issues']\nto = ['triage', 'all']"),
            route("to = ['all']"),
        ];
        let router = Router {
            routes,
            built_in: vec![BuiltIn {
                destination: Arc::from("analytics"),
                events: vec![EventRule::parse("issues")],
            }],
        };
        let none = labels(&[]);
        let matches = router.route(&subject("issues", Some("opened"), &none));
        let names: Vec<(&str, Vec<usize>)> = matches
            .iter()
            .map(|m| (&*m.destination, m.routes.clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("analytics", vec![]),
                ("triage", vec![0]),
                ("all", vec![0, 1])
            ]
        );
    }

    #[test]
    fn bad_routes_are_refused_with_the_key() {
        let config: RouteConfig = toml::from_str("repositories = ['a/[']\nto = ['t']").unwrap();
        let error = Route::new(3, &config).unwrap_err();
        assert!(error.starts_with("routes[3]: repositories"), "{error}");
        let config: RouteConfig = toml::from_str("to = []").unwrap();
        assert!(Route::new(0, &config).unwrap_err().contains("`to`"));
    }
}
