//! The `[analytics]` table, checked once: users to ignore (logins or numeric ids) and the working
//! time `business_hours` counts.

use crate::business_hours::BusinessHours;
use crate::config::{AnalyticsConfig, BusinessHoursConfig};

/// `ignore_users`, split into ids and lower-cased logins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoredUsers {
    pub ids: Vec<i64>,
    pub logins: Vec<String>,
}

impl IgnoredUsers {
    /// Each entry is a numeric user id or a login (letters, digits and `-`, optionally ending
    /// in `[bot]`); errors name the entry.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut ignored = Self::default();
        for (index, entry) in entries.iter().enumerate() {
            let entry = entry.trim();
            if !entry.is_empty() && entry.bytes().all(|b| b.is_ascii_digit()) {
                let id = entry.parse().map_err(|_| {
                    format!("analytics.ignore_users[{index}]: {entry:?} is too large for a user id")
                })?;
                ignored.ids.push(id);
            } else if is_login(entry) {
                ignored.logins.push(entry.to_lowercase());
            } else {
                return Err(format!(
                    "analytics.ignore_users[{index}]: {entry:?} is neither a GitHub login \
                     (letters, digits and -, as `k8s-ci-robot` or `renovate[bot]`) nor a numeric \
                     user id"
                ));
            }
        }
        ignored.ids.sort_unstable();
        ignored.ids.dedup();
        ignored.logins.sort();
        ignored.logins.dedup();
        Ok(ignored)
    }
}

fn is_login(text: &str) -> bool {
    let name = text.strip_suffix("[bot]").unwrap_or(text);
    !name.is_empty()
        && name.len() <= 39
        && !name.starts_with('-')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The analytics settings, parsed.
#[derive(Debug, Clone, Default)]
pub struct InsightsSettings {
    pub ignore: IgnoredUsers,
    /// The working time `business_hours` counts, with the configuration it came from.
    pub business_hours: Option<(BusinessHours, BusinessHoursConfig)>,
}

impl InsightsSettings {
    /// Checks `[analytics]`; an error names the key.
    pub fn from_config(config: &AnalyticsConfig) -> Result<Self, String> {
        let ignore = IgnoredUsers::parse(&config.ignore_users)?;
        let business_hours = match &config.business_hours {
            None => None,
            Some(hours) => Some((
                BusinessHours::parse(hours)
                    .map_err(|error| format!("analytics.business_hours: {error}"))?,
                hours.clone(),
            )),
        };
        Ok(Self {
            ignore,
            business_hours,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_ids_and_logins() {
        let entries: Vec<String> = ["k8s-ci-robot", "12345678", "Renovate[bot]", "12345678"]
            .map(String::from)
            .to_vec();
        assert_eq!(
            IgnoredUsers::parse(&entries).unwrap(),
            IgnoredUsers {
                ids: vec![12_345_678],
                logins: vec!["k8s-ci-robot".into(), "renovate[bot]".into()],
            }
        );
    }

    #[test]
    fn refuses_what_is_neither_with_the_entry() {
        for bad in [
            "",
            "a b",
            "'; DROP TABLE issues; --",
            "-lead",
            "99999999999999999999",
        ] {
            let error = IgnoredUsers::parse(&["ok".into(), bad.into()]).unwrap_err();
            assert!(error.starts_with("analytics.ignore_users[1]"), "{error}");
        }
    }

    #[test]
    fn names_the_business_hours_key() {
        let config = AnalyticsConfig {
            ignore_users: Vec::new(),
            business_hours: Some(BusinessHoursConfig {
                zone: "Mars/Olympus".into(),
                days: "Mon-Fri".into(),
                hours: "09:00-17:00".into(),
                holidays: Vec::new(),
            }),
        };
        let error = InsightsSettings::from_config(&config).unwrap_err();
        assert!(
            error.starts_with("analytics.business_hours: zone"),
            "{error}"
        );
    }
}
