//! The config file as written: serde structs that mirror the TOML.
//!
//! Every field is optional here so that a missing key is reported by
//! key path during conversion; defaults live in `defaults.rs`.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub grafana: RawGrafana,
    pub orgs: RawOrgs,
    #[serde(rename = "use_case")]
    pub use_cases: Vec<RawUseCase>,
    pub migration: RawMigration,
    pub sink: RawSink,
    pub ledger: RawLedger,
    pub reports: RawReports,
    pub cutover: RawCutover,
    pub reconcile: RawReconcile,
    pub daemon: RawDaemon,
    pub log: RawLog,
}

/// `[grafana]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawGrafana {
    pub url: Option<String>,
    pub ca_file: Option<String>,
    pub timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub concurrency: Option<i64>,
    pub requests_per_second: Option<i64>,
    pub retry_budget: Option<String>,
    pub max_retries: Option<i64>,
    pub auth: Option<RawAuth>,
}

/// Keys whose value is a secret, wherever they appear; errors about
/// them never quote the value.
pub const SECRET_KEYS: &[&str] = &["password", "token"];

/// `[grafana.auth]`; secret values are read, never echoed.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAuth {
    pub kind: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
    pub password_credential: Option<String>,
    pub token: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub token_credential: Option<String>,
}

// Inline secrets live in this struct, so Debug names only the kind.
impl fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawAuth")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// An org given by id or by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawOrgRef {
    Id(i64),
    Name(String),
}

impl<'de> Deserialize<'de> for RawOrgRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OrgRefVisitor)
    }
}

struct OrgRefVisitor;

impl Visitor<'_> for OrgRefVisitor {
    type Value = RawOrgRef;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an org id (integer) or an org name (string)")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawOrgRef, E> {
        Ok(RawOrgRef::Id(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawOrgRef, E> {
        i64::try_from(v)
            .map(RawOrgRef::Id)
            .map_err(|_| E::custom("org id too large"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<RawOrgRef, E> {
        Ok(RawOrgRef::Name(v.to_string()))
    }
}

/// `[orgs]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawOrgs {
    pub include: Option<Vec<RawOrgRef>>,
    pub exclude: Option<Vec<RawOrgRef>>,
}

/// One `[[use_case]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawUseCase {
    pub name: Option<String>,
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    pub orgs: Option<Vec<RawOrgRef>>,
    pub role: Option<String>,
}

/// `[migration]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawMigration {
    pub keep_secrets: Option<bool>,
    pub expired: Option<String>,
    pub lifetime_limit: Option<String>,
    pub token_name_prefix: Option<String>,
    pub new_credentials: Option<bool>,
    pub max_token_lifetime: Option<String>,
}

/// `[sink]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawSink {
    pub kind: Option<String>,
    pub path: Option<String>,
    pub command: Option<Vec<String>>,
    pub timeout: Option<String>,
}

/// `[ledger]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLedger {
    pub path: Option<String>,
}

/// `[reports]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawReports {
    pub dir: Option<String>,
    pub keep: Option<i64>,
    pub max_age: Option<String>,
}

/// `[cutover]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCutover {
    pub policy: Option<String>,
    pub unused_for: Option<String>,
    pub grace: Option<String>,
    pub distrust_last_used: Option<Vec<String>>,
}

/// `[reconcile]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawReconcile {
    pub schedule: Option<String>,
    pub expiring_within: Option<String>,
    pub reenable_disabled: Option<bool>,
    pub token_limit: Option<i64>,
    pub repair: RawRepair,
}

/// `[reconcile.repair]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRepair {
    pub role_changed: Option<String>,
    pub name_changed: Option<String>,
    pub token_missing: Option<String>,
    pub token_expiring: Option<String>,
    pub new_credentials: Option<String>,
    pub sa_deleted: Option<String>,
}

/// `[daemon]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDaemon {
    pub metrics_listen: Option<String>,
    pub catch_up: Option<bool>,
    pub watchdog: Option<bool>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
}
