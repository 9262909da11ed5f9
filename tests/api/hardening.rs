//! Bodies and headers that used to be accepted and then fail later: JSON too deep for any sink,
//! a NUL in an indexed field on PostgreSQL, a non-UTF-8 hook id; and `/metrics` behind the token.

use herald::github::sign_sha256;
use serde_json::Value;

use crate::databases;
use crate::helpers::{
    AppBuilder, FakeSlack, SECRET, TestApp, delivery_states, opened_issue, wait_until,
};

/// `issues.opened` with `depth` levels of nesting in a field herald does not index.
fn nested_issue(depth: usize) -> Vec<u8> {
    let body = String::from_utf8(opened_issue(1)).unwrap();
    // `{"deep": [[…]]}` adds one level for the object and depth - 2 for the arrays, inside the
    // top-level object: `depth` levels in all.
    let deep = format!(
        "{{\"deep\":{}{}}}",
        "[".repeat(depth - 2),
        "]".repeat(depth - 2)
    );
    body.replacen('{', &format!("{{\"extra\":{deep},"), 1)
        .into_bytes()
}

#[tokio::test]
async fn json_too_deep_for_the_sinks_is_refused_and_the_deepest_accepted_is_delivered() {
    let slack = FakeSlack::start().await;
    let app = AppBuilder::new().slack(&slack).spawn().await;
    let deepest = nested_issue(herald::github::MAX_DEPTH);
    assert_eq!(
        herald::github::nesting_depth(&deepest),
        herald::github::MAX_DEPTH
    );
    assert_eq!(app.send("issues", "deepest", &deepest).await.status(), 202);
    // Delivered to Slack and to the analytics tables, both of which parse the whole payload.
    let store = app.store().await;
    wait_until(
        "both deliveries of the deepest payload are done",
        || async {
            let rows = store.list_deliveries(None, 10).await.unwrap();
            rows.len() == 2 && rows.iter().all(|row| row.status == "delivered")
        },
    )
    .await;
    assert_eq!(slack.requests().len(), 1);

    for depth in [herald::github::MAX_DEPTH + 1, 100_000] {
        let response = app
            .send("issues", &format!("deep-{depth}"), &nested_issue(depth))
            .await;
        assert_eq!(response.status(), 400, "depth {depth}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .contains("nested deeper than"),
            "{error}"
        );
    }
    assert_eq!(store.count_events().await.unwrap(), 1);
    assert_eq!(delivery_states(&store).await.len(), 1);
}

#[tokio::test]
async fn a_nul_in_indexed_fields_is_stored_on_postgres_with_its_batch() {
    let Some(database) = databases::postgres().await else {
        return;
    };
    let app = AppBuilder::new()
        .arg("--database-url", &database.url)
        .arg("--notify-events", "")
        .spawn()
        .await;
    let mut poison: Value = serde_json::from_slice(&opened_issue(1)).unwrap();
    poison["repository"]["full_name"] = "octo/\u{0}app".into();
    poison["sender"]["login"] = "\u{0}".into();
    poison["issue"]["title"] = "a \u{0} title".into();
    let poison = serde_json::to_vec(&poison).unwrap();
    // Sent together with others, so they share a group commit.
    let sends = (0..5).map(|index| {
        let body = if index == 2 {
            poison.clone()
        } else {
            opened_issue(index)
        };
        let app = &app;
        async move {
            app.send("issues", &format!("nul-{index}"), &body)
                .await
                .status()
        }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    let store = crate::helpers::open_store(&database.url).await;
    assert_eq!(store.count_events().await.unwrap(), 5);
    let rows = store.list_deliveries(None, 100).await.unwrap();
    let poison_row = rows.iter().find(|row| row.delivery_id == "nul-2").unwrap();
    assert_eq!(poison_row.repository.as_deref(), Some("octo/\u{fffd}app"));
}

#[tokio::test]
async fn hook_ids_must_be_utf8_and_short() {
    let app = AppBuilder::new().spawn().await;
    let body = opened_issue(1);
    let send = |hook: reqwest::header::HeaderValue, delivery: &'static str| {
        app.post("/webhook")
            .header("x-github-event", "issues")
            .header("x-github-delivery", delivery)
            .header("x-github-hook-id", hook)
            .header("x-hub-signature-256", sign_sha256(SECRET, &body))
            .body(body.clone())
            .send()
    };
    let latin1 = reqwest::header::HeaderValue::from_bytes(b"hook-\xe9").unwrap();
    let response = send(latin1, "h-1").await.unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"], "invalid x-github-hook-id header");
    let long = reqwest::header::HeaderValue::from_str(&"9".repeat(201)).unwrap();
    assert_eq!(send(long, "h-2").await.unwrap().status(), 400);
    // UTF-8 beyond ASCII is kept exactly, not stored as an empty key.
    let utf8 = reqwest::header::HeaderValue::from_bytes("hook-é".as_bytes()).unwrap();
    assert_eq!(send(utf8, "h-3").await.unwrap().status(), 202);
    let event = app.store().await.event(1).await.unwrap().unwrap();
    assert_eq!(event.hook_id, "hook-é");
}

async fn scrape(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut request = app.get("/metrics");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn metrics_require_the_api_token_and_start_at_zero() {
    let app = AppBuilder::new()
        .arg("--api-token", "scrape-token")
        .spawn()
        .await;
    assert_eq!(scrape(&app, None).await.status(), 401);
    assert_eq!(scrape(&app, Some("wrong")).await.status(), 401);
    let response = scrape(&app, Some("scrape-token")).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for line in [
        "herald_webhooks_rejected_total{reason=\"signature_mismatch\"} 0",
        "herald_webhooks_received_total{event=\"issues\"} 0",
        "herald_deliveries_total{sink=\"analytics\",outcome=\"delivered\"} 0",
        "herald_queue_depth{status=\"dead\"} 0",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    // Without a token configured, /metrics stays open as before.
    let open = AppBuilder::new().spawn().await;
    assert_eq!(scrape(&open, None).await.status(), 200);
}

#[tokio::test]
async fn report_bounds_out_of_range_are_400() {
    let app = AppBuilder::new().spawn().await;
    let response = app
        .get("/api/metrics/issues?since=106751991167d")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("out of range"),
        "{error}"
    );
}
