//! A local fake of Slack's Web API: `chat.postMessage`, `chat.update`, `conversations.history`
//! and `conversations.replies`. It checks the bot token and the channel on every call, keeps the
//! messages (with their metadata and threads) as Slack would, records every call, and replays a
//! script of answers for `chat.postMessage` (then `ok`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::helpers::wait_until;

pub const TOKEN: &str = "xoxb-test-token";
pub const CHANNEL: &str = "C0TRIAGE";
/// A second channel the bot is in.
pub const OTHER_CHANNEL: &str = "C0ISSUES";

fn known_channel(channel: &Value) -> bool {
    channel == CHANNEL || channel == OTHER_CHANNEL
}

/// What the fake answers to one `chat.postMessage`.
#[derive(Debug, Clone)]
pub enum Answer {
    /// `{"ok": false, "error": CODE}` with HTTP 200.
    Refuse(&'static str),
    /// HTTP 429 with `Retry-After`.
    RateLimited(u64),
    /// HTTP status with an empty body.
    Status(u16),
    /// Posts the message, then never answers (a timeout after it arrived).
    PostThenHang,
}

/// One message as Slack keeps it.
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Value,
    pub metadata: Value,
    pub broadcast: bool,
}

impl Message {
    /// A thread's parent, or a message not in a thread.
    pub fn is_top_level(&self) -> bool {
        self.thread_ts.as_ref().is_none_or(|t| *t == self.ts)
    }

    pub fn role(&self) -> &str {
        self.metadata["event_payload"]["role"]
            .as_str()
            .unwrap_or("")
    }
}

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The JSON body, or the query as an object.
    pub params: Value,
}

#[derive(Default)]
struct FakeState {
    script: Mutex<VecDeque<Answer>>,
    messages: Mutex<Vec<Message>>,
    calls: Mutex<Vec<Call>>,
    problems: Mutex<Vec<String>>,
    next_ts: Mutex<u64>,
}

/// The fake; stops with the test.
pub struct FakeSlackApi {
    pub url: String,
    state: Arc<FakeState>,
    _server: JoinHandle<()>,
}

impl FakeSlackApi {
    pub async fn start() -> Self {
        Self::with_script(Vec::new()).await
    }

    pub async fn with_script(script: Vec<Answer>) -> Self {
        let state = Arc::new(FakeState {
            script: Mutex::new(script.into()),
            next_ts: Mutex::new(0),
            ..FakeState::default()
        });
        let app = Router::new()
            .route("/api/{method}", axum::routing::post(post).get(get))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            state,
            _server: server,
        }
    }

    /// Queues answers for the next `chat.postMessage` calls.
    pub fn script(&self, answers: Vec<Answer>) {
        self.state.script.lock().unwrap().extend(answers);
    }

    pub fn messages(&self) -> Vec<Message> {
        self.state.messages.lock().unwrap().clone()
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.state
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|call| call.method == method)
            .cloned()
            .collect()
    }

    /// Requests that broke the rules (wrong token, wrong channel, unknown thread): a test fails
    /// on any.
    pub fn problems(&self) -> Vec<String> {
        self.state.problems.lock().unwrap().clone()
    }

    pub fn assert_no_problems(&self) {
        let problems = self.problems();
        assert!(
            problems.is_empty(),
            "the fake Slack saw bad requests: {problems:?}"
        );
    }

    pub async fn wait_for_messages(&self, count: usize) -> Vec<Message> {
        wait_until(&format!("Slack holds {count} messages"), || async {
            self.messages().len() >= count
        })
        .await;
        self.messages()
    }

    pub async fn wait_for_calls(&self, method: &str, count: usize) -> Vec<Call> {
        wait_until(&format!("Slack got {count} {method} calls"), || async {
            self.calls(method).len() >= count
        })
        .await;
        self.calls(method)
    }

    /// The thread's parents (top-level messages with the role `parent`).
    pub fn parents(&self) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.is_top_level() && m.role() == "parent")
            .collect()
    }

    /// The replies in the thread of `parent_ts`, oldest first.
    pub fn replies(&self, parent_ts: &str) -> Vec<Message> {
        self.messages()
            .into_iter()
            .filter(|m| m.thread_ts.as_deref() == Some(parent_ts) && m.ts != parent_ts)
            .collect()
    }

    /// The current version of a message.
    pub fn message(&self, ts: &str) -> Option<Message> {
        self.messages().into_iter().find(|m| m.ts == ts)
    }
}

fn problem(state: &FakeState, text: String) {
    state.problems.lock().unwrap().push(text);
}

fn check_token(state: &FakeState, method: &str, headers: &HeaderMap) -> bool {
    let expected = format!("Bearer {TOKEN}");
    let ok = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !ok {
        problem(state, format!("{method}: missing or wrong bot token"));
    }
    ok
}

fn ok(body: Value) -> Response {
    let mut body = body;
    body["ok"] = json!(true);
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn refuse(code: &str) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({ "ok": false, "error": code })),
    )
        .into_response()
}

async fn post(
    State(state): State<Arc<FakeState>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let params: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.calls.lock().unwrap().push(Call {
        method: method.clone(),
        params: params.clone(),
    });
    if !check_token(&state, &method, &headers) {
        return refuse("invalid_auth");
    }
    let json_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        problem(&state, format!("{method}: not sent as JSON"));
    }
    if !known_channel(&params["channel"]) {
        problem(&state, format!("{method}: channel {}", params["channel"]));
        return refuse("channel_not_found");
    }
    match method.as_str() {
        "chat.postMessage" => post_message(&state, params).await,
        "chat.update" => {
            let ts = params["ts"].as_str().unwrap_or_default();
            let mut messages = state.messages.lock().unwrap();
            match messages
                .iter_mut()
                .find(|m| m.ts == ts && params["channel"] == m.channel.as_str())
            {
                Some(message) => {
                    params["text"]
                        .as_str()
                        .unwrap_or_default()
                        .clone_into(&mut message.text);
                    message.blocks = params["blocks"].clone();
                    ok(json!({ "channel": params["channel"], "ts": ts }))
                }
                None => {
                    drop(messages);
                    problem(&state, format!("chat.update of unknown message {ts}"));
                    refuse("message_not_found")
                }
            }
        }
        other => {
            problem(&state, format!("unexpected POST {other}"));
            refuse("unknown_method")
        }
    }
}

async fn post_message(state: &Arc<FakeState>, params: Value) -> Response {
    let answer = state.script.lock().unwrap().pop_front();
    match answer {
        Some(Answer::Refuse(code)) => return refuse(code),
        Some(Answer::RateLimited(seconds)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", seconds.to_string())],
                axum::Json(json!({ "ok": false, "error": "ratelimited" })),
            )
                .into_response();
        }
        Some(Answer::Status(code)) => return StatusCode::from_u16(code).unwrap().into_response(),
        Some(Answer::PostThenHang) | None => {}
    }
    let thread_ts = params["thread_ts"].as_str().map(str::to_owned);
    let ts = {
        let mut next = state.next_ts.lock().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        *next = (*next + 100).max(now);
        format!("{}.{:06}", *next / 1_000_000, *next % 1_000_000)
    };
    {
        let mut messages = state.messages.lock().unwrap();
        if let Some(parent) = &thread_ts
            && !messages.iter().any(|m| &m.ts == parent && m.is_top_level())
        {
            drop(messages);
            problem(state, format!("reply in unknown thread {parent}"));
            return refuse("thread_not_found");
        }
        messages.push(Message {
            channel: params["channel"].as_str().unwrap_or_default().to_owned(),
            ts: ts.clone(),
            thread_ts,
            text: params["text"].as_str().unwrap_or_default().to_owned(),
            blocks: params["blocks"].clone(),
            metadata: params["metadata"].clone(),
            broadcast: params["reply_broadcast"] == true,
        });
    }
    if matches!(answer, Some(Answer::PostThenHang)) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    ok(json!({ "channel": params["channel"], "ts": ts }))
}

async fn get(
    State(state): State<Arc<FakeState>>,
    Path(method): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let params: Value = query
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    state.calls.lock().unwrap().push(Call {
        method: method.clone(),
        params: params.clone(),
    });
    if !check_token(&state, &method, &headers) {
        return refuse("invalid_auth");
    }
    if !known_channel(&params["channel"]) {
        problem(&state, format!("{method}: channel {}", params["channel"]));
        return refuse("channel_not_found");
    }
    if params["include_all_metadata"] != "true" {
        problem(&state, format!("{method}: without include_all_metadata"));
    }
    let oldest: f64 = params["oldest"]
        .as_str()
        .and_then(|o| o.parse().ok())
        .unwrap_or(0.0);
    let limit: usize = params["limit"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .unwrap_or(100);
    let start: usize = params["cursor"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let messages: Vec<Message> = state
        .messages
        .lock()
        .unwrap()
        .iter()
        .filter(|m| params["channel"] == m.channel.as_str())
        .cloned()
        .collect();
    let mut selected: Vec<&Message> = match method.as_str() {
        "conversations.history" => messages
            .iter()
            .filter(|m| m.is_top_level() || m.broadcast)
            .collect(),
        "conversations.replies" => {
            let ts = params["ts"].as_str().unwrap_or_default();
            messages
                .iter()
                .filter(|m| m.ts == ts || m.thread_ts.as_deref() == Some(ts))
                .collect()
        }
        other => {
            problem(&state, format!("unexpected GET {other}"));
            return refuse("unknown_method");
        }
    };
    selected.retain(|m| m.ts.parse::<f64>().unwrap_or(0.0) >= oldest);
    if method == "conversations.history" {
        selected.reverse(); // newest first, as Slack answers
    }
    let page: Vec<Value> = selected
        .iter()
        .skip(start)
        .take(limit)
        .map(|m| json!({ "ts": m.ts, "thread_ts": m.thread_ts, "text": m.text, "metadata": m.metadata }))
        .collect();
    let next = if start + limit < selected.len() {
        (start + limit).to_string()
    } else {
        String::new()
    };
    ok(
        json!({ "messages": page, "has_more": !next.is_empty(), "response_metadata": { "next_cursor": next } }),
    )
}
