//! End to end: signed webhooks in, analytics deliveries through the outbox, then
//! `GET /api/metrics/issues` and `herald report` compared with hand-computed JSON.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::helpers::{IssueSpec, Snapshot, TestApp, run_herald};
use crate::scenario::{JANUARY, history, january, january_bug, january_gadgets};

async fn app_with_history() -> TestApp {
    let app = TestApp::spawn(&[]).await;
    for (event, delivery, body) in history() {
        assert_eq!(app.send(event, &delivery, &body).await, 202, "{delivery}");
    }
    app.wait_for_deliveries().await;
    app
}

#[tokio::test]
async fn the_api_reports_the_hand_computed_metrics() {
    let app = app_with_history().await;
    assert_eq!(app.metrics(JANUARY).await, january(false));
    assert_eq!(
        app.metrics(&format!("{JANUARY}&group_by=repo")).await,
        january(true)
    );
    assert_eq!(
        app.metrics(&format!("{JANUARY}&label=bug")).await,
        january_bug()
    );
    // Labels and repositories are matched without regard to case, as on GitHub.
    assert_eq!(
        app.metrics(&format!("{JANUARY}&label=BUG")).await,
        january_bug()
    );
    assert_eq!(
        app.metrics(&format!("{JANUARY}&repo=Acme/Gadgets")).await,
        january_gadgets()
    );
    let by_label = app.metrics(&format!("{JANUARY}&group_by=label")).await;
    let keys: Vec<(&str, i64)> = by_label["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| {
            (
                group["key"].as_str().unwrap(),
                group["issues"]["opened"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [("(no label)", 2), ("bug", 2), ("docs", 1), ("ui", 1)]
    );
    let by_assignee = app.metrics(&format!("{JANUARY}&group_by=assignee")).await;
    assert_eq!(by_assignee["groups"][1]["key"], json!("bob"));
    // bob's issues: #1 (answered after 7200 s) and #8 (14400 s): median 10800.
    assert_eq!(
        by_assignee["groups"][1]["time_to_first_response"]["median_seconds"],
        json!(10_800)
    );
    let by_author = app.metrics(&format!("{JANUARY}&group_by=author")).await;
    assert_eq!(by_author["groups"][0]["key"], json!("alice"));
    assert_eq!(by_author["groups"][0]["issues"]["opened"], json!(2));
    // A window that starts after everything holds nothing, with null statistics.
    let empty = app.metrics("since=2020-02-01&until=2020-03-01").await;
    assert_eq!(
        empty["issues"],
        json!({"opened": 0, "closed": 0, "open_now": 0})
    );
    assert_eq!(empty["time_to_close"]["median_seconds"], json!(null));
}

#[tokio::test]
async fn arrival_order_and_duplicates_do_not_change_the_result() {
    let in_order = app_with_history().await;
    let shuffled = TestApp::spawn(&[]).await;
    // Newest first: every `closed` before its `opened`, every comment before its issue. Each
    // delivery twice (GitHub's redelivery: answered 200 and ignored), and once more under a new
    // delivery id, so the analytics sink applies the same snapshot twice.
    for (event, delivery, body) in history().into_iter().rev() {
        assert_eq!(
            shuffled.send(event, &delivery, &body).await,
            202,
            "{delivery}"
        );
        assert_eq!(
            shuffled.send(event, &delivery, &body).await,
            200,
            "{delivery}"
        );
        let again = format!("{delivery}-again");
        assert_eq!(shuffled.send(event, &again, &body).await, 202, "{again}");
    }
    shuffled.wait_for_deliveries().await;
    for query in [
        JANUARY.to_owned(),
        format!("{JANUARY}&group_by=repo"),
        format!("{JANUARY}&group_by=label"),
        format!("{JANUARY}&group_by=assignee"),
        format!("{JANUARY}&label=ui"),
    ] {
        assert_eq!(
            shuffled.metrics(&query).await,
            in_order.metrics(&query).await,
            "{query}"
        );
    }
    assert_eq!(shuffled.metrics(JANUARY).await, january(false));
}

#[tokio::test]
async fn relative_windows_and_young_issues() {
    let app = app_with_history().await;
    let two_hours_ago = OffsetDateTime::now_utc() - time::Duration::hours(2);
    let created: &'static str = Box::leak(two_hours_ago.format(&Rfc3339).unwrap().into_boxed_str());
    let fresh = IssueSpec::new("acme/widgets", 9, "zoe", created).labels(&["bug"]);
    assert_eq!(
        app.send(
            "issues",
            "fresh",
            &fresh.event("opened", &Snapshot::open(created))
        )
        .await,
        202
    );
    app.wait_for_deliveries().await;
    for query in [
        "since=1d",
        "since=12h&label=bug",
        "since=3h&repo=acme/widgets",
    ] {
        let report = app.metrics(query).await;
        assert_eq!(
            report["issues"],
            json!({"opened": 1, "closed": 0, "open_now": 1}),
            "{query}"
        );
        assert_eq!(
            report["backlog"],
            json!({"open": 1, "age_buckets": {"<1d": 1, "1-7d": 0, "7-30d": 0, ">30d": 0}}),
            "{query}"
        );
    }
    assert_eq!(app.metrics("since=1h").await["issues"]["opened"], json!(0));
    assert_eq!(
        app.metrics("since=2w&label=docs").await["issues"]["opened"],
        json!(0)
    );
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_json_reason() {
    let app = TestApp::spawn(&[]).await;
    for (query, reason) in [
        ("since=yesterday", "invalid since"),
        ("until=2020-13-01", "invalid until"),
        ("since=2020-02-01&until=2020-01-01", "must be before"),
        ("repo=widgets", "invalid repo"),
        ("label=", "invalid label"),
        ("group_by=colour", "invalid group_by"),
        ("sinse=30d", "unknown parameter"),
        ("since=1d&since=2d", "given twice"),
    ] {
        let response = app
            .get(&format!("/api/metrics/issues?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(reason), "{query}: {body}");
    }
}

#[tokio::test]
async fn the_api_token_is_required_when_set() {
    let app = TestApp::spawn(&["--api-token", "s3cret-api-token"]).await;
    let url = "/api/metrics/issues";
    let missing = app.get(url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body, json!({"error": "missing or invalid bearer token"}));
    for header in [
        "Bearer wrong",
        "Bearer s3cret-api-tokenX",
        "Basic s3cret-api-token",
        "s3cret-api-token",
    ] {
        let response = app
            .get(url)
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{header}");
    }
    let ok = app
        .get(url)
        .header("authorization", "Bearer s3cret-api-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Bad parameters are only looked at once the caller is known.
    let unauthenticated = app
        .get(&format!("{url}?since=nonsense"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthenticated.status(), 401);
    // The webhook and operational endpoints are not behind the API token.
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);

    let open = TestApp::spawn(&[]).await;
    assert_eq!(open.get(url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_report_command_prints_the_same_json_as_the_api() {
    let app = app_with_history().await;
    let env = [("HERALD_DATABASE_URL", app.database_url.as_str())];
    let base = ["report", "--since", "2020-01-01", "--until", "2020-01-31"];

    let mut args = base.to_vec();
    args.extend(["--format", "json", "--group-by", "repo"]);
    let output = run_herald(&args, &env).await;
    assert!(output.success, "{output:?}");
    let printed: Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(printed, january(true));
    assert_eq!(
        printed,
        app.metrics(&format!("{JANUARY}&group_by=repo")).await
    );

    let mut args = base.to_vec();
    args.extend(["--format", "json", "--label", "bug"]);
    let printed: Value = serde_json::from_str(&run_herald(&args, &env).await.stdout).unwrap();
    assert_eq!(printed, january_bug());

    // Table (the default): medians 4500 s and 86400 s, p90 224640 s, read as people write them.
    let table = run_herald(&base, &env).await.stdout;
    for text in [
        "1h 15m",
        "1d",
        "2d 14h",
        "completed 2, not_planned 1",
        ">30d 2",
    ] {
        assert!(table.contains(text), "{text:?} missing from:\n{table}");
    }

    let mut args = base.to_vec();
    args.extend(["--format", "markdown", "--group-by", "repo"]);
    let markdown = run_herald(&args, &env).await.stdout;
    for text in [
        "- **Time to first response:** median 1h 15m, mean 1h 37m, p90 3h 24m (4 answered, 1 unanswered)",
        "- **Time to close:** median 1d, mean 1d 9h, p90 2d 14h (3 closed: completed 2, not\\_planned 1)",
        "| acme/gadgets | 1 | 1 | 0 | 0 | 45s | 3d |",
        "| acme/widgets | 4 | 2 | 2 | 1 | 2h | 14h 30m |",
    ] {
        assert!(
            markdown.contains(text),
            "{text:?} missing from:\n{markdown}"
        );
    }

    let mut args = base.to_vec();
    args.extend(["--format", "csv", "--group-by", "repo"]);
    let csv = run_herald(&args, &env).await.stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(
        lines[0].starts_with("scope,key,opened,closed,open_now,"),
        "{csv}"
    );
    assert_eq!(
        lines[1],
        "all,,5,3,2,4,1,5861.25,4500,12240,3,121200,86400,224640,2,1,2,0,0,0,2"
    );
    assert!(
        lines[2].starts_with("repo,acme/gadgets,1,1,0,1,0,45,45,45,"),
        "{csv}"
    );

    let bad = run_herald(&["report", "--since", "soon"], &env).await;
    assert!(!bad.success);
    assert!(bad.stderr.contains("invalid since"), "{bad:?}");
}
