//! The report's time window, `[since, until)`: an issue is in it when it was created in it.
//! Bounds are a date (`2026-01-31`, UTC), an RFC 3339 time, or relative to now (`30d`, `12h`,
//! `2w`, `45m`, `90s`).

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::time_util::{format_ms, to_ms};

const DAY_MS: i64 = 86_400_000;
/// Bounds are kept between 1970-01-01 and the end of 9999 (inclusive as an upper bound): every
/// such instant prints as RFC 3339, and nothing GitHub recorded lies outside.
const EARLIEST_MS: i64 = 0;
const LATEST_MS: i64 = 253_402_300_800_000;

/// A half-open interval of Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since_ms: i64,
    pub until_ms: i64,
}

impl Window {
    /// Builds a window, refusing an empty or inverted one.
    pub fn new(since_ms: i64, until_ms: i64) -> Result<Self, WindowError> {
        if since_ms >= until_ms {
            return Err(WindowError::Empty {
                since: format_ms(since_ms),
                until: format_ms(until_ms),
            });
        }
        Ok(Self { since_ms, until_ms })
    }

    pub fn contains(&self, at_ms: i64) -> bool {
        (self.since_ms..self.until_ms).contains(&at_ms)
    }
}

/// Why a bound was refused; the message is safe to show to API clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "invalid {which} {text:?}: expected a date (2026-01-31), an RFC 3339 time, or a relative time (30d, 12h, 2w)"
    )]
    Invalid { which: &'static str, text: String },
    #[error("since ({since}) must be before until ({until})")]
    Empty { since: String, until: String },
    #[error("{which} {text:?} is out of range: times from 1970 to 9999 only")]
    OutOfRange { which: &'static str, text: String },
}

/// The lower bound: a date means its first instant.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, WindowError> {
    in_range("since", text, parse(text, now_ms, false))
}

/// The upper bound (exclusive): a date means the end of that day, so `--until 2026-01-31`
/// includes issues opened on the 31st.
pub fn parse_until(text: &str, now_ms: i64) -> Result<i64, WindowError> {
    in_range("until", text, parse(text, now_ms, true))
}

fn in_range(which: &'static str, text: &str, parsed: Option<i64>) -> Result<i64, WindowError> {
    let at = parsed.ok_or_else(|| invalid(which, text))?;
    if (EARLIEST_MS..=LATEST_MS).contains(&at) {
        Ok(at)
    } else {
        Err(WindowError::OutOfRange {
            which,
            text: text.chars().take(64).collect(),
        })
    }
}

fn invalid(which: &'static str, text: &str) -> WindowError {
    WindowError::Invalid {
        which,
        text: text.chars().take(64).collect(),
    }
}

fn parse(text: &str, now_ms: i64, end_of_day: bool) -> Option<i64> {
    let text = text.trim();
    if let Some(ago) = relative_ms(text) {
        return now_ms.checked_sub(ago);
    }
    if let Ok(date) = Date::parse(text, format_description!("[year]-[month]-[day]")) {
        let start = to_ms(date.midnight().assume_utc());
        return Some(if end_of_day { start + DAY_MS } else { start });
    }
    OffsetDateTime::parse(text, &Rfc3339).ok().map(to_ms)
}

/// `30d` and friends, in milliseconds. `-30d` reads the same (the minus of "30 days back", as
/// `date -d -30days` takes it), so a habit from other tools does not fail.
fn relative_ms(text: &str) -> Option<i64> {
    let text = text.strip_prefix('-').unwrap_or(text);
    let unit = text.chars().last()?;
    let amount: i64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    if amount < 0 {
        return None;
    }
    let unit_ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => DAY_MS,
        'w' => 7 * DAY_MS,
        _ => return None,
    };
    amount.checked_mul(unit_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-02-01T00:00:00Z
    const NOW: i64 = 1_769_904_000_000;

    #[test]
    fn parses_every_accepted_form() {
        let cases = [
            ("30d", NOW - 30 * DAY_MS, NOW - 30 * DAY_MS),
            // "30 days back", as other tools write it: the same instant.
            ("-30d", NOW - 30 * DAY_MS, NOW - 30 * DAY_MS),
            ("12h", NOW - 12 * 3_600_000, NOW - 12 * 3_600_000),
            ("2w", NOW - 14 * DAY_MS, NOW - 14 * DAY_MS),
            ("90s", NOW - 90_000, NOW - 90_000),
            // 2026-01-31T00:00:00Z; as an upper bound, the end of that day.
            ("2026-01-31", 1_769_817_600_000, NOW),
            ("2026-01-31T12:00:00Z", 1_769_860_800_000, 1_769_860_800_000),
            // The same instant written with an offset.
            (
                "2026-01-31T14:00:00+02:00",
                1_769_860_800_000,
                1_769_860_800_000,
            ),
        ];
        for (text, since, until) in cases {
            assert_eq!(parse_since(text, NOW), Ok(since), "since {text}");
            assert_eq!(parse_until(text, NOW), Ok(until), "until {text}");
        }
    }

    #[test]
    fn rejects_nonsense() {
        for text in [
            "",
            "d",
            "-",
            "--3d",
            "-d",
            "3y",
            "yesterday",
            "2026-13-01",
            "2026-01-31T25:00:00Z",
            "1.5d",
        ] {
            assert!(parse_since(text, NOW).is_err(), "{text:?}");
        }
        let error = parse_until("soon", NOW).unwrap_err().to_string();
        assert!(error.starts_with("invalid until \"soon\""), "{error}");
    }

    #[test]
    fn refuses_bounds_outside_1970_to_9999() {
        for text in [
            "106751991167d",
            "15250284w",
            "1969-12-31",
            "1900-01-01T00:00:00Z",
        ] {
            let error = parse_since(text, NOW).unwrap_err();
            assert!(
                matches!(error, WindowError::OutOfRange { .. }),
                "{text}: {error}"
            );
            assert!(error.to_string().contains("out of range"), "{error}");
        }
        assert_eq!(parse_since("1970-01-01", NOW), Ok(0));
        assert_eq!(parse_until("9999-12-31", NOW), Ok(LATEST_MS));
        assert!(parse_since("56y", NOW).is_err());
    }

    #[test]
    fn windows_are_half_open_and_not_empty() {
        let window = Window::new(10, 20).unwrap();
        assert!(window.contains(10));
        assert!(window.contains(19));
        assert!(!window.contains(20));
        assert!(!window.contains(9));
        assert!(Window::new(20, 20).is_err());
        assert!(Window::new(21, 20).is_err());
    }
}
