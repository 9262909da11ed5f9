//! PostgreSQL going away and coming back, through a proxy the test cuts: webhooks answer 503
//! (never a 2xx for an event not stored) and `/readyz` 503 while it is gone, and both recover
//! without a restart once it is back. And `/metrics` sends no query per scrape.

use crate::databases;
use crate::helpers::{AppBuilder, TestApp, opened_issue, wait_until};
use crate::tcp_proxy::TcpProxy;

/// A herald on a fresh PostgreSQL database reached through `proxy`; `None` without PostgreSQL.
async fn through_proxy(extra: &[&str]) -> Option<(TestApp, TcpProxy, databases::TestDatabase)> {
    let database = databases::postgres().await?;
    let proxy = TcpProxy::start("127.0.0.1:5432".into()).await;
    let name = database.url.rsplit('/').next().unwrap().to_owned();
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    let app = AppBuilder::new()
        .arg("--database-url", &url)
        .args(extra)
        .spawn()
        .await;
    Some((app, proxy, database))
}

async fn ready(app: &TestApp) -> u16 {
    app.get("/readyz").send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn postgres_lost_then_back_answers_503_then_recovers_without_a_restart() {
    let Some((app, proxy, database)) =
        through_proxy(&["--store-timeout", "2s", "--notify-events", ""]).await
    else {
        return;
    };
    assert_eq!(
        app.send("issues", "before", &opened_issue(1))
            .await
            .status(),
        202
    );
    proxy.cut();
    for attempt in 0..3 {
        let status = app
            .send(
                "issues",
                &format!("lost-{attempt}"),
                &opened_issue(2 + attempt),
            )
            .await
            .status();
        assert_eq!(status, 503, "attempt {attempt} while PostgreSQL is gone");
    }
    assert_eq!(ready(&app).await, 503);
    proxy.restore();
    wait_until("/readyz answers 200 once PostgreSQL is back", || async {
        ready(&app).await == 200
    })
    .await;
    // Every try now succeeds; the refused deliveries are stored on GitHub's redelivery (or
    // were committed late and are recognised as duplicates).
    for attempt in 0..3 {
        let status = app
            .send(
                "issues",
                &format!("lost-{attempt}"),
                &opened_issue(2 + attempt),
            )
            .await
            .status();
        assert!(
            matches!(status.as_u16(), 200 | 202),
            "redelivery {attempt}: {status}"
        );
    }
    for attempt in 0..10 {
        let status = app
            .send(
                "issues",
                &format!("after-{attempt}"),
                &opened_issue(10 + attempt),
            )
            .await
            .status();
        assert_eq!(status, 202, "attempt {attempt} after PostgreSQL came back");
    }
    let store = crate::helpers::open_store(&database.url).await;
    assert_eq!(store.count_events().await.unwrap(), 14);
}

#[tokio::test]
async fn metrics_scrapes_send_no_query_to_the_store() {
    let Some((app, proxy, _database)) =
        through_proxy(&["--poll-interval", "1h", "--notify-events", ""]).await
    else {
        return;
    };
    let scrape = || async {
        let response = app.get("/metrics").send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    let first = scrape().await;
    assert!(
        first.contains("herald_queue_depth{status=\"pending\"}"),
        "{first}"
    );
    // Start-up traffic (migrations, the first claim and count, the dashboard computed ahead of
    // its first visit) is over once the dashboard answers and the listener for outbox
    // announcements is connected; fifty plain requests give it time to settle.
    assert_eq!(app.get("/dashboard").send().await.unwrap().status(), 200);
    for _ in 0..50 {
        app.get("/healthz").send().await.unwrap();
    }
    let before = proxy.bytes_to_server();
    for _ in 0..500 {
        scrape().await;
    }
    let sent = proxy.bytes_to_server() - before;
    // A query costs at least ~40 bytes on the wire even as a cached statement, so counting the
    // outbox per scrape would send 20,000 or more. Background work (the 10 s refresh, the first
    // claims after start-up) stays far below 8,000.
    assert!(sent < 8_000, "500 scrapes sent {sent} bytes to PostgreSQL");
}
