//! `POST /webhook`: every status code of the contract, signatures, deduplication, payloads.

use std::path::Path;

use herald::github::sign_sha256;
use serde_json::Value;

use crate::helpers::{AppBuilder, SECRET, payload, payloads_dir};

fn issue_opened() -> Vec<u8> {
    payload("issues/opened.payload.json")
}

#[tokio::test]
async fn every_shared_github_payload_is_accepted() {
    let app = AppBuilder::new().spawn().await;
    let mut files = Vec::new();
    for folder in std::fs::read_dir(payloads_dir()).unwrap() {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).unwrap() {
            files.push(file.unwrap().path());
        }
    }
    files.sort();
    assert!(
        files.len() > 250,
        "expected the shared payloads, found {}",
        files.len()
    );
    let mut stored = 0;
    for (index, file) in files.iter().enumerate() {
        let event = file
            .parent()
            .and_then(Path::file_name)
            .unwrap()
            .to_str()
            .unwrap();
        let body = std::fs::read(file).unwrap();
        let response = app.send(event, &format!("delivery-{index}"), &body).await;
        let expected = if event == "ping" { 200 } else { 202 };
        assert_eq!(response.status(), expected, "{}", file.display());
        if expected == 202 {
            stored += 1;
        }
    }
    let store = app.store().await;
    assert_eq!(store.count_events().await.unwrap(), stored);
    // The raw payload is kept byte for byte and the indexed fields are filled in.
    let event = store.event(1).await.unwrap().unwrap();
    let first = files
        .iter()
        .find(|f| !f.to_str().unwrap().contains("/ping/"))
        .unwrap();
    assert_eq!(event.payload.as_bytes(), std::fs::read(first).unwrap());
}

#[tokio::test]
async fn stores_indexed_fields_and_answers_202() {
    let app = AppBuilder::new().spawn().await;
    let body = issue_opened();
    let response = app.send("issues", "d-1", &body).await;
    assert_eq!(response.status(), 202);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"status": "stored", "delivery": "d-1"})
    );
    let event = app.store().await.event(1).await.unwrap().unwrap();
    let source: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event.event, "issues");
    assert_eq!(event.action.as_deref(), Some("opened"));
    assert_eq!(
        event.repository.as_deref(),
        source["repository"]["full_name"].as_str()
    );
    assert_eq!(event.issue_number, source["issue"]["number"].as_i64());
    assert_eq!(event.actor.as_deref(), source["sender"]["login"].as_str());
    assert_eq!(event.hook_id, "4242");
    assert!(event.received_at > 1_700_000_000_000);
}

#[tokio::test]
async fn redeliveries_are_deduplicated() {
    let app = AppBuilder::new().spawn().await;
    let body = issue_opened();
    assert_eq!(app.send("issues", "same", &body).await.status(), 202);
    let again = app.send("issues", "same", &body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");
    // Another hook may legitimately reuse a delivery id: the key is the pair.
    let other_hook = app
        .post("/webhook")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "same")
        .header("x-github-hook-id", "9999")
        .header("x-hub-signature-256", sign_sha256(SECRET, &body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(other_hook.status(), 202);
    let store = app.store().await;
    assert_eq!(store.count_events().await.unwrap(), 2);
    assert_eq!(
        crate::helpers::delivery_states(&store).await.len(),
        2,
        "one Slack notification each"
    );
}

#[tokio::test]
async fn concurrent_redeliveries_store_one_event() {
    let app = AppBuilder::new().spawn().await;
    let body = issue_opened();
    let sends = (0..20).map(|_| app.send("issues", "race", &body));
    let statuses: Vec<u16> = futures_statuses(sends).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        19,
        "{statuses:?}"
    );
    assert_eq!(app.store().await.count_events().await.unwrap(), 1);
}

async fn futures_statuses(
    sends: impl Iterator<Item = impl Future<Output = reqwest::Response>>,
) -> Vec<u16> {
    futures_util::future::join_all(sends)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect()
}

#[tokio::test]
async fn root_path_is_a_webhook_too_and_ping_answers_200() {
    let app = AppBuilder::new().spawn().await;
    let body = payload("ping/payload.json");
    let response = app
        .post("/")
        .header("x-github-event", "ping")
        .header("x-github-delivery", "p-1")
        .header("x-hub-signature-256", sign_sha256(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "pong");
    let body = issue_opened();
    let response = app
        .post("/")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "r-1")
        .header("x-hub-signature-256", sign_sha256(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn signatures_are_required_and_checked() {
    let app = AppBuilder::new().spawn().await;
    let body = issue_opened();
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no signature", None),
        ("wrong secret", Some(sign_sha256("not-the-secret", &body))),
        ("other body", Some(sign_sha256(SECRET, b"{}"))),
        ("malformed", Some("sha256=nothex".into())),
        ("wrong algorithm", Some("md5=00".into())),
    ];
    for (case, signature) in cases {
        let mut request = app
            .post("/webhook")
            .header("x-github-event", "issues")
            .header("x-github-delivery", "sig")
            .body(body.clone());
        if let Some(signature) = signature {
            request = request.header("x-hub-signature-256", signature);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{case}");
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].is_string(), "{case}: {answer}");
        assert!(!answer.to_string().contains(SECRET));
    }
    assert_eq!(app.store().await.count_events().await.unwrap(), 0);
}

#[tokio::test]
async fn rotation_accepts_every_configured_secret() {
    let app = AppBuilder::new()
        .arg("--webhook-secret", "fresh, stale")
        .spawn()
        .await;
    let body = issue_opened();
    for (index, secret) in ["fresh", "stale", "gone"].iter().enumerate() {
        let status = app
            .post("/webhook")
            .header("x-github-event", "issues")
            .header("x-github-delivery", format!("rot-{index}"))
            .header("x-hub-signature-256", sign_sha256(secret, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(
            status,
            if *secret == "gone" { 401 } else { 202 },
            "{secret}"
        );
    }
}

fn sha1_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha1={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn legacy_sha1_only_when_allowed() {
    let body = issue_opened();
    let send_sha1 = |app: &crate::helpers::TestApp, delivery: &str| {
        app.post("/webhook")
            .header("x-github-event", "issues")
            .header("x-github-delivery", delivery)
            .header("x-hub-signature", sha1_signature(SECRET, &body))
            .body(body.clone())
            .send()
    };
    let strict = AppBuilder::new().spawn().await;
    assert_eq!(send_sha1(&strict, "s1").await.unwrap().status(), 401);
    let lenient = AppBuilder::new().flag("--allow-sha1").spawn().await;
    assert_eq!(send_sha1(&lenient, "s1").await.unwrap().status(), 202);
}

#[tokio::test]
async fn missing_headers_and_bad_bodies_are_400() {
    let app = AppBuilder::new().spawn().await;
    let body = issue_opened();
    let signed = |body: &[u8]| sign_sha256(SECRET, body);
    let no_event = app
        .post("/webhook")
        .header("x-github-delivery", "h-1")
        .header("x-hub-signature-256", signed(&body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_event.status(), 400);
    assert!(
        no_event.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("x-github-event")
    );
    let no_delivery = app
        .post("/webhook")
        .header("x-github-event", "issues")
        .header("x-hub-signature-256", signed(&body))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_delivery.status(), 400);
    for bad in [&b"not json"[..], b"[1,2,3]", b"{\"a\":\"\xff\xfe\"}", b""] {
        let response = app.send("issues", "bad-body", bad).await;
        assert_eq!(response.status(), 400, "{:?}", String::from_utf8_lossy(bad));
        let answer: Value = response.json().await.unwrap();
        assert!(answer["error"].is_string());
    }
    assert_eq!(app.store().await.count_events().await.unwrap(), 0);
}

#[tokio::test]
async fn form_encoded_deliveries_are_accepted() {
    let app = AppBuilder::new().spawn().await;
    let json = issue_opened();
    let form: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", std::str::from_utf8(&json).unwrap())
        .finish();
    let response = app
        .post("/webhook")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "form-1")
        .header("x-hub-signature-256", sign_sha256(SECRET, form.as_bytes()))
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let event = app.store().await.event(1).await.unwrap().unwrap();
    assert_eq!(event.payload.as_bytes(), json);
}

#[tokio::test]
async fn bodies_over_25_mib_are_413() {
    // The smallest body budget (one full-size body): each request must give its room back.
    let app = AppBuilder::new()
        .arg("--body-budget-mib", "25")
        .spawn()
        .await;
    let body = vec![b' '; herald::http::MAX_BODY_BYTES + 1];
    let declared = app.send("issues", "big", &body).await;
    assert_eq!(declared.status(), 413);
    assert!(declared.json::<Value>().await.unwrap()["error"].is_string());
    // Without Content-Length (chunked), the limit is enforced while reading.
    let chunks = body
        .chunks(1 << 20)
        .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
        .collect::<Vec<_>>();
    let streamed = app
        .post("/webhook")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "big-chunked")
        .header("x-hub-signature-256", sign_sha256(SECRET, &body))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await;
    // The server may close the connection once it has answered 413 mid-upload.
    if let Ok(response) = streamed {
        assert_eq!(response.status(), 413);
    }
    // Exactly at the limit is not too large (it fails later, as it is not JSON).
    let at_limit = vec![b' '; herald::http::MAX_BODY_BYTES];
    assert_eq!(app.send("issues", "edge", &at_limit).await.status(), 400);
}

#[tokio::test]
async fn store_unavailable_is_503_and_recovers() {
    let app = AppBuilder::new()
        .arg("--store-timeout", "300ms")
        .spawn()
        .await;
    let body = issue_opened();
    // Another process holds SQLite's write lock: herald cannot commit, so it must not say 2xx.
    let path = app.database_url.trim_start_matches("sqlite://").to_owned();
    let mut blocker = sqlx_blocker(&path).await;
    let response = app.send("issues", "blocked", &body).await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        serde_json::json!({"error": "store unavailable"})
    );
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    // GitHub's redelivery then succeeds. The writer may have committed the first try once the
    // lock went away (after answering 503), so the redelivery is stored or a duplicate: either
    // way the event is stored exactly once.
    crate::helpers::wait_until("the store accepts writes again", || async {
        matches!(
            app.send("issues", "blocked", &body).await.status().as_u16(),
            200 | 202
        )
    })
    .await;
    assert_eq!(app.store().await.count_events().await.unwrap(), 1);
}

async fn sqlx_blocker(path: &str) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let mut connection = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut connection)
        .await
        .unwrap();
    connection
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = AppBuilder::new().spawn().await;
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
    assert_eq!(app.get("/readyz").send().await.unwrap().status(), 200);
    app.send("issues", "m-1", &issue_opened()).await;
    app.post("/webhook").body("{}").send().await.unwrap();
    let metrics = app
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("herald_webhooks_received_total{event=\"issues\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herald_webhooks_rejected_total{reason=\"signature_missing\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herald_events_stored_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("herald_queue_depth{status=\"pending\"}"),
        "{metrics}"
    );
    let missing = app.get("/nope").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"], "not found");
}
