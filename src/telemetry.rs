//! Logs: readable text on a terminal, or one JSON object per line in Cloud Logging's format
//! (`severity`, `message`, `time`, `logging.googleapis.com/trace`) on Cloud Run.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG` filters (default [`DEFAULT_FILTER`]). Safe to call
/// twice.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal, never into a file or a log collector.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(CloudLogging)
            .try_init(),
    };
}

/// herald's own INFO and up; dependencies only from WARN (their INFO lines, such as
/// PostgreSQL's "relation already exists, skipping" at every start, are noise to an operator).
pub const DEFAULT_FILTER: &str = "warn,herald=info";

/// Formats events as Cloud Logging structured entries. Fields of the enclosing spans are merged
/// in; a span field named `trace` becomes `logging.googleapis.com/trace`.
pub struct CloudLogging;

impl<S, N> FormatEvent<S, N> for CloudLogging
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut entry = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields.as_str()) {
                    entry.extend(fields);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut entry));
        if let Some(trace) = entry.remove("trace") {
            entry.insert("logging.googleapis.com/trace".into(), trace);
        }
        let metadata = event.metadata();
        entry.insert("severity".into(), severity(*metadata.level()).into());
        entry.insert("target".into(), metadata.target().into());
        entry.insert(
            "time".into(),
            crate::time_util::format_ms(crate::time_util::now_ms()).into(),
        );
        if !entry.contains_key("message") {
            entry.insert("message".into(), Value::String(String::new()));
        }
        let line = serde_json::to_string(&entry).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

/// Cloud Logging's names for tracing's levels.
pub fn severity(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARNING",
        tracing::Level::INFO => "INFO",
        tracing::Level::DEBUG | tracing::Level::TRACE => "DEBUG",
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// The Cloud Logging trace name for a request, when the project is known: the trace id of its
/// `X-Cloud-Trace-Context` header (`TRACE_ID/SPAN_ID;o=1`), else of its W3C `traceparent`
/// (`00-TRACE_ID-SPAN_ID-FLAGS`). Cloud Run sends both.
pub fn trace_name(
    project: Option<&str>,
    cloud_trace_context: Option<&str>,
    traceparent: Option<&str>,
) -> Option<String> {
    let project = project.filter(|p| !p.is_empty())?;
    let from_cloud = cloud_trace_context
        .and_then(|header| header.split('/').next())
        .map(str::trim)
        .filter(|id| valid_trace_id(id, 1));
    let from_w3c = || {
        let mut parts = traceparent?.trim().split('-');
        let (version, id) = (parts.next()?, parts.next()?);
        (version.len() == 2 && id.len() == 32 && valid_trace_id(id, 32)).then_some(id)
    };
    let trace_id = from_cloud.or_else(from_w3c)?;
    Some(format!("projects/{project}/traces/{trace_id}"))
}

/// Hex digits only, not all zero (an invalid id in both formats), `min..=32` of them.
fn valid_trace_id(id: &str, min: usize) -> bool {
    (min..=32).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && id.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_levels_to_severities() {
        assert_eq!(severity(tracing::Level::WARN), "WARNING");
        assert_eq!(severity(tracing::Level::TRACE), "DEBUG");
    }

    #[test]
    fn builds_trace_names() {
        let cloud = Some("105445aa7843bc8bf206b12000100000/1;o=1");
        let w3c = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(
            trace_name(Some("proj"), cloud, None).as_deref(),
            Some("projects/proj/traces/105445aa7843bc8bf206b12000100000")
        );
        assert_eq!(
            trace_name(Some("proj"), None, w3c).as_deref(),
            Some("projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736")
        );
        // Both: Cloud Run's own header names the trace Cloud Logging shows.
        assert_eq!(
            trace_name(Some("proj"), cloud, w3c).as_deref(),
            Some("projects/proj/traces/105445aa7843bc8bf206b12000100000")
        );
        assert_eq!(
            trace_name(Some("proj"), Some("not hex!/1"), w3c).as_deref(),
            Some("projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_name(None, Some("abc/1"), w3c), None);
        assert_eq!(trace_name(Some("proj"), Some("not hex!/1"), None), None);
        assert_eq!(trace_name(Some("proj"), None, None), None);
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert_eq!(trace_name(Some("proj"), None, Some(bad)), None, "{bad}");
        }
    }

    #[test]
    fn formats_cloud_logging_entries() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields::new())
            .event_format(CloudLogging)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", trace = "projects/p/traces/abc");
            let _entered = span.enter();
            tracing::warn!(status = 503, "store unavailable");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let entry: Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(entry["severity"], "WARNING");
        assert_eq!(entry["message"], "store unavailable");
        assert_eq!(entry["status"], 503);
        assert_eq!(
            entry["logging.googleapis.com/trace"],
            "projects/p/traces/abc"
        );
    }
}
