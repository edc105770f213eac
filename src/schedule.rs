//! Cron schedules for the daemon.
//!
//! Two forms are accepted: the 5-field crontab form
//! (`min hour day-of-month month day-of-week`) and the 6/7-field form with
//! a leading seconds field and an optional trailing year, plus the
//! `@hourly`, `@daily`, `@weekly`, `@monthly` and `@yearly` aliases.
//!
//! Day-of-week numbers follow crontab in every form: 0 and 7 are Sunday,
//! 1 is Monday. The `cron` crate counts 1 as Sunday, so numeric day-of-week
//! fields are rewritten to day names before it sees them; otherwise
//! `0 3 * * 1` would silently run on Sundays. Names (`MON`, `Sun-Thu`)
//! mean the same in both.
//!
//! Times are evaluated in UTC. Unlike Vixie cron, a schedule that restricts
//! both day-of-month and day-of-week fires only when both match.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// Day names in crontab order: index 0 is Sunday.
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A schedule expression that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The expression has the wrong number of fields.
    #[error("schedule \"{expression}\": expected 5, 6 or 7 fields, found {found}")]
    FieldCount {
        /// The expression as written.
        expression: String,
        /// How many whitespace-separated fields it has.
        found: usize,
    },
    /// The day-of-week field is not valid crontab syntax.
    #[error("schedule \"{expression}\": invalid day of week \"{field}\"")]
    DayOfWeek {
        /// The expression as written.
        expression: String,
        /// The offending field.
        field: String,
    },
    /// The cron parser rejected the expression.
    #[error("schedule \"{expression}\": {source}")]
    Invalid {
        /// The expression as written.
        expression: String,
        /// What the parser said.
        #[source]
        source: cron::error::Error,
    },
    /// The expression parses but never fires (e.g. 30 February).
    #[error("schedule \"{expression}\" never fires")]
    NeverFires {
        /// The expression as written.
        expression: String,
    },
}

/// A parsed cron schedule that remembers its original text.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    inner: cron::Schedule,
}

impl Schedule {
    /// Parses a 5-, 6- or 7-field expression or an `@` alias.
    ///
    /// # Errors
    ///
    /// Returns a [`ScheduleError`] naming the expression when it is
    /// malformed or can never fire.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let normalized = normalize(text)?;
        let inner =
            cron::Schedule::from_str(&normalized).map_err(|source| ScheduleError::Invalid {
                expression: text.to_owned(),
                source,
            })?;
        let schedule = Schedule {
            text: text.trim().to_owned(),
            inner,
        };

        // Checked here so the daemon never has to handle "no next run".
        // TODO: cron 0.12 misses fire times when the year field skips the
        // current year (fixed in 0.17), so such a schedule lands here as
        // "never fires"; upgrade the crate to accept it.
        if schedule.next_after(Utc::now()).is_none() {
            return Err(ScheduleError::NeverFires {
                expression: text.to_owned(),
            });
        }
        Ok(schedule)
    }

    /// Returns the expression as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Returns the first fire time strictly after `t`.
    ///
    /// `None` only for a schedule whose last fire time has passed (a
    /// 7-field expression with a year in the past).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.inner.after(&t).next()
    }

    /// Estimates the schedule's period after `t`.
    ///
    /// It is the distance between the next two fire times, so it varies
    /// for irregular schedules (weekdays only, say); the daemon only uses it
    /// to judge whether a catch-up run is due.
    pub fn period(&self, t: DateTime<Utc>) -> Option<Duration> {
        let mut upcoming = self.inner.after(&t);
        let first = upcoming.next()?;
        let second = upcoming.next()?;
        (second - first).to_std().ok()
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Schedule").field(&self.text).finish()
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// Rewrites an expression into the 6/7-field form the `cron` crate reads.
fn normalize(text: &str) -> Result<String, ScheduleError> {
    let trimmed = text.trim();
    if trimmed.starts_with('@') {
        return Ok(trimmed.to_owned());
    }

    let mut fields: Vec<String> = trimmed.split_whitespace().map(str::to_owned).collect();
    match fields.len() {
        5 => fields.insert(0, "0".to_owned()),
        6 | 7 => {}
        found => {
            return Err(ScheduleError::FieldCount {
                expression: text.to_owned(),
                found,
            })
        }
    }

    // Index 5 is day-of-week once the seconds field is in place.
    fields[5] = day_of_week(&fields[5]).ok_or_else(|| ScheduleError::DayOfWeek {
        expression: text.to_owned(),
        field: fields[5].clone(),
    })?;
    Ok(fields.join(" "))
}

/// Translates a crontab day-of-week field into a list of day names.
///
/// `*` and `?` pass through; anything else is expanded to the set of days
/// it names, which sidesteps the two numbering schemes entirely.
fn day_of_week(field: &str) -> Option<String> {
    if field == "*" || field == "?" {
        return Some(field.to_owned());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        for day in expand_item(item)? {
            days[day % 7] = true;
        }
    }
    let names: Vec<&str> = (0..7).filter(|&d| days[d]).map(|d| DAY_NAMES[d]).collect();
    Some(names.join(","))
}

/// Expands one list item (`3`, `1-5`, `MON-FRI`, `*/2`, `1-5/2`).
fn expand_item(item: &str) -> Option<Vec<usize>> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, step.parse::<usize>().ok().filter(|&s| s > 0)?),
        None => (item, 1),
    };
    let (start, end) = match range.split_once('-') {
        _ if range == "*" => (0, 6),
        Some((a, b)) => (day_number(a)?, day_number(b)?),
        // crontab reads `N/step` as "from N to the end of the range".
        None if item.contains('/') => (day_number(range)?, 7),
        None => (day_number(range)?, day_number(range)?),
    };
    if start > end {
        return None;
    }
    Some((start..=end).step_by(step).collect())
}

/// Reads a crontab day: 0-7 (0 and 7 are Sunday) or a three-letter name.
fn day_number(text: &str) -> Option<usize> {
    if let Ok(n) = text.parse::<usize>() {
        return (n <= 7).then_some(n);
    }
    DAY_NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Weekday};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    // A 5-field expression fires at second 0 of the named minute.
    #[test]
    fn five_fields_fire_on_the_minute() {
        let schedule = Schedule::parse("*/15 * * * *").unwrap();
        let next = schedule.next_after(at(2026, 3, 2, 10, 7, 30)).unwrap();
        assert_eq!(next, at(2026, 3, 2, 10, 15, 0));
    }

    // The 6-field form keeps its seconds field.
    #[test]
    fn six_fields_have_seconds() {
        let schedule = Schedule::parse("*/5 * * * * *").unwrap();
        let next = schedule.next_after(at(2026, 3, 2, 10, 7, 31)).unwrap();
        assert_eq!(next, at(2026, 3, 2, 10, 7, 35));
    }

    // The 7-field form accepts a year.
    #[test]
    fn seven_fields_have_a_year() {
        let schedule = Schedule::parse("0 0 12 1 1 * 2020-2099").unwrap();
        let next = schedule.next_after(at(2026, 3, 2, 0, 0, 0)).unwrap();
        assert_eq!(next, at(2027, 1, 1, 12, 0, 0));
    }

    // Aliases such as @hourly and @daily are understood.
    #[test]
    fn aliases_parse() {
        let hourly = Schedule::parse("@hourly").unwrap();
        let daily = Schedule::parse("@daily").unwrap();
        let t = at(2026, 3, 2, 10, 7, 0);
        assert_eq!(hourly.next_after(t).unwrap(), at(2026, 3, 2, 11, 0, 0));
        assert_eq!(daily.next_after(t).unwrap(), at(2026, 3, 3, 0, 0, 0));
        assert_eq!(Schedule::parse("@weekly").unwrap().as_str(), "@weekly");
    }

    // Day-of-week 1 is Monday and 0 and 7 are Sunday, as in crontab.
    #[test]
    fn day_of_week_uses_crontab_numbers() {
        // 2026-03-01 is a Sunday.
        let t = at(2026, 3, 1, 0, 30, 0);
        for (expr, weekday) in [
            ("0 3 * * 1", Weekday::Mon),
            ("0 3 * * 0", Weekday::Sun),
            ("0 3 * * 7", Weekday::Sun),
            ("0 0 3 * * 5", Weekday::Fri),
            ("0 3 * * sat", Weekday::Sat),
        ] {
            let next = Schedule::parse(expr).unwrap().next_after(t).unwrap();
            assert_eq!(next.weekday(), weekday, "{expr}");
        }
    }

    // Ranges, lists and steps in day-of-week expand to the right days.
    #[test]
    fn day_of_week_ranges_expand() {
        let cases = [
            ("1-5", "MON,TUE,WED,THU,FRI"),
            ("5-7", "SUN,FRI,SAT"),
            ("*/2", "SUN,TUE,THU,SAT"),
            ("1/3", "MON,THU,SUN"),
            ("mon-wed,0", "SUN,MON,TUE,WED"),
            ("?", "?"),
        ];
        for (field, expected) in cases {
            let mut got: Vec<String> = day_of_week(field)
                .unwrap()
                .split(',')
                .map(String::from)
                .collect();
            let mut want: Vec<String> = expected.split(',').map(String::from).collect();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{field}");
        }
    }

    // Bad expressions are rejected with the expression in the message.
    #[test]
    fn errors_name_the_expression() {
        for expr in [
            "* * * *",
            "61 * * * *",
            "0 3 * * 8",
            "0 3 * * 5-2",
            "nonsense x y z w",
        ] {
            let message = Schedule::parse(expr).unwrap_err().to_string();
            assert!(message.contains(expr), "{message}");
        }
    }

    // A schedule that can never fire is refused at parse time.
    #[test]
    fn never_firing_schedule_is_refused() {
        let err = Schedule::parse("0 0 0 1 1 * 2001").unwrap_err();
        assert!(matches!(err, ScheduleError::NeverFires { .. }), "{err}");
    }

    // The period is the gap between the next two fire times.
    #[test]
    fn period_is_gap_between_next_two_fires() {
        let t = at(2026, 3, 2, 10, 7, 0);
        let every_six_hours = Schedule::parse("0 */6 * * *").unwrap();
        assert_eq!(
            every_six_hours.period(t),
            Some(Duration::from_secs(6 * 3600))
        );
        let every_ten_seconds = Schedule::parse("*/10 * * * * *").unwrap();
        assert_eq!(every_ten_seconds.period(t), Some(Duration::from_secs(10)));
    }
}
