//! The BigQuery sink against a fake `insertAll` that checks each request: the row shape and
//! `insertId`, the batch limits (500 rows, 9 MB), per-row `insertErrors` (only failed rows
//! retried, invalid ones dead-lettered with BigQuery's reason), and 5xx, 429 and timeouts
//! retried; then the same through `herald serve`.

use std::sync::Arc;
use std::time::Duration;

use herald::config::GoogleConfig;
use herald::gcp::{BigQuery, GoogleAuth};
use herald::sinks::{BigQuerySink, Delivery, Outcome, Sink};
use herald::store::StoredEvent;
use serde_json::Value;

use crate::common::{AppBuilder, wait_until};
use crate::fake_google::{FakeGoogle, InsertReply};

const TABLE: &str = "p1.herald.events";
const INSERT_PATH: &str = "/bigquery/v2/projects/p1/datasets/herald/tables/events/insertAll";

fn sink(google: &FakeGoogle, timeout: Duration) -> BigQuerySink {
    crate::common::install_crypto();
    let auth = GoogleAuth::from_config(&GoogleConfig {
        google_application_credentials: None,
        gce_metadata_host: google.metadata_host(),
    })
    .unwrap();
    let client = BigQuery::new(&google.address, auth, timeout).unwrap();
    BigQuerySink::new(client, TABLE.parse().unwrap())
}

fn delivery(number: i64, payload: String) -> Delivery {
    Delivery {
        row: number,
        attempts: 0,
        interrupted: false,
        event: Arc::new(StoredEvent {
            id: number,
            hook_id: "4242".into(),
            delivery_id: format!("delivery-{number}"),
            event: "issues".into(),
            action: Some("opened".into()),
            repository: Some("acme/widgets".into()),
            issue_number: Some(number),
            actor: Some("alice".into()),
            received_at: 1_767_323_045_123,
            payload,
        }),
    }
}

fn small(number: i64) -> Delivery {
    delivery(
        number,
        format!(
            r#"{{"action":"opened","issue":{{"number":{number},"updated_at":"2026-01-02T10:00:00Z"}}}}"#
        ),
    )
}

fn rows_of(request: &crate::fake_google::ApiRequest) -> Vec<Value> {
    request.body["rows"].as_array().unwrap().clone()
}

#[tokio::test]
async fn every_event_is_one_row_keyed_by_its_delivery_id() {
    let google = FakeGoogle::start().await;
    let sink = sink(&google, Duration::from_secs(10));
    assert_eq!(sink.max_batch(), 500);
    let batch: Vec<Delivery> = (1..=500).map(small).collect();
    let outcomes = sink.deliver(&batch).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Delivered));
    let requests = google.requests_to("insertAll");
    assert_eq!(requests.len(), 1, "500 rows fit one request");
    let request = &requests[0];
    assert_eq!(request.path, INSERT_PATH);
    assert_eq!(request.authorization, "Bearer ya29.test-token-1");
    assert_eq!(request.content_type, "application/json");
    assert_eq!(request.body["kind"], "bigquery#tableDataInsertAllRequest");
    assert_eq!(request.body["skipInvalidRows"], true);
    assert_eq!(request.body["ignoreUnknownValues"], false);
    let rows = rows_of(request);
    assert_eq!(rows.len(), 500);
    assert_eq!(
        rows[6],
        serde_json::json!({
            "insertId": "delivery-7",
            "json": {
                "delivery_id": "delivery-7",
                "hook_id": "4242",
                "event": "issues",
                "action": "opened",
                "repository": "acme/widgets",
                "issue_number": 7,
                "actor": "alice",
                "occurred_at": "2026-01-02T10:00:00Z",
                "received_at": "2026-01-02T03:04:05.123Z",
                // A JSON column takes a string holding the JSON: the text as GitHub sent it.
                "payload": r#"{"action":"opened","issue":{"number":7,"updated_at":"2026-01-02T10:00:00Z"}}"#,
            }
        })
    );
}

#[tokio::test]
async fn requests_stay_under_nine_megabytes_and_a_row_too_large_is_dead_lettered() {
    let google = FakeGoogle::start().await;
    let sink = sink(&google, Duration::from_secs(10));
    let padded = |number: i64, bytes: usize| {
        delivery(
            number,
            format!(
                r#"{{"issue":{{"number":{number}}},"body":"{}"}}"#,
                "x".repeat(bytes)
            ),
        )
    };
    let batch = vec![
        padded(1, 3_000_000),
        padded(2, 3_000_000),
        padded(3, 9_500_000),
        padded(4, 3_000_000),
        padded(5, 100),
    ];
    let outcomes = sink.deliver(&batch).await;
    assert!(
        matches!(&outcomes[2], Outcome::Permanent { reason } if reason.contains("cannot be streamed")),
        "{:?}",
        outcomes[2]
    );
    for position in [0, 1, 3, 4] {
        assert_eq!(outcomes[position], Outcome::Delivered);
    }
    let requests = google.requests_to("insertAll");
    let ids: Vec<Vec<String>> = requests
        .iter()
        .map(|request| {
            rows_of(request)
                .iter()
                .map(|row| row["insertId"].as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        ids,
        [
            vec!["delivery-1", "delivery-2"],
            vec!["delivery-4", "delivery-5"]
        ],
        "three 3 MB rows do not fit under 9 MB"
    );
}

#[tokio::test]
async fn only_failed_rows_are_retried_and_invalid_ones_refused_with_bigquerys_reason() {
    let google = FakeGoogle::start().await;
    let sink = sink(&google, Duration::from_secs(10));
    google.script_inserts(vec![InsertReply::RowErrors(vec![
        (1, "invalid"),
        (2, "stopped"),
        (3, "backendError"),
    ])]);
    let batch: Vec<Delivery> = (1..=4).map(small).collect();
    let outcomes = sink.deliver(&batch).await;
    assert_eq!(outcomes[0], Outcome::Delivered);
    assert_eq!(
        outcomes[1],
        Outcome::Permanent {
            reason:
                "BigQuery refused the row: invalid: invalid: the fake refused row 1 (at payload)"
                    .into()
        }
    );
    assert!(matches!(&outcomes[2], Outcome::Retry { reason, .. } if reason.contains("stopped")));
    assert!(
        matches!(&outcomes[3], Outcome::Retry { reason, .. } if reason.contains("backendError"))
    );
}

#[tokio::test]
async fn whole_request_failures_are_classified() {
    let google = FakeGoogle::start().await;
    let sink = sink(&google, Duration::from_millis(500));
    let batch: Vec<Delivery> = (1..=3).map(small).collect();
    google.script_inserts(vec![
        InsertReply::Status(503, "backendError", None),
        InsertReply::Status(429, "rateLimitExceeded", Some(3)),
        InsertReply::Status(403, "quotaExceeded", None),
        InsertReply::Hang,
        InsertReply::Status(404, "notFound", None),
    ]);
    let first = |outcomes: Vec<Outcome>| {
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes.iter().all(|o| *o == outcomes[0]), "{outcomes:?}");
        outcomes[0].clone()
    };
    assert!(matches!(
        first(sink.deliver(&batch).await),
        Outcome::Retry { .. }
    ));
    assert!(matches!(
        first(sink.deliver(&batch).await),
        Outcome::RateLimited { after, .. } if after == Duration::from_secs(3)
    ));
    assert!(matches!(
        first(sink.deliver(&batch).await),
        Outcome::RateLimited { .. }
    ));
    assert!(matches!(
        first(sink.deliver(&batch).await),
        Outcome::Ambiguous { .. }
    ));
    assert!(matches!(
        first(sink.deliver(&batch).await),
        Outcome::Retry { reason, .. } if reason.contains("herald bigquery setup --table p1.herald.events")
    ));
    // A whole request refused as invalid is sent again row by row: only the bad row is refused.
    google.script_inserts(vec![
        InsertReply::Status(400, "invalid", None),
        InsertReply::Ok,
        InsertReply::Status(400, "invalid", None),
        InsertReply::Ok,
    ]);
    let outcomes = sink.deliver(&batch).await;
    assert_eq!(outcomes[0], Outcome::Delivered);
    assert!(
        matches!(&outcomes[1], Outcome::Permanent { reason } if reason.contains("HTTP 400 invalid"))
    );
    assert_eq!(outcomes[2], Outcome::Delivered);
    let sizes: Vec<usize> = google
        .requests_to("insertAll")
        .iter()
        .rev()
        .take(4)
        .map(|request| rows_of(request).len())
        .collect();
    assert_eq!(sizes, [1, 1, 1, 3]);
}

#[tokio::test]
async fn a_token_bigquery_refuses_is_replaced_by_a_new_one() {
    let google = FakeGoogle::start().await;
    let sink = sink(&google, Duration::from_secs(10));
    let batch = vec![small(1)];
    assert_eq!(sink.deliver(&batch).await, [Outcome::Delivered]);
    google.revoke_tokens();
    assert!(matches!(
        &sink.deliver(&batch).await[0],
        Outcome::Retry { reason, .. } if reason.contains("HTTP 401")
    ));
    assert_eq!(sink.deliver(&batch).await, [Outcome::Delivered]);
    let tokens: Vec<String> = google
        .requests_to("insertAll")
        .into_iter()
        .map(|request| request.authorization)
        .collect();
    assert_eq!(
        tokens,
        [
            "Bearer ya29.test-token-1",
            "Bearer ya29.test-token-1",
            "Bearer ya29.test-token-2"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_will_not_start_a_bigquery_destination_without_credentials() {
    let port = crate::common::free_port();
    let builder = AppBuilder::new().args(&[
        "--bigquery-table",
        TABLE,
        "--gce-metadata-host",
        &format!("127.0.0.1:{port}"),
    ]);
    let message = crate::secret_manager::start_up_error(builder).await;
    assert!(
        message.starts_with("BigQuery destinations need Google credentials: no Google credentials"),
        "{message}"
    );
    // A key Google refuses stops it too; a token endpoint that is down does not.
    let google = FakeGoogle::start().await;
    let key = crate::fake_google::TestKey::generate();
    google.trust(&crate::fake_google::TestKey::generate());
    let path = key.key_file(&google.token_uri()).display().to_string();
    let refused = AppBuilder::new().args(&[
        "--bigquery-table",
        TABLE,
        "--google-application-credentials",
        &path,
    ]);
    let message = crate::secret_manager::start_up_error(refused).await;
    assert!(
        message.contains("invalid_grant: Invalid JWT Signature."),
        "{message}"
    );
    google.trust(&key);
    google.script_tokens(vec![crate::fake_google::TokenReply::Status(
        503,
        "backend_error",
    )]);
    let app = AppBuilder::new()
        .args(&[
            "--bigquery-table",
            TABLE,
            "--bigquery-api-url",
            &google.address,
            "--google-application-credentials",
            &path,
        ])
        .spawn()
        .await;
    assert_eq!(
        app.send("issues", "after-outage", &crate::common::opened_issue(1))
            .await
            .status(),
        202
    );
    wait_until("the row reaches BigQuery once a token is had", || async {
        !google.requests_to("insertAll").is_empty()
    })
    .await;
}

/// herald serving with the `bigquery` destination of `HERALD_BIGQUERY_TABLE` on the fake.
async fn serve(google: &FakeGoogle) -> crate::common::TestApp {
    AppBuilder::new()
        .args(&[
            "--bigquery-table",
            TABLE,
            "--bigquery-api-url",
            &google.address,
            "--gce-metadata-host",
            &google.metadata_host(),
            "--notify-events",
            "",
        ])
        .spawn()
        .await
}

async fn bigquery_rows(app: &crate::common::TestApp) -> Vec<(String, i64, Option<String>)> {
    let store = app.store().await;
    let mut rows = store.list_deliveries(None, 1000).await.unwrap();
    rows.reverse();
    store.close().await;
    rows.into_iter()
        .filter(|row| row.destination == "bigquery")
        .map(|row| (row.status, row.attempts, row.last_error))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_streams_every_event_and_retries_only_what_failed() {
    let google = FakeGoogle::start().await;
    // The first row is stopped (another row failed), then a 5xx, a 429: each retried.
    google.script_inserts(vec![
        InsertReply::RowErrors(vec![(0, "stopped")]),
        InsertReply::Status(500, "backendError", None),
        InsertReply::Status(429, "rateLimitExceeded", Some(0)),
    ]);
    let app = serve(&google).await;
    let body = crate::common::payload("issues/opened.payload.json");
    assert_eq!(app.send("issues", "delivery-a", &body).await.status(), 202);
    wait_until("the event reaches BigQuery", || async {
        bigquery_rows(&app)
            .await
            .first()
            .is_some_and(|row| row.0 == "delivered")
    })
    .await;
    let requests = google.requests_to("insertAll");
    assert_eq!(requests.len(), 4);
    for request in &requests {
        assert_eq!(rows_of(request)[0]["insertId"], "delivery-a");
        assert_eq!(
            rows_of(request)[0]["json"]["payload"]
                .as_str()
                .unwrap()
                .as_bytes(),
            &body[..],
            "the body exactly as GitHub sent it"
        );
    }
    // Three attempts counted; the 429 paused the destination without using a step.
    assert_eq!(bigquery_rows(&app).await[0].1, 3);
    // Events other than issues go there too: the warehouse keeps everything.
    let push = br#"{"ref":"refs/heads/main","head_commit":{"timestamp":"2026-01-02T10:00:00Z"}}"#;
    assert_eq!(app.send("push", "delivery-b", push).await.status(), 202);
    wait_until("the push reaches BigQuery", || async {
        bigquery_rows(&app)
            .await
            .get(1)
            .is_some_and(|row| row.0 == "delivered")
    })
    .await;
    let last = google.requests_to("insertAll").pop().unwrap();
    assert_eq!(
        rows_of(&last)[0]["json"]["occurred_at"],
        "2026-01-02T10:00:00Z"
    );
    // An invalid row is dead-lettered with BigQuery's reason.
    google.script_inserts(vec![InsertReply::RowErrors(vec![(0, "invalid")])]);
    let comment = crate::common::payload("issue_comment/created.payload.json");
    assert_eq!(
        app.send("issue_comment", "delivery-c", &comment)
            .await
            .status(),
        202
    );
    wait_until("the comment is decided", || async {
        bigquery_rows(&app)
            .await
            .get(2)
            .is_some_and(|row| row.0 != "pending")
    })
    .await;
    let rows = bigquery_rows(&app).await;
    assert_eq!(rows[2].0, "dead");
    assert_eq!(
        rows[2].2.as_deref(),
        Some("BigQuery refused the row: invalid: invalid: the fake refused row 0 (at payload)")
    );
    assert_eq!(
        google.token_requests().len(),
        1,
        "one token for every request"
    );
}
