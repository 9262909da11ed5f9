//! A delivery (one outbox row: one event for one destination) and the record of its attempts.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::store::StoredEvent;

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "dead" => Ok(Self::Dead),
            other => Err(format!("unknown delivery status {other:?}")),
        }
    }
}

/// A delivery a lane owns until its lease runs out.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub destination: String,
    /// Attempts already made before this one.
    pub attempts: i64,
    /// When it became due: a row put off by a rate limit keeps its place in line.
    pub due_at: i64,
    /// A previous attempt started and its outcome was never recorded (the process died while
    /// the request was in flight, or the answer was ambiguous), so the destination may or may not
    /// have it.
    pub interrupted: bool,
    pub event: Arc<StoredEvent>,
}

/// What to record after an attempt (or a decision not to make one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    pub id: i64,
    pub status: DeliveryStatus,
    /// Attempts made so far, this one included when it counted.
    pub attempts: i64,
    /// When a pending row is due again.
    pub next_attempt_at: i64,
    pub error: Option<String>,
    /// Keep the row marked as "an attempt may be in flight", so that whoever takes it next checks
    /// before sending again (an ambiguous answer from a destination that can be asked).
    pub keep_started: bool,
    /// The attempt, for the history `herald deliveries show` prints; `None` when delivered (the
    /// row's own state says so) or when no request was made.
    pub log: Option<AttemptLog>,
}

/// One attempt that did not deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptLog {
    pub started_at: i64,
    pub finished_at: i64,
    /// `retry`, `rate_limited`, `ambiguous`, `deferred`, `dead`, `panicked`.
    pub outcome: &'static str,
    pub error: Option<String>,
}
