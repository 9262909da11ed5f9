//! A local stand-in for GitHub's hook-deliveries API: lists each hook's deliveries newest first
//! with cursor pagination (`Link: <…&cursor=v1_ID>; rel="next"`), accepts redelivery requests,
//! checks every request's exact shape (method, path, query, headers, token, empty body), and can
//! be told to fail, hang or rate-limit the next request of a kind.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const TOKEN: &str = "ghp_redeliver-test-token";

/// Which kind of request a scripted answer replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    List,
    Redeliver,
}

/// What to answer, once, instead of the real thing.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// This status with GitHub's `{"message": …}`.
    Status(u16, &'static str),
    /// 429 with `Retry-After` seconds; asking again sooner is a violation.
    RetryAfter(u64),
    /// Never answers (until the client gives up).
    Hang,
    /// The page as usual, but its next link points to another host.
    ForeignLink,
}

/// One request the fake answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A page of `hook`'s deliveries, after `cursor`.
    List { hook: String, cursor: Option<i64> },
    /// A redelivery of the attempt `id` of `hook`.
    Redeliver { hook: String, id: i64 },
}

#[derive(Default)]
struct FakeState {
    address: String,
    /// Deliveries per hook path (`/repos/acme/widgets/hooks/42`), newest first.
    hooks: Mutex<HashMap<String, Vec<Value>>>,
    page_size: Mutex<usize>,
    script: Mutex<VecDeque<(Kind, Scripted)>>,
    not_before: Mutex<Option<SystemTime>>,
    /// The status code of the attempt GitHub makes after accepting a redelivery; none: GitHub
    /// has not made it yet.
    redelivery_answer: Mutex<Option<u16>>,
    next_id: AtomicI64,
    requests: Mutex<Vec<Request>>,
    /// When each redelivery request arrived.
    redelivery_times: Mutex<Vec<Instant>>,
    violations: Mutex<Vec<String>>,
}

pub struct FakeGithub {
    pub url: String,
    state: Arc<FakeState>,
    _server: JoinHandle<()>,
}

/// `ago` before now, as GitHub writes times (whole seconds, UTC).
pub fn time_ago(ago: Duration) -> String {
    let at = OffsetDateTime::now_utc() - ago;
    at.replace_nanosecond(0).unwrap().format(&Rfc3339).unwrap()
}

pub fn minutes(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// One attempt as GitHub lists it.
pub fn attempt(id: i64, guid: &str, ago: Duration, status_code: u16) -> Value {
    let status = match status_code {
        0 => "failed to connect".to_owned(),
        200..=299 => "OK".to_owned(),
        code => format!("Invalid HTTP Response: {code}"),
    };
    json!({
        "id": id, "guid": guid, "delivered_at": time_ago(ago), "redelivery": false,
        "duration": 0.27, "status": status, "status_code": status_code, "event": "issues",
        "action": "opened", "installation_id": null, "repository_id": 1, "throttled_at": null
    })
}

impl FakeGithub {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(FakeState {
            address: url.clone(),
            page_size: Mutex::new(100),
            next_id: AtomicI64::new(1_000_000),
            ..FakeState::default()
        });
        let app = Router::new().fallback(serve).with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            state,
            _server: server,
        }
    }

    /// Serves `hook` (`/repos/OWNER/NAME/hooks/ID` or `/orgs/ORG/hooks/ID`) with these
    /// attempts, newest first.
    pub fn hook(&self, hook: &str, attempts: Vec<Value>) {
        self.state
            .hooks
            .lock()
            .unwrap()
            .insert(hook.to_owned(), attempts);
    }

    /// Items per page (GitHub: `per_page`, at most 100).
    pub fn page_size(&self, size: usize) {
        *self.state.page_size.lock().unwrap() = size;
    }

    /// Answers the next request of `kind` with `reply` instead.
    pub fn script(&self, kind: Kind, reply: Scripted) {
        self.state.script.lock().unwrap().push_back((kind, reply));
    }

    /// After accepting a redelivery, GitHub makes the new attempt, answered with `status_code`.
    pub fn redeliveries_answered(&self, status_code: u16) {
        *self.state.redelivery_answer.lock().unwrap() = Some(status_code);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    /// How many pages were listed.
    pub fn lists(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| matches!(r, Request::List { .. }))
            .count()
    }

    /// The attempt ids redeliveries were asked for, in order.
    pub fn redelivered(&self) -> Vec<i64> {
        self.requests()
            .iter()
            .filter_map(|r| match r {
                Request::Redeliver { id, .. } => Some(*id),
                Request::List { .. } => None,
            })
            .collect()
    }

    /// When each redelivery request arrived, in order.
    pub fn redelivery_times(&self) -> Vec<Instant> {
        self.state.redelivery_times.lock().unwrap().clone()
    }

    /// Requests that broke the contract.
    pub fn violations(&self) -> Vec<String> {
        self.state.violations.lock().unwrap().clone()
    }
}

fn github_error(status: u16, message: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        json!({"message": message, "documentation_url": "https://docs.github.com/rest"})
            .to_string(),
    )
        .into_response()
}

/// The request, once its shape is checked: `Err` answers it (a violation is noted when the
/// shape is wrong; a bad token or an unknown hook is answered as GitHub would).
#[expect(
    clippy::result_large_err,
    reason = "one answer per request in a test fake; boxing it buys nothing"
)]
fn check(
    state: &FakeState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Request, Response> {
    let violation = |message: String| {
        state.violations.lock().unwrap().push(message.clone());
        (StatusCode::BAD_REQUEST, message).into_response()
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("accept") != Some("application/vnd.github+json") {
        return Err(violation(format!("accept {:?}", header("accept"))));
    }
    if header("x-github-api-version") != Some("2022-11-28") {
        return Err(violation("missing X-GitHub-Api-Version".into()));
    }
    if !header("user-agent").is_some_and(|agent| agent.starts_with("herald/")) {
        return Err(violation(format!("user-agent {:?}", header("user-agent"))));
    }
    match header("authorization") {
        Some(auth) if auth == format!("Bearer {TOKEN}") => {}
        Some(auth) if auth.starts_with("Bearer ") => {
            return Err(github_error(401, "Bad credentials"));
        }
        other => return Err(violation(format!("authorization {other:?}"))),
    }
    let path = uri.path();
    let hooks = state.hooks.lock().unwrap();
    let Some((hook, rest)) = hooks
        .keys()
        .find_map(|hook| Some((hook.clone(), path.strip_prefix(hook.as_str())?)))
    else {
        return Err(github_error(404, "Not Found"));
    };
    let query = uri.query().unwrap_or("");
    if *method == Method::GET && rest == "/deliveries" {
        let cursor = match query.strip_prefix("per_page=100") {
            Some("") => None,
            Some(more) => match more
                .strip_prefix("&cursor=v1_")
                .and_then(|id| id.parse().ok())
            {
                Some(id) => Some(id),
                None => return Err(violation(format!("unexpected query {query:?}"))),
            },
            None => return Err(violation(format!("unexpected query {query:?}"))),
        };
        return Ok(Request::List { hook, cursor });
    }
    let id = rest
        .strip_prefix("/deliveries/")
        .and_then(|rest| rest.strip_suffix("/attempts"))
        .and_then(|id| id.parse::<i64>().ok());
    match id {
        Some(id) if *method == Method::POST => {
            if !query.is_empty() || !body.is_empty() || header("content-length") != Some("0") {
                return Err(violation(format!(
                    "a redelivery has no query or body: {query:?}, {} bytes, content-length {:?}",
                    body.len(),
                    header("content-length")
                )));
            }
            if !hooks[&hook].iter().any(|item| item["id"] == id) {
                return Err(violation(format!("redelivery of unknown attempt {id}")));
            }
            Ok(Request::Redeliver { hook, id })
        }
        _ => Err(violation(format!("unexpected {method} {path}"))),
    }
}

async fn serve(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match check(&state, &method, &uri, &headers, &body) {
        Ok(request) => request,
        Err(response) => return response,
    };
    if let Some(not_before) = state.not_before.lock().unwrap().take()
        && SystemTime::now() < not_before
    {
        state
            .violations
            .lock()
            .unwrap()
            .push("asked again before Retry-After allowed".into());
    }
    state.requests.lock().unwrap().push(request.clone());
    let kind = match request {
        Request::List { .. } => Kind::List,
        Request::Redeliver { .. } => {
            state.redelivery_times.lock().unwrap().push(Instant::now());
            Kind::Redeliver
        }
    };
    let scripted = {
        let mut script = state.script.lock().unwrap();
        let position = script.iter().position(|(k, _)| *k == kind);
        position.and_then(|position| script.remove(position))
    };
    let mut foreign_link = false;
    match scripted.map(|(_, reply)| reply) {
        Some(Scripted::Status(status, message)) => return github_error(status, message),
        Some(Scripted::RetryAfter(seconds)) => {
            *state.not_before.lock().unwrap() =
                Some(SystemTime::now() + Duration::from_secs(seconds));
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", seconds.to_string())],
                r#"{"message":"You have exceeded a secondary rate limit"}"#,
            )
                .into_response();
        }
        Some(Scripted::Hang) => return std::future::pending::<Response>().await,
        Some(Scripted::ForeignLink) => foreign_link = true,
        None => {}
    }
    match request {
        Request::List { hook, cursor } => page(&state, &hook, cursor, foreign_link),
        Request::Redeliver { hook, id } => redeliver(&state, &hook, id),
    }
}

fn page(state: &FakeState, hook: &str, cursor: Option<i64>, foreign_link: bool) -> Response {
    let hooks = state.hooks.lock().unwrap();
    let attempts = &hooks[hook];
    let start = match cursor {
        None => 0,
        Some(id) => match attempts.iter().position(|item| item["id"] == id) {
            Some(position) => position + 1,
            None => return github_error(422, "Invalid cursor"),
        },
    };
    let size = *state.page_size.lock().unwrap();
    let items: Vec<Value> = attempts.iter().skip(start).take(size).cloned().collect();
    let mut response = (
        StatusCode::OK,
        [("x-ratelimit-remaining", "4999")],
        axum::Json(Value::Array(items.clone())),
    )
        .into_response();
    if start + size < attempts.len() {
        let last = items.last().unwrap()["id"].as_i64().unwrap();
        let base = if foreign_link {
            "https://elsewhere.example"
        } else {
            &state.address
        };
        let link = format!(
            "<{base}{hook}/deliveries?per_page=100&cursor=v1_{last}>; rel=\"next\", \
             <{base}{hook}/deliveries?per_page=100>; rel=\"first\""
        );
        response.headers_mut().insert("link", link.parse().unwrap());
    }
    response
}

/// Accepts the redelivery; when told to, makes the new attempt at once (newest first).
fn redeliver(state: &FakeState, hook: &str, id: i64) -> Response {
    if let Some(status_code) = *state.redelivery_answer.lock().unwrap() {
        let mut hooks = state.hooks.lock().unwrap();
        let attempts = hooks.get_mut(hook).unwrap();
        let original = attempts.iter().find(|item| item["id"] == id).unwrap();
        let guid = original["guid"].as_str().unwrap().to_owned();
        let new_id = state.next_id.fetch_add(1, Ordering::Relaxed);
        let mut new = attempt(new_id, &guid, Duration::ZERO, status_code);
        new["redelivery"] = true.into();
        attempts.insert(0, new);
    }
    (StatusCode::ACCEPTED, axum::Json(json!({}))).into_response()
}
