//! GitHub's hook-deliveries API: the recent deliveries of a repository's or an organisation's
//! webhook (newest first, paginated by cursor) and the request to redeliver one of them.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::rest::{RestClient, RestError};
use crate::time_util::to_ms;

/// The most deliveries GitHub returns per page.
const PER_PAGE: u32 = 100;

/// Whose webhook it is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HookOwner {
    Repository { owner: String, name: String },
    Organization(String),
}

/// One webhook on GitHub: a repository's or an organisation's, by its numeric id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    owner: HookOwner,
    id: u64,
}

/// Why a hook's name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookNameError {
    #[error("expected the repository as OWNER/NAME, not {0:?}")]
    Repository(String),
    #[error(
        "expected an organisation's login (letters, digits and hyphens, at most 39), not {0:?}"
    )]
    Organization(String),
    #[error("the hook id must be a positive number (the end of the hook's settings URL)")]
    Id,
}

impl Hook {
    /// The hook `id` of the repository `full_name` (OWNER/NAME).
    pub fn repository(full_name: &str, id: u64) -> Result<Self, HookNameError> {
        if !crate::analytics::is_repository_name(full_name) {
            return Err(HookNameError::Repository(shorten(full_name)));
        }
        let (owner, name) = full_name.split_once('/').unwrap_or_default();
        Self::checked(
            HookOwner::Repository {
                owner: owner.to_owned(),
                name: name.to_owned(),
            },
            id,
        )
    }

    /// The hook `id` of the organisation `login`.
    pub fn organization(login: &str, id: u64) -> Result<Self, HookNameError> {
        let valid = !login.is_empty()
            && login.len() <= 39
            && login.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(HookNameError::Organization(shorten(login)));
        }
        Self::checked(HookOwner::Organization(login.to_owned()), id)
    }

    fn checked(owner: HookOwner, id: u64) -> Result<Self, HookNameError> {
        if id == 0 || i64::try_from(id).is_err() {
            return Err(HookNameError::Id);
        }
        Ok(Self { owner, id })
    }

    /// GitHub's numeric id, as webhooks carry it in `X-GitHub-Hook-ID`.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// What herald remembers requests under: `repos/OWNER/NAME/hooks/ID` or
    /// `orgs/ORG/hooks/ID`, lower-cased (GitHub's names are case-insensitive).
    pub fn key(&self) -> String {
        self.path().trim_start_matches('/').to_lowercase()
    }

    fn path(&self) -> String {
        match &self.owner {
            HookOwner::Repository { owner, name } => {
                format!("/repos/{owner}/{name}/hooks/{}", self.id)
            }
            HookOwner::Organization(org) => format!("/orgs/{org}/hooks/{}", self.id),
        }
    }

    /// The first page of the hook's deliveries, newest first.
    pub fn deliveries_url(&self, client: &RestClient) -> String {
        client.url(&format!("{}/deliveries?per_page={PER_PAGE}", self.path()))
    }

    /// Where to ask GitHub to redeliver the attempt `delivery_id` (its numeric `id`, not the
    /// guid).
    pub fn attempts_url(&self, client: &RestClient, delivery_id: i64) -> String {
        client.url(&format!(
            "{}/deliveries/{delivery_id}/attempts",
            self.path()
        ))
    }

    /// The permission a token needs to list deliveries and ask for redeliveries.
    pub fn permission(&self) -> &'static str {
        match self.owner {
            HookOwner::Repository { .. } => {
                "the admin:repo_hook scope (a fine-grained token: the repository permission \
                 \"Webhooks\", read and write)"
            }
            HookOwner::Organization(_) => {
                "the admin:org_hook scope (a fine-grained token: the organization permission \
                 \"Webhooks\", read and write)"
            }
        }
    }

    /// Why GitHub refused, in words, with the next step.
    pub fn explain(&self, error: &RestError) -> String {
        match error {
            RestError::Status {
                status: 404,
                message,
            } => format!(
                "GitHub answered 404 ({message}) for {self}: there is no such hook, or the token \
                 cannot see it. Check the hook id (the number at the end of the hook's settings \
                 URL) and that HERALD_GITHUB_TOKEN has {}",
                self.permission()
            ),
            RestError::Status {
                status: 401,
                message,
            } => format!(
                "GitHub refused the token (401 {message}): set HERALD_GITHUB_TOKEN to a valid \
                 token with {}",
                self.permission()
            ),
            RestError::Status {
                status: 403,
                message,
            } => format!(
                "GitHub refused access to {self} (403 {message}): HERALD_GITHUB_TOKEN needs {}",
                self.permission()
            ),
            RestError::Status { status, .. } if *status >= 500 => {
                format!("{error}: GitHub is having trouble; run again later")
            }
            RestError::Timeout | RestError::Transport(_) => format!(
                "{}: check HERALD_GITHUB_API_URL and the network, then run again",
                with_causes(error)
            ),
            RestError::RateLimited { .. } => format!("{error}; run again after it resets"),
            RestError::Decode(_) => {
                format!("{error}: is HERALD_GITHUB_API_URL the base of GitHub's REST API?")
            }
            RestError::Status { .. } => error.to_string(),
        }
    }
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            HookOwner::Repository { owner, name } => {
                write!(f, "hook {} of {owner}/{name}", self.id)
            }
            HookOwner::Organization(org) => {
                write!(f, "hook {} of the organisation {org}", self.id)
            }
        }
    }
}

/// The error and each of its causes, as `a: b: c`.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        let more = error.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = error.source();
    }
    text
}

fn shorten(text: &str) -> String {
    text.chars().take(64).collect()
}

/// One attempt GitHub made to deliver an event to the hook. The first attempt and each
/// redelivery share the `guid` and have their own `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookDelivery {
    /// This attempt's id, the one a redelivery is asked for.
    pub id: i64,
    /// The delivery (`X-GitHub-Delivery`), shared by all its attempts.
    pub guid: String,
    /// When GitHub made the attempt (Unix ms).
    pub delivered_at: i64,
    pub redelivery: bool,
    /// GitHub's words: `OK`, `failed to connect`, `Invalid HTTP Response: 503`…
    pub status: String,
    /// The receiver's HTTP status; 0 when it gave none.
    pub status_code: u16,
    pub event: String,
    pub action: Option<String>,
}

#[derive(Deserialize)]
struct RawDelivery {
    id: i64,
    guid: String,
    delivered_at: String,
    #[serde(default)]
    redelivery: bool,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    status_code: Option<u16>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    action: Option<String>,
}

impl HookDelivery {
    /// Reads one item of the deliveries list; the fields herald does not use may be anything.
    pub fn from_json(item: Value) -> Result<Self, String> {
        let raw: RawDelivery = serde_json::from_value(item)
            .map_err(|error| format!("unreadable delivery: {error}"))?;
        let delivered_at = OffsetDateTime::parse(&raw.delivered_at, &Rfc3339)
            .map_err(|_| format!("unreadable delivered_at {:?}", shorten(&raw.delivered_at)))?;
        Ok(Self {
            id: raw.id,
            guid: raw.guid,
            delivered_at: to_ms(delivered_at),
            redelivery: raw.redelivery,
            status: raw.status.unwrap_or_default(),
            status_code: raw.status_code.unwrap_or(0),
            event: raw.event.unwrap_or_default(),
            action: raw.action,
        })
    }

    /// Whether the receiver accepted it (herald answers 202, or 200 for a duplicate).
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }

    /// `issues.opened`, or the event alone.
    pub fn kind(&self) -> String {
        match &self.action {
            Some(action) => format!("{}.{action}", self.event),
            None => self.event.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn client() -> RestClient {
        let _ = rustls::crypto::ring::default_provider().install_default();
        RestClient::new("https://api.github.com", None, Duration::from_secs(1)).unwrap()
    }

    #[test]
    fn builds_repository_and_organisation_urls() {
        let client = client();
        let repo = Hook::repository("Acme/Widgets", 42).unwrap();
        assert_eq!(
            repo.deliveries_url(&client),
            "https://api.github.com/repos/Acme/Widgets/hooks/42/deliveries?per_page=100"
        );
        assert_eq!(
            repo.attempts_url(&client, 7),
            "https://api.github.com/repos/Acme/Widgets/hooks/42/deliveries/7/attempts"
        );
        assert_eq!(repo.key(), "repos/acme/widgets/hooks/42");
        let org = Hook::organization("acme", 9).unwrap();
        assert_eq!(
            org.deliveries_url(&client),
            "https://api.github.com/orgs/acme/hooks/9/deliveries?per_page=100"
        );
        assert_eq!(org.key(), "orgs/acme/hooks/9");
        assert_eq!(org.to_string(), "hook 9 of the organisation acme");
    }

    #[test]
    fn refuses_names_that_would_change_the_path() {
        for name in [
            "acme",
            "acme/widgets/x",
            "../x",
            "acme/..",
            "a b/c",
            "acme/w?x=1",
        ] {
            assert!(Hook::repository(name, 1).is_err(), "{name}");
        }
        for login in ["", "acme/x", "a.b", "acme?x", &"a".repeat(40)] {
            assert!(Hook::organization(login, 1).is_err(), "{login}");
        }
        assert_eq!(Hook::repository("acme/widgets", 0), Err(HookNameError::Id));
        assert_eq!(Hook::organization("acme", u64::MAX), Err(HookNameError::Id));
    }

    #[test]
    fn reads_githubs_delivery_items() {
        let item = json!({"id": 12_345_678, "guid": "0b989ba4-242f-11e5-81e1-c7b6966d2516",
            "delivered_at": "2019-06-03T00:57:16Z", "redelivery": false, "duration": 0.27,
            "status": "Invalid HTTP Response: 503", "status_code": 503, "event": "issues",
            "action": "opened", "installation_id": null, "repository_id": 1, "throttled_at": null});
        let delivery = HookDelivery::from_json(item).unwrap();
        assert_eq!(delivery.id, 12_345_678);
        assert_eq!(delivery.delivered_at, 1_559_523_436_000);
        assert_eq!(delivery.kind(), "issues.opened");
        assert!(!delivery.succeeded());
        let unreachable = json!({"id": 1, "guid": "g", "delivered_at": "2019-06-03T00:57:16Z",
            "status": "failed to connect", "status_code": 0, "event": "ping", "action": null});
        let unreachable = HookDelivery::from_json(unreachable).unwrap();
        assert_eq!(
            (unreachable.status_code, unreachable.kind()),
            (0, "ping".into())
        );
        let accepted = json!({"id": 2, "guid": "g", "delivered_at": "2019-06-03T00:57:16Z",
            "status_code": 202});
        assert!(HookDelivery::from_json(accepted).unwrap().succeeded());
        assert!(HookDelivery::from_json(json!({"id": 3, "guid": "g"})).is_err());
        assert!(
            HookDelivery::from_json(json!({"id": 3, "guid": "g", "delivered_at": "yesterday"}))
                .is_err()
        );
    }

    #[test]
    fn explains_refusals_with_the_next_step() {
        let hook = Hook::repository("acme/widgets", 42).unwrap();
        let not_found = hook.explain(&RestError::Status {
            status: 404,
            message: "Not Found".into(),
        });
        assert!(not_found.contains("no such hook"), "{not_found}");
        assert!(not_found.contains("admin:repo_hook"), "{not_found}");
        let bad_token = hook.explain(&RestError::Status {
            status: 401,
            message: "Bad credentials".into(),
        });
        assert!(bad_token.contains("set HERALD_GITHUB_TOKEN"), "{bad_token}");
        let org = Hook::organization("acme", 1).unwrap();
        let forbidden = org.explain(&RestError::Status {
            status: 403,
            message: "Must have admin rights".into(),
        });
        assert!(forbidden.contains("admin:org_hook"), "{forbidden}");
    }
}
