//! Version profiles, the [U] options and the server settings.
//!
//! Every version-dependent behaviour is a method of [`Profile`], so the
//! rest of the simulator never compares versions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Grafana version range with one set of API behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Profile {
    /// Grafana 9.1 – 9.4: migration endpoints and 9.x helpers.
    V9_1,
    /// Grafana 9.5 – 10.0.0: helpers gone, key list has `lastUsedAt`.
    V9_5,
    /// Grafana 10.0.x – 10.4.0: errutil bodies, migration result object.
    V10_0,
    /// Grafana 10.4.x – 11.2: SA logins embed the org id.
    V10_4,
    /// Grafana 11.3 – 11.5: API key creation answers 410.
    V11_3,
    /// Grafana 11.6 – 12.0: keys are converted at every startup.
    V11_6,
    /// Grafana 12.1 and later: key endpoints and plain keys removed.
    V12_1,
}

/// What `POST /api/auth/keys` does in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCreate {
    /// The key is created (200).
    Allowed,
    /// 410 Gone with a pointer to service accounts.
    Gone,
    /// The route no longer exists (404).
    NotFound,
}

/// How `POST /api/serviceaccounts/migrate` behaves in a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkMigrate {
    /// 9.x: stop at the first failure, answer with a message.
    StopOnError,
    /// 10.0.x and later: go on past failures, answer a result object.
    ResultObject,
    /// The route does not exist.
    NotFound,
}

/// Error for a profile or version string that names no profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// The text is not a version number.
    #[error("invalid grafana version {0:?}")]
    Invalid(String),
    /// The version is older than any profile.
    #[error("grafana version {0:?} is older than 9.1, which is not simulated")]
    TooOld(String),
}

impl Profile {
    /// All profiles, oldest first.
    pub const ALL: [Profile; 7] = [
        Profile::V9_1,
        Profile::V9_5,
        Profile::V10_0,
        Profile::V10_4,
        Profile::V11_3,
        Profile::V11_6,
        Profile::V12_1,
    ];

    /// The profile's short name, as accepted by `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::V9_1 => "9.1",
            Profile::V9_5 => "9.5",
            Profile::V10_0 => "10.0",
            Profile::V10_4 => "10.4",
            Profile::V11_3 => "11.3",
            Profile::V11_6 => "11.6",
            Profile::V12_1 => "12.1",
        }
    }

    /// The version `/api/health` reports unless one is given.
    pub fn default_version(self) -> &'static str {
        match self {
            Profile::V9_1 => "9.3.6",
            Profile::V9_5 => "9.5.2",
            Profile::V10_0 => "10.2.3",
            Profile::V10_4 => "10.4.3",
            Profile::V11_3 => "11.3.1",
            Profile::V11_6 => "11.6.0",
            Profile::V12_1 => "12.1.0",
        }
    }

    /// Service-account errors use the structured errutil body.
    pub fn errutil_errors(self) -> bool {
        self >= Profile::V10_0
    }

    /// Status of a token create whose name is taken in the org.
    pub fn duplicate_token_status(self) -> u16 {
        if self.errutil_errors() {
            400
        } else {
            409
        }
    }

    /// Status of a delete of a service account that does not exist.
    pub fn delete_missing_sa_status(self) -> u16 {
        if self.errutil_errors() {
            404
        } else {
            500
        }
    }

    /// SA logins embed the org id (`sa-<org>-<name>`).
    pub fn login_embeds_org(self) -> bool {
        self >= Profile::V10_4
    }

    /// The token day-limit violation is a plain-text body.
    pub fn day_limit_plain_text(self) -> bool {
        self >= Profile::V10_0
    }

    /// The API key list carries `lastUsedAt`.
    pub fn key_list_last_used(self) -> bool {
        self >= Profile::V9_5
    }

    /// What `POST /api/auth/keys` does.
    pub fn key_create(self) -> KeyCreate {
        match self {
            Profile::V11_3 | Profile::V11_6 => KeyCreate::Gone,
            Profile::V12_1 => KeyCreate::NotFound,
            _ => KeyCreate::Allowed,
        }
    }

    /// `GET`/`DELETE /api/auth/keys` exist.
    pub fn has_key_routes(self) -> bool {
        self < Profile::V12_1
    }

    /// What `POST /api/serviceaccounts/migrate` does.
    pub fn bulk_migrate(self) -> BulkMigrate {
        match self {
            Profile::V9_1 | Profile::V9_5 => BulkMigrate::StopOnError,
            Profile::V12_1 => BulkMigrate::NotFound,
            _ => BulkMigrate::ResultObject,
        }
    }

    /// `POST /api/serviceaccounts/migrate/:keyId` exists.
    pub fn has_key_migrate(self) -> bool {
        self < Profile::V12_1
    }

    /// Migration lowercases logins and retries collisions with -001..-010.
    pub fn migration_login_retry(self) -> bool {
        self >= Profile::V11_6
    }

    /// The 9.x helpers (migrationstatus, hideApiKeys, revert) exist.
    pub fn has_9x_helpers(self) -> bool {
        self == Profile::V9_1
    }

    /// Legacy keys are converted to service accounts at startup.
    pub fn startup_migration(self) -> bool {
        self >= Profile::V11_6
    }

    /// Plain (unattached) API keys authenticate.
    pub fn plain_keys_authenticate(self) -> bool {
        self < Profile::V12_1
    }

    /// SA routes accept a UID and DTOs carry `uid` (before options).
    pub fn sa_uid(self) -> bool {
        self >= Profile::V11_6
    }

    /// The role `None` is accepted.
    pub fn role_none_accepted(self) -> bool {
        self >= Profile::V10_0
    }

    /// The SA profile omits `tokens` when it is 0.
    pub fn profile_tokens_omitempty(self) -> bool {
        self >= Profile::V10_0
    }

    /// Health answers with struct key order instead of a sorted map.
    pub fn health_struct_order(self) -> bool {
        self >= Profile::V10_0
    }

    /// The default for [`Options::authn_era`].
    pub fn default_authn_era(self) -> bool {
        self >= Profile::V10_4
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = ProfileError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (major, minor, patch) = parse_version(text)?;
        let profile = match (major, minor) {
            (..=8, _) | (9, 0) => return Err(ProfileError::TooOld(text.to_string())),
            (9, 1..=4) => Profile::V9_1,
            (9, _) => Profile::V9_5,
            (10, 0) if patch == Some(0) => Profile::V9_5,
            (10, 0..=3) => Profile::V10_0,
            (10, 4) if patch == Some(0) => Profile::V10_0,
            (10, _) | (11, 0..=2) => Profile::V10_4,
            (11, 3..=5) => Profile::V11_3,
            (11, _) | (12, 0) => Profile::V11_6,
            _ => Profile::V12_1,
        };
        Ok(profile)
    }
}

/// Splits `11.5.2-pre` into (11, 5, Some(2)); the suffix is dropped.
///
/// A bare `10.4` has no patch and names the profile of that line
/// (10.4 → V10_4, 10.0 → V10_0), which is what a profile name means.
fn parse_version(text: &str) -> Result<(u32, u32, Option<u32>), ProfileError> {
    let invalid = || ProfileError::Invalid(text.to_string());
    let core = text.trim().trim_start_matches(['v', 'V']);
    let core = core.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.');
    let number = |part: Option<&str>| part.map(|p| p.parse::<u32>().map_err(|_| invalid()));
    let major = number(parts.next()).ok_or_else(invalid)??;
    let minor = number(parts.next()).ok_or_else(invalid)??;
    let patch = number(parts.next()).transpose()?;
    Ok((major, minor, patch))
}

/// Behaviours the reference could not confirm ([U]); each is a switch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Options {
    /// Requests go through the `authn` service: tokens are bound to their
    /// org (401 `api-key.organization-mismatch`), `targetOrgId` selects
    /// the org, 401 bodies are errutil-shaped. Default: on from 10.4.
    pub authn_era: bool,
    /// A wrong basic-auth password answers 400 (10.x `authnService`).
    /// Default: off.
    pub wrong_password_400: bool,
    /// The startup migration takes a 30-minute server lock (13.x code)
    /// instead of running at every restart. Default: off.
    pub startup_migration_lock: bool,
    /// Overrides the token list cap (default 300).
    pub token_list_cap: Option<usize>,
    /// 11.3 profile: SA routes accept UIDs and DTOs carry `uid`.
    /// Default: off (the feature is dated ≈11.4).
    pub sa_uid_paths: bool,
    /// `lastUsedAt` is only written when null or older than 5 minutes.
    /// Default: same as `authn_era`.
    pub last_used_precision: bool,
    /// 9.1 profile behaves like 9.1/9.2: no token cap, no `isRevoked`.
    /// Default: off (≈9.3 behaviour).
    pub early_9x_tokens: bool,
}

impl Options {
    /// The documented defaults for a profile.
    pub fn for_profile(profile: Profile) -> Self {
        let authn = profile.default_authn_era();
        Options {
            authn_era: authn,
            wrong_password_400: false,
            startup_migration_lock: false,
            token_list_cap: None,
            sa_uid_paths: false,
            last_used_precision: authn,
            early_9x_tokens: false,
        }
    }

    /// Sets one option from `key=value` text (the binary's `--option`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        let flag = || parse_bool(key, value);
        match key {
            "authn_era" => self.authn_era = flag()?,
            "wrong_password_400" => self.wrong_password_400 = flag()?,
            "startup_migration_lock" => self.startup_migration_lock = flag()?,
            "sa_uid_paths" => self.sa_uid_paths = flag()?,
            "last_used_precision" => self.last_used_precision = flag()?,
            "early_9x_tokens" => self.early_9x_tokens = flag()?,
            "token_list_cap" => self.token_list_cap = Some(parse_num(key, value)?),
            _ => return Err(SettingError::Unknown(key.to_string())),
        }
        Ok(())
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::for_profile(Profile::V10_4)
    }
}

/// Grafana server settings that shape the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `[auth] api_key_max_seconds_to_live`; -1 = unlimited.
    pub api_key_max_seconds_to_live: i64,
    /// `[service_accounts] token_expiration_day_limit`; ≤0 = off.
    pub token_expiration_day_limit: i64,
    /// Tokens per service account, as managed services impose; None = no limit.
    pub max_tokens_per_service_account: Option<usize>,
    /// `[auth.anonymous] hide_version`: health omits version and commit.
    pub hide_version: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            api_key_max_seconds_to_live: -1,
            token_expiration_day_limit: 0,
            max_tokens_per_service_account: None,
            hide_version: false,
        }
    }
}

impl Settings {
    /// Sets one setting from `key=value` text (the binary's `--setting`).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SettingError> {
        match key {
            "api_key_max_seconds_to_live" => {
                self.api_key_max_seconds_to_live = parse_num(key, value)?
            }
            "token_expiration_day_limit" => {
                self.token_expiration_day_limit = parse_num(key, value)?
            }
            "max_tokens_per_service_account" => {
                self.max_tokens_per_service_account = Some(parse_num(key, value)?)
            }
            "hide_version" => self.hide_version = parse_bool(key, value)?,
            _ => return Err(SettingError::Unknown(key.to_string())),
        }
        Ok(())
    }
}

/// Error for a `key=value` option or setting that cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    /// No option or setting has this name.
    #[error("unknown option or setting {0:?}")]
    Unknown(String),
    /// The value does not parse for this key.
    #[error("invalid value {value:?} for {key}")]
    Value {
        /// The key being set.
        key: String,
        /// The rejected value.
        value: String,
    },
}

fn parse_bool(key: &str, value: &str) -> Result<bool, SettingError> {
    value.parse().map_err(|_| SettingError::Value {
        key: key.to_string(),
        value: value.to_string(),
    })
}

fn parse_num<T: FromStr>(key: &str, value: &str) -> Result<T, SettingError> {
    value.parse().map_err(|_| SettingError::Value {
        key: key.to_string(),
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Profile names and full versions map to the covering profile.
    #[test]
    fn versions_pick_the_covering_profile() {
        let cases = [
            ("9.1", Profile::V9_1),
            ("9.4.7", Profile::V9_1),
            ("9.5", Profile::V9_5),
            ("10.0.0", Profile::V9_5),
            ("10.0", Profile::V10_0),
            ("10.0.1", Profile::V10_0),
            ("10.4.0", Profile::V10_0),
            ("10.4", Profile::V10_4),
            ("10.4.1", Profile::V10_4),
            ("11.2.9", Profile::V10_4),
            ("11.5.2", Profile::V11_3),
            ("11.6.0", Profile::V11_6),
            ("12.0.0-pre", Profile::V11_6),
            ("12.0.0+security-01", Profile::V11_6),
            ("12.1", Profile::V12_1),
            ("13.0.1", Profile::V12_1),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Profile>(), Ok(want), "{text}");
        }
    }

    // Versions below 9.1 and garbage are rejected with distinct errors.
    #[test]
    fn old_or_invalid_versions_are_rejected() {
        assert!(matches!(
            "9.0.3".parse::<Profile>(),
            Err(ProfileError::TooOld(_))
        ));
        assert!(matches!(
            "8.5".parse::<Profile>(),
            Err(ProfileError::TooOld(_))
        ));
        assert!(matches!(
            "ten".parse::<Profile>(),
            Err(ProfileError::Invalid(_))
        ));
        assert!(matches!(
            "10".parse::<Profile>(),
            Err(ProfileError::Invalid(_))
        ));
    }

    // Each profile name parses back to itself.
    #[test]
    fn names_round_trip() {
        for profile in Profile::ALL {
            assert_eq!(profile.name().parse::<Profile>(), Ok(profile));
            let full = profile.default_version().parse::<Profile>();
            assert_eq!(full, Ok(profile), "{}", profile.default_version());
        }
    }

    // Key-value setters change the named field and reject unknown keys.
    #[test]
    fn settings_and_options_parse_key_values() {
        let mut settings = Settings::default();
        settings.set("token_expiration_day_limit", "30").unwrap();
        assert_eq!(settings.token_expiration_day_limit, 30);
        assert!(settings.set("nope", "1").is_err());
        let mut options = Options::for_profile(Profile::V10_0);
        assert!(!options.authn_era);
        options.set("authn_era", "true").unwrap();
        assert!(options.authn_era);
        assert!(options.set("authn_era", "yes").is_err());
    }
}
