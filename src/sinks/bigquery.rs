//! `bigquery` destinations: every event streamed as one row into a table with
//! `tabledata.insertAll`, in requests of at most 500 rows and 9 MB, each row's `insertId` its
//! delivery id. BigQuery answers per row: only the rows it did not insert are retried, a row it
//! calls invalid is dead-lettered with its reason, and a request that failed as a whole (5xx,
//! 429, a timeout) is retried whole. No row is ever dropped without a dead letter saying why.

use super::{BoxFuture, DEFAULT_RATE_LIMIT_PAUSE, Delivery, Guarantee, Outcome, Sink};
use crate::gcp::bigquery::{BigQuery, BigQueryError, InsertError, TableRef};
use crate::gcp::schema::insert_row;

/// Streams rows into one table.
pub struct BigQuerySink {
    client: BigQuery,
    table: TableRef,
}

/// Rows per `insertAll` request (BigQuery's recommended maximum).
pub const MAX_ROWS: usize = 500;
/// Bytes per `insertAll` request: under BigQuery's 10 MB limit, with room for the envelope.
pub const MAX_REQUEST_BYTES: usize = 9_000_000;

const REQUEST_START: &str = r#"{"kind":"bigquery#tableDataInsertAllRequest","skipInvalidRows":true,"ignoreUnknownValues":false,"rows":["#;
const REQUEST_END: &str = "]}";

impl BigQuerySink {
    pub fn new(client: BigQuery, table: TableRef) -> Self {
        Self { client, table }
    }

    async fn deliver_all(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
        let mut rows: Vec<(usize, String)> = Vec::with_capacity(batch.len());
        for (position, delivery) in batch.iter().enumerate() {
            let row = insert_row(&delivery.event);
            if REQUEST_START.len() + row.len() + REQUEST_END.len() > MAX_REQUEST_BYTES {
                outcomes[position] = Some(Outcome::Permanent {
                    reason: format!(
                        "the event is {} bytes as a BigQuery row; a streaming insert takes at \
                         most {MAX_REQUEST_BYTES} bytes per request, so it cannot be streamed \
                         (it stays in herald's store; load it with a batch load job)",
                        row.len()
                    ),
                });
            } else {
                rows.push((position, row));
            }
        }
        for request in requests(rows) {
            let results = self.insert(&request).await;
            for ((position, _), outcome) in request.iter().zip(results) {
                outcomes[*position] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every row is decided"))
            .collect()
    }

    /// One request; one outcome per row. A request refused as a whole (400) is sent again row by
    /// row, so only the row at fault is dead-lettered.
    async fn insert(&self, rows: &[(usize, String)]) -> Vec<Outcome> {
        let mut body = String::with_capacity(
            REQUEST_START.len() + rows.iter().map(|(_, row)| row.len() + 1).sum::<usize>() + 2,
        );
        body.push_str(REQUEST_START);
        for (index, (_, row)) in rows.iter().enumerate() {
            if index > 0 {
                body.push(',');
            }
            body.push_str(row);
        }
        body.push_str(REQUEST_END);
        match self.client.insert_all(&self.table, body).await {
            Ok(errors) => classify_insert_errors(rows.len(), &errors),
            Err(BigQueryError::Status { status: 400, .. }) if rows.len() > 1 => {
                let mut outcomes = Vec::with_capacity(rows.len());
                for row in rows {
                    let single = Box::pin(self.insert(std::slice::from_ref(row))).await;
                    outcomes.extend(single);
                }
                outcomes
            }
            Err(error) => vec![request_outcome(&error, &self.table); rows.len()],
        }
    }
}

/// Splits rows into requests of at most [`MAX_ROWS`] rows and [`MAX_REQUEST_BYTES`] bytes, in
/// order. Every row fits on its own (larger ones were refused before).
fn requests(rows: Vec<(usize, String)>) -> Vec<Vec<(usize, String)>> {
    let mut requests = Vec::new();
    let mut current: Vec<(usize, String)> = Vec::new();
    let mut size = REQUEST_START.len() + REQUEST_END.len();
    for row in rows {
        let added = row.1.len() + usize::from(!current.is_empty());
        if !current.is_empty() && (current.len() == MAX_ROWS || size + added > MAX_REQUEST_BYTES) {
            requests.push(std::mem::take(&mut current));
            size = REQUEST_START.len() + REQUEST_END.len();
        }
        size += row.1.len() + usize::from(!current.is_empty());
        current.push(row);
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

/// Outcomes from `insertErrors`: rows not listed were inserted; a row with an `invalid` error is
/// refused for good; one `stopped` only because another row failed, or failing for any other
/// reason, is retried.
pub fn classify_insert_errors(rows: usize, errors: &[InsertError]) -> Vec<Outcome> {
    let mut outcomes = vec![Outcome::Delivered; rows];
    for (position, outcome) in outcomes.iter_mut().enumerate() {
        let reasons: Vec<_> = errors
            .iter()
            .filter(|error| error.index == position)
            .flat_map(|error| error.errors.iter())
            .collect();
        let listed = errors.iter().any(|error| error.index == position);
        if !listed {
            continue;
        }
        let describe = |error: &crate::gcp::bigquery::ErrorProto| {
            let location = if error.location.is_empty() {
                String::new()
            } else {
                format!(" (at {})", error.location)
            };
            format!("{}: {}{location}", error.reason, error.message)
        };
        *outcome = if let Some(invalid) = reasons.iter().find(|error| error.reason == "invalid") {
            Outcome::Permanent {
                reason: format!("BigQuery refused the row: {}", describe(invalid)),
            }
        } else if !reasons.is_empty() && reasons.iter().all(|error| error.reason == "stopped") {
            Outcome::Retry {
                after: None,
                reason: "not inserted because another row of the request failed (stopped)".into(),
            }
        } else {
            let detail: Vec<String> = reasons.iter().map(|error| describe(error)).collect();
            Outcome::Retry {
                after: None,
                reason: format!(
                    "BigQuery did not insert the row: {}",
                    if detail.is_empty() {
                        "no reason given".to_owned()
                    } else {
                        detail.join("; ")
                    }
                ),
            }
        };
    }
    outcomes
}

/// The outcome for every row of a request that failed as a whole.
fn request_outcome(error: &BigQueryError, table: &TableRef) -> Outcome {
    let retry = |reason: String| Outcome::Retry {
        after: None,
        reason,
    };
    match error {
        BigQueryError::Auth(error) => retry(format!("no Google access token: {error}")),
        BigQueryError::Transport {
            sent: false,
            detail,
        } => retry(format!("connection to BigQuery failed: {detail}")),
        BigQueryError::Transport { sent: true, detail } => Outcome::Ambiguous {
            reason: format!("no answer from BigQuery after the request was sent: {detail}"),
        },
        BigQueryError::Malformed(detail) => retry(format!("BigQuery's answer: {detail}")),
        BigQueryError::Status {
            status,
            reason,
            message,
            retry_after,
        } => {
            let reason_code = reason.as_deref().unwrap_or("");
            let text = format!("HTTP {status} {reason_code}: {message}");
            match (*status, reason_code) {
                (429, _) | (403, "rateLimitExceeded" | "quotaExceeded") => Outcome::RateLimited {
                    after: retry_after.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE),
                    reason: text,
                },
                (408 | 500..=599, _) => Outcome::Retry {
                    after: *retry_after,
                    reason: text,
                },
                (401, _) => retry(format!("{text} (a new token is asked for)")),
                (404, _) => retry(format!(
                    "{text}: create the table with `herald bigquery setup --table {table}`"
                )),
                (403, _) => retry(format!(
                    "{text}: grant the service account roles/bigquery.dataEditor on the dataset"
                )),
                _ => Outcome::Permanent { reason: text },
            }
        }
    }
}

impl Sink for BigQuerySink {
    fn kind(&self) -> &'static str {
        "bigquery"
    }

    fn guarantee(&self) -> Guarantee {
        // Each row carries its delivery id as insertId, and the saved SQL deduplicates on it:
        // inserting a row twice is harmless.
        Guarantee::Idempotent
    }

    fn max_batch(&self) -> usize {
        MAX_ROWS
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(self.deliver_all(batch))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::gcp::bigquery::ErrorProto;

    fn error(index: usize, reasons: &[&str]) -> InsertError {
        InsertError {
            index,
            errors: reasons
                .iter()
                .map(|reason| ErrorProto {
                    reason: (*reason).to_owned(),
                    location: "issue_number".into(),
                    message: format!("{reason} row"),
                })
                .collect(),
        }
    }

    #[test]
    fn only_the_rows_listed_are_not_delivered() {
        let outcomes = classify_insert_errors(
            5,
            &[
                error(1, &["invalid"]),
                error(2, &["stopped"]),
                error(3, &["backendError"]),
                error(4, &[]),
            ],
        );
        assert_eq!(outcomes[0], Outcome::Delivered);
        assert_eq!(
            outcomes[1],
            Outcome::Permanent {
                reason: "BigQuery refused the row: invalid: invalid row (at issue_number)".into()
            }
        );
        assert!(
            matches!(&outcomes[2], Outcome::Retry { reason, .. } if reason.contains("stopped"))
        );
        assert!(
            matches!(&outcomes[3], Outcome::Retry { reason, .. } if reason.contains("backendError: backendError row"))
        );
        assert!(
            matches!(&outcomes[4], Outcome::Retry { reason, .. } if reason.contains("no reason given"))
        );
        // An invalid reason wins over others listed for the same row.
        let outcomes = classify_insert_errors(1, &[error(0, &["stopped", "invalid"])]);
        assert!(matches!(outcomes[0], Outcome::Permanent { .. }));
    }

    #[test]
    fn splits_requests_by_rows_and_bytes() {
        let rows = |count: usize, size: usize| -> Vec<(usize, String)> {
            (0..count).map(|i| (i, "x".repeat(size))).collect()
        };
        let sizes = |requests: Vec<Vec<(usize, String)>>| -> Vec<usize> {
            requests.iter().map(Vec::len).collect()
        };
        assert_eq!(sizes(requests(rows(1201, 10))), [500, 500, 201]);
        assert_eq!(sizes(requests(rows(0, 10))), Vec::<usize>::new());
        // 2 MB rows: four fit under 9 MB with the envelope, a fifth would not.
        let big = requests(rows(9, 2_000_000));
        assert_eq!(sizes(big.clone()), [4, 4, 1]);
        for request in &big {
            let bytes = REQUEST_START.len()
                + REQUEST_END.len()
                + request.iter().map(|r| r.1.len()).sum::<usize>()
                + request.len()
                - 1;
            assert!(bytes <= MAX_REQUEST_BYTES);
        }
        assert_eq!(big[2][0].0, 8, "order is kept");
    }

    #[test]
    fn classifies_whole_request_failures() {
        let table: TableRef = "p.d.t".parse().unwrap();
        let status = |status: u16, reason: &str, retry_after: Option<u64>| BigQueryError::Status {
            status,
            reason: Some(reason.to_owned()),
            message: "m".into(),
            retry_after: retry_after.map(Duration::from_secs),
        };
        assert_eq!(
            request_outcome(&status(429, "rateLimitExceeded", Some(7)), &table),
            Outcome::RateLimited {
                after: Duration::from_secs(7),
                reason: "HTTP 429 rateLimitExceeded: m".into()
            }
        );
        assert!(matches!(
            request_outcome(&status(403, "quotaExceeded", None), &table),
            Outcome::RateLimited { after, .. } if after == DEFAULT_RATE_LIMIT_PAUSE
        ));
        assert!(matches!(
            request_outcome(&status(503, "backendError", Some(2)), &table),
            Outcome::Retry { after: Some(after), .. } if after == Duration::from_secs(2)
        ));
        assert!(matches!(
            request_outcome(&status(404, "notFound", None), &table),
            Outcome::Retry { reason, .. } if reason.contains("herald bigquery setup --table p.d.t")
        ));
        assert!(matches!(
            request_outcome(&status(403, "accessDenied", None), &table),
            Outcome::Retry { reason, .. } if reason.contains("roles/bigquery.dataEditor")
        ));
        assert!(matches!(
            request_outcome(&status(400, "invalid", None), &table),
            Outcome::Permanent { .. }
        ));
        assert!(matches!(
            request_outcome(
                &BigQueryError::Transport {
                    sent: true,
                    detail: "timed out".into()
                },
                &table
            ),
            Outcome::Ambiguous { .. }
        ));
        assert!(matches!(
            request_outcome(
                &BigQueryError::Transport {
                    sent: false,
                    detail: "refused".into()
                },
                &table
            ),
            Outcome::Retry { .. }
        ));
    }
}
