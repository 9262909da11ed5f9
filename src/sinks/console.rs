//! The `stdout` destination, used when no Slack is configured: prints each notification as one
//! line, so a fresh `herald serve` shows what it would post.

use std::io::Write;

use super::slack::render_event;
use super::{BoxFuture, Delivery, Guarantee, Outcome, Sink};

/// Prints notifications as one line each.
#[derive(Debug, Default)]
pub struct ConsoleNotifier;

impl ConsoleNotifier {
    fn print(delivery: &Delivery) -> Outcome {
        let message = render_event(&delivery.event.event, &delivery.event.payload);
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, "[notify] {}", message.text).and_then(|()| stdout.flush()) {
            Ok(()) => Outcome::Delivered,
            Err(error) => Outcome::Retry {
                after: None,
                reason: format!("writing to stdout: {error}"),
            },
        }
    }
}

impl Sink for ConsoleNotifier {
    fn kind(&self) -> &'static str {
        "stdout"
    }

    fn guarantee(&self) -> Guarantee {
        // A line printed twice after a crash does no harm.
        Guarantee::Idempotent
    }

    fn max_batch(&self) -> usize {
        64
    }

    fn deliver<'a>(&'a self, batch: &'a [Delivery]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move { batch.iter().map(Self::print).collect() })
    }
}
