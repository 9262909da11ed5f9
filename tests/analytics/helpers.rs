//! Test harness: the real server on port 0 with a fresh SQLite file, GitHub payloads built from
//! the shared samples, the `herald` binary run with a deadline, and polling instead of sleeps.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{AppBuilder, payloads_dir};
pub use crate::common::{open_store, wait_until};

pub fn sample(relative: &str) -> Value {
    let path = payloads_dir().join(relative);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_slice(&bytes).unwrap()
}

/// A user id for a login: GitHub's ids are numbers that stay when a login changes; the tests
/// give each login its own (a rename keeps the old one with `IssueSpec::author_id`).
pub fn user_id(login: &str) -> i64 {
    login.bytes().fold(1_000_i64, |id, byte| {
        id.wrapping_mul(31).wrapping_add(i64::from(byte)) % 1_000_000_007
    })
}

/// An issue as the tests describe it; payloads are the shared samples with these fields set.
#[derive(Debug, Clone)]
pub struct IssueSpec {
    pub repo: &'static str,
    pub number: i64,
    pub author: &'static str,
    /// The author's id (default: `user_id(author)`).
    pub author_id: Option<i64>,
    pub created_at: &'static str,
    pub labels: Vec<&'static str>,
    pub assignees: Vec<&'static str>,
    pub pull_request: bool,
}

impl IssueSpec {
    pub fn new(
        repo: &'static str,
        number: i64,
        author: &'static str,
        created_at: &'static str,
    ) -> Self {
        Self {
            repo,
            number,
            author,
            author_id: None,
            created_at,
            labels: Vec::new(),
            assignees: Vec::new(),
            pull_request: false,
        }
    }

    pub fn labels(mut self, labels: &[&'static str]) -> Self {
        self.labels = labels.to_vec();
        self
    }

    pub fn assignees(mut self, assignees: &[&'static str]) -> Self {
        self.assignees = assignees.to_vec();
        self
    }

    /// The same account under another login (a rename keeps the id).
    pub fn renamed(mut self, login: &'static str) -> Self {
        self.author_id = Some(self.author_id.unwrap_or_else(|| user_id(self.author)));
        self.author = login;
        self
    }

    pub fn pull_request(mut self) -> Self {
        self.pull_request = true;
        self
    }

    /// The issue object at one moment: `state` with `closed_at`/`state_reason` as given.
    pub fn object(&self, state: &Snapshot) -> Value {
        let mut issue = sample("issues/opened.payload.json")["issue"].clone();
        issue["number"] = json!(self.number);
        issue["title"] = json!(format!("Issue {}", self.number));
        issue["user"]["login"] = json!(self.author);
        issue["user"]["id"] = json!(self.author_id.unwrap_or_else(|| user_id(self.author)));
        issue["user"]["type"] = json!("User");
        issue["created_at"] = json!(self.created_at);
        issue["updated_at"] = json!(state.updated_at);
        issue["state"] = json!(state.state);
        issue["closed_at"] = json!(state.closed_at);
        issue["state_reason"] = json!(state.state_reason);
        issue["labels"] = json!(
            self.labels
                .iter()
                .map(|name| json!({"id": 1, "name": name, "color": "d73a4a"}))
                .collect::<Vec<_>>()
        );
        issue["assignees"] = json!(
            self.assignees
                .iter()
                .map(|login| json!({"login": login, "id": user_id(login), "type": "User"}))
                .collect::<Vec<_>>()
        );
        let (owner, name) = self.repo.split_once('/').unwrap();
        issue["repository_url"] = json!(format!("https://api.github.com/repos/{owner}/{name}"));
        issue["html_url"] = json!(format!(
            "https://github.com/{owner}/{name}/issues/{}",
            self.number
        ));
        if self.pull_request {
            issue["pull_request"] =
                json!({"url": "https://api.github.com/pulls/1", "merged_at": null});
        }
        issue
    }

    /// An `issues` webhook payload.
    pub fn event(&self, action: &str, state: &Snapshot) -> Value {
        let mut payload = sample("issues/opened.payload.json");
        payload["action"] = json!(action);
        payload["issue"] = self.object(state);
        set_repository(&mut payload, self.repo);
        payload
    }

    /// An `issue_comment` webhook payload (the issue as it was at the comment's time).
    pub fn comment_event(&self, action: &str, comment: &CommentSpec, state: &Snapshot) -> Value {
        let mut payload = sample("issue_comment/created.payload.json");
        payload["action"] = json!(action);
        payload["issue"] = self.object(state);
        payload["comment"] = comment.object(self);
        set_repository(&mut payload, self.repo);
        payload
    }
}

fn set_repository(payload: &mut Value, repo: &str) {
    let (owner, name) = repo.split_once('/').unwrap();
    payload["repository"]["full_name"] = json!(repo);
    payload["repository"]["name"] = json!(name);
    payload["repository"]["owner"]["login"] = json!(owner);
}

/// The issue's state in one snapshot.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub updated_at: &'static str,
    pub state: &'static str,
    pub closed_at: Option<&'static str>,
    pub state_reason: Option<&'static str>,
}

impl Snapshot {
    pub fn open(updated_at: &'static str) -> Self {
        Self {
            updated_at,
            state: "open",
            closed_at: None,
            state_reason: None,
        }
    }

    pub fn closed(at: &'static str, reason: &'static str) -> Self {
        Self {
            updated_at: at,
            state: "closed",
            closed_at: Some(at),
            state_reason: Some(reason),
        }
    }
}

/// A comment as the tests describe it.
#[derive(Debug, Clone)]
pub struct CommentSpec {
    pub id: i64,
    pub author: &'static str,
    /// The author's id (default: `user_id(author)`).
    pub author_id: Option<i64>,
    pub account_type: &'static str,
    pub created_at: &'static str,
}

impl CommentSpec {
    pub fn new(id: i64, author: &'static str, created_at: &'static str) -> Self {
        Self {
            id,
            author,
            author_id: None,
            account_type: "User",
            created_at,
        }
    }

    /// Written by the account with this id (under `author`, perhaps a new login).
    pub fn by_id(mut self, id: i64) -> Self {
        self.author_id = Some(id);
        self
    }

    pub fn bot(mut self) -> Self {
        self.account_type = "Bot";
        self
    }

    /// The comment object (the same shape in webhooks and the REST API).
    pub fn object(&self, issue: &IssueSpec) -> Value {
        let mut comment = sample("issue_comment/created.payload.json")["comment"].clone();
        comment["id"] = json!(self.id);
        comment["user"]["login"] = json!(self.author);
        comment["user"]["id"] = json!(self.author_id.unwrap_or_else(|| user_id(self.author)));
        comment["user"]["type"] = json!(self.account_type);
        comment["created_at"] = json!(self.created_at);
        comment["updated_at"] = json!(self.created_at);
        let (owner, name) = issue.repo.split_once('/').unwrap();
        comment["issue_url"] = json!(format!(
            "https://api.github.com/repos/{owner}/{name}/issues/{}",
            issue.number
        ));
        comment
    }
}

/// A running herald with notifications off: these tests only look at analytics.
pub struct TestApp(crate::common::TestApp);

impl std::ops::Deref for TestApp {
    type Target = crate::common::TestApp;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestApp {
    /// Starts herald with a fresh database and `extra` flags.
    pub async fn spawn(extra: &[&str]) -> Self {
        Self(
            AppBuilder::new()
                .arg("--notify-events", "")
                .args(extra)
                .spawn()
                .await,
        )
    }

    /// Starts herald with a fresh database, `extra` flags and this configuration file.
    pub async fn spawn_with_file(extra: &[&str], toml: &str) -> Self {
        Self(
            AppBuilder::new()
                .arg("--notify-events", "")
                .args(extra)
                .config_file(toml)
                .spawn()
                .await,
        )
    }

    /// POSTs `body` signed with the test secret, as GitHub would; returns the status.
    pub async fn send(&self, event: &str, delivery: &str, body: &Value) -> u16 {
        let body = serde_json::to_vec(body).unwrap();
        self.0.send(event, delivery, &body).await.status().as_u16()
    }

    /// The metrics JSON from the API (no token).
    pub async fn metrics(&self, query: &str) -> Value {
        let response = self
            .get(&format!("/api/metrics/issues?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET /api/metrics/issues?{query}");
        response.json().await.unwrap()
    }

    /// Waits until every delivery is done (none pending), and checks none went dead.
    pub async fn wait_for_deliveries(&self) {
        let store = self.store().await;
        wait_until("every delivery is done", || async {
            store.queue_depth().await.unwrap().pending == 0
        })
        .await;
        let depth = store.queue_depth().await.unwrap();
        assert_eq!(
            depth.dead,
            0,
            "dead deliveries: {:?}",
            store.list_deliveries(None, 100).await.unwrap()
        );
        store.close().await;
    }
}

/// What a run of the `herald` binary printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `herald` binary with only `env` in its environment, off the async runtime (so
/// local fakes keep answering), killing it after the common deadline.
pub async fn run_herald(args: &[&str], env: &[(&str, &str)]) -> Output {
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(&args)
            .env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting herald");
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let deadline = std::time::Instant::now() + crate::common::DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("herald {args:?} did not finish in time");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            success: status.success(),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    })
    .await
    .unwrap()
}
