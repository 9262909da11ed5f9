//! `herald backfill` against a local fake GitHub: pagination, pull requests skipped, rate
//! limits waited out, resuming after a failure without fetching a stored page again, and
//! merging with webhook data without counting anything twice.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_github::{FakeGithub, List, Scripted};
use crate::helpers::{CommentSpec, IssueSpec, Output, Snapshot, TestApp, open_store, run_herald};

pub const TOKEN: &str = "ghp_test-token";
const JANUARY: [&str; 4] = ["--since", "2020-01-01", "--until", "2020-01-31"];

pub fn issue(number: i64, author: &'static str, created: &'static str) -> IssueSpec {
    IssueSpec::new("acme/widgets", number, author, created)
}

/// Three pages of issues and two of comments:
/// #1 (alice) closed as completed after 1 day, bob answers after 1 h;
/// #2 is a pull request, with a comment;
/// #3 (bob) open, only commented on by bob himself and a bot;
/// #4 (carol) closed as not planned after 2 h, alice answers after 30 min;
/// #5 (dave) open, silent.
pub fn pages() -> (Vec<Vec<Value>>, Vec<Vec<Value>>) {
    let one = issue(1, "alice", "2020-01-05T00:00:00Z");
    let pull = issue(2, "alice", "2020-01-05T12:00:00Z").pull_request();
    let three = issue(3, "bob", "2020-01-06T00:00:00Z");
    let four = issue(4, "carol", "2020-01-07T00:00:00Z").labels(&["bug"]);
    let five = issue(5, "dave", "2020-01-08T00:00:00Z");
    let issues = vec![
        vec![
            one.object(&Snapshot::closed("2020-01-06T00:00:00Z", "completed")),
            pull.object(&Snapshot::open("2020-01-05T12:00:00Z")),
        ],
        vec![
            three.object(&Snapshot::open("2020-01-06T00:20:00Z")),
            four.object(&Snapshot::closed("2020-01-07T02:00:00Z", "not_planned")),
        ],
        vec![five.object(&Snapshot::open("2020-01-08T00:00:00Z"))],
    ];
    let comments = vec![
        vec![
            CommentSpec::new(1, "bob", "2020-01-05T01:00:00Z").object(&one),
            CommentSpec::new(2, "carol", "2020-01-05T12:30:00Z").object(&pull),
        ],
        vec![
            CommentSpec::new(3, "bob", "2020-01-06T00:10:00Z").object(&three),
            CommentSpec::new(4, "renovate[bot]", "2020-01-06T00:20:00Z")
                .bot()
                .object(&three),
            CommentSpec::new(5, "alice", "2020-01-07T00:30:00Z").object(&four),
        ],
    ];
    (issues, comments)
}

/// The January report of the backfilled history, worked by hand.
fn expected() -> Value {
    json!({
        "window": {"since": "2020-01-01T00:00:00Z", "until": "2020-02-01T00:00:00Z"},
        // #1, #3, #4, #5; the pull request is not an issue.
        "issues": {"opened": 4, "closed": 2, "open_now": 2},
        // [1800, 3600]: mean 2700, median 2700, p90 rank 0.9 → 1800 + 0.9·1800 = 3420.
        // #3 (its author and a bot only) and #5 are unanswered.
        "time_to_first_response": {"count": 2, "unanswered": 2,
            "mean_seconds": 2700, "median_seconds": 2700, "p90_seconds": 3420},
        // [7200, 86400]: mean 46800, median 46800, p90 rank 0.9 → 7200 + 0.9·79200 = 78480.
        "time_to_close": {"count": 2, "mean_seconds": 46_800, "median_seconds": 46_800,
            "p90_seconds": 78_480, "state_reasons": {"completed": 1, "not_planned": 1}},
        "backlog": {"open": 2, "age_buckets": {"<1d": 0, "1-7d": 0, "7-30d": 0, ">30d": 2}},
        "groups": []
    })
}

pub struct Setup {
    pub github: FakeGithub,
    pub database_url: String,
    _dir: tempfile::TempDir,
}

pub async fn setup(token: Option<&str>) -> Setup {
    let (issues, comments) = pages();
    let github = FakeGithub::start("acme/widgets", token, issues, comments).await;
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("herald.db").display());
    // The store exists, as `herald migrate` (or `serve`) leaves it: `backfill` never creates one.
    open_store(&database_url).await.close().await;
    Setup {
        github,
        database_url,
        _dir: dir,
    }
}

impl Setup {
    pub async fn backfill(&self, extra: &[&str]) -> Output {
        backfill(&self.github, &self.database_url, extra).await
    }

    pub async fn report(&self) -> Value {
        report(&self.database_url).await
    }
}

pub async fn backfill(github: &FakeGithub, database_url: &str, extra: &[&str]) -> Output {
    let mut args = vec!["backfill"];
    args.extend_from_slice(extra);
    if !extra.iter().any(|arg| arg.contains('/')) {
        args.push("acme/widgets");
    }
    run_herald(
        &args,
        &[
            ("HERALD_DATABASE_URL", database_url),
            ("HERALD_GITHUB_API_URL", &github.url),
            ("HERALD_GITHUB_TOKEN", TOKEN),
        ],
    )
    .await
}

pub async fn report(database_url: &str) -> Value {
    let mut args = vec!["report", "--format", "json"];
    args.extend(JANUARY);
    let output = run_herald(&args, &[("HERALD_DATABASE_URL", database_url)]).await;
    assert!(output.success, "{output:?}");
    serde_json::from_str(&output.stdout).unwrap()
}

const ALL_PAGES: [(List, usize); 5] = [
    (List::Issues, 1),
    (List::Issues, 2),
    (List::Issues, 3),
    (List::Comments, 1),
    (List::Comments, 2),
];

#[tokio::test]
async fn imports_every_page_and_skips_pull_requests() {
    let setup = setup(Some(TOKEN)).await;
    let output = setup.backfill(&[]).await;
    assert!(output.success, "{output:?}");
    assert!(
        output.stdout.contains(
            "backfilled acme/widgets: 4 issues (1 pull requests skipped), 4 comments (1 on pull requests skipped) from 5 pages"
        ),
        "{output:?}"
    );
    assert_eq!(setup.github.requests(), ALL_PAGES);
    assert_eq!(setup.github.violations(), Vec::<String>::new());
    assert_eq!(setup.report().await, expected());

    assert!(
        output.stdout.contains(
            "reconciled acme/widgets: 0 issues deleted, 0 transferred, 0 comments deleted on GitHub left the metrics"
        ),
        "{output:?}"
    );

    // Run again after it finished: it says so and asks GitHub for nothing.
    let again = setup.backfill(&[]).await;
    assert!(again.success, "{again:?}");
    assert!(
        again
            .stdout
            .contains("the backfill of acme/widgets already finished at ")
            && again.stdout.contains("--restart"),
        "{again:?}"
    );
    assert_eq!(setup.github.requests().len(), ALL_PAGES.len());

    // `--restart`: a full refresh from page one, and still nothing twice.
    let restarted = setup.backfill(&["--restart"]).await;
    assert!(restarted.success, "{restarted:?}");
    assert_eq!(setup.github.requests()[5..], ALL_PAGES);
    assert_eq!(setup.report().await, expected());
}

#[tokio::test]
async fn without_a_token_no_authorization_is_sent() {
    let setup = setup(None).await;
    let output = run_herald(
        &["backfill", "acme/widgets"],
        &[
            ("HERALD_DATABASE_URL", &setup.database_url),
            ("HERALD_GITHUB_API_URL", &setup.github.url),
        ],
    )
    .await;
    assert!(output.success, "{output:?}");
    assert_eq!(setup.github.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn an_interrupted_backfill_resumes_where_it_stopped() {
    let setup = setup(Some(TOKEN)).await;
    setup.github.script(List::Issues, 2, Scripted::Status(500));
    setup
        .github
        .script(List::Comments, 2, Scripted::Status(502));

    let first = setup.backfill(&[]).await;
    assert!(!first.success, "{first:?}");
    assert!(
        first.stderr.contains("run the same command again"),
        "{first:?}"
    );
    assert_eq!(
        setup.github.requests(),
        [(List::Issues, 1), (List::Issues, 2)]
    );

    // Resumes at issues page 2 (page 1 is stored), then fails on comments page 2.
    let second = setup.backfill(&[]).await;
    assert!(!second.success, "{second:?}");
    assert_eq!(
        setup.github.requests()[2..],
        [
            (List::Issues, 2),
            (List::Issues, 3),
            (List::Comments, 1),
            (List::Comments, 2)
        ]
    );

    // Resumes at comments page 2: the issues are done and not fetched again.
    let third = setup.backfill(&[]).await;
    assert!(third.success, "{third:?}");
    assert_eq!(setup.github.requests()[6..], [(List::Comments, 2)]);
    assert_eq!(setup.github.violations(), Vec::<String>::new());
    assert_eq!(setup.report().await, expected());

    // `--restart` starts from page one even when interrupted.
    setup.github.script(List::Issues, 3, Scripted::Status(500));
    assert!(!setup.backfill(&["--restart"]).await.success);
    let restarted = setup.backfill(&["--restart"]).await;
    assert!(restarted.success, "{restarted:?}");
    assert_eq!(
        setup.github.requests()[7..],
        [(List::Issues, 1), (List::Issues, 2), (List::Issues, 3)]
            .into_iter()
            .chain(ALL_PAGES)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_page_that_never_comes_times_out_and_is_fetched_again() {
    let setup = setup(Some(TOKEN)).await;
    setup.github.script(List::Comments, 1, Scripted::Hang);
    let first = setup.backfill(&["--github-timeout", "300ms"]).await;
    assert!(!first.success, "{first:?}");
    assert!(
        first.stderr.contains("did not answer within the timeout"),
        "{first:?}"
    );
    let second = setup.backfill(&["--github-timeout", "300ms"]).await;
    assert!(second.success, "{second:?}");
    assert_eq!(
        setup.github.requests()[3..],
        [
            (List::Comments, 1),
            (List::Comments, 1),
            (List::Comments, 2)
        ]
    );
    assert_eq!(setup.report().await, expected());
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let setup = setup(Some(TOKEN)).await;
    // The fake notes a violation if the page is asked again before the reset (or Retry-After).
    setup.github.script(
        List::Issues,
        2,
        Scripted::RateLimited {
            reset_in: Duration::from_millis(1500),
            strict: true,
        },
    );
    setup
        .github
        .script(List::Comments, 1, Scripted::RetryAfter(1));
    let output = setup.backfill(&["--max-rate-limit-wait", "10s"]).await;
    assert!(output.success, "{output:?}");
    assert!(output.stderr.contains("rate limit"), "{output:?}");
    assert_eq!(setup.github.violations(), Vec::<String>::new());
    assert_eq!(
        setup.github.requests(),
        [
            (List::Issues, 1),
            (List::Issues, 2),
            (List::Issues, 2),
            (List::Issues, 3),
            (List::Comments, 1),
            (List::Comments, 1),
            (List::Comments, 2)
        ]
    );
    assert_eq!(setup.report().await, expected());
}

#[tokio::test]
async fn long_rate_limit_waits_are_clamped() {
    let setup = setup(Some(TOKEN)).await;
    // A reset an hour away, waited for at most 100 ms at a time: asked again early (the fake
    // then answers), instead of the test sleeping for an hour.
    setup.github.script(
        List::Issues,
        1,
        Scripted::RateLimited {
            reset_in: Duration::from_secs(3600),
            strict: false,
        },
    );
    let output = setup.backfill(&["--max-rate-limit-wait", "100ms"]).await;
    assert!(output.success, "{output:?}");
    assert!(output.stderr.contains("waiting 100ms"), "{output:?}");
    assert_eq!(
        setup.github.requests()[..2],
        [(List::Issues, 1), (List::Issues, 1)]
    );
}

#[tokio::test]
async fn merges_with_webhook_data_without_counting_twice() {
    let (issues, comments) = pages();
    let github = FakeGithub::start("acme/widgets", Some(TOKEN), issues, comments).await;
    let app = TestApp::spawn(&[]).await;
    let one = issue(1, "alice", "2020-01-05T00:00:00Z");
    let three = issue(3, "bob", "2020-01-06T00:00:00Z");
    // Webhooks already brought #1 and bob's answer (comment 1, as the API lists it too), and a
    // newer snapshot of #3 than the API's: closed on 2020-01-16, 10 days after it was opened.
    let answer = CommentSpec::new(1, "bob", "2020-01-05T01:00:00Z");
    for (event, delivery, body) in [
        (
            "issues",
            "w1",
            one.event("opened", &Snapshot::open("2020-01-05T00:00:00Z")),
        ),
        (
            "issue_comment",
            "w2",
            one.comment_event("created", &answer, &Snapshot::open("2020-01-05T01:00:00Z")),
        ),
        (
            "issues",
            "w3",
            three.event(
                "closed",
                &Snapshot::closed("2020-01-16T00:00:00Z", "completed"),
            ),
        ),
    ] {
        assert_eq!(app.send(event, delivery, &body).await, 202);
    }
    app.wait_for_deliveries().await;

    // GitHub spells the name its own way; the item's repository_url decides the key.
    let output = backfill(&github, &app.database_url, &["ACME/Widgets"]).await;
    assert!(output.success, "{output:?}");

    let report = app.metrics("since=2020-01-01&until=2020-01-31").await;
    assert_eq!(
        report["issues"],
        json!({"opened": 4, "closed": 3, "open_now": 1})
    );
    // #1 86400, #4 7200, #3 864000 (the webhook's newer close is kept).
    assert_eq!(report["time_to_close"]["count"], json!(3));
    assert_eq!(report["time_to_close"]["median_seconds"], json!(86_400));
    assert_eq!(report["time_to_close"]["p90_seconds"], json!(708_480)); // 86400 + 0.8·777600
    assert_eq!(report["time_to_first_response"]["count"], json!(2));

    let store = open_store(&app.database_url).await;
    let query = herald::analytics::ReportRequest::default()
        .parse(herald::time_util::now_ms())
        .unwrap();
    let records = store.issue_lifecycles(&query).await.unwrap();
    let numbers: Vec<(String, i64, i64)> = records
        .iter()
        .map(|record| {
            (
                record.repository.clone(),
                record.number,
                record.comment_count,
            )
        })
        .collect();
    assert_eq!(
        numbers,
        [
            ("acme/widgets".to_owned(), 1, 1),
            ("acme/widgets".to_owned(), 3, 2),
            ("acme/widgets".to_owned(), 4, 1),
            ("acme/widgets".to_owned(), 5, 0),
        ]
    );
    assert_eq!(github.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_repository_github_does_not_have_is_named_not_resumed() {
    for token in [Some(TOKEN), None] {
        let setup = setup(token).await;
        // What GitHub answers for a repository that does not exist, or a private one the token
        // cannot see.
        setup.github.script(List::Issues, 1, Scripted::Status(404));
        let mut env = vec![
            ("HERALD_DATABASE_URL", setup.database_url.as_str()),
            ("HERALD_GITHUB_API_URL", setup.github.url.as_str()),
        ];
        if let Some(token) = token {
            env.push(("HERALD_GITHUB_TOKEN", token));
        }
        let output = run_herald(&["backfill", "acme/widgets"], &env).await;
        assert!(!output.success, "{output:?}");
        let expected = match token {
            Some(_) => {
                "herald: GitHub has no repository acme/widgets, or the token cannot see it \
                 (HERALD_GITHUB_TOKEN needs read access to its issues)"
            }
            None => {
                "herald: GitHub has no repository acme/widgets, or it is private: set \
                 HERALD_GITHUB_TOKEN to a token that can read its issues"
            }
        };
        assert_eq!(output.stderr.trim(), expected, "{output:?}");
        // Nothing was recorded as progress: once GitHub has it, the import starts at page one.
        let again = run_herald(&["backfill", "acme/widgets"], &env).await;
        assert!(again.success, "{again:?}");
        assert_eq!(setup.github.requests()[1..], ALL_PAGES);
    }
}

#[tokio::test]
async fn a_refused_token_is_named() {
    let setup = setup(Some(TOKEN)).await;
    setup.github.script(List::Issues, 1, Scripted::Status(401));
    let output = setup.backfill(&[]).await;
    assert!(!output.success, "{output:?}");
    assert_eq!(
        output.stderr.trim(),
        "herald: GitHub refused HERALD_GITHUB_TOKEN (Server Error); set a valid token and run \
         the same command again to resume"
    );
}

#[tokio::test]
async fn backfill_needs_an_existing_store() {
    let (issues, comments) = pages();
    let github = FakeGithub::start("acme/widgets", Some(TOKEN), issues, comments).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("herald.db");
    let url = format!("sqlite://{}", file.display());
    let output = backfill(&github, &url, &[]).await;
    assert!(!output.success, "{output:?}");
    assert_eq!(
        output.stderr.trim(),
        format!(
            "herald: no herald database at {} (HERALD_DATABASE_URL); run `herald serve` or \
             `herald migrate` first, or point HERALD_DATABASE_URL at an existing one",
            file.display()
        )
    );
    assert!(!file.exists(), "no store was created");
    assert!(github.requests().is_empty(), "GitHub was not asked");
}

#[tokio::test]
async fn refuses_a_bad_repository_name() {
    let output = run_herald(
        &["backfill", "../../etc"],
        &[("HERALD_DATABASE_URL", "sqlite::memory:")],
    )
    .await;
    assert!(!output.success);
    assert!(output.stderr.contains("OWNER/NAME"), "{output:?}");
}
