//! Parsers for the typed values a config holds: durations, cron
//! schedules and the fixed sets of words some keys accept.

use std::fmt;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
