//! Every default value of the config, in one place.

use std::path::PathBuf;
use std::time::Duration;

use super::sections::{
    CutoverPolicy, ExpiredPolicy, FixRepair, LifetimeLimitPolicy, LogLevel, NewCredentialsRepair,
    SaDeletedRepair, TokenExpiringRepair, TokenMissingRepair,
};
use super::Environment;
use crate::telemetry::LogFormat;

/// Config file used when neither `--config` nor `KEYSHIFT_CONFIG` is set.
pub const CONFIG_PATH: &str = "/etc/keyshift/config.toml";
/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "KEYSHIFT_CONFIG";
/// State directory outside systemd.
pub const STATE_DIR: &str = "/var/lib/keyshift";

const MINUTE: u64 = 60;
const DAY: u64 = 24 * 60 * MINUTE;

pub const TIMEOUT: Duration = Duration::from_secs(30);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const CONCURRENCY: i64 = 4;
pub const REQUESTS_PER_SECOND: i64 = 0;
pub const RETRY_BUDGET: Duration = Duration::from_secs(2 * MINUTE);
pub const MAX_RETRIES: i64 = 6;

pub const KEEP_SECRETS: bool = true;
pub const EXPIRED: ExpiredPolicy = ExpiredPolicy::Skip;
pub const LIFETIME_LIMIT: LifetimeLimitPolicy = LifetimeLimitPolicy::Clamp;
pub const TOKEN_NAME_PREFIX: &str = "ks";
pub const MIGRATE_NEW_CREDENTIALS: bool = false;

pub const SINK_KIND: &str = "directory";
pub const SINK_DIR_NAME: &str = "tokens";
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

pub const LEDGER_FILE_NAME: &str = "ledger.sqlite";
pub const REPORTS_DIR_NAME: &str = "reports";
pub const REPORTS_KEEP: i64 = 100;
pub const REPORTS_MAX_AGE: Duration = Duration::from_secs(90 * DAY);

pub const CUTOVER_POLICY: CutoverPolicy = CutoverPolicy::Never;
pub const UNUSED_FOR: Duration = Duration::from_secs(30 * DAY);
pub const GRACE: Duration = Duration::from_secs(7 * DAY);
/// `lastUsedAt` was unreliable on these versions.
pub const DISTRUST_LAST_USED: [&str; 2] = ["10.1", "10.2"];

pub const SCHEDULE: &str = "0 */6 * * *";
pub const EXPIRING_WITHIN: Duration = Duration::from_secs(14 * DAY);
pub const REENABLE_DISABLED: bool = false;
pub const REPAIR_ROLE_CHANGED: FixRepair = FixRepair::Report;
pub const REPAIR_NAME_CHANGED: FixRepair = FixRepair::Report;
pub const REPAIR_TOKEN_MISSING: TokenMissingRepair = TokenMissingRepair::Report;
pub const REPAIR_TOKEN_EXPIRING: TokenExpiringRepair = TokenExpiringRepair::Report;
pub const REPAIR_NEW_CREDENTIALS: NewCredentialsRepair = NewCredentialsRepair::Report;
pub const REPAIR_SA_DELETED: SaDeletedRepair = SaDeletedRepair::Report;

pub const CATCH_UP: bool = true;
pub const WATCHDOG: bool = true;

pub const LOG_FORMAT: LogFormat = LogFormat::Text;
pub const LOG_LEVEL: LogLevel = LogLevel::Info;

/// The state directory: systemd's `$STATE_DIRECTORY`, else `/var/lib/keyshift`.
///
/// systemd separates several state directories with `:`; the first is ours.
pub fn state_dir(env: &Environment) -> PathBuf {
    env.get("STATE_DIRECTORY")
        .and_then(|dirs| dirs.split(':').find(|d| !d.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(STATE_DIR))
}
