//! Logging setup: tracing to stderr as text or JSON lines.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

use crate::config::value::Choice;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Choice for LogFormat {
    const CHOICES: &'static [(&'static str, Self)] =
        &[("text", LogFormat::Text), ("json", LogFormat::Json)];
}

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A global subscriber was installed before.
    #[error("a log subscriber is already installed")]
    AlreadyInstalled {
        /// The underlying complaint.
        #[source]
        source: tracing_subscriber::util::TryInitError,
    },
}

/// Installs the global subscriber; `-v` counts raise keyshift's level.
///
/// 0 = info, 1 = debug, 2+ = trace for keyshift; other crates log at
/// warn. `RUST_LOG`, when set, replaces all of that.
pub fn init(format: LogFormat, verbosity: u8) -> Result<(), TelemetryError> {
    init_with_level(format, LevelFilter::INFO, verbosity)
}

/// Like [`init`] with a base level from the config's `[log] level`.
pub fn init_with_level(
    format: LogFormat,
    base: LevelFilter,
    verbosity: u8,
) -> Result<(), TelemetryError> {
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let style = LineStyle::choose(under_journal, std::io::stderr().is_terminal());
    let rust_log = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
    let filter = match rust_log {
        Some(directives) => EnvFilter::new(directives),
        None => EnvFilter::new(default_directives(base, verbosity)),
    };

    Registry::default()
        .with(stderr_layer(format, style).with_filter(filter))
        .try_init()
        .map_err(|source| TelemetryError::AlreadyInstalled { source })
}

/// Filter directives: warn for everyone, the chosen level for keyshift.
pub fn default_directives(base: LevelFilter, verbosity: u8) -> String {
    // Without -v the config's level stands, quieter than info included;
    // each -v asks for more, and the more verbose of the two wins
    // (LevelFilter orders by verbosity).
    let level = match verbosity {
        0 => base,
        1 => base.max(LevelFilter::DEBUG),
        _ => LevelFilter::TRACE,
    };
    format!("warn,keyshift={level}")
}

/// Decorations of each log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LineStyle {
    ansi: bool,
    timestamps: bool,
}

impl LineStyle {
    /// The journal stamps and colours lines itself; pipes get no colour.
    fn choose(under_journal: bool, stderr_is_terminal: bool) -> Self {
        LineStyle {
            ansi: !under_journal && stderr_is_terminal,
            timestamps: !under_journal,
        }
    }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The formatting layer for stderr.
fn stderr_layer(format: LogFormat, style: LineStyle) -> BoxedLayer {
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(style.ansi);
    match (format, style.timestamps) {
        (LogFormat::Text, true) => layer.boxed(),
        (LogFormat::Text, false) => layer.without_time().boxed(),
        (LogFormat::Json, true) => layer.json().boxed(),
        (LogFormat::Json, false) => layer.json().without_time().boxed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // -v counts raise keyshift's level and never lower the config's base.
    #[test]
    fn verbosity_maps_to_levels() {
        let info = LevelFilter::INFO;
        assert_eq!(default_directives(info, 0), "warn,keyshift=info");
        assert_eq!(default_directives(info, 1), "warn,keyshift=debug");
        assert_eq!(default_directives(info, 5), "warn,keyshift=trace");
        assert_eq!(
            default_directives(LevelFilter::TRACE, 0),
            "warn,keyshift=trace"
        );
        assert_eq!(
            default_directives(LevelFilter::WARN, 1),
            "warn,keyshift=debug"
        );
        // The config can make keyshift quieter than info.
        assert_eq!(
            default_directives(LevelFilter::ERROR, 0),
            "warn,keyshift=error"
        );
    }

    // Under systemd lines carry no timestamp and no colour.
    #[test]
    fn journal_drops_time_and_colour() {
        let journal = LineStyle::choose(true, true);
        assert_eq!(
            journal,
            LineStyle {
                ansi: false,
                timestamps: false
            }
        );
        let terminal = LineStyle::choose(false, true);
        assert_eq!(
            terminal,
            LineStyle {
                ansi: true,
                timestamps: true
            }
        );
        assert!(!LineStyle::choose(false, false).ansi);
    }
}
