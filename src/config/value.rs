//! Parsers for the typed values a config holds: durations, cron
//! schedules and the fixed sets of words some keys accept.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A key whose value is one word out of a fixed set.
pub trait Choice: Sized + Copy + 'static {
    /// Every accepted word with its value, in documentation order.
    const CHOICES: &'static [(&'static str, Self)];

    /// The accepted words joined for an error message.
    fn expected() -> String {
        let words: Vec<&str> = Self::CHOICES.iter().map(|(w, _)| *w).collect();
        words.join(", ")
    }

    /// Looks a word up, ignoring ASCII case.
    fn from_word(word: &str) -> Option<Self> {
        Self::CHOICES
            .iter()
            .find(|(w, _)| w.eq_ignore_ascii_case(word.trim()))
            .map(|(_, value)| *value)
    }
}

/// Defines a config enum whose values are spelled as the given words.
macro_rules! choice_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $crate::config::value::Choice for $name {
            const CHOICES: &'static [(&'static str, Self)] =
                &[$( ($word, $name::$variant), )+];
        }

        impl $name {
            /// The word the config file uses for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use choice_enum;

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DurationError {
    /// Nothing but whitespace.
    Empty,
    /// A number without a unit, or an unknown unit.
    BadUnit,
    /// Something that is not a digit where a number belongs.
    BadNumber,
    /// The total does not fit.
    TooLarge,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DurationError::Empty => "empty",
            DurationError::BadUnit => "each number needs a unit: ms, s, m, h, d or w",
            DurationError::BadNumber => "expected digits followed by a unit",
            DurationError::TooLarge => "too large",
        })
    }
}

/// Parses `"30s"`, `"5m"`, `"2h"`, `"7d"`, or a sum such as `"1h30m"`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }

    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError::BadNumber);
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::TooLarge)?;
        rest = &rest[digits..];

        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let part = unit_duration(&rest[..unit_len], number)?;
        total = total.checked_add(part).ok_or(DurationError::TooLarge)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Multiplies `number` by the length of one `unit`.
fn unit_duration(unit: &str, number: u64) -> Result<Duration, DurationError> {
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 604_800_000,
        _ => return Err(DurationError::BadUnit),
    };
    let millis = number
        .checked_mul(millis_per_unit)
        .ok_or(DurationError::TooLarge)?;
    Ok(Duration::from_millis(millis))
}

/// A cron schedule together with the text it was written as.
#[derive(Clone)]
pub struct CronSchedule {
    text: String,
    schedule: cron::Schedule,
}

impl CronSchedule {
    /// Parses the 5-field crontab form or the 6/7-field form with seconds.
    ///
    /// The 5-field form gets a `0` seconds field, and its day-of-week
    /// field is rewritten to names: crontab counts Sunday as 0 (or 7)
    /// while the `cron` crate counts it as 1.
    pub fn parse(text: &str) -> Result<Self, cron::error::Error> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let expression = if fields.len() == 5 {
            let dow = crontab_day_of_week(fields[4]).map_err(|_| {
                cron::error::Error::from(cron::error::ErrorKind::Expression(format!(
                    "invalid day of week {:?}",
                    fields[4]
                )))
            })?;
            format!("0 {} {}", fields[..4].join(" "), dow)
        } else {
            fields.join(" ")
        };
        let schedule = cron::Schedule::from_str(&expression)?;
        Ok(CronSchedule {
            text: text.trim().to_string(),
            schedule,
        })
    }

    /// The schedule as written in the config.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed schedule.
    pub fn schedule(&self) -> &cron::Schedule {
        &self.schedule
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.text)
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// A crontab day-of-week field that is not valid.
#[derive(Debug)]
struct BadDayOfWeek;

/// Rewrites a crontab day-of-week field as a list of day names.
fn crontab_day_of_week(field: &str) -> Result<String, BadDayOfWeek> {
    if field == "*" || field == "?" {
        return Ok(field.to_string());
    }
    let mut days = [false; 7];
    for item in field.split(',') {
        for day in crontab_day_item(item)? {
            days[day] = true;
        }
    }
    let names: Vec<&str> = (0..7).filter(|d| days[*d]).map(|d| DAY_NAMES[d]).collect();
    Ok(names.join(","))
}

/// Expands one list item: `*`, `N`, `N-M`, each optionally `/STEP`.
fn crontab_day_item(item: &str) -> Result<Vec<usize>, BadDayOfWeek> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, step.parse::<usize>().map_err(|_| BadDayOfWeek)?),
        None => (item, 1),
    };
    if step == 0 {
        return Err(BadDayOfWeek);
    }
    let (first, last) = match range {
        "*" => (0, 6),
        _ => match range.split_once('-') {
            Some((a, b)) => (crontab_day(a)?, crontab_day(b)?),
            None if step > 1 => (crontab_day(range)?, 6),
            None => (crontab_day(range)?, crontab_day(range)?),
        },
    };
    if first > last {
        return Err(BadDayOfWeek);
    }
    // 7 is crontab's second spelling of Sunday, so it folds onto 0.
    Ok((first..=last).step_by(step).map(|d| d % 7).collect())
}

/// One crontab day: 0-7 or a three-letter name.
fn crontab_day(text: &str) -> Result<usize, BadDayOfWeek> {
    if let Ok(n) = text.parse::<usize>() {
        return if n <= 7 { Ok(n) } else { Err(BadDayOfWeek) };
    }
    DAY_NAMES
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .ok_or(BadDayOfWeek)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Utc, Weekday};

    // Single units, sums and bad spellings of durations.
    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Err(DurationError::BadUnit));
        assert_eq!(parse_duration("3y"), Err(DurationError::BadUnit));
        assert_eq!(parse_duration("s"), Err(DurationError::BadNumber));
        assert_eq!(parse_duration(" "), Err(DurationError::Empty));
        let huge = format!("{}w", u64::MAX);
        assert_eq!(parse_duration(&huge), Err(DurationError::TooLarge));
    }

    // The 5-field form gains a seconds field; 6 and 7 fields pass as is.
    #[test]
    fn cron_field_counts() {
        let five = CronSchedule::parse("0 */6 * * *").unwrap();
        assert_eq!(five.as_str(), "0 */6 * * *");
        let start = Utc.with_ymd_and_hms(2025, 1, 1, 1, 0, 0).unwrap();
        let next = five.schedule().after(&start).next().unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2025, 1, 1, 6, 0, 0).unwrap());

        assert!(CronSchedule::parse("*/5 * * * * *").is_ok());
        assert!(CronSchedule::parse("0 0 3 * * * 2030").is_ok());
        assert!(CronSchedule::parse("0 */6 * *").is_err());
        assert!(CronSchedule::parse("0 25 * * *").is_err());
    }

    // Crontab weekday numbers keep their meaning (0 and 7 are Sunday).
    #[test]
    fn cron_crontab_weekdays() {
        // 2025-01-01 is a Wednesday.
        let start = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let first_day = |text: &str| {
            let schedule = CronSchedule::parse(text).unwrap();
            schedule.schedule().after(&start).next().unwrap().weekday()
        };
        assert_eq!(first_day("0 12 * * 0"), Weekday::Sun);
        assert_eq!(first_day("0 12 * * 7"), Weekday::Sun);
        assert_eq!(first_day("0 12 * * 1"), Weekday::Mon);
        assert_eq!(first_day("0 12 * * 5-7"), Weekday::Fri);
        assert_eq!(first_day("0 12 * * sat"), Weekday::Sat);
        assert_eq!(crontab_day_of_week("1-5/2").unwrap(), "Mon,Wed,Fri");
        assert!(CronSchedule::parse("0 12 * * 8").is_err());
    }
}
