//! `herald redeliver` as cron or Cloud Scheduler runs it: which deliveries it asks GitHub for,
//! what it remembers between runs, and how it says that GitHub refused.

use crate::fake_github::{FakeGithub, Kind, Request, Scripted, TOKEN, attempt, minutes};
use crate::helpers::AppBuilder;
use crate::{Output, run_herald};

const REPO_HOOK: &str = "/repos/acme/widgets/hooks/42";
const ORG_HOOK: &str = "/orgs/acme/hooks/7";

struct Setup {
    github: FakeGithub,
    database_url: String,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("herald.db").display());
    // The store exists, as `herald migrate` (or `serve`) leaves it: `redeliver` never creates one.
    crate::helpers::open_store(&database_url)
        .await
        .close()
        .await;
    Setup {
        github: FakeGithub::start().await,
        database_url,
        _dir: dir,
    }
}

impl Setup {
    /// `herald redeliver acme/widgets --hook-id 42 EXTRA…` (or the arguments given in full).
    async fn redeliver(&self, extra: &[&str]) -> Output {
        self.redeliver_with(extra, TOKEN).await
    }

    async fn redeliver_with(&self, extra: &[&str], token: &str) -> Output {
        let mut args = vec!["redeliver"];
        if !extra.contains(&"--org") && !extra.contains(&"--hook-id") {
            args.extend(["acme/widgets", "--hook-id", "42"]);
        }
        args.extend_from_slice(extra);
        let mut env = vec![
            ("HERALD_DATABASE_URL", self.database_url.as_str()),
            ("HERALD_GITHUB_API_URL", self.github.url.as_str()),
        ];
        if !token.is_empty() {
            env.push(("HERALD_GITHUB_TOKEN", token));
        }
        run_herald(&args, &env).await
    }
}

/// Newest first, as GitHub lists them: `g-fixed` failed and was redelivered successfully;
/// `g-ok` succeeded; `g-down` could not connect; `g-twice` failed, and its redelivery too.
fn mixed_history() -> Vec<serde_json::Value> {
    vec![
        attempt(12, "g-fixed", minutes(90), 202),
        attempt(11, "g-ok", minutes(100), 200),
        attempt(10, "g-fixed", minutes(120), 503),
        attempt(5, "g-down", minutes(180), 0),
        attempt(4, "g-twice", minutes(210), 502),
        attempt(3, "g-twice", minutes(240), 500),
    ]
}

fn asked_lines(output: &Output) -> Vec<&str> {
    output
        .stdout
        .lines()
        .filter(|line| line.starts_with("asked GitHub"))
        .collect()
}

#[tokio::test]
async fn asks_once_for_each_failed_delivery_and_nothing_on_a_second_run() {
    let setup = setup().await;
    setup.github.hook(REPO_HOOK, mixed_history());

    let first = setup.redeliver(&[]).await;
    assert!(first.success, "{first:?}");
    // The newest failed attempt of each guid, oldest failure first; not g-fixed nor g-ok.
    assert_eq!(setup.github.redelivered(), [4, 5]);
    let asked = asked_lines(&first);
    assert_eq!(asked.len(), 2, "{first:?}");
    assert!(
        asked[0].starts_with("asked GitHub to redeliver g-twice (issues.opened, attempt 4 at ")
            && asked[0].ends_with(": Invalid HTTP Response: 502)"),
        "{first:?}"
    );
    assert!(
        asked[1].starts_with("asked GitHub to redeliver g-down (issues.opened, attempt 5 at ")
            && asked[1].ends_with(": failed to connect)"),
        "{first:?}"
    );
    assert!(
        first
            .stdout
            .ends_with("2 failed deliveries found, 2 asked again, 0 already asked\n"),
        "{first:?}"
    );

    // GitHub has not made the new attempts yet: nothing is asked twice.
    let second = setup.redeliver(&[]).await;
    assert!(second.success, "{second:?}");
    assert_eq!(setup.github.redelivered(), [4, 5]);
    assert_eq!(asked_lines(&second), Vec::<&str>::new());
    assert_eq!(
        second.stdout,
        "2 failed deliveries found, 0 asked again, 2 already asked\n"
    );
    assert_eq!(setup.github.violations(), Vec::<String>::new());
    assert!(!format!("{first:?}{second:?}").contains(TOKEN));
}

#[tokio::test]
async fn organisation_hooks_use_the_organisation_paths() {
    let setup = setup().await;
    setup.github.hook(
        ORG_HOOK,
        vec![
            attempt(21, "g-org-ok", minutes(5), 202),
            attempt(20, "g-org", minutes(10), 503),
        ],
    );
    let output = setup.redeliver(&["--org", "acme", "--hook-id", "7"]).await;
    assert!(output.success, "{output:?}");
    assert_eq!(
        setup.github.requests(),
        [
            Request::List {
                hook: ORG_HOOK.into(),
                cursor: None
            },
            Request::Redeliver {
                hook: ORG_HOOK.into(),
                id: 20
            },
        ]
    );
    assert!(
        output.stdout.contains("asked GitHub to redeliver g-org "),
        "{output:?}"
    );
    assert_eq!(setup.github.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn follows_the_cursor_across_pages() {
    let setup = setup().await;
    setup.github.page_size(2);
    setup.github.hook(
        REPO_HOOK,
        vec![
            attempt(9, "g-9", minutes(1), 202),
            attempt(8, "g-8", minutes(2), 202),
            // Page 2: a failure whose successful redelivery is on page 1 would be g-9's; this
            // one has none.
            attempt(7, "g-7", minutes(3), 500),
            attempt(6, "g-6", minutes(4), 202),
            // Page 3.
            attempt(5, "g-5", minutes(5), 0),
        ],
    );
    let output = setup.redeliver(&[]).await;
    assert!(output.success, "{output:?}");
    let list = |cursor| Request::List {
        hook: REPO_HOOK.into(),
        cursor,
    };
    let redeliver = |id| Request::Redeliver {
        hook: REPO_HOOK.into(),
        id,
    };
    assert_eq!(
        setup.github.requests(),
        [
            list(None),
            list(Some(8)),
            list(Some(6)),
            redeliver(5),
            redeliver(7)
        ]
    );
    assert!(
        output
            .stdout
            .ends_with("2 failed deliveries found, 2 asked again, 0 already asked\n"),
        "{output:?}"
    );
    assert!(
        output
            .stderr
            .contains("checked 5 attempts (3 pages) of the deliveries of hook 42"),
        "{output:?}"
    );
    assert_eq!(setup.github.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn since_stops_the_listing_at_the_first_older_attempt() {
    let setup = setup().await;
    setup.github.page_size(2);
    setup.github.hook(
        REPO_HOOK,
        vec![
            attempt(6, "g-6", minutes(10), 503),
            attempt(5, "g-5", minutes(20), 202),
            attempt(4, "g-4", minutes(30), 503),
            // Older than --since 1h: not asked, and page 3 is never fetched.
            attempt(3, "g-3", minutes(90), 503),
            attempt(2, "g-2", minutes(100), 503),
            attempt(1, "g-1", minutes(110), 503),
        ],
    );
    let output = setup.redeliver(&["--since", "1h"]).await;
    assert!(output.success, "{output:?}");
    assert_eq!(setup.github.lists(), 2, "{:?}", setup.github.requests());
    assert_eq!(setup.github.redelivered(), [4, 6]);
    assert!(
        output
            .stdout
            .ends_with("2 failed deliveries found, 2 asked again, 0 already asked\n"),
        "{output:?}"
    );
}

#[tokio::test]
async fn a_dry_run_asks_nothing_and_remembers_nothing() {
    let setup = setup().await;
    setup.github.hook(REPO_HOOK, mixed_history());
    let dry = setup.redeliver(&["--dry-run"]).await;
    assert!(dry.success, "{dry:?}");
    assert_eq!(setup.github.redelivered(), Vec::<i64>::new());
    assert!(
        dry.stdout
            .contains("would ask GitHub to redeliver g-twice (issues.opened, attempt 4"),
        "{dry:?}"
    );
    assert!(
        dry.stdout.ends_with(
            "2 failed deliveries found, 2 would be asked again, 0 already asked (dry run: \
             nothing asked, nothing stored)\n"
        ),
        "{dry:?}"
    );
    // Nothing was recorded: the real run asks for both.
    let real = setup.redeliver(&[]).await;
    assert!(real.success, "{real:?}");
    assert_eq!(setup.github.redelivered(), [4, 5]);
}

#[tokio::test]
async fn a_delivery_that_fails_again_is_asked_again_three_times_then_reported() {
    let setup = setup().await;
    setup
        .github
        .hook(REPO_HOOK, vec![attempt(5, "g-down", minutes(30), 503)]);
    // Each redelivery GitHub makes fails too.
    setup.github.redeliveries_answered(503);
    let first = setup.redeliver(&[]).await;
    assert!(
        first.stdout.contains("asked GitHub to redeliver g-down"),
        "{first:?}"
    );
    let second = setup.redeliver(&[]).await;
    assert!(
        second
            .stdout
            .contains("asked GitHub again (request 2 of 3) to redeliver g-down"),
        "{second:?}"
    );
    let third = setup.redeliver(&[]).await;
    assert!(
        third
            .stdout
            .contains("asked GitHub again (request 3 of 3) to redeliver g-down"),
        "{third:?}"
    );
    let redelivered = setup.github.redelivered();
    assert_eq!(redelivered.len(), 3);
    assert_eq!(
        redelivered[0], 5,
        "then the newest failed attempt each time"
    );
    assert!(redelivered[1] > 5 && redelivered[2] > redelivered[1]);

    for _ in 0..2 {
        let reported = setup.redeliver(&[]).await;
        assert!(reported.success, "{reported:?}");
        assert!(
            reported
                .stdout
                .contains("gave up on g-down (issues.opened, attempt "),
            "{reported:?}"
        );
        assert!(
            reported
                .stdout
                .contains("asked 3 times and each redelivery failed too"),
            "{reported:?}"
        );
        assert!(
            reported.stdout.ends_with(
                "1 failed delivery found, 0 asked again, 0 already asked, 1 given up after 3 \
                 requests\n"
            ),
            "{reported:?}"
        );
    }
    assert_eq!(setup.github.redelivered().len(), 3);
    assert_eq!(setup.github.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_successful_redelivery_ends_the_matter() {
    let setup = setup().await;
    setup
        .github
        .hook(REPO_HOOK, vec![attempt(5, "g-down", minutes(30), 503)]);
    setup.github.redeliveries_answered(202);
    assert!(setup.redeliver(&[]).await.success);
    let second = setup.redeliver(&[]).await;
    assert_eq!(
        second.stdout,
        "0 failed deliveries found, 0 asked again, 0 already asked\n"
    );
    assert_eq!(setup.github.redelivered(), [5]);
}

#[tokio::test]
async fn a_delivery_herald_stored_is_skipped() {
    // herald stored g-stored, but GitHub saw a 503 (the answer came after the commit).
    let app = AppBuilder::new().spawn().await;
    let body = crate::helpers::opened_issue(1);
    assert_eq!(app.send("issues", "g-stored", &body).await.status(), 202);
    let github = FakeGithub::start().await;
    // The test harness sends with `X-GitHub-Hook-ID: 4242`.
    github.hook(
        "/repos/acme/widgets/hooks/4242",
        vec![
            attempt(8, "g-lost", minutes(5), 0),
            attempt(7, "g-stored", minutes(6), 503),
        ],
    );
    let env = [
        ("HERALD_DATABASE_URL", app.database_url.as_str()),
        ("HERALD_GITHUB_API_URL", github.url.as_str()),
        ("HERALD_GITHUB_TOKEN", TOKEN),
    ];
    let output = run_herald(&["redeliver", "acme/widgets", "--hook-id", "4242"], &env).await;
    assert!(output.success, "{output:?}");
    assert_eq!(github.redelivered(), [8]);
    assert!(
        output
            .stdout
            .contains("skipped g-stored (issues.opened, attempt 7 at ")
            && output
                .stdout
                .contains("herald stored it although GitHub saw a failure"),
        "{output:?}"
    );
    assert!(
        output.stdout.ends_with(
            "2 failed deliveries found, 1 asked again, 0 already asked, 1 stored by herald \
             (skipped)\n"
        ),
        "{output:?}"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_hook_or_a_bad_token_fails_with_the_next_step() {
    let setup = setup().await;
    setup.github.hook(REPO_HOOK, mixed_history());

    let unknown = setup.redeliver(&["acme/widgets", "--hook-id", "43"]).await;
    assert!(!unknown.success, "{unknown:?}");
    assert!(
        unknown.stderr.contains(
            "GitHub answered 404 (Not Found) for hook 43 of acme/widgets: there is no such \
             hook, or the token cannot see it"
        ) && unknown.stderr.contains("admin:repo_hook"),
        "{unknown:?}"
    );

    let bad_token = setup.redeliver_with(&[], "ghp_wrong").await;
    assert!(!bad_token.success, "{bad_token:?}");
    assert!(
        bad_token.stderr.contains(
            "GitHub refused the token (401 Bad credentials): set HERALD_GITHUB_TOKEN to a valid \
             token with the admin:repo_hook scope"
        ),
        "{bad_token:?}"
    );
    assert!(!bad_token.stderr.contains("ghp_wrong"), "{bad_token:?}");

    // Listing is allowed, asking is not (a read-only token).
    setup.github.script(
        Kind::Redeliver,
        Scripted::Status(403, "Resource not accessible by personal access token"),
    );
    let read_only = setup.redeliver(&[]).await;
    assert!(!read_only.success, "{read_only:?}");
    assert!(
        read_only.stderr.contains(
            "GitHub refused access to hook 42 of acme/widgets (403 Resource not accessible by \
             personal access token): HERALD_GITHUB_TOKEN needs the admin:repo_hook scope"
        ),
        "{read_only:?}"
    );

    let no_token = setup.redeliver_with(&[], "").await;
    assert!(!no_token.success, "{no_token:?}");
    assert!(
        no_token.stderr.contains("set HERALD_GITHUB_TOKEN"),
        "{no_token:?}"
    );
    // The refused request was forgotten: asked for by the next run that may.
    let next = setup.redeliver(&[]).await;
    assert!(next.success, "{next:?}");
    assert_eq!(setup.github.redelivered(), [4, 4, 5]);
    assert_eq!(setup.github.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_request_github_could_not_take_is_made_by_the_next_run() {
    let setup = setup().await;
    setup.github.hook(REPO_HOOK, mixed_history());
    setup
        .github
        .script(Kind::Redeliver, Scripted::Status(502, "Server Error"));
    let failed = setup.redeliver(&[]).await;
    assert!(!failed.success, "{failed:?}");
    assert!(
        failed
            .stderr
            .contains("asking GitHub to redeliver g-twice (attempt 4); the next run asks again"),
        "{failed:?}"
    );
    // GitHub does not answer at all: the same.
    setup.github.script(Kind::Redeliver, Scripted::Hang);
    let timed_out = setup.redeliver(&["--github-timeout", "300ms"]).await;
    assert!(!timed_out.success, "{timed_out:?}");
    assert!(
        timed_out
            .stderr
            .contains("GitHub did not answer within the timeout: check HERALD_GITHUB_API_URL"),
        "{timed_out:?}"
    );
    let next = setup.redeliver(&[]).await;
    assert!(next.success, "{next:?}");
    assert_eq!(setup.github.redelivered(), [4, 4, 4, 5]);
}

#[tokio::test]
async fn a_refused_redelivery_is_reported_and_not_asked_again() {
    let setup = setup().await;
    setup
        .github
        .hook(REPO_HOOK, vec![attempt(5, "g-old", minutes(30), 503)]);
    setup.github.script(
        Kind::Redeliver,
        Scripted::Status(422, "Hook delivery is too old to redeliver"),
    );
    let refused = setup.redeliver(&[]).await;
    assert!(!refused.success, "GitHub refused: {refused:?}");
    assert!(
        refused
            .stdout
            .contains("GitHub refused to redeliver g-old (issues.opened, attempt 5 at ")
            && refused
                .stdout
                .contains(": 422 Hook delivery is too old to redeliver"),
        "{refused:?}"
    );
    assert!(
        refused.stdout.ends_with(
            "1 failed delivery found, 0 asked again, 0 already asked, 1 refused by GitHub\n"
        ),
        "{refused:?}"
    );
    let again = setup.redeliver(&[]).await;
    assert!(again.success, "{again:?}");
    assert_eq!(setup.github.redelivered(), [5]);
}

#[tokio::test]
async fn rate_limits_are_waited_out() {
    let setup = setup().await;
    setup.github.hook(REPO_HOOK, mixed_history());
    setup.github.script(Kind::List, Scripted::RetryAfter(1));
    let output = setup.redeliver(&[]).await;
    assert!(output.success, "{output:?}");
    assert!(output.stderr.contains("rate limit"), "{output:?}");
    assert_eq!(setup.github.lists(), 2);
    assert_eq!(setup.github.redelivered(), [4, 5]);
    assert_eq!(setup.github.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn refuses_a_pagination_link_off_the_api_and_bad_names() {
    let setup = setup().await;
    setup.github.page_size(2);
    setup.github.hook(REPO_HOOK, mixed_history());
    setup.github.script(Kind::List, Scripted::ForeignLink);
    let output = setup.redeliver(&[]).await;
    assert!(!output.success, "{output:?}");
    assert!(
        output
            .stderr
            .contains("refusing to follow a pagination link off the API"),
        "{output:?}"
    );
    assert_eq!(setup.github.lists(), 1);

    let bad_repo = setup.redeliver(&["../../etc", "--hook-id", "42"]).await;
    assert!(!bad_repo.success);
    assert!(bad_repo.stderr.contains("OWNER/NAME"), "{bad_repo:?}");
    let neither = setup.redeliver(&["--hook-id", "42"]).await;
    assert!(!neither.success);
    assert!(neither.stderr.contains("--org"), "{neither:?}");
    assert_eq!(setup.github.redelivered(), Vec::<i64>::new());
}

#[tokio::test]
async fn after_a_burst_of_ten_requests_it_asks_one_a_second() {
    let setup = setup().await;
    setup.github.hook(
        REPO_HOOK,
        (1..=12)
            .rev()
            .map(|id| attempt(id, &format!("g-{id}"), minutes(id as u64), 503))
            .collect(),
    );
    let output = setup.redeliver(&[]).await;
    assert!(output.success, "{output:?}");
    assert_eq!(setup.github.redelivered().len(), 12);
    let times = setup.github.redelivery_times();
    for pair in times[9..].windows(2) {
        assert!(
            pair[1] - pair[0] >= std::time::Duration::from_secs(1),
            "GitHub asks for a second between mutating requests: {times:?}"
        );
    }
}

#[tokio::test]
async fn a_secondary_rate_limit_is_waited_out_not_taken_for_a_refusal() {
    let setup = setup().await;
    setup
        .github
        .hook(REPO_HOOK, vec![attempt(5, "g-down", minutes(30), 503)]);
    setup.github.script(
        Kind::Redeliver,
        Scripted::Status(403, "You have exceeded a secondary rate limit."),
    );
    let output = setup.redeliver(&["--max-rate-limit-wait", "200ms"]).await;
    assert!(output.success, "{output:?}");
    assert!(output.stderr.contains("rate limit"), "{output:?}");
    assert_eq!(setup.github.redelivered(), [5, 5]);
}

#[tokio::test]
async fn other_refusals_of_one_delivery_do_not_stop_the_others() {
    let setup = setup().await;
    setup.github.hook(REPO_HOOK, mixed_history());
    setup
        .github
        .script(Kind::Redeliver, Scripted::Status(400, "Bad Request"));
    let output = setup.redeliver(&[]).await;
    assert!(!output.success, "{output:?}");
    assert!(
        output
            .stdout
            .contains("GitHub refused to redeliver g-twice (issues.opened, attempt 4"),
        "{output:?}"
    );
    assert!(
        output.stdout.contains("asked GitHub to redeliver g-down"),
        "{output:?}"
    );
    assert_eq!(setup.github.redelivered(), [4, 5]);
}

#[tokio::test]
async fn a_request_a_crash_left_unanswered_is_made_again_after_15_minutes() {
    let setup = setup().await;
    setup.github.hook(REPO_HOOK, mixed_history());
    // What a run that crashed between recording its requests and making them leaves behind:
    // one 20 minutes ago (g-twice, attempt 4), one a minute ago (g-down, attempt 5).
    let store = crate::helpers::open_store(&setup.database_url).await;
    let now = herald::time_util::now_ms();
    for (guid, id, ago_ms) in [("g-twice", 4, 20 * 60_000), ("g-down", 5, 60_000)] {
        let request = herald::store::NewRequest {
            hook: "repos/acme/widgets/hooks/42",
            guid,
            delivery_id: id,
            delivered_at: 0,
            requested_at: now - ago_ms,
        };
        assert!(store.claim_redelivery(request).await.unwrap());
    }
    store.close().await;
    let output = setup.redeliver(&[]).await;
    assert!(output.success, "{output:?}");
    assert_eq!(setup.github.redelivered(), [4]);
    assert!(
        output
            .stdout
            .ends_with("2 failed deliveries found, 1 asked again, 1 already asked\n"),
        "{output:?}"
    );
}
