//! Running herald for the Slack tests: the real service (`startup::serve_with`) with a
//! configuration file (destinations and routes pointing at the fake Slack), on a fresh SQLite
//! file or a given database, and an injected clock for reminders.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use clap::Parser;
use herald::config::{FileConfig, ServeConfig};
use herald::github::sign_sha256;
use herald::sinks::slack::reminders::Clock;
use herald::store::Store;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::fake_slack::{CHANNEL, FakeSlackApi, TOKEN};
use crate::helpers::{DEADLINE, SECRET, install_crypto, open_store, payload, wait_until};

/// A clock the test moves by hand.
#[derive(Debug, Default)]
pub struct TestClock(AtomicI64);

impl TestClock {
    pub fn at(ms: i64) -> Arc<Self> {
        Arc::new(Self(AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Parser)]
#[command(args_override_self = true)]
struct ServeWrapper {
    #[command(flatten)]
    config: ServeConfig,
}

/// A configuration file with one bot destination, `triage`, on the fake, and `routes` after it.
pub fn bot_file(slack: &FakeSlackApi, dir: &std::path::Path, routes: &str) -> String {
    let token = dir.join("slack-token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    format!(
        "[destinations.triage]\nkind = \"slack-bot\"\nchannel = \"{CHANNEL}\"\ntoken = \"file:{}\"\napi_url = \"{}\"\nmax_per_second = 0\n\n{routes}",
        token.display(),
        slack.url
    )
}

/// How to start one herald.
pub struct Setup {
    pub dir: Arc<tempfile::TempDir>,
    args: Vec<String>,
    file: Option<String>,
}

impl Setup {
    /// A fresh SQLite database in a new directory.
    pub fn new() -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let database = format!("sqlite://{}", dir.path().join("herald.db").display());
        Self::on(&database, dir)
    }

    /// `database_url`, keeping what lives in `dir` (the secret, the token file).
    pub fn on(database_url: &str, dir: Arc<tempfile::TempDir>) -> Self {
        let args = [
            "herald",
            "--database-url",
            database_url,
            "--webhook-secret",
            SECRET,
            "--retry-schedule",
            "0s,0s,0s",
            "--poll-interval",
            "50ms",
            "--slack-max-per-second",
            "0",
            "--slack-reminder-interval",
            "50ms",
            "--delivery-lease",
            // Longer than four waves of 10 s Slack requests (the default timeout, no rate limit).
            "45s",
            "--secret-path",
            &dir.path().join("herald.secret").display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        Self {
            dir,
            args,
            file: None,
        }
    }

    pub fn args(mut self, extra: &[&str]) -> Self {
        self.args.extend(extra.iter().map(|a| (*a).to_owned()));
        self
    }

    /// The configuration file's text.
    pub fn file(mut self, text: String) -> Self {
        self.file = Some(text);
        self
    }

    /// A bot destination `triage` on `slack` with `routes`.
    pub fn bot(self, slack: &FakeSlackApi, routes: &str) -> Self {
        let text = bot_file(slack, self.dir.path(), routes);
        self.file(text)
    }

    pub fn database_url(&self) -> String {
        let at = self
            .args
            .iter()
            .position(|a| a == "--database-url")
            .unwrap();
        self.args[at + 1].clone()
    }

    pub async fn spawn(self) -> Herald {
        install_crypto();
        let database_url = self.database_url();
        let mut config = ServeWrapper::try_parse_from(&self.args)
            .expect("test flags parse")
            .config;
        if let Some(text) = &self.file {
            config.file = FileConfig::parse(text).expect("the test configuration parses");
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(herald::startup::serve(config, listener, shutdown.clone()));
        let herald = Herald {
            address,
            database_url,
            client: reqwest::Client::new(),
            shutdown,
            handle: Some(handle),
            _dir: self.dir,
        };
        wait_until("herald answers /healthz", || async {
            herald
                .client
                .get(format!("{}/healthz", herald.address))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        herald
    }
}

/// A running herald.
pub struct Herald {
    pub address: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// Kept for as long as the service runs (its database, secret and token files).
    _dir: Arc<tempfile::TempDir>,
}

impl Herald {
    /// POSTs `body` signed, as GitHub would; returns the status.
    pub async fn send(&self, event: &str, delivery: &str, body: &Value) -> u16 {
        let body = serde_json::to_vec(body).unwrap();
        self.client
            .post(format!("{}/webhook", self.address))
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-github-hook-id", "4242")
            .header("x-hub-signature-256", sign_sha256(SECRET, &body))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn store(&self) -> Store {
        open_store(&self.database_url).await
    }

    /// Graceful shutdown; returns the server's result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let handle = self.handle.take().unwrap();
        tokio::time::timeout(DEADLINE, handle)
            .await
            .expect("shutdown finished in time")
            .unwrap()
    }

    /// Waits until every outbox row of `destination` is delivered or dead; returns
    /// (status, last error) per row, oldest first.
    pub async fn settled(&self, destination: &str, rows: usize) -> Vec<(String, Option<String>)> {
        let store = self.store().await;
        let states = || async {
            let mut rows = store.list_deliveries(None, 10_000).await.unwrap();
            rows.reverse();
            rows.into_iter()
                .filter(|row| row.destination == destination)
                .map(|row| (row.status, row.last_error))
                .collect::<Vec<_>>()
        };
        wait_until(
            &format!("{rows} rows of {destination} are settled"),
            || async {
                let states = states().await;
                states.len() >= rows && states.iter().all(|(status, _)| status != "pending")
            },
        )
        .await;
        states().await
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts herald expecting a start-up failure (no listener is waited for).
pub async fn refused(setup: Setup) -> String {
    install_crypto();
    let mut config = ServeWrapper::try_parse_from(&setup.args).unwrap().config;
    if let Some(text) = &setup.file {
        config.file = FileConfig::parse(text).unwrap();
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let result = tokio::time::timeout(
        DEADLINE,
        herald::startup::serve(config, listener, CancellationToken::new()),
    )
    .await
    .expect("start-up ends");
    format!(
        "{:#}",
        result.expect_err("herald refuses this configuration")
    )
}

/// A shared payload as JSON.
pub fn sample(relative: &str) -> Value {
    serde_json::from_slice(&payload(relative)).unwrap()
}

/// The shared `issues/opened` payload for issue `number`, with `labels`.
pub fn opened(number: i64, labels: &[&str]) -> Value {
    let mut body = sample("issues/opened.payload.json");
    set_issue(&mut body, number, labels);
    body
}

/// Sets an issue payload's number (and URL) and labels.
pub fn set_issue(body: &mut Value, number: i64, labels: &[&str]) {
    body["issue"]["number"] = number.into();
    body["issue"]["html_url"] =
        format!("https://github.com/Codertocat/Hello-World/issues/{number}").into();
    body["issue"]["labels"] = labels
        .iter()
        .map(|name| serde_json::json!({ "name": name }))
        .collect::<Vec<_>>()
        .into();
}

/// An `issues` event of `action` about issue `number` with `labels`, updated at `updated_at`.
pub fn issue_event(action: &str, number: i64, labels: &[&str], updated_at: &str) -> Value {
    let mut body = opened(number, labels);
    body["action"] = action.into();
    body["issue"]["updated_at"] = updated_at.into();
    body
}

/// A comment on issue `number` by `login`.
pub fn comment(number: i64, login: &str, text: &str) -> Value {
    let mut body = sample("issue_comment/created.payload.json");
    set_issue(&mut body, number, &["bug"]);
    body["comment"]["user"]["login"] = login.into();
    body["comment"]["user"]["type"] = "User".into();
    body["comment"]["body"] = text.into();
    body
}
