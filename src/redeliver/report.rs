//! What a redeliver pass says: one line per delivery it acted on, and a summary, worded for
//! the operator who reads a cron job's output or herald's logs.

use std::fmt;

use super::plan::{FailedDelivery, MAX_REQUESTS};
use crate::time_util::format_ms;

/// What one pass found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Attempts listed inside the window, and the pages they came on.
    pub listed: usize,
    pub pages: usize,
    /// Items GitHub listed that could not be read (skipped).
    pub unreadable: usize,
    /// Deliveries none of whose attempts succeeded.
    pub failed: usize,
    /// Asked for now (or, in a dry run, that would be).
    pub asked: usize,
    pub already_asked: usize,
    /// Failed at GitHub but stored by herald: skipped.
    pub stored: usize,
    pub given_up: usize,
    pub refused: usize,
    pub dry_run: bool,
}

/// One thing a pass did about one delivery, worded for people.
#[derive(Debug, Clone, Copy)]
pub enum Line<'a> {
    /// Asked GitHub to redeliver it; `previous` requests were made before.
    Asked {
        failed: &'a FailedDelivery,
        previous: usize,
    },
    WouldAsk {
        failed: &'a FailedDelivery,
        previous: usize,
    },
    Stored(&'a FailedDelivery),
    GaveUp {
        failed: &'a FailedDelivery,
        requests: usize,
    },
    Refused {
        failed: &'a FailedDelivery,
        reason: &'a str,
    },
}

impl Line<'_> {
    /// The delivery the line is about.
    pub fn delivery(&self) -> &FailedDelivery {
        match self {
            Self::Asked { failed, .. }
            | Self::WouldAsk { failed, .. }
            | Self::Stored(failed)
            | Self::GaveUp { failed, .. }
            | Self::Refused { failed, .. } => failed,
        }
    }

    /// Whether an operator should look at it.
    pub fn is_warning(&self) -> bool {
        matches!(self, Self::GaveUp { .. } | Self::Refused { .. })
    }
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Asked { failed, previous } => {
                write!(
                    f,
                    "asked GitHub {}to redeliver {}",
                    again(previous),
                    about(failed)
                )
            }
            Self::WouldAsk { failed, previous } => {
                write!(
                    f,
                    "would ask GitHub {}to redeliver {}",
                    again(previous),
                    about(failed)
                )
            }
            Self::Stored(failed) => write!(
                f,
                "skipped {}: herald stored it although GitHub saw a failure (an answer after \
                 the commit was lost or late); nothing is missing",
                about(failed)
            ),
            Self::GaveUp { failed, requests } => write!(
                f,
                "gave up on {}: asked {requests} times and each redelivery failed too; find why \
                 in herald's logs, then redeliver it from the hook's Recent Deliveries on GitHub",
                about(failed)
            ),
            Self::Refused { failed, reason } => {
                write!(f, "GitHub refused to redeliver {}: {reason}", about(failed))
            }
        }
    }
}

fn again(previous: usize) -> String {
    if previous == 0 {
        String::new()
    } else {
        format!("again (request {} of {MAX_REQUESTS}) ", previous + 1)
    }
}

fn about(failed: &FailedDelivery) -> String {
    let attempt = &failed.newest;
    format!(
        "{} ({}, attempt {} at {}: {})",
        attempt.guid,
        attempt.kind(),
        attempt.id,
        format_ms(attempt.delivered_at),
        if attempt.status.is_empty() {
            format!("HTTP {}", attempt.status_code)
        } else {
            attempt.status.clone()
        }
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let deliveries = if self.failed == 1 {
            "delivery"
        } else {
            "deliveries"
        };
        let asked = if self.dry_run {
            "would be asked again"
        } else {
            "asked again"
        };
        write!(
            f,
            "{} failed {deliveries} found, {} {asked}, {} already asked",
            self.failed, self.asked, self.already_asked
        )?;
        if self.stored > 0 {
            write!(f, ", {} stored by herald (skipped)", self.stored)?;
        }
        if self.given_up > 0 {
            write!(
                f,
                ", {} given up after {MAX_REQUESTS} requests",
                self.given_up
            )?;
        }
        if self.refused > 0 {
            write!(f, ", {} refused by GitHub", self.refused)?;
        }
        if self.dry_run {
            write!(f, " (dry run: nothing asked, nothing stored)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_read_as_sentences() {
        let summary = Summary {
            failed: 3,
            asked: 2,
            already_asked: 1,
            ..Summary::default()
        };
        assert_eq!(
            summary.to_string(),
            "3 failed deliveries found, 2 asked again, 1 already asked"
        );
        let everything = Summary {
            failed: 1,
            stored: 1,
            given_up: 2,
            refused: 3,
            ..Summary::default()
        };
        assert_eq!(
            everything.to_string(),
            "1 failed delivery found, 0 asked again, 0 already asked, 1 stored by herald \
             (skipped), 2 given up after 3 requests, 3 refused by GitHub"
        );
        let dry = Summary {
            failed: 2,
            asked: 2,
            dry_run: true,
            ..Summary::default()
        };
        assert_eq!(
            dry.to_string(),
            "2 failed deliveries found, 2 would be asked again, 0 already asked (dry run: \
             nothing asked, nothing stored)"
        );
    }
}
