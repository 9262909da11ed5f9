//! Test harness: the real server on a random port with a fresh SQLite file, a fake Slack that
//! records every request and can be told to fail, and polling with a deadline instead of sleeps.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use clap::Parser;
use herald::config::{DatabaseConfig, ServeConfig};
use herald::github::sign_sha256;
use herald::store::Store;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "test-secret";
/// How long any test waits for work to happen before it fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The shared GitHub payloads beside the project.
pub fn payloads_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/github-payloads")
}

pub fn payload(relative: &str) -> Vec<u8> {
    let path = payloads_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

#[derive(Parser)]
#[command(args_override_self = true)]
struct ServeWrapper {
    #[command(flatten)]
    config: ServeConfig,
}

/// A running herald.
pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    pub dir: Arc<tempfile::TempDir>,
}

/// Builder for a test server's configuration, as command-line flags.
pub struct AppBuilder {
    args: Vec<String>,
    dir: Arc<tempfile::TempDir>,
    /// The configuration file's contents, as `--config` would load them.
    file: Option<herald::config::FileConfig>,
}

impl AppBuilder {
    pub fn new() -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Self::in_dir(dir)
    }

    /// Reuses a directory (and so the database) of an earlier app.
    pub fn in_dir(dir: Arc<tempfile::TempDir>) -> Self {
        let database = format!("sqlite://{}", dir.path().join("herald.db").display());
        let args = [
            "herald",
            "--database-url",
            &database,
            "--webhook-secret",
            SECRET,
            "--retry-schedule",
            "0s,0s",
            "--poll-interval",
            "50ms",
            "--slack-max-per-second",
            "0",
            "--secret-path",
            &dir.path().join("herald.secret").display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        Self {
            args,
            dir,
            file: None,
        }
    }

    /// Runs with this configuration file (TOML text), as `--config` would load it.
    #[allow(
        dead_code,
        reason = "used by tests/analytics, which shares this harness"
    )]
    pub fn config_file(mut self, toml: &str) -> Self {
        self.file = Some(herald::config::FileConfig::parse(toml).expect("a valid test file"));
        self
    }

    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.args.push(flag.to_owned());
        self.args.push(value.to_owned());
        self
    }

    /// Appends flags and values as given (`["--api-token", "t"]`).
    pub fn args(mut self, extra: &[&str]) -> Self {
        self.args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        self
    }

    pub fn flag(mut self, flag: &str) -> Self {
        self.args.push(flag.to_owned());
        self
    }

    pub fn slack(self, slack: &FakeSlack) -> Self {
        let url = slack.url();
        self.arg("--slack-webhook-url", &url)
    }

    pub fn database_url(&self) -> String {
        let position = self
            .args
            .iter()
            .position(|a| a == "--database-url")
            .unwrap();
        self.args[position + 1].clone()
    }

    pub async fn spawn(self) -> TestApp {
        install_crypto();
        let database_url = self.database_url();
        let mut config = ServeWrapper::try_parse_from(&self.args)
            .expect("test flags parse")
            .config;
        if let Some(file) = self.file {
            config.file = file;
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(herald::startup::serve(config, listener, shutdown.clone()));
        let app = TestApp {
            address,
            database_url,
            client: reqwest::Client::new(),
            shutdown,
            handle: Some(handle),
            dir: self.dir,
        };
        wait_until("the server answers /healthz", || async {
            app.client
                .get(format!("{}/healthz", app.address))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        app
    }
}

impl TestApp {
    /// POSTs `body` signed with the test secret, as GitHub would.
    pub async fn send(&self, event: &str, delivery: &str, body: &[u8]) -> reqwest::Response {
        self.post("/webhook")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-github-hook-id", "4242")
            .header("x-hub-signature-256", sign_sha256(SECRET, body))
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.post(format!("{}{path}", self.address))
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.address))
    }

    /// A second connection to the same database, to look at what the server wrote.
    pub async fn store(&self) -> Store {
        open_store(&self.database_url).await
    }

    /// Graceful shutdown, as on SIGTERM; returns the server's result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(DEADLINE, handle)
            .await
            .expect("shutdown finished in time")
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Polls `condition` every 20 ms until it holds; fails the test after [`DEADLINE`].
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the fake Slack answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    RetryAfter(u16, u64),
    /// Never answers (until the client gives up).
    Hang,
    /// Answers 200, slowly: a request that is in flight for a while.
    Slow(Duration),
}

/// One request the fake Slack received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub content_type: String,
    pub json: Value,
}

#[derive(Default)]
struct FakeState {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<Recorded>>,
}

/// A local Slack incoming-webhook endpoint that records requests and replays a script of
/// answers (then `200 ok`).
pub struct FakeSlack {
    address: String,
    state: Arc<FakeState>,
    _server: JoinHandle<()>,
}

impl FakeSlack {
    pub async fn start() -> Self {
        Self::with_script(Vec::new()).await
    }

    pub async fn with_script(script: Vec<Reply>) -> Self {
        let state = Arc::new(FakeState {
            script: Mutex::new(script.into()),
            ..FakeState::default()
        });
        let app = Router::new()
            .route("/services/{*hook}", axum::routing::post(record))
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            address,
            state,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        self.url_for("T000/B000/XXXX")
    }

    /// A distinct webhook URL on the same fake, to tell senders apart by `Recorded::path`.
    pub fn url_for(&self, hook: &str) -> String {
        format!("{}/services/{hook}", self.address)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Requests sent to `url_for(hook)`.
    pub fn requests_to(&self, hook: &str) -> usize {
        let path = format!("/services/{hook}");
        self.requests().iter().filter(|r| r.path == path).count()
    }

    pub async fn wait_for_requests(&self, count: usize) -> Vec<Recorded> {
        wait_until(&format!("Slack received {count} requests"), || async {
            self.requests().len() >= count
        })
        .await;
        self.requests()
    }
}

async fn record(
    State(state): State<Arc<FakeState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    state.requests.lock().unwrap().push(Recorded {
        path: uri.path().to_owned(),
        content_type,
        json,
    });
    let reply = state.script.lock().unwrap().pop_front();
    match reply {
        None | Some(Reply::Status(200)) => (StatusCode::OK, "ok").into_response(),
        Some(Reply::Status(code)) => {
            (StatusCode::from_u16(code).unwrap(), "invalid_payload").into_response()
        }
        Some(Reply::RetryAfter(code, seconds)) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", seconds.to_string())],
            "rate_limited",
        )
            .into_response(),
        Some(Reply::Hang) => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        Some(Reply::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, "ok").into_response()
        }
    }
}

/// The status of every notification outbox row (Slack, or stdout without Slack), oldest first.
pub async fn delivery_states(store: &Store) -> Vec<(String, i64, Option<String>)> {
    let mut rows = store.list_deliveries(None, 10_000).await.unwrap();
    rows.reverse();
    rows.into_iter()
        .filter(|row| row.destination != "analytics")
        .map(|row| (row.status, row.attempts, row.last_error))
        .collect()
}

/// `herald` as a command, with the test environment's own `HERALD_*` variables removed.
pub fn herald_command() -> std::process::Command {
    install_crypto();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") {
            command.env_remove(key);
        }
    }
    command
}

/// `herald_command()` for a server whose output the test does not read.
pub fn quiet_herald_command() -> std::process::Command {
    let mut command = herald_command();
    command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    command
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `herald serve` child process; killed when dropped.
pub struct Process {
    pub child: std::process::Child,
    pub address: String,
}

impl Process {
    /// Runs `command serve` on a free port and waits until it answers `/readyz`.
    pub async fn serve(mut command: std::process::Command) -> Self {
        let port = free_port();
        command
            .arg("serve")
            .env("HERALD_LISTEN", format!("127.0.0.1:{port}"));
        let process = Self {
            child: command.spawn().expect("starting herald"),
            address: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        wait_until("herald answers /readyz", || async {
            client
                .get(format!("{}/readyz", process.address))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        process
    }

    /// POSTs a signed `issues` delivery, as GitHub would; returns the status.
    pub async fn send_issue(
        &self,
        client: &reqwest::Client,
        delivery: String,
        body: Vec<u8>,
    ) -> u16 {
        client
            .post(format!("{}/webhook", self.address))
            .header("x-github-event", "issues")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", sign_sha256(SECRET, &body))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// SIGTERM, as Cloud Run sends before stopping an instance.
    pub fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shared `issues/opened` payload, renumbered.
pub fn opened_issue(number: i64) -> Vec<u8> {
    let mut body: Value = serde_json::from_slice(&payload("issues/opened.payload.json")).unwrap();
    body["issue"]["number"] = number.into();
    serde_json::to_vec(&body).unwrap()
}

/// Opens the database at `url` as a second client would.
pub async fn open_store(url: &str) -> Store {
    Store::connect(&DatabaseConfig {
        database_url: url.to_owned(),
        database_max_connections: 2,
        database_statement_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap()
}

/// The SQLite URL `herald serve` uses by default when run in `dir`.
pub fn default_database(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("herald.db").display())
}

/// The issue numbers Slack was told about (from `#N` in each message's text), sorted.
pub fn notified_numbers(slack: &FakeSlack) -> Vec<i64> {
    let mut numbers: Vec<i64> = slack
        .requests()
        .iter()
        .map(|r| {
            let text = r.json["text"].as_str().expect("a text field");
            text.split('#')
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok())
                .expect("#N in the text")
        })
        .collect();
    numbers.sort_unstable();
    numbers
}
