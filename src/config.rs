//! TOML configuration, parsed and validated into typed values in one step.
//!
//! [`Config::load`] reads the file into raw serde structs (`raw.rs`, which
//! reject unknown keys), then converts every section into typed values
//! (`convert.rs`): URLs, durations, regexes, cron schedules, roles, and
//! secrets resolved from their source. Every error names the file and the
//! key path. Defaults live in `defaults.rs` and nowhere else.

mod convert;
mod credential;
mod defaults;
mod error;
mod raw;
mod sections;
pub mod value;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use error::{ConfigError, Problem};
pub use sections::*;
pub use value::DurationError;

/// A loaded, validated config.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub origin: PathBuf,
    /// `[grafana]` and `[grafana.auth]`.
    pub grafana: GrafanaConfig,
    /// `[orgs]`.
    pub orgs: OrgSelection,
    /// `[[use_case]]` rules, in file order.
    pub use_cases: Vec<UseCaseRule>,
    /// `[migration]`.
    pub migration: MigrationConfig,
    /// `[sink]`.
    pub sink: SinkConfig,
    /// `[ledger]`.
    pub ledger: LedgerConfig,
    /// `[reports]`.
    pub reports: ReportsConfig,
    /// `[cutover]`.
    pub cutover: CutoverConfig,
    /// `[reconcile]` and `[reconcile.repair]`.
    pub reconcile: ReconcileConfig,
    /// `[daemon]`.
    pub daemon: DaemonConfig,
    /// `[log]`.
    pub log: LogConfig,
}

impl Config {
    /// Reads and validates the config file at `path`.
    ///
    /// # Errors
    /// When the file cannot be read, is not valid TOML, or a key is
    /// unknown, missing or invalid; the error names the file and the key.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with(path, &Environment::from_process())
    }

    /// Like [`Config::load`] with an explicit environment.
    pub fn load_with(path: &Path, env: &Environment) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml_str_with(&text, path, env)
    }

    /// Validates config text; `origin` names it in errors and anchors
    /// relative paths.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        Self::from_toml_str_with(text, origin, &Environment::from_process())
    }

    /// Like [`Config::from_toml_str`] with an explicit environment.
    pub fn from_toml_str_with(
        text: &str,
        origin: &Path,
        env: &Environment,
    ) -> Result<Config, ConfigError> {
        let raw = parse_raw(text, origin)?;
        let base = origin.parent().unwrap_or(Path::new(""));
        let ctx = convert::Ctx {
            path: origin,
            base,
            env,
        };
        convert::config(&ctx, raw)
    }

    /// Things that load but deserve a warning from `config check`.
    pub fn warnings(&self) -> Vec<ConfigWarning> {
        let mut warnings = Vec::new();
        if self.grafana.auth.credential().source.is_inline() {
            let key = match self.grafana.auth {
                GrafanaAuth::Basic { .. } => "grafana.auth.password",
                GrafanaAuth::Token { .. } => "grafana.auth.token",
            };
            warnings.push(ConfigWarning::InlineSecret { key });
        }
        if let Some(addr) = self.daemon.metrics_listen {
            if !addr.ip().is_loopback() {
                warnings.push(ConfigWarning::MetricsNotLoopback { addr });
            }
        }
        warnings
    }
}

/// Something a valid config does that an operator should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    /// A secret written in the config file itself.
    InlineSecret {
        /// The key holding it.
        key: &'static str,
    },
    /// Metrics served beyond this machine.
    MetricsNotLoopback {
        /// The configured address.
        addr: std::net::SocketAddr,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::InlineSecret { key } => write!(
                f,
                "key {key}: the secret is written in the config file; \
                 prefer _file, _env or _credential"
            ),
            ConfigWarning::MetricsNotLoopback { addr } => write!(
                f,
                "key daemon.metrics_listen: {addr} is reachable from other hosts"
            ),
        }
    }
}

/// Parses TOML into the raw structs, keeping the key path of errors.
fn parse_raw(text: &str, origin: &Path) -> Result<raw::RawConfig, ConfigError> {
    let deserializer = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        let line = inner.span().map_or(0, |span| line_of(text, span.start));
        let message = parse_message(&key, inner.message());
        if key.is_empty() || key == "." {
            let path = origin.to_path_buf();
            ConfigError::Syntax {
                path,
                line,
                message,
            }
        } else {
            let problem = Problem::Parse { message, line };
            ConfigError::Invalid {
                path: origin.to_path_buf(),
                key,
                problem,
            }
        }
    })
}

/// The parser's complaint about `key`, on one line.
///
/// The TOML parser quotes the value it rejects ("invalid type: integer
/// `1234`"); for a secret key that value may be the secret, so only the
/// expectation is kept.
fn parse_message(key: &str, message: &str) -> String {
    let last = key.rsplit('.').next().unwrap_or(key);
    if raw::SECRET_KEYS.contains(&last) {
        return "invalid type, expected a string".to_string();
    }
    // toml's messages may span lines; an error is one line here.
    message.trim().replace('\n', "; ")
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The config file to use: `--config`, else `KEYSHIFT_CONFIG`, else
/// `/etc/keyshift/config.toml`.
pub fn config_path(flag: Option<&Path>, env: &Environment) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    match env.get(defaults::CONFIG_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => PathBuf::from(defaults::CONFIG_PATH),
    }
}

/// The state directory: `$STATE_DIRECTORY` under systemd, else
/// `/var/lib/keyshift`.
pub fn state_dir(env: &Environment) -> PathBuf {
    defaults::state_dir(env)
}

/// A snapshot of environment variables, as config loading sees them.
///
/// Loading takes one explicitly so that tests need not change the
/// process environment. Its `Debug` shows names only: values may be
/// secrets.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

impl Environment {
    /// The current process environment (non-UTF-8 values are skipped).
    pub fn from_process() -> Self {
        Environment {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment holding exactly these variables.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Environment {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of a variable, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

#[cfg(test)]
mod tests;
