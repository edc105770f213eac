//! The typed sections of a loaded config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use reqwest::Url;

use super::value::choice_enum;
use crate::role::Role;
use crate::schedule::Schedule;
use crate::secret::Secret;
use crate::telemetry::LogFormat;

/// `[grafana]`: the server and how to talk to it.
#[derive(Debug, Clone)]
pub struct GrafanaConfig {
    /// Base URL; its path always ends in `/` so `join` keeps sub-paths.
    pub url: Url,
    /// PEM bundle added to the trust store.
    pub ca_file: Option<PathBuf>,
    /// Limit for one whole request.
    pub timeout: Duration,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Most requests in flight at once (1 to 64).
    pub concurrency: usize,
    /// Request rate limit; `None` means no limit.
    pub requests_per_second: Option<u32>,
    /// Most total time spent retrying one call.
    pub retry_budget: Duration,
    /// Most retries of one call.
    pub max_retries: u32,
    /// The credential keyshift logs in with.
    pub auth: GrafanaAuth,
}

/// `[grafana.auth]`: server-admin basic auth or a token.
#[derive(Debug, Clone)]
pub enum GrafanaAuth {
    /// Basic auth as a server admin; reaches every org.
    Basic {
        /// Login name.
        user: String,
        /// Password and where it came from.
        password: Credential,
    },
    /// A service-account token; reaches only the token's org.
    Token {
        /// Token and where it came from.
        token: Credential,
    },
}

impl GrafanaAuth {
    /// The secret and where it came from, whatever the kind.
    pub fn credential(&self) -> &Credential {
        match self {
            GrafanaAuth::Basic { password, .. } => password,
            GrafanaAuth::Token { token } => token,
        }
    }
}

/// A secret resolved at load time, with its source.
#[derive(Debug, Clone)]
pub struct Credential {
    /// The secret itself.
    pub secret: Secret,
    /// Where it was read from.
    pub source: SecretSource,
}

/// Where a secret was read from; `config check` warns about `Inline`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the config file itself.
    Inline,
    /// An environment variable.
    Env {
        /// The variable's name.
        var: String,
    },
    /// A file.
    File {
        /// The file, resolved against the config's directory.
        path: PathBuf,
    },
    /// systemd's credentials directory (`LoadCredential=`).
    SystemdCredential {
        /// The credential's name.
        name: String,
        /// `$CREDENTIALS_DIRECTORY/<name>`.
        path: PathBuf,
    },
}

impl SecretSource {
    /// True when the secret is written in the config file.
    pub fn is_inline(&self) -> bool {
        matches!(self, SecretSource::Inline)
    }
}

/// An org named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgRef {
    /// A numeric org id.
    Id(i64),
    /// An org name, compared exactly.
    Name(String),
}

impl OrgRef {
    /// True when this refers to the org with this id and name.
    pub fn matches(&self, id: i64, name: &str) -> bool {
        match self {
            OrgRef::Id(want) => *want == id,
            OrgRef::Name(want) => want == name,
        }
    }
}

/// A set of orgs: all of them, or the listed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgFilter {
    /// Every org (`"*"`).
    All,
    /// Only these orgs.
    Only(Vec<OrgRef>),
}

impl OrgFilter {
    /// True when the org with this id and name is in the set.
    pub fn contains(&self, id: i64, name: &str) -> bool {
        match self {
            OrgFilter::All => true,
            OrgFilter::Only(refs) => refs.iter().any(|r| r.matches(id, name)),
        }
    }
}

/// `[orgs]`: which orgs form the estate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgSelection {
    /// Orgs taken in (default all).
    pub include: OrgFilter,
    /// Orgs left out even when included.
    pub exclude: Vec<OrgRef>,
}

impl OrgSelection {
    /// True when the org belongs to the estate.
    pub fn selects(&self, id: i64, name: &str) -> bool {
        self.include.contains(id, name) && !self.exclude.iter().any(|r| r.matches(id, name))
    }
}

/// One `[[use_case]]` rule: which keys share a service account.
#[derive(Debug, Clone)]
pub struct UseCaseRule {
    /// Service-account name of the use case.
    pub name: String,
    /// Regex on the original key name; not anchored unless written so.
    pub pattern: Regex,
    /// Orgs the rule applies to.
    pub orgs: OrgFilter,
    /// Role forced on the service account, if any.
    pub role: Option<Role>,
}

choice_enum! {
    /// What to do with a source credential that has expired.
    pub enum ExpiredPolicy {
        /// Record it as skipped and leave it untouched.
        Skip => "skip",
        /// Delete the dead credential.
        Delete => "delete",
    }
}

choice_enum! {
    /// What to do when a lifetime exceeds the server's limit.
    pub enum LifetimeLimitPolicy {
        /// Shorten the lifetime to the limit and flag it.
        Clamp => "clamp",
        /// Skip the credential.
        Skip => "skip",
    }
}

/// `[migration]`: how credentials move to service accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationConfig {
    /// Keep one secret per use case (per-key migration or adoption).
    pub keep_secrets: bool,
    /// Policy for expired credentials.
    pub expired: ExpiredPolicy,
    /// Policy for lifetimes over the server's limit.
    pub lifetime_limit: LifetimeLimitPolicy,
    /// Token names are `<prefix>-<use case>-<original key id>`.
    pub token_name_prefix: String,
    /// The daemon also migrates legacy credentials that appear later.
    pub new_credentials: bool,
    /// The server's token lifetime limit, when it has one; Grafana does
    /// not expose it, so the plan can only check it when told.
    pub max_token_lifetime: Option<Duration>,
}

/// `[sink]`: where new token secrets are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkConfig {
    /// One file per token in a private directory.
    Directory {
        /// The directory, created 0700 when missing.
        path: PathBuf,
    },
    /// A command that reads one JSON document on stdin.
    Exec {
        /// Program and arguments; no shell is involved.
        command: Vec<String>,
        /// Time allowed before the command is killed.
        timeout: Duration,
    },
}

/// `[ledger]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerConfig {
    /// The SQLite file.
    pub path: PathBuf,
}

/// `[reports]`: where run reports go and how long they stay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportsConfig {
    /// Report directory.
    pub dir: PathBuf,
    /// Newest N runs kept.
    pub keep: u32,
    /// Reports older than this are removed.
    pub max_age: Duration,
}

choice_enum! {
    /// When a replaced credential is revoked.
    pub enum CutoverPolicy {
        /// Never; report readiness only.
        Never => "never",
        /// Once unused for `unused_for` and `grace` has passed.
        WhenUnused => "when-unused",
    }
}

/// `[cutover]`: when replaced credentials are revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoverConfig {
    /// The policy.
    pub policy: CutoverPolicy,
    /// `when-unused`: no use (by `lastUsedAt`) for this long.
    pub unused_for: Duration,
    /// `when-unused`: at least this long since the replacement was delivered.
    pub grace: Duration,
    /// Versions whose `lastUsedAt` is unreliable: never revoke there.
    pub distrust_last_used: Vec<String>,
}

impl CutoverConfig {
    /// True when `lastUsedAt` must not be trusted on this version.
    ///
    /// Matches whole dotted components: "10.1" covers "10.1.5" but not
    /// "10.10.0".
    pub fn distrusts_last_used(&self, version: &str) -> bool {
        self.distrust_last_used.iter().any(|prefix| {
            version == prefix
                || version
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '-', '+']))
        })
    }
}

choice_enum! {
    /// Repair for a changed role or name.
    pub enum FixRepair {
        /// Record the finding only.
        Report => "report",
        /// Set it back in place.
        Fix => "fix",
    }
}

choice_enum! {
    /// Repair for a deleted or revoked token.
    pub enum TokenMissingRepair {
        /// Record the finding only.
        Report => "report",
        /// Issue a new token through the sink.
        Reissue => "reissue",
    }
}

choice_enum! {
    /// Repair for a service account deleted outside keyshift.
    pub enum SaDeletedRepair {
        /// Record the finding only: someone may have meant it.
        Report => "report",
        /// Create it again and reissue its tokens through the sink.
        Recreate => "recreate",
    }
}

choice_enum! {
    /// Repair for a token expiring soon.
    pub enum TokenExpiringRepair {
        /// Record the finding only.
        Report => "report",
        /// Create and deliver a new token, then delete the old one.
        Rotate => "rotate",
    }
}

choice_enum! {
    /// Repair for legacy credentials that appeared after migration.
    pub enum NewCredentialsRepair {
        /// Record the finding only.
        Report => "report",
        /// Migrate them.
        Migrate => "migrate",
    }
}

/// `[reconcile.repair]`: the repair per finding kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairPolicy {
    /// A service account's role changed.
    pub role_changed: FixRepair,
    /// A service account's name changed.
    pub name_changed: FixRepair,
    /// A token was deleted or revoked.
    pub token_missing: TokenMissingRepair,
    /// A token expires within `expiring_within`.
    pub token_expiring: TokenExpiringRepair,
    /// New legacy credentials appeared.
    pub new_credentials: NewCredentialsRepair,
    /// An owned service account was deleted.
    pub sa_deleted: SaDeletedRepair,
}

/// `[reconcile]`: drift detection and its schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileConfig {
    /// When the daemon reconciles.
    pub schedule: Schedule,
    /// Tokens expiring within this window are reported.
    pub expiring_within: Duration,
    /// Re-enable a disabled service account (never unless true).
    pub reenable_disabled: bool,
    /// Tokens one service account may hold on this server, when the
    /// server limits it (Amazon Managed Grafana: 99); `None` = no limit.
    pub token_limit: Option<usize>,
    /// Repair per finding kind.
    pub repair: RepairPolicy,
}

/// `[daemon]`: `keyshift run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Address of `/metrics` and `/healthz`; `None` = no server.
    pub metrics_listen: Option<SocketAddr>,
    /// One run at start if the last run is older than the period.
    pub catch_up: bool,
    /// Ping the systemd watchdog when asked to.
    pub watchdog: bool,
}

choice_enum! {
    /// Most verbose level logged for keyshift itself.
    pub enum LogLevel {
        /// Everything, including each request.
        Trace => "trace",
        /// Decisions.
        Debug => "debug",
        /// Lifecycle and run summaries.
        Info => "info",
        /// What an operator can fix.
        Warn => "warn",
        /// Failures only.
        Error => "error",
    }
}

impl LogLevel {
    /// The matching tracing filter.
    pub fn to_level_filter(self) -> tracing::level_filters::LevelFilter {
        use tracing::level_filters::LevelFilter;
        match self {
            LogLevel::Trace => LevelFilter::TRACE,
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
        }
    }
}

/// `[log]`; the CLI flags win over these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// Base level for keyshift.
    pub level: LogLevel,
}
