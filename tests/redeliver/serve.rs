//! The periodic redeliver pass inside `herald serve`: it asks once on either backend, two
//! instances on one PostgreSQL database ask exactly once between them, errors do not stop it,
//! shutdown does, and half a configuration is refused at start.

use crate::databases;
use crate::fake_github::{FakeGithub, Kind, Scripted, TOKEN, attempt, minutes};
use crate::helpers::{AppBuilder, TestApp, wait_until};
use crate::run_herald;

const REPO_HOOK: &str = "/repos/acme/widgets/hooks/42";

/// `builder` with the periodic pass over `acme/widgets` hook 42 on, every 100 ms.
fn redelivering(builder: AppBuilder, github: &FakeGithub) -> AppBuilder {
    builder.args(&[
        "--github-api-url",
        &github.url,
        "--github-token",
        TOKEN,
        "--redeliver-repo",
        "acme/widgets",
        "--redeliver-hook-id",
        "42",
        "--redeliver-interval",
        "100ms",
    ])
}

async fn github_with_one_failure() -> FakeGithub {
    let github = FakeGithub::start().await;
    github.hook(
        REPO_HOOK,
        vec![
            attempt(6, "g-ok", minutes(20), 202),
            attempt(5, "g-down", minutes(30), 0),
        ],
    );
    github
}

/// Waits for `passes` more listings than now: later passes had their chance to ask again.
async fn wait_for_passes(github: &FakeGithub, passes: usize) {
    let target = github.lists() + passes;
    wait_until(&format!("{passes} more passes ran"), || async {
        github.lists() >= target
    })
    .await;
}

async fn asks_once(app: TestApp, github: &FakeGithub) {
    wait_until("the failed delivery was asked for", || async {
        !github.redelivered().is_empty()
    })
    .await;
    wait_for_passes(github, 3).await;
    assert_eq!(github.redelivered(), [5]);
    assert_eq!(github.violations(), Vec::<String>::new());
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_asks_once_on_sqlite() {
    let github = github_with_one_failure().await;
    let app = redelivering(AppBuilder::new(), &github).spawn().await;
    asks_once(app, &github).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_asks_once_on_postgres() {
    let Some(db) = databases::postgres().await else {
        return;
    };
    let github = github_with_one_failure().await;
    let app = redelivering(AppBuilder::new().arg("--database-url", &db.url), &github)
        .spawn()
        .await;
    asks_once(app, &github).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_database_ask_exactly_once() {
    const FAILED: i64 = 10;
    let Some(db) = databases::postgres().await else {
        return;
    };
    let github = FakeGithub::start().await;
    // Small pages, so each pass takes several requests and the two instances' passes overlap.
    github.page_size(5);
    github.hook(
        REPO_HOOK,
        (1..=FAILED)
            .rev()
            .map(|id| attempt(id, &format!("g-{id}"), minutes(id as u64), 503))
            .collect(),
    );
    let first = redelivering(AppBuilder::new().arg("--database-url", &db.url), &github)
        .spawn()
        .await;
    let second = redelivering(AppBuilder::new().arg("--database-url", &db.url), &github)
        .spawn()
        .await;
    wait_until("every failed delivery was asked for", || async {
        github.redelivered().len() >= FAILED as usize
    })
    .await;
    wait_for_passes(&github, 20).await;
    let mut asked = github.redelivered();
    asked.sort_unstable();
    assert_eq!(asked, (1..=FAILED).collect::<Vec<_>>(), "each exactly once");
    assert_eq!(github.violations(), Vec::<String>::new());
    first.stop().await.unwrap();
    second.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pass_is_logged_and_the_next_one_runs() {
    let github = github_with_one_failure().await;
    github.script(Kind::List, Scripted::Status(500, "Server Error"));
    github.script(Kind::Redeliver, Scripted::Status(502, "Server Error"));
    let app = redelivering(AppBuilder::new(), &github).spawn().await;
    // Pass 1 cannot list; pass 2 cannot ask; pass 3 asks.
    wait_until("the delivery was asked for successfully", || async {
        github.redelivered().len() == 2
    })
    .await;
    wait_for_passes(&github, 3).await;
    assert_eq!(github.redelivered(), [5, 5]);
    app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_a_pass_waiting_on_github() {
    let github = github_with_one_failure().await;
    github.script(Kind::List, Scripted::Hang);
    // Without cancellation, stopping would wait for the hour-long GitHub timeout or the minute
    // of grace, both past the deadline `stop` allows.
    let app = redelivering(AppBuilder::new(), &github)
        .args(&["--github-timeout", "1h", "--shutdown-grace", "60s"])
        .spawn()
        .await;
    wait_until("the pass is waiting on GitHub", || async {
        github.lists() == 1
    })
    .await;
    app.stop().await.unwrap();
    assert_eq!(github.redelivered(), Vec::<i64>::new());
}

#[tokio::test]
async fn serve_refuses_half_a_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("herald.db").display());
    let base = [
        ("HERALD_LISTEN", "127.0.0.1:0"),
        ("HERALD_DATABASE_URL", database.as_str()),
        ("HERALD_WEBHOOK_SECRET", "s3cret"),
    ];
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("HERALD_REDELIVER_HOOK_ID", "42")],
            "HERALD_REDELIVER_HOOK_ID is set, but not whose hook it is: set \
             HERALD_REDELIVER_REPO=OWNER/NAME or HERALD_REDELIVER_ORG=ORG",
        ),
        (
            &[("HERALD_REDELIVER_REPO", "acme/widgets")],
            "HERALD_REDELIVER_REPO is set but HERALD_REDELIVER_HOOK_ID is not",
        ),
        (
            &[
                ("HERALD_REDELIVER_ORG", "acme"),
                ("HERALD_REDELIVER_HOOK_ID", "7"),
            ],
            "redelivering failed deliveries of hook 7 of the organisation acme needs \
             HERALD_GITHUB_TOKEN: a token with the admin:org_hook scope",
        ),
    ];
    for (extra, expected) in cases {
        let env: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
        let output = run_herald(&["serve"], &env).await;
        assert!(!output.success, "{output:?}");
        assert!(output.stderr.contains(expected), "{output:?}");
    }
}
