//! Errors from loading a config file.

use std::path::PathBuf;

use super::value::DurationError;

/// A config file that could not be loaded; names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}: line {line}: {message}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// The TOML parser's message.
        message: String,
    },
    /// A key holds a value keyshift cannot use.
    #[error("{}: key {key}: {problem}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// Dotted key path, e.g. `use_case[2].match`.
        key: String,
        /// What is wrong with it.
        problem: Problem,
    },
}

impl ConfigError {
    /// The key path this error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// What is wrong with one key of the config.
///
/// Each message is complete on its own (the parser's complaint included),
/// so [`ConfigError`]'s one line tells the whole story.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    /// Rejected while parsing: unknown key, wrong type.
    #[error("{message} (line {line})")]
    Parse {
        /// The parser's message.
        message: String,
        /// 1-based line, 0 when unknown.
        line: usize,
    },
    /// A required key is absent.
    #[error("missing, this key is required")]
    Missing,
    /// A word outside the accepted set.
    #[error("unknown value {value:?}, expected one of {expected}")]
    UnknownValue {
        /// The value found.
        value: String,
        /// The accepted words.
        expected: String,
    },
    /// A duration that does not parse.
    #[error("invalid duration {value:?}: {reason}")]
    Duration {
        /// The value found.
        value: String,
        /// Why it does not parse.
        reason: DurationError,
    },
    /// A number outside its range.
    #[error("{value} is out of range, expected {min} to {max}")]
    OutOfRange {
        /// The value found.
        value: i64,
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A URL that does not parse.
    #[error("invalid url {value:?}: {error}")]
    Url {
        /// The value found.
        value: String,
        /// The URL parser's complaint.
        error: url::ParseError,
    },
    /// A URL keyshift refuses to use.
    #[error("unusable url: {reason}")]
    UnusableUrl {
        /// Why it is refused.
        reason: &'static str,
    },
    /// A regex that does not compile.
    #[error("invalid regex: {error}")]
    Regex {
        /// The regex compiler's complaint.
        error: Box<regex::Error>,
    },
    /// A cron schedule that does not parse.
    #[error("invalid cron schedule {value:?}: {error}")]
    Cron {
        /// The value found.
        value: String,
        /// The schedule parser's complaint.
        error: Box<crate::schedule::ScheduleError>,
    },
    /// A socket address that does not parse.
    #[error("invalid socket address {value:?}, expected e.g. 127.0.0.1:9464")]
    SocketAddr {
        /// The value found.
        value: String,
    },
    /// A key given for the other kind of its section.
    #[error("only valid with kind = {kind:?}")]
    WrongKind {
        /// The kind the key belongs to.
        kind: &'static str,
    },
    /// A secret with no source or more than one.
    #[error("give exactly one of {keys}")]
    SecretSources {
        /// The keys that can hold the secret.
        keys: String,
    },
    /// The environment variable a secret comes from is unset.
    #[error("environment variable {var} is not set")]
    EnvUnset {
        /// The variable's name.
        var: String,
    },
    /// `*_credential` used outside systemd's LoadCredential.
    #[error("CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=)")]
    NoCredentialsDirectory,
    /// A secret file that cannot be read.
    #[error("cannot read secret file {}: {error}", path.display())]
    SecretFile {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// A secret that resolves to nothing.
    #[error("the secret is empty")]
    EmptySecret,
    /// A name that appears twice where it must be unique.
    #[error("{name:?} is already used by {other}")]
    Duplicate {
        /// The repeated name.
        name: String,
        /// The key path of the first use.
        other: String,
    },
    /// A value that breaks a rule of its own.
    #[error("{value:?} {rule}")]
    Rule {
        /// The value found.
        value: String,
        /// The rule it breaks, e.g. "must not start with extsvc-".
        rule: &'static str,
    },
}
