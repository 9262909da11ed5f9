//! The notifier used when no Slack is configured: prints each notification to stdout, so a
//! fresh `herald serve` shows what it would post.

use std::io::Write;

use super::slack_message::render;
use super::{BoxFuture, EventFilter, Sink};
use crate::delivery::Outcome;
use crate::store::StoredEvent;

/// Prints notifications as one line each.
pub struct ConsoleNotifier {
    filter: EventFilter,
}

impl ConsoleNotifier {
    pub fn new(filter: EventFilter) -> Self {
        Self { filter }
    }
}

impl Sink for ConsoleNotifier {
    fn name(&self) -> &'static str {
        // The same outbox name as Slack: configuring Slack later takes over what is pending.
        "slack"
    }

    fn wants(&self, event: &str, action: Option<&str>) -> bool {
        self.filter.matches(event, action)
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn deliver<'a>(&'a self, event: &'a StoredEvent) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let message = match serde_json::from_str(&event.payload) {
                Ok(payload) => render(&event.event, &payload),
                Err(error) => {
                    return Outcome::Permanent {
                        reason: format!("stored payload is not JSON: {error}"),
                    };
                }
            };
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "[notify] {}", message.text).and_then(|()| stdout.flush()) {
                Ok(()) => Outcome::Delivered,
                Err(error) => Outcome::Retry {
                    after: None,
                    reason: format!("writing to stdout: {error}"),
                },
            }
        })
    }
}
