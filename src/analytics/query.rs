//! What a report is asked for, parsed the same way from CLI flags and from API query
//! parameters, so `herald report` and `GET /api/metrics/issues` cannot disagree.

use std::fmt;
use std::str::FromStr;

use super::window::{Window, WindowError, parse_since, parse_until};

/// How issues are split into `groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Repo,
    Label,
    Author,
    Assignee,
}

impl GroupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Repo => "repo",
            Self::Label => "label",
            Self::Author => "author",
            Self::Assignee => "assignee",
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for GroupBy {
    type Err = QueryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "repo" => Ok(Self::Repo),
            "label" => Ok(Self::Label),
            "author" => Ok(Self::Author),
            "assignee" => Ok(Self::Assignee),
            _ => Err(QueryError::GroupBy(text.chars().take(64).collect())),
        }
    }
}

/// The filters as typed: every field optional text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportRequest {
    pub since: Option<String>,
    pub until: Option<String>,
    pub repo: Option<String>,
    pub label: Option<String>,
    pub group_by: Option<String>,
}

/// The filters, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportQuery {
    pub window: Window,
    /// `OWNER/NAME`, compared without regard to case as GitHub does.
    pub repo: Option<String>,
    /// A label name, compared without regard to case as GitHub does.
    pub label: Option<String>,
    pub group_by: Option<GroupBy>,
}

/// Why a request was refused; messages are safe to return to API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Window(#[from] WindowError),
    #[error("invalid repo {0:?}: expected OWNER/NAME")]
    Repo(String),
    #[error("invalid label: must not be empty")]
    Label,
    #[error("invalid group_by {0:?}: expected repo, label, author or assignee")]
    GroupBy(String),
}

impl ReportRequest {
    /// Checks every filter. Without `since` the window starts at the Unix epoch (all history);
    /// without `until` it ends at `now_ms`.
    pub fn parse(&self, now_ms: i64) -> Result<ReportQuery, QueryError> {
        let since = match non_empty(self.since.as_deref()) {
            Some(text) => parse_since(text, now_ms)?,
            None => 0,
        };
        let until = match non_empty(self.until.as_deref()) {
            Some(text) => parse_until(text, now_ms)?,
            None => now_ms,
        };
        let repo = match self.repo.as_deref().map(str::trim) {
            None => None,
            Some(repo) if is_repository_name(repo) => Some(repo.to_owned()),
            Some(repo) => return Err(QueryError::Repo(repo.chars().take(64).collect())),
        };
        let label = match self.label.as_deref().map(str::trim) {
            None => None,
            Some("") => return Err(QueryError::Label),
            Some(label) => Some(label.to_owned()),
        };
        let group_by = non_empty(self.group_by.as_deref())
            .map(str::parse)
            .transpose()?;
        Ok(ReportQuery {
            window: Window::new(since, until)?,
            repo,
            label,
            group_by,
        })
    }
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.map(str::trim).filter(|text| !text.is_empty())
}

/// `OWNER/NAME` with both parts made of the characters GitHub allows (and no `..`, since the
/// name goes into API paths).
pub fn is_repository_name(text: &str) -> bool {
    let allowed = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part.len() <= 100
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    matches!(text.split_once('/'), Some((owner, name)) if allowed(owner) && allowed(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_769_904_000_000;

    #[test]
    fn defaults_to_all_history_until_now() {
        let query = ReportRequest::default().parse(NOW).unwrap();
        assert_eq!(query.window, Window::new(0, NOW).unwrap());
        assert_eq!(
            (query.repo, query.label, query.group_by),
            (None, None, None)
        );
    }

    #[test]
    fn parses_every_filter() {
        let request = ReportRequest {
            since: Some("2026-01-01".into()),
            until: Some("2026-01-31".into()),
            repo: Some("Codertocat/Hello-World".into()),
            label: Some(" good first issue ".into()),
            group_by: Some("assignee".into()),
        };
        let query = request.parse(NOW).unwrap();
        assert_eq!(query.window, Window::new(1_767_225_600_000, NOW).unwrap());
        assert_eq!(query.repo.as_deref(), Some("Codertocat/Hello-World"));
        assert_eq!(query.label.as_deref(), Some("good first issue"));
        assert_eq!(query.group_by, Some(GroupBy::Assignee));
    }

    #[test]
    fn refuses_bad_filters_with_a_reason() {
        let bad = [
            ReportRequest {
                since: Some("tomorrow".into()),
                ..ReportRequest::default()
            },
            ReportRequest {
                since: Some("2026-02-01".into()),
                until: Some("2026-01-01".into()),
                ..ReportRequest::default()
            },
            ReportRequest {
                repo: Some("just-a-name".into()),
                ..ReportRequest::default()
            },
            ReportRequest {
                repo: Some("a/b/c".into()),
                ..ReportRequest::default()
            },
            ReportRequest {
                repo: Some("../etc".into()),
                ..ReportRequest::default()
            },
            ReportRequest {
                label: Some("  ".into()),
                ..ReportRequest::default()
            },
            ReportRequest {
                group_by: Some("colour".into()),
                ..ReportRequest::default()
            },
        ];
        for request in bad {
            assert!(request.parse(NOW).is_err(), "{request:?}");
        }
        assert_eq!(
            ReportRequest {
                group_by: Some("colour".into()),
                ..ReportRequest::default()
            }
            .parse(NOW)
            .unwrap_err()
            .to_string(),
            "invalid group_by \"colour\": expected repo, label, author or assignee"
        );
    }
}
