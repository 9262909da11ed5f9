//! BigQuery's REST API (v2), the few calls herald makes: `tabledata.insertAll` (streaming
//! inserts), and `datasets.get|insert` and `tables.get|insert` for `herald bigquery setup`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use super::{AuthError, GoogleAuth};

/// `project.dataset.table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRef {
    pub project: String,
    pub dataset: String,
    pub table: String,
}

impl FromStr for TableRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let expected = || {
            format!(
                "{text:?} is not a BigQuery table: expected project.dataset.table (letters, \
                 digits and `_` in the dataset; also `-` in the project and table)"
            )
        };
        // The project may itself hold dots (`example.com:project`), so split from the right.
        let mut parts = text.trim().rsplitn(3, '.');
        let (Some(table), Some(dataset), Some(project)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(expected());
        };
        let project_ok = (1..=63 + 64).contains(&project.len())
            && project.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.')
            });
        let dataset_ok = (1..=1024).contains(&dataset.len())
            && dataset
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let table_ok = (1..=1024).contains(&table.len())
            && table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !(project_ok && dataset_ok && table_ok) {
            return Err(expected());
        }
        Ok(Self {
            project: project.to_owned(),
            dataset: dataset.to_owned(),
            table: table.to_owned(),
        })
    }
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.project, self.dataset, self.table)
    }
}

/// Why a call failed, as the sink and the CLI need to tell failures apart.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BigQueryError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// No answer. `sent` when the request may have reached BigQuery (a timeout, a connection
    /// lost after writing).
    #[error("{detail}")]
    Transport { sent: bool, detail: String },
    /// An answer other than 2xx.
    #[error("HTTP {status}{}: {message}", reason.as_deref().map(|r| format!(" {r}")).unwrap_or_default())]
    Status {
        status: u16,
        /// The first error's `reason` (`invalid`, `notFound`, `rateLimitExceeded`, …).
        reason: Option<String>,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("BigQuery's answer is not what its API documents: {0}")]
    Malformed(String),
}

/// One row `insertAll` did not insert: its index in the request and BigQuery's reasons.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InsertError {
    pub index: usize,
    #[serde(default)]
    pub errors: Vec<ErrorProto>,
}

/// BigQuery's `ErrorProto`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorProto {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InsertAllAnswer {
    #[serde(default)]
    insert_errors: Vec<InsertError>,
}

/// A BigQuery client: base URL, shared credentials, a timeout per request.
#[derive(Debug, Clone)]
pub struct BigQuery {
    http: reqwest::Client,
    base: String,
    auth: Arc<GoogleAuth>,
}

impl BigQuery {
    pub fn new(base: &str, auth: Arc<GoogleAuth>, timeout: Duration) -> anyhow::Result<Self> {
        super::check_http_url(base)
            .map_err(|error| anyhow::anyhow!("BigQuery API URL: {error}"))?;
        Ok(Self {
            http: crate::outbound::client(timeout)?,
            base: base.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/bigquery/v2/{path}", self.base)
    }

    /// `tabledata.insertAll` with a request body the caller built (rows with their `insertId`).
    /// Returns the rows BigQuery did not insert (empty when all were).
    pub async fn insert_all(
        &self,
        table: &TableRef,
        body: String,
    ) -> Result<Vec<InsertError>, BigQueryError> {
        let url = self.url(&format!(
            "projects/{}/datasets/{}/tables/{}/insertAll",
            table.project, table.dataset, table.table
        ));
        let text = self
            .send(
                self.http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await?;
        let answer: InsertAllAnswer = serde_json::from_str(&text)
            .map_err(|error| BigQueryError::Malformed(error.to_string()))?;
        Ok(answer.insert_errors)
    }

    /// Whether the dataset exists.
    pub async fn dataset_exists(
        &self,
        project: &str,
        dataset: &str,
    ) -> Result<bool, BigQueryError> {
        let url = self.url(&format!("projects/{project}/datasets/{dataset}"));
        Ok(self.get_optional(url).await?.is_some())
    }

    /// Creates a dataset in `location`; one created meanwhile by someone else is fine.
    pub async fn create_dataset(
        &self,
        project: &str,
        dataset: &str,
        location: &str,
    ) -> Result<(), BigQueryError> {
        let url = self.url(&format!("projects/{project}/datasets"));
        let body = serde_json::json!({
            "datasetReference": {"projectId": project, "datasetId": dataset},
            "location": location,
        });
        self.create(url, &body).await
    }

    /// The table's resource (schema, partitioning, clustering), or `None` when it does not exist.
    pub async fn table(&self, table: &TableRef) -> Result<Option<Value>, BigQueryError> {
        let url = self.url(&format!(
            "projects/{}/datasets/{}/tables/{}",
            table.project, table.dataset, table.table
        ));
        match self.get_optional(url).await? {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|error| BigQueryError::Malformed(error.to_string())),
        }
    }

    /// Creates a table from its resource; one created meanwhile by someone else is fine.
    pub async fn create_table(
        &self,
        table: &TableRef,
        resource: &Value,
    ) -> Result<(), BigQueryError> {
        let url = self.url(&format!(
            "projects/{}/datasets/{}/tables",
            table.project, table.dataset
        ));
        self.create(url, resource).await
    }

    async fn get_optional(&self, url: String) -> Result<Option<String>, BigQueryError> {
        match self.send(self.http.get(url)).await {
            Ok(text) => Ok(Some(text)),
            Err(BigQueryError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn create(&self, url: String, body: &Value) -> Result<(), BigQueryError> {
        match self.send(self.http.post(url).json(body)).await {
            Ok(_) | Err(BigQueryError::Status { status: 409, .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Sends with a token; the answer's text.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<String, BigQueryError> {
        let token = self.auth.token().await?;
        let response = request
            .header("authorization", token.bearer())
            .send()
            .await
            .map_err(|error| {
                let sent = !error.is_connect();
                BigQueryError::Transport {
                    sent,
                    detail: super::transport_error(error),
                }
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| crate::outbound::parse_retry_after(value, SystemTime::now()));
        let text = response
            .text()
            .await
            .map_err(|error| BigQueryError::Transport {
                sent: true,
                detail: format!("reading the answer: {}", super::transport_error(error)),
            })?;
        if status.is_success() {
            return Ok(text);
        }
        if status == StatusCode::UNAUTHORIZED {
            // Revoked, or expired early: the next request asks for a new token.
            self.auth.invalidate().await;
        }
        let (reason, message) = error_details(&text);
        Err(BigQueryError::Status {
            status: status.as_u16(),
            reason,
            message,
            retry_after,
        })
    }
}

/// The first error's reason and the message of a BigQuery error answer.
fn error_details(text: &str) -> (Option<String>, String) {
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    let reason = error
        .and_then(|error| error.get("errors"))
        .and_then(|errors| errors.get(0))
        .and_then(|first| first.get("reason"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    (reason, super::google_error_message(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_table_names() {
        let table: TableRef = "my-proj.herald.events".parse().unwrap();
        assert_eq!(
            (
                table.project.as_str(),
                table.dataset.as_str(),
                table.table.as_str()
            ),
            ("my-proj", "herald", "events")
        );
        assert_eq!(table.to_string(), "my-proj.herald.events");
        let scoped: TableRef = "example.com:proj.d.t".parse().unwrap();
        assert_eq!(scoped.project, "example.com:proj");
        for bad in [
            "",
            "events",
            "herald.events",
            "p.d.",
            ".d.t",
            "p.d-x.t",
            "P.d.t",
            "p.d.t/../x",
            "p.d.t?x",
            "p.d.t u",
        ] {
            let error = bad.parse::<TableRef>().unwrap_err();
            assert!(
                error.contains("expected project.dataset.table"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn reads_error_answers() {
        let text = r#"{"error":{"code":404,"message":"Not found: Table p:d.t","errors":[{"message":"Not found: Table p:d.t","domain":"global","reason":"notFound"}],"status":"NOT_FOUND"}}"#;
        assert_eq!(
            error_details(text),
            (
                Some("notFound".to_owned()),
                "Not found: Table p:d.t".to_owned()
            )
        );
        assert_eq!(error_details("<html>"), (None, "<html>".to_owned()));
    }
}
