//! herald's BigQuery table: one row per stored event, partitioned by day on `occurred_at` and
//! clustered by repository. The columns, the JSON schema `bq mk` takes, the DDL, the resource
//! `tables.insert` takes, and an event turned into an `insertAll` row.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::TableRef;
use crate::store::StoredEvent;
use crate::time_util::{format_ms, to_ms};

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    /// Standard SQL type.
    pub kind: &'static str,
    pub required: bool,
    pub description: &'static str,
}

/// The columns, in order.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "delivery_id",
        kind: "STRING",
        required: true,
        description: "X-GitHub-Delivery: GitHub's id of the delivery; also the insertId. Deduplicate on it",
    },
    Column {
        name: "hook_id",
        kind: "STRING",
        required: false,
        description: "X-GitHub-Hook-ID: the webhook that sent it",
    },
    Column {
        name: "event",
        kind: "STRING",
        required: true,
        description: "X-GitHub-Event: issues, issue_comment, pull_request, ...",
    },
    Column {
        name: "action",
        kind: "STRING",
        required: false,
        description: "The payload's action: opened, closed, created, ...",
    },
    Column {
        name: "repository",
        kind: "STRING",
        required: false,
        description: "owner/name",
    },
    Column {
        name: "issue_number",
        kind: "INT64",
        required: false,
        description: "The issue or pull request number, when the event is about one",
    },
    Column {
        name: "actor",
        kind: "STRING",
        required: false,
        description: "Who caused the event (sender.login)",
    },
    Column {
        name: "occurred_at",
        kind: "TIMESTAMP",
        required: true,
        description: "When it happened, from the payload (received_at when the payload has no time)",
    },
    Column {
        name: "received_at",
        kind: "TIMESTAMP",
        required: true,
        description: "When herald received it",
    },
    Column {
        name: "payload",
        kind: "JSON",
        required: true,
        description: "The webhook's body, as GitHub sent it",
    },
];

/// The partitioning column (by day) and the clustering column.
pub const PARTITION_COLUMN: &str = "occurred_at";
pub const CLUSTER_COLUMN: &str = "repository";

/// The schema as `bq mk --table PROJECT:DATASET.TABLE schema.json` and the API take it.
pub fn schema_json() -> Value {
    let fields: Vec<Value> = COLUMNS
        .iter()
        .map(|column| {
            serde_json::json!({
                "name": column.name,
                "type": column.kind,
                "mode": if column.required { "REQUIRED" } else { "NULLABLE" },
                "description": column.description,
            })
        })
        .collect();
    Value::Array(fields)
}

/// The `tables.insert` resource for `table`.
pub fn table_resource(table: &TableRef) -> Value {
    serde_json::json!({
        "tableReference": {
            "projectId": table.project,
            "datasetId": table.dataset,
            "tableId": table.table,
        },
        "description": "GitHub webhook events streamed by herald, one row per delivery",
        "schema": {"fields": schema_json()},
        "timePartitioning": {"type": "DAY", "field": PARTITION_COLUMN},
        "clustering": {"fields": [CLUSTER_COLUMN]},
    })
}

/// `CREATE TABLE` for `table` (the placeholder `PROJECT.DATASET.TABLE` when none is given).
pub fn ddl(table: Option<&TableRef>) -> String {
    let name = table.map_or_else(|| "PROJECT.DATASET.TABLE".to_owned(), ToString::to_string);
    let width = COLUMNS.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|column| {
            let kind = if column.required {
                format!("{} NOT NULL", column.kind)
            } else {
                column.kind.to_owned()
            };
            format!(
                "  {:width$} {kind} OPTIONS (description = {})",
                column.name,
                sql_string(column.description)
            )
        })
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS `{name}` (\n{}\n)\nPARTITION BY DATE({PARTITION_COLUMN})\n\
         CLUSTER BY {CLUSTER_COLUMN}\n\
         OPTIONS (description = \"GitHub webhook events streamed by herald, one row per delivery\");\n",
        columns.join(",\n")
    )
}

fn sql_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// What is wrong with an existing table's schema for herald: missing columns or other types.
/// Extra columns are fine.
pub fn schema_problems(resource: &Value) -> Vec<String> {
    let fields = resource
        .pointer("/schema/fields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut problems = Vec::new();
    for column in COLUMNS {
        let found = fields
            .iter()
            .find(|field| field.get("name").and_then(Value::as_str) == Some(column.name));
        match found {
            None => problems.push(format!(
                "column {} ({}) is missing",
                column.name, column.kind
            )),
            Some(field) => {
                let kind = field.get("type").and_then(Value::as_str).unwrap_or("");
                if standard_type(kind) != column.kind {
                    problems.push(format!(
                        "column {} is {kind}, herald writes {}",
                        column.name, column.kind
                    ));
                }
            }
        }
    }
    problems
}

/// The standard SQL name of a type BigQuery may report by its legacy name.
fn standard_type(kind: &str) -> &str {
    match kind {
        "INTEGER" => "INT64",
        "FLOAT" => "FLOAT64",
        "BOOLEAN" => "BOOL",
        other => other,
    }
}

/// An event as one `insertAll` row: `{"insertId": delivery id, "json": {…}}`. The payload goes in
/// as the text GitHub sent (a JSON column takes a string holding JSON), never re-serialised.
pub fn insert_row(event: &StoredEvent) -> String {
    #[derive(Serialize)]
    struct Columns<'a> {
        delivery_id: &'a str,
        hook_id: Option<&'a str>,
        event: &'a str,
        action: Option<&'a str>,
        repository: Option<&'a str>,
        issue_number: Option<i64>,
        actor: Option<&'a str>,
        occurred_at: String,
        received_at: String,
        payload: &'a str,
    }
    #[derive(Serialize)]
    struct Row<'a> {
        #[serde(rename = "insertId")]
        insert_id: &'a str,
        json: Columns<'a>,
    }
    let occurred_ms = occurred_at(&event.event, &event.payload).unwrap_or(event.received_at);
    let row = Row {
        insert_id: &event.delivery_id,
        json: Columns {
            delivery_id: &event.delivery_id,
            hook_id: Some(event.hook_id.as_str()).filter(|id| !id.is_empty()),
            event: &event.event,
            action: event.action.as_deref(),
            repository: event.repository.as_deref(),
            issue_number: event.issue_number,
            actor: event.actor.as_deref(),
            occurred_at: format_ms(occurred_ms),
            received_at: format_ms(event.received_at),
            payload: &event.payload,
        },
    };
    serde_json::to_string(&row).expect("a row of strings and numbers serialises")
}

/// When the event happened, by the payload's own clock (Unix ms): the time of the object the
/// event is about, for the kinds herald knows; `None` for others.
pub fn occurred_at(event: &str, payload: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Objects<'a> {
        #[serde(borrow)]
        issue: Option<&'a RawValue>,
        #[serde(borrow)]
        comment: Option<&'a RawValue>,
        #[serde(borrow)]
        pull_request: Option<&'a RawValue>,
        #[serde(borrow)]
        review: Option<&'a RawValue>,
        #[serde(borrow)]
        release: Option<&'a RawValue>,
        #[serde(borrow)]
        discussion: Option<&'a RawValue>,
        #[serde(borrow)]
        head_commit: Option<&'a RawValue>,
    }
    #[derive(Deserialize, Default)]
    struct Times {
        updated_at: Option<Value>,
        created_at: Option<Value>,
        submitted_at: Option<Value>,
        published_at: Option<Value>,
        timestamp: Option<Value>,
    }
    let objects: Objects<'_> = serde_json::from_str(payload).ok()?;
    let (object, fields): (Option<&RawValue>, &[&str]) = match event {
        "issues" => (objects.issue, &["updated_at", "created_at"]),
        "issue_comment"
        | "pull_request_review_comment"
        | "commit_comment"
        | "discussion_comment" => (objects.comment, &["updated_at", "created_at"]),
        "pull_request" => (objects.pull_request, &["updated_at", "created_at"]),
        "pull_request_review" => (objects.review, &["submitted_at"]),
        "release" => (objects.release, &["published_at", "created_at"]),
        "discussion" => (objects.discussion, &["updated_at", "created_at"]),
        "push" => (objects.head_commit, &["timestamp"]),
        _ => (None, &[]),
    };
    let times: Times = serde_json::from_str(object?.get()).unwrap_or_default();
    fields.iter().find_map(|field| {
        let value = match *field {
            "updated_at" => &times.updated_at,
            "created_at" => &times.created_at,
            "submitted_at" => &times.submitted_at,
            "published_at" => &times.published_at,
            _ => &times.timestamp,
        };
        let text = value.as_ref()?.as_str()?;
        OffsetDateTime::parse(text, &Rfc3339).ok().map(to_ms)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(event: &str, payload: &str) -> StoredEvent {
        StoredEvent {
            id: 1,
            hook_id: "42".into(),
            delivery_id: "d-1".into(),
            event: event.into(),
            action: Some("opened".into()),
            repository: Some("o/r".into()),
            issue_number: Some(7),
            actor: Some("alice".into()),
            received_at: 1_767_323_045_123,
            payload: payload.into(),
        }
    }

    #[test]
    fn takes_the_time_of_what_the_event_is_about() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            (
                "issues",
                r#"{"issue":{"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-02T10:00:00Z"}}"#,
                Some("2026-01-02T10:00:00Z"),
            ),
            (
                "issue_comment",
                r#"{"issue":{"updated_at":"2026-01-05T00:00:00Z"},"comment":{"created_at":"2026-01-03T00:00:00Z"}}"#,
                Some("2026-01-03T00:00:00Z"),
            ),
            (
                "push",
                r#"{"head_commit":{"timestamp":"2026-01-03T01:00:00+01:00"}}"#,
                Some("2026-01-03T00:00:00Z"),
            ),
            (
                "pull_request_review",
                r#"{"review":{"submitted_at":"2026-01-04T00:00:00Z"}}"#,
                Some("2026-01-04T00:00:00Z"),
            ),
            ("issues", r#"{"issue":{"updated_at":"yesterday"}}"#, None),
            ("issues", r#"{"issue":{"updated_at":17}}"#, None),
            ("issues", r#"{"issue":"odd"}"#, None),
            ("star", r#"{"starred_at":"2026-01-04T00:00:00Z"}"#, None),
            ("issues", "not json", None),
        ];
        for (event, payload, expected) in cases {
            assert_eq!(
                occurred_at(event, payload).map(format_ms).as_deref(),
                *expected,
                "{event} {payload}"
            );
        }
    }

    #[test]
    fn a_row_carries_the_payload_text_as_sent() {
        let payload = "{\"issue\": {\"updated_at\": \"2026-01-02T10:00:00Z\", \"title\": \"a \\\"quoted\\\" \\u0000 é\"},\n \"n\": 1.50}";
        let row: Value = serde_json::from_str(&insert_row(&stored("issues", payload))).unwrap();
        assert_eq!(row["insertId"], "d-1");
        assert_eq!(row["json"]["payload"].as_str(), Some(payload));
        assert_eq!(row["json"]["occurred_at"], "2026-01-02T10:00:00Z");
        assert_eq!(row["json"]["received_at"], "2026-01-02T03:04:05.123Z");
        assert_eq!(row["json"]["issue_number"], 7);
        assert_eq!(row["json"]["hook_id"], "42");
        let columns: Vec<&str> = row["json"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        expected.sort_unstable();
        assert_eq!(columns, expected, "every column, and only those");
        // Without a time in the payload, the arrival time stands in.
        let row: Value = serde_json::from_str(&insert_row(&stored("ping", "{}"))).unwrap();
        assert_eq!(row["json"]["occurred_at"], "2026-01-02T03:04:05.123Z");
    }

    #[test]
    fn checks_an_existing_tables_schema() {
        let mut resource = table_resource(&"p.d.t".parse().unwrap());
        assert!(schema_problems(&resource).is_empty());
        resource["schema"]["fields"][5]["type"] = "INTEGER".into();
        assert!(
            schema_problems(&resource).is_empty(),
            "legacy type names are the same"
        );
        resource["schema"]["fields"][5]["type"] = "STRING".into();
        resource["schema"]["fields"].as_array_mut().unwrap().pop();
        assert_eq!(
            schema_problems(&resource),
            [
                "column issue_number is STRING, herald writes INT64",
                "column payload (JSON) is missing"
            ]
        );
    }

    #[test]
    fn ddl_partitions_by_day_and_clusters_by_repository() {
        let ddl = ddl(Some(&"p.d.t".parse().unwrap()));
        assert!(
            ddl.starts_with("CREATE TABLE IF NOT EXISTS `p.d.t` (\n  delivery_id  STRING NOT NULL"),
            "{ddl}"
        );
        assert!(
            ddl.contains("PARTITION BY DATE(occurred_at)\nCLUSTER BY repository"),
            "{ddl}"
        );
        assert!(ddl.contains("payload      JSON NOT NULL"), "{ddl}");
    }
}
