//! A local stand-in for GitHub's REST API: serves pages of issues and comments with `Link`
//! headers, checks every request's exact shape (path, query, headers, token), can be told to
//! fail or rate-limit a page, and notes any request that came before a rate limit's reset.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const ISSUES_QUERY: &str = "state=all&per_page=100&sort=created&direction=asc";
const COMMENTS_QUERY: &str = "per_page=100&sort=created&direction=asc";

/// Which list a request was for (or, `Issue(N)`, which single issue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum List {
    Issues,
    Comments,
    Issue(i64),
}

/// What GitHub answers for one issue asked for by number.
#[derive(Debug, Clone)]
pub enum ItemAnswer {
    /// 404 or 410: deleted.
    Status(u16),
    /// 301 to the issue's new home (`owner/name`, number), which answers with it.
    MovedTo(&'static str, i64),
}

/// What to answer, once, instead of a page.
#[derive(Debug, Clone, Copy)]
pub enum Scripted {
    Status(u16),
    /// 403 with `X-RateLimit-Remaining: 0` and a reset this far ahead; asking again before the
    /// reset is noted as a violation unless `strict` is false.
    RateLimited {
        reset_in: Duration,
        strict: bool,
    },
    /// 429 with `Retry-After` seconds; asking again sooner is a violation.
    RetryAfter(u64),
    /// Never answers (until the client gives up).
    Hang,
}

#[derive(Default)]
struct FakeState {
    owner_repo: String,
    token: Option<String>,
    issues: Mutex<Vec<Vec<Value>>>,
    comments: Mutex<Vec<Vec<Value>>>,
    items: Mutex<HashMap<i64, ItemAnswer>>,
    address: Mutex<String>,
    script: Mutex<HashMap<(List, usize), VecDeque<Scripted>>>,
    not_before: Mutex<HashMap<(List, usize), SystemTime>>,
    requests: Mutex<Vec<(List, usize)>>,
    violations: Mutex<Vec<String>>,
}

pub struct FakeGithub {
    pub url: String,
    state: Arc<FakeState>,
    _server: JoinHandle<()>,
}

impl FakeGithub {
    /// Serves `issues` and `comments` (each a list of pages) for `owner_repo`, expecting
    /// `Authorization: Bearer <token>` exactly when a token is given.
    pub async fn start(
        owner_repo: &str,
        token: Option<&str>,
        issues: Vec<Vec<Value>>,
        comments: Vec<Vec<Value>>,
    ) -> Self {
        let state = Arc::new(FakeState {
            owner_repo: owner_repo.to_lowercase(),
            token: token.map(str::to_owned),
            issues: Mutex::new(issues),
            comments: Mutex::new(comments),
            ..FakeState::default()
        });
        let app = Router::new().fallback(serve).with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        state.address.lock().unwrap().clone_from(&url);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            state,
            _server: server,
        }
    }

    /// Answers the next request for `page` (1-based) of `list` with `reply` instead.
    pub fn script(&self, list: List, page: usize, reply: Scripted) {
        self.state
            .script
            .lock()
            .unwrap()
            .entry((list, page))
            .or_default()
            .push_back(reply);
    }

    /// Serves these pages from now on (GitHub after deletions and transfers).
    pub fn set_pages(&self, issues: Vec<Vec<Value>>, comments: Vec<Vec<Value>>) {
        *self.state.issues.lock().unwrap() = issues;
        *self.state.comments.lock().unwrap() = comments;
    }

    /// How `GET /repos/OWNER/NAME/issues/{number}` answers (default: 404).
    pub fn answer_item(&self, number: i64, answer: ItemAnswer) {
        self.state.items.lock().unwrap().insert(number, answer);
    }

    /// Every request so far, as (list, page).
    pub fn requests(&self) -> Vec<(List, usize)> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests that broke the contract (wrong shape, or too soon after a rate limit).
    pub fn violations(&self) -> Vec<String> {
        self.state.violations.lock().unwrap().clone()
    }
}

/// The list and page a request is for, once its exact shape is checked.
fn check_request(
    state: &FakeState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(List, &'static str, usize), String> {
    let path = uri.path().to_lowercase();
    let prefix = format!("/repos/{}/issues", state.owner_repo);
    let (list, base_query, pages) = if path == prefix {
        (
            List::Issues,
            ISSUES_QUERY,
            state.issues.lock().unwrap().len(),
        )
    } else if path == format!("{prefix}/comments") {
        (
            List::Comments,
            COMMENTS_QUERY,
            state.comments.lock().unwrap().len(),
        )
    } else if let Some(number) = path
        .strip_prefix(&format!("{prefix}/"))
        .and_then(|number| number.parse::<i64>().ok())
        && uri.query().is_none()
    {
        (List::Issue(number), "", 0)
    } else {
        return Err(format!("unexpected path {}", uri.path()));
    };
    let query = uri.query().unwrap_or("");
    let page = if matches!(list, List::Issue(_)) || query == base_query {
        1
    } else {
        match query
            .strip_prefix(base_query)
            .and_then(|rest| rest.strip_prefix("&page="))
            .and_then(|page| page.parse::<usize>().ok())
        {
            Some(page) if page >= 2 && page <= pages => page,
            _ => return Err(format!("unexpected query {query:?}")),
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("accept") != Some("application/vnd.github+json") {
        return Err(format!("accept header {:?}", header("accept")));
    }
    if header("x-github-api-version") != Some("2022-11-28") {
        return Err("missing X-GitHub-Api-Version".into());
    }
    if !header("user-agent").is_some_and(|agent| agent.starts_with("herald/")) {
        return Err(format!("user-agent {:?}", header("user-agent")));
    }
    let expected_auth = state.token.as_ref().map(|token| format!("Bearer {token}"));
    if header("authorization") != expected_auth.as_deref() {
        return Err(format!("authorization {:?}", header("authorization")));
    }
    Ok((list, base_query, page))
}

/// The scripted answer, remembering when the page may be asked for again.
fn scripted_reply(state: &FakeState, list: List, page: usize, reply: Scripted) -> Response {
    let now = SystemTime::now();
    let json = [("content-type", "application/json")];
    match reply {
        Scripted::Status(code) => (
            StatusCode::from_u16(code).unwrap(),
            json,
            r#"{"message":"Server Error"}"#,
        )
            .into_response(),
        Scripted::RateLimited { reset_in, strict } => {
            // GitHub's reset is whole epoch seconds: round up so it is never early.
            let reset = (now + reset_in).duration_since(UNIX_EPOCH).unwrap();
            let reset_secs = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
            if strict {
                state
                    .not_before
                    .lock()
                    .unwrap()
                    .insert((list, page), UNIX_EPOCH + Duration::from_secs(reset_secs));
            }
            (
                StatusCode::FORBIDDEN,
                [
                    ("x-ratelimit-remaining", "0".to_owned()),
                    ("x-ratelimit-reset", reset_secs.to_string()),
                ],
                r#"{"message":"API rate limit exceeded"}"#,
            )
                .into_response()
        }
        Scripted::Hang => unreachable!("answered by waiting forever"),
        Scripted::RetryAfter(seconds) => {
            state
                .not_before
                .lock()
                .unwrap()
                .insert((list, page), now + Duration::from_secs(seconds));
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", seconds.to_string())],
                r#"{"message":"You have exceeded a secondary rate limit"}"#,
            )
                .into_response()
        }
    }
}

/// A moved issue at its new address: the issue JSON with the new repository.
fn moved_issue(state: &FakeState, uri: &Uri) -> Option<Response> {
    let path = uri.path();
    let moved = state
        .items
        .lock()
        .unwrap()
        .values()
        .find_map(|answer| match answer {
            ItemAnswer::MovedTo(repo, number)
                if path == format!("/repos/{repo}/issues/{number}") =>
            {
                Some((*repo, *number))
            }
            _ => None,
        })?;
    let (repo, number) = moved;
    let body = serde_json::json!({
        "number": number, "title": "moved", "state": "open",
        "user": {"login": "someone", "id": 1, "type": "User"},
        "created_at": "2020-01-01T00:00:00Z", "updated_at": "2020-02-01T00:00:00Z",
        "repository_url": format!("{}/repos/{repo}", state.address.lock().unwrap()),
    });
    Some((StatusCode::OK, axum::Json(body)).into_response())
}

async fn serve(State(state): State<Arc<FakeState>>, uri: Uri, headers: HeaderMap) -> Response {
    if let Some(response) = moved_issue(&state, &uri) {
        return response;
    }
    let (list, base_query, page) = match check_request(&state, &uri, &headers) {
        Ok(found) => found,
        Err(message) => {
            state.violations.lock().unwrap().push(message.clone());
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    let now = SystemTime::now();
    let not_before = state.not_before.lock().unwrap().remove(&(list, page));
    if let Some(not_before) = not_before
        && now < not_before
    {
        state.violations.lock().unwrap().push(format!(
            "{list:?} page {page} asked again {:?} before the rate limit allowed",
            not_before.duration_since(now).unwrap_or_default()
        ));
    }
    state.requests.lock().unwrap().push((list, page));
    let scripted = state
        .script
        .lock()
        .unwrap()
        .get_mut(&(list, page))
        .and_then(VecDeque::pop_front);
    match scripted {
        Some(Scripted::Hang) => return std::future::pending::<Response>().await,
        Some(reply) => return scripted_reply(&state, list, page, reply),
        None => {}
    }
    if let List::Issue(number) = list {
        let answer = state.items.lock().unwrap().get(&number).cloned();
        return match answer {
            Some(ItemAnswer::MovedTo(repo, moved)) => {
                let address = state.address.lock().unwrap().clone();
                (
                    StatusCode::MOVED_PERMANENTLY,
                    [("location", format!("{address}/repos/{repo}/issues/{moved}"))],
                )
                    .into_response()
            }
            Some(ItemAnswer::Status(code)) => (
                StatusCode::from_u16(code).unwrap(),
                r#"{"message":"Not Found"}"#,
            )
                .into_response(),
            None => (StatusCode::NOT_FOUND, r#"{"message":"Not Found"}"#).into_response(),
        };
    }
    let pages = match list {
        List::Issues => state.issues.lock().unwrap().clone(),
        List::Comments => state.comments.lock().unwrap().clone(),
        List::Issue(_) => unreachable!("answered above"),
    };
    let address = state.address.lock().unwrap().clone();
    let link = |page: usize| format!("<{address}{}?{base_query}&page={page}>", uri.path());
    let mut links = Vec::new();
    if page < pages.len() {
        links.push(format!("{}; rel=\"next\"", link(page + 1)));
        links.push(format!("{}; rel=\"last\"", link(pages.len())));
    }
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", link(page - 1)));
    }
    let mut response = (
        StatusCode::OK,
        [("x-ratelimit-remaining", "4999")],
        axum::Json(Value::Array(pages[page - 1].clone())),
    )
        .into_response();
    if !links.is_empty() {
        response
            .headers_mut()
            .insert("link", links.join(", ").parse().unwrap());
    }
    response
}
