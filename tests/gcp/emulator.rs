//! Against the real BigQuery emulator (`bqemulator`, REST on DuckDB; `.ci/run` starts it and
//! sets `HERALD_TEST_BIGQUERY_EMULATOR`): `herald bigquery setup` creates the dataset and the
//! partitioned, clustered table; herald streams the analytics scenario into it through a proxy
//! that loses BigQuery's first answer (so rows are inserted twice, and the emulator ignores
//! `insertId`); the saved SQL of docs/bigquery, run there, gives the numbers `herald report`
//! gives on the same events.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::fake_google::FakeGoogle;
use crate::helpers::{TestApp, run_herald};

/// The emulator's base URL; `None` (with a notice) where it is not running, unless
/// `HERALD_REQUIRE_BIGQUERY_EMULATOR=1`, where that fails the test.
fn emulator() -> Option<String> {
    crate::common::install_crypto();
    match std::env::var("HERALD_TEST_BIGQUERY_EMULATOR") {
        Ok(url) if !url.is_empty() => Some(url.trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var("HERALD_REQUIRE_BIGQUERY_EMULATOR").as_deref() != Ok("1"),
                "the BigQuery emulator is required (HERALD_REQUIRE_BIGQUERY_EMULATOR=1) but \
                 HERALD_TEST_BIGQUERY_EMULATOR is not set"
            );
            let _ = writeln!(
                std::io::stderr(),
                "NOTICE: HERALD_TEST_BIGQUERY_EMULATOR is not set; skipping a BigQuery emulator \
                 test (.ci/run starts the emulator)"
            );
            None
        }
    }
}

/// One test at a time talks to the emulator: its DuckDB engine has crashed under concurrent
/// catalog changes.
static EMULATOR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn unique_dataset() -> String {
    format!("herald_test_{:08x}", rand::random::<u32>())
}

/// Runs `herald bigquery ARGS` against the emulator with tokens from `google`'s metadata server.
async fn bigquery_command(
    args: &[&str],
    emulator: &str,
    google: &FakeGoogle,
) -> crate::helpers::Output {
    let mut full = vec!["bigquery"];
    full.extend_from_slice(args);
    let host = google.metadata_host();
    run_herald(
        &full,
        &[
            ("HERALD_BIGQUERY_API_URL", emulator),
            ("GCE_METADATA_HOST", &host),
        ],
    )
    .await
}

/// A query's one row, as column name → value (BigQuery's REST encoding: numbers as strings).
async fn query(
    emulator: &str,
    sql: &str,
    parameters: &[(&str, &str)],
) -> serde_json::Map<String, Value> {
    let parameters: Vec<Value> = parameters
        .iter()
        .map(|(name, value)| {
            json!({"name": name, "parameterType": {"type": "TIMESTAMP"},
                   "parameterValue": {"value": value}})
        })
        .collect();
    let body = json!({"query": sql, "useLegacySql": false, "parameterMode": "NAMED",
                      "queryParameters": parameters});
    let answer: Value = reqwest::Client::new()
        .post(format!("{emulator}/bigquery/v2/projects/p1/queries"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("errors").is_none(), "{answer}");
    let fields = answer["schema"]["fields"].as_array().unwrap();
    let row = &answer["rows"][0]["f"];
    fields
        .iter()
        .enumerate()
        .map(|(index, field)| {
            (
                field["name"].as_str().unwrap().to_owned(),
                row[index]["v"].clone(),
            )
        })
        .collect()
}

fn number(value: &Value) -> Option<f64> {
    value.as_str().map(|text| text.parse().unwrap())
}

fn saved_sql(name: &str, table: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/bigquery")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .replace("PROJECT.DATASET.TABLE", table)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_creates_a_dataset_and_a_partitioned_clustered_table_once() {
    let Some(emulator) = emulator() else { return };
    let _turn = EMULATOR.lock().await;
    let google = FakeGoogle::start().await;
    let table = format!("p1.{}.events", unique_dataset());
    let first = bigquery_command(&["setup", "--table", &table], &emulator, &google).await;
    assert!(first.success, "{first:?}");
    assert!(
        first.stdout.contains("created dataset")
            && first.stdout.contains(&format!("created table {table}")),
        "{first:?}"
    );
    let again = bigquery_command(&["setup", "--table", &table], &emulator, &google).await;
    assert!(again.success, "{again:?}");
    assert!(
        again
            .stdout
            .contains(&format!("table {table} exists with herald's columns")),
        "{again:?}"
    );
    let (_, dataset) = table.split_once('.').unwrap();
    let dataset = dataset.split('.').next().unwrap();
    let resource: Value = reqwest::get(format!(
        "{emulator}/bigquery/v2/projects/p1/datasets/{dataset}/tables/events"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        resource["timePartitioning"],
        json!({"type": "DAY", "field": "occurred_at"})
    );
    assert_eq!(resource["clustering"], json!({"fields": ["repository"]}));
    let names: Vec<&str> = resource["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| field["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "delivery_id",
            "hook_id",
            "event",
            "action",
            "repository",
            "issue_number",
            "actor",
            "occurred_at",
            "received_at",
            "payload"
        ]
    );
    // A table of that name made for something else is not written to.
    let other = format!("p1.{dataset}.other");
    let made = reqwest::Client::new()
        .post(format!(
            "{emulator}/bigquery/v2/projects/p1/datasets/{dataset}/tables"
        ))
        .json(&json!({
            "tableReference": {"projectId": "p1", "datasetId": dataset, "tableId": "other"},
            "schema": {"fields": [
                {"name": "delivery_id", "type": "STRING"},
                {"name": "issue_number", "type": "STRING"}
            ]}
        }))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success());
    let refused = bigquery_command(&["setup", "--table", &other], &emulator, &google).await;
    assert!(!refused.success);
    assert!(
        refused.stderr.contains(&format!(
            "the table {other} exists but herald cannot write to it"
        )) && refused
            .stderr
            .contains("column issue_number is STRING, herald writes INT64")
            && refused.stderr.contains("column payload (JSON) is missing"),
        "{refused:?}"
    );
}

/// Forwards everything to the emulator; answers the first `insertAll` with a 503 although the
/// emulator took it, as a lost answer would.
struct LossyProxy {
    emulator: String,
    lost: AtomicUsize,
    client: reqwest::Client,
}

async fn forward(
    State(proxy): State<Arc<LossyProxy>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let answer = proxy
        .client
        .request(method, format!("{}{uri}", proxy.emulator))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let text = answer.text().await.unwrap();
    if uri.path().ends_with("/insertAll") && proxy.lost.fetch_add(1, Ordering::SeqCst) == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "the answer was lost").into_response();
    }
    (status, [("content-type", "application/json")], text).into_response()
}

async fn lossy_proxy(emulator: &str) -> String {
    let state = Arc::new(LossyProxy {
        emulator: emulator.to_owned(),
        lost: AtomicUsize::new(0),
        client: reqwest::Client::new(),
    });
    let app = axum::Router::new().fallback(forward).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_saved_sql_gives_the_numbers_of_herald_report() {
    let Some(emulator) = emulator() else { return };
    let _turn = EMULATOR.lock().await;
    let google = FakeGoogle::start().await;
    let table = format!("p1.{}.events", unique_dataset());
    let setup = bigquery_command(&["setup", "--table", &table], &emulator, &google).await;
    assert!(setup.success, "{setup:?}");
    let proxy = lossy_proxy(&emulator).await;
    let app = TestApp::spawn(&[
        "--bigquery-table",
        &table,
        "--bigquery-api-url",
        &proxy,
        "--gce-metadata-host",
        &google.metadata_host(),
    ])
    .await;
    for (event, delivery, body) in crate::scenario::history() {
        assert_eq!(app.send(event, &delivery, &body).await, 202, "{delivery}");
    }
    app.wait_for_deliveries().await;

    // The lost answer made herald insert its first rows again, and the emulator kept both.
    let copies = query(
        &emulator,
        &format!(
            "SELECT COUNT(*) AS all_rows, COUNT(DISTINCT delivery_id) AS deliveries FROM `{table}`"
        ),
        &[],
    )
    .await;
    let (all_rows, deliveries) = (
        number(&copies["all_rows"]).unwrap(),
        number(&copies["deliveries"]).unwrap(),
    );
    assert_eq!(deliveries as usize, crate::scenario::history().len());
    assert!(all_rows > deliveries, "{copies:?}");

    let report = run_herald(
        &[
            "report",
            "--since",
            "2020-01-01",
            "--until",
            "2020-01-31",
            "--format",
            "json",
            "--database-url",
            &app.database_url,
        ],
        &[],
    )
    .await;
    assert!(report.success, "{report:?}");
    let report: Value = serde_json::from_str(&report.stdout).unwrap();
    // The scenario's hand-computed numbers, so neither side can agree with the other by accident.
    assert_eq!(report, crate::scenario::january(false));
    compare(&emulator, &table, &report).await;
}

/// Runs the three saved queries over January and compares each number with the report's.
async fn compare(emulator: &str, table: &str, report: &Value) {
    let window = [
        ("since", "2020-01-01T00:00:00Z"),
        ("until", "2020-02-01T00:00:00Z"),
    ];
    let same = |sql: &Value, json: &Value, what: &str| {
        let expected = json.as_f64();
        let actual = number(sql);
        match (expected, actual) {
            (Some(expected), Some(actual)) => {
                assert!(
                    (expected - actual).abs() < 1e-6,
                    "{what}: report {expected}, SQL {actual}"
                );
            }
            _ => assert_eq!(expected, actual, "{what}"),
        }
    };

    let response = query(
        emulator,
        &saved_sql("time_to_first_response.sql", table),
        &window,
    )
    .await;
    let expected = &report["time_to_first_response"];
    for (column, key) in [
        ("count", "count"),
        ("unanswered", "unanswered"),
        ("mean_seconds", "mean_seconds"),
        ("median_seconds", "median_seconds"),
        ("p90_seconds", "p90_seconds"),
    ] {
        same(
            &response[column],
            &expected[key],
            &format!("time to first response: {key}"),
        );
    }

    let close = query(emulator, &saved_sql("time_to_close.sql", table), &window).await;
    let expected = &report["time_to_close"];
    for (column, key) in [
        ("count", "count"),
        ("mean_seconds", "mean_seconds"),
        ("median_seconds", "median_seconds"),
        ("p90_seconds", "p90_seconds"),
    ] {
        same(
            &close[column],
            &expected[key],
            &format!("time to close: {key}"),
        );
    }
    let reasons = &expected["state_reasons"];
    same(&close["completed"], &reasons["completed"], "completed");
    same(
        &close["not_planned"],
        &reasons["not_planned"],
        "not_planned",
    );
    let others: u64 = reasons
        .as_object()
        .unwrap()
        .iter()
        .filter(|(reason, _)| !["completed", "not_planned"].contains(&reason.as_str()))
        .map(|(_, count)| count.as_u64().unwrap())
        .sum();
    let sql_others =
        number(&close["unknown_reason"]).unwrap() + number(&close["other_reason"]).unwrap();
    assert_eq!(sql_others as u64, others, "other close reasons");

    let backlog = query(emulator, &saved_sql("backlog.sql", table), &window).await;
    for (column, expected) in [
        ("opened", &report["issues"]["opened"]),
        ("closed", &report["issues"]["closed"]),
        ("open_now", &report["issues"]["open_now"]),
        ("age_under_1d", &report["backlog"]["age_buckets"]["<1d"]),
        ("age_1d_to_7d", &report["backlog"]["age_buckets"]["1-7d"]),
        ("age_7d_to_30d", &report["backlog"]["age_buckets"]["7-30d"]),
        ("age_over_30d", &report["backlog"]["age_buckets"][">30d"]),
    ] {
        same(&backlog[column], expected, column);
    }
}
