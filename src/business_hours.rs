//! Working time: a time zone, working days, daily working hours and holidays, as
//! `business_hours = { zone = "Europe/Berlin", days = "Mon-Fri", hours = "09:00-17:00",
//! holidays = ["2026-12-25"] }`. Used for durations that count working time only (`herald report
//! --business-hours`) and for deadlines counted in working time (Slack reminders). Daylight saving
//! changes are exact: a working window is placed on the local clock of each day.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;

use crate::config::BusinessHoursConfig;

const DAY_MS: i64 = 86_400_000;

/// Parsed working time.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    zone: TimeZone,
    zone_name: String,
    /// Monday first.
    days: [bool; 7],
    start: Time,
    /// `None`: the end of the day (`24:00`).
    end: Option<Time>,
    holidays: BTreeSet<Date>,
}

impl BusinessHours {
    /// Checks a configuration; errors name the field and say what is allowed.
    pub fn parse(config: &BusinessHoursConfig) -> Result<Self, String> {
        let zone = TimeZone::get(config.zone.trim()).map_err(|_| {
            format!(
                "zone {:?} is not a time zone of the IANA database (e.g. \"Europe/Berlin\", \"UTC\")",
                config.zone
            )
        })?;
        let days = parse_days(&config.days)?;
        let (start, end) = parse_hours(&config.hours)?;
        let holidays = config
            .holidays
            .iter()
            .map(|text| {
                text.trim()
                    .parse::<Date>()
                    .map_err(|_| format!("holiday {text:?} is not a date (YYYY-MM-DD)"))
            })
            .collect::<Result<BTreeSet<Date>, String>>()?;
        Ok(Self {
            zone,
            zone_name: config.zone.trim().to_owned(),
            days,
            start,
            end,
            holidays,
        })
    }

    /// The zone's name, as configured.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// Working milliseconds in `[from_ms, to_ms)` (0 when `to_ms <= from_ms`).
    pub fn working_ms(&self, from_ms: i64, to_ms: i64) -> i64 {
        if to_ms <= from_ms {
            return 0;
        }
        let first = self.local_date(from_ms);
        let last = self.local_date(to_ms);
        let overlap = |date: Date| -> i64 {
            self.window(date).map_or(0, |(start, end)| {
                (end.min(to_ms) - start.max(from_ms)).max(0)
            })
        };
        if days_between(first, last) <= 14 {
            return dates(first, last).map(overlap).sum();
        }
        // Both ends exactly; the days between by counting, with exact windows on the days the
        // zone changes its offset.
        let inner_first = first
            .tomorrow()
            .expect("a date before the last has a tomorrow");
        let inner_last = last
            .yesterday()
            .expect("a date after the first has a yesterday");
        let mut total = overlap(first) + overlap(last);
        let working = self.count_working_days(inner_first, inner_last);
        total += working * self.nominal_ms();
        for date in self.transition_dates(inner_first, inner_last) {
            if let Some((start, end)) = self.window(date) {
                total += (end - start) - self.nominal_ms();
            }
        }
        total
    }

    /// The instant at which `amount_ms` of working time has passed after `from_ms`.
    pub fn add_working_ms(&self, from_ms: i64, amount_ms: i64) -> i64 {
        let mut remaining = amount_ms.max(0);
        let mut date = self.local_date(from_ms);
        // Ten years of days at most: a configuration always has working days, so this is only a
        // guard against an unreasonable amount.
        for _ in 0..3_660 {
            if let Some((start, end)) = self.window(date) {
                let from = start.max(from_ms);
                if from < end {
                    if remaining <= end - from {
                        return from + remaining;
                    }
                    remaining -= end - from;
                }
            }
            match date.tomorrow() {
                Ok(next) => date = next,
                Err(_) => break,
            }
        }
        i64::MAX
    }

    /// Whether `at_ms` falls in working time.
    pub fn is_working(&self, at_ms: i64) -> bool {
        self.window(self.local_date(at_ms))
            .is_some_and(|(start, end)| (start..end).contains(&at_ms))
    }

    /// The working window of a local date, as Unix milliseconds; `None` on days off.
    fn window(&self, date: Date) -> Option<(i64, i64)> {
        if !self.days[weekday_index(date.weekday())] || self.holidays.contains(&date) {
            return None;
        }
        let start = self.instant(date, self.start);
        let end = match self.end {
            Some(end) => self.instant(date, end),
            None => self.instant(date.tomorrow().ok()?, Time::midnight()),
        };
        (end > start).then_some((start, end))
    }

    fn instant(&self, date: Date, time: Time) -> i64 {
        self.zone
            .to_ambiguous_timestamp(date.to_datetime(time))
            .compatible()
            .map_or(0, Timestamp::as_millisecond)
    }

    fn local_date(&self, at_ms: i64) -> Date {
        let at = Timestamp::from_millisecond(at_ms).unwrap_or(Timestamp::UNIX_EPOCH);
        at.to_zoned(self.zone.clone()).date()
    }

    /// A working window's length on the local clock.
    fn nominal_ms(&self) -> i64 {
        let end_ms = self.end.map_or(DAY_MS, time_ms);
        end_ms - time_ms(self.start)
    }

    /// Working days (not holidays) in `[first, last]`.
    fn count_working_days(&self, first: Date, last: Date) -> i64 {
        let days = days_between(first, last) + 1;
        let per_week = self.days.iter().filter(|day| **day).count() as i64;
        let mut count = days / 7 * per_week;
        let mut date = first;
        for _ in 0..days % 7 {
            if self.days[weekday_index(date.weekday())] {
                count += 1;
            }
            date = date.tomorrow().unwrap_or(date);
        }
        let holidays = self
            .holidays
            .range(first..=last)
            .filter(|holiday| self.days[weekday_index(holiday.weekday())])
            .count() as i64;
        count - holidays
    }

    /// The local dates in `[first, last]` on which the zone changes its offset.
    fn transition_dates(&self, first: Date, last: Date) -> BTreeSet<Date> {
        let from = self.instant(first, Time::midnight());
        let until = self.instant(last, Time::midnight()) + DAY_MS;
        let Ok(start) = Timestamp::from_millisecond(from - DAY_MS) else {
            return BTreeSet::new();
        };
        let mut dates = BTreeSet::new();
        for transition in self.zone.following(start) {
            let at = transition.timestamp().as_millisecond();
            if at > until {
                break;
            }
            for date in [self.local_date(at - 1), self.local_date(at)] {
                if (first..=last).contains(&date) {
                    dates.insert(date);
                }
            }
        }
        dates
    }
}

fn time_ms(time: Time) -> i64 {
    i64::from(time.hour()) * 3_600_000
        + i64::from(time.minute()) * 60_000
        + i64::from(time.second()) * 1_000
}

fn days_between(first: Date, last: Date) -> i64 {
    let epoch = Date::constant(1970, 1, 1);
    let day = |date: Date| -> i64 {
        date.since(epoch)
            .map_or(0, |span| i64::from(span.get_days()))
    };
    day(last) - day(first)
}

fn dates(first: Date, last: Date) -> impl Iterator<Item = Date> {
    std::iter::successors(Some(first), move |date| {
        date.tomorrow().ok().filter(|next| *next <= last)
    })
}

fn weekday_index(weekday: Weekday) -> usize {
    usize::try_from(weekday.to_monday_zero_offset()).unwrap_or(0)
}

fn parse_weekday(text: &str) -> Option<usize> {
    let names = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let lower = text.trim().to_lowercase();
    let short = lower.get(..3)?;
    let index = names.iter().position(|name| *name == short)?;
    let full = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    (lower.len() == 3 || full[index] == lower).then_some(index)
}

/// `Mon-Fri`, `Sun-Thu` (ranges wrap), or a list `Mon,Wed,Fri`; at least one day.
fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let invalid = || format!("days {text:?} must be weekdays like \"Mon-Fri\" or \"Mon,Tue,Thu\"");
    let mut days = [false; 7];
    for part in text
        .split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        match part.split_once('-') {
            Some((from, to)) => {
                let from = parse_weekday(from).ok_or_else(invalid)?;
                let to = parse_weekday(to).ok_or_else(invalid)?;
                let mut day = from;
                loop {
                    days[day] = true;
                    if day == to {
                        break;
                    }
                    day = (day + 1) % 7;
                }
            }
            None => days[parse_weekday(part).ok_or_else(invalid)?] = true,
        }
    }
    if days.iter().any(|day| *day) {
        Ok(days)
    } else {
        Err(invalid())
    }
}

/// `09:00-17:00`; `24:00` ends at midnight. The start must come before the end.
fn parse_hours(text: &str) -> Result<(Time, Option<Time>), String> {
    let invalid = || format!("hours {text:?} must be a range like \"09:00-17:00\"");
    let (start, end) = text.split_once('-').ok_or_else(invalid)?;
    let clock = |part: &str| -> Result<Option<Time>, String> {
        let part = part.trim();
        if part == "24:00" {
            return Ok(None);
        }
        let (hour, minute) = part.split_once(':').ok_or_else(invalid)?;
        let hour: i8 = hour.parse().map_err(|_| invalid())?;
        let minute: i8 = minute.parse().map_err(|_| invalid())?;
        Time::new(hour, minute, 0, 0)
            .map(Some)
            .map_err(|_| invalid())
    };
    let start = clock(start)?.ok_or_else(invalid)?;
    let end = clock(end)?;
    if end.is_some_and(|end| end <= start) {
        return Err(format!(
            "hours {text:?}: the start must come before the end"
        ));
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn hours(zone: &str, days: &str, hours: &str, holidays: &[&str]) -> BusinessHours {
        BusinessHours::parse(&BusinessHoursConfig {
            zone: zone.into(),
            days: days.into(),
            hours: hours.into(),
            holidays: holidays.iter().map(|day| (*day).to_owned()).collect(),
        })
        .unwrap()
    }

    fn at(text: &str) -> i64 {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn counts_only_working_time_across_a_weekend() {
        let office = hours("UTC", "Mon-Fri", "09:00-17:00", &[]);
        // Friday 16:00 to Monday 10:00: one hour on Friday, one on Monday.
        assert_eq!(
            office.working_ms(at("2026-11-27T16:00:00Z"), at("2026-11-30T10:00:00Z")),
            2 * HOUR
        );
        // Saturday to Sunday: nothing.
        assert_eq!(
            office.working_ms(at("2026-11-28T00:00:00Z"), at("2026-11-29T23:00:00Z")),
            0
        );
        // Backwards or empty.
        assert_eq!(
            office.working_ms(at("2026-11-30T10:00:00Z"), at("2026-11-30T09:00:00Z")),
            0
        );
    }

    #[test]
    fn holidays_and_zones() {
        let berlin = hours("Europe/Berlin", "Mon-Fri", "09:00-17:00", &["2026-12-25"]);
        // Thursday 24 Dec 16:00 CET to Monday 28 Dec 10:00 CET: 1 h + (Friday is a holiday) + 1 h.
        assert_eq!(
            berlin.working_ms(at("2026-12-24T15:00:00Z"), at("2026-12-28T09:00:00Z")),
            2 * HOUR
        );
        assert!(
            berlin.is_working(at("2026-12-28T08:30:00Z")),
            "09:30 in Berlin"
        );
        assert!(
            !berlin.is_working(at("2026-12-28T07:30:00Z")),
            "08:30 in Berlin"
        );
    }

    #[test]
    fn daylight_saving_changes_keep_the_local_window() {
        // New York springs forward on Sunday 8 March 2026: Friday 9-17 EST and Monday 9-17 EDT
        // are both eight hours, though the weekend lost one.
        let new_york = hours("America/New_York", "Mon-Fri", "09:00-17:00", &[]);
        assert_eq!(
            new_york.working_ms(at("2026-03-06T14:00:00Z"), at("2026-03-09T21:00:00Z")),
            16 * HOUR
        );
        // A window that contains the change itself is an hour short (01:00-05:00 on that day).
        let night = hours("America/New_York", "Sun", "01:00-05:00", &[]);
        assert_eq!(
            night.working_ms(at("2026-03-08T00:00:00Z"), at("2026-03-09T00:00:00Z")),
            3 * HOUR
        );
    }

    #[test]
    fn long_ranges_match_day_by_day_counting() {
        let zones = [
            "UTC",
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
        ];
        for zone in zones {
            let config = hours(
                zone,
                "Sun-Thu",
                "00:30-03:30",
                &["2026-03-10", "2026-11-01"],
            );
            let from = at("2025-12-31T13:17:00Z");
            for to in [
                at("2026-01-20T00:00:00Z"),
                at("2026-04-06T02:45:00Z"),
                at("2027-02-01T13:00:00Z"),
            ] {
                let naive: i64 = dates(config.local_date(from), config.local_date(to))
                    .map(|date| {
                        config
                            .window(date)
                            .map_or(0, |(start, end)| (end.min(to) - start.max(from)).max(0))
                    })
                    .sum();
                assert_eq!(config.working_ms(from, to), naive, "{zone} until {to}");
            }
        }
    }

    #[test]
    fn adds_working_time() {
        let office = hours("UTC", "Mon-Fri", "09:00-17:00", &[]);
        // 24 working hours from Friday 16:00: 1 h Friday, 8 h Mon, Tue, 7 h Wed → Wed 16:00.
        assert_eq!(
            office.add_working_ms(at("2026-11-27T16:00:00Z"), 24 * HOUR),
            at("2026-12-02T16:00:00Z")
        );
        // From outside working hours, the clock starts at the next window.
        assert_eq!(
            office.add_working_ms(at("2026-11-28T12:00:00Z"), HOUR),
            at("2026-11-30T10:00:00Z")
        );
        // The inverse of working_ms.
        let from = at("2026-11-25T11:11:00Z");
        let due = office.add_working_ms(from, 30 * HOUR);
        assert_eq!(office.working_ms(from, due), 30 * HOUR);
    }

    #[test]
    fn refuses_bad_settings_with_the_field() {
        let bad = |zone: &str, days: &str, range: &str, holiday: &str| {
            BusinessHours::parse(&BusinessHoursConfig {
                zone: zone.into(),
                days: days.into(),
                hours: range.into(),
                holidays: vec![holiday.into()],
            })
            .unwrap_err()
        };
        assert!(bad("Mars/Base", "Mon-Fri", "09:00-17:00", "2026-12-25").starts_with("zone"));
        assert!(bad("UTC", "Mon-Fryday", "09:00-17:00", "2026-12-25").starts_with("days"));
        assert!(bad("UTC", "Mon-Fri", "17:00-09:00", "2026-12-25").contains("before the end"));
        assert!(bad("UTC", "Mon-Fri", "9-5", "2026-12-25").starts_with("hours"));
        assert!(bad("UTC", "Mon-Fri", "09:00-17:00", "Christmas").starts_with("holiday"));
        let wrap = hours("UTC", "Fri-Mon", "00:00-24:00", &[]);
        assert_eq!(
            wrap.working_ms(at("2026-11-26T00:00:00Z"), at("2026-12-01T00:00:00Z")),
            4 * 24 * HOUR,
            "Friday through Monday, whole days"
        );
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// 2025-01-01 to 2028-01-01: several daylight-saving changes in every zone below.
        const FROM: i64 = 1_735_689_600_000;
        const SPAN: i64 = 3 * 365 * 24 * HOUR;

        fn configs() -> Vec<BusinessHours> {
            vec![
                hours(
                    "America/New_York",
                    "Mon-Fri",
                    "09:00-17:00",
                    &["2026-12-25"],
                ),
                hours("Europe/Berlin", "Mon,Wed,Fri", "08:30-12:00", &[]),
                // Windows across the 01:00-03:00 changes, and one ending at midnight.
                hours(
                    "Australia/Lord_Howe",
                    "Sun-Thu",
                    "01:00-03:30",
                    &["2026-04-05"],
                ),
                hours("America/Santiago", "Sat-Sun", "00:00-24:00", &[]),
                hours("UTC", "Mon-Fri", "09:00-17:00", &[]),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Working time over [a, c) is that over [a, b) plus that over [b, c), for any b
            /// between: no instant is counted twice or lost, across weekends, zones and DST.
            #[test]
            fn working_time_is_additive(
                which in 0..5usize,
                a in 0..SPAN,
                b in 0..SPAN,
                c in 0..SPAN,
            ) {
                let config = &configs()[which];
                let mut points = [FROM + a, FROM + b, FROM + c];
                points.sort_unstable();
                let [a, b, c] = points;
                prop_assert_eq!(
                    config.working_ms(a, c),
                    config.working_ms(a, b) + config.working_ms(b, c)
                );
                prop_assert!(config.working_ms(a, c) <= c - a);
            }

            /// Adding working time and measuring it back gives the amount added.
            #[test]
            fn adding_working_time_is_the_inverse_of_measuring_it(
                which in 0..5usize,
                from in 0..SPAN,
                amount in 0..(400 * HOUR),
            ) {
                let config = &configs()[which];
                let from = FROM + from;
                let due = config.add_working_ms(from, amount);
                prop_assert!(due >= from);
                prop_assert_eq!(config.working_ms(from, due), amount);
                // And it is the earliest such instant: a millisecond less is not enough.
                if amount > 0 {
                    prop_assert_eq!(config.working_ms(from, due - 1), amount - 1);
                }
            }

            /// The working time of a span is the time inside it at which `is_working` holds,
            /// checked minute by minute over a day.
            #[test]
            fn working_time_is_the_time_that_is_working(
                which in 0..5usize,
                start in 0..SPAN,
            ) {
                let config = &configs()[which];
                let start = FROM + start - (FROM + start) % 60_000;
                let minutes = (0..24 * 60)
                    .filter(|minute| config.is_working(start + minute * 60_000))
                    .count() as i64;
                prop_assert_eq!(config.working_ms(start, start + 24 * HOUR), minutes * 60_000);
            }
        }
    }
}
