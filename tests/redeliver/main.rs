//! `herald redeliver` and the periodic redeliver pass of `herald serve`, against a local fake of
//! GitHub's hook-deliveries API, on SQLite and PostgreSQL.

mod command;
#[path = "../store/databases.rs"]
mod databases;
mod fake_github;
#[expect(
    dead_code,
    reason = "the service harness of tests/api; this binary uses part of it"
)]
#[path = "../api/helpers.rs"]
mod helpers;
mod serve;
mod store;

use std::io::Read;
use std::process::Stdio;
use std::time::Instant;

/// What a finished `herald` command printed.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `herald ARGS` with only `env` (and none of the test environment's `HERALD_*`), off the
/// async runtime so the fakes keep answering; kills it after the test deadline.
pub async fn run_herald(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = helpers::herald_command();
    command
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("herald {args:?}");
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().expect("starting herald");
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
        let deadline = Instant::now() + helpers::DEADLINE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{shown} did not finish in time");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
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
