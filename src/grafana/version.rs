//! Grafana versions and what each can do.

use std::fmt;
use std::str::FromStr;

/// A Grafana release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Patch number.
    pub patch: u32,
}

impl Version {
    /// Builds a version from its numbers.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Version {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Error for a version string that is not `MAJOR.MINOR[.PATCH]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read grafana version {0:?}")]
pub struct BadVersion(pub String);

impl FromStr for Version {
    type Err = BadVersion;

    // Builds such as "11.5.0-pre" and "12.0.0+security-01" carry suffixes.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let core = s.trim().split(['-', '+']).next().unwrap_or_default();
        let mut numbers = core.split('.').map(|part| part.parse::<u32>());
        let mut next = || {
            numbers
                .next()
                .transpose()
                .map_err(|_| BadVersion(s.to_string()))
        };
        let major = next()?.ok_or_else(|| BadVersion(s.to_string()))?;
        let minor = next()?.ok_or_else(|| BadVersion(s.to_string()))?;
        let patch = next()?.unwrap_or(0);
        Ok(Version::new(major, minor, patch))
    }
}

/// The behaviours of a server that keyshift's logic depends on.
///
/// Derived from the version when the server tells it, else probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The version, when known.
    pub version: Option<Version>,
    /// `GET`/`DELETE /api/auth/keys` exist (until 12.0).
    pub has_keys_api: bool,
    /// `POST /api/serviceaccounts/migrate/:keyId` exists (9.1 to 12.0).
    pub has_key_migration: bool,
    /// SA logins embed the org id (10.4.1 on), so names are per org.
    pub login_embeds_org: bool,
    /// Grafana lowercases the login of a migrated key (11.4 on).
    pub lowercases_autogen_login: bool,
    /// The `None` role is accepted (10.2 on).
    pub has_role_none: bool,
    /// Grafana converts every key to an SA at startup (11.6 on).
    pub converts_keys_at_startup: bool,
    /// `lastUsedAt` is not updated reliably (10.1 and 10.2).
    pub last_used_unreliable: bool,
    /// The legacy key list carries `lastUsedAt` (9.5 on); before, a
    /// missing field says nothing about use.
    pub reports_key_last_used: bool,
}

impl Capabilities {
    /// The capabilities of a known version.
    pub fn of(version: Version) -> Self {
        let at_least = |major, minor, patch| version >= Version::new(major, minor, patch);
        Capabilities {
            version: Some(version),
            has_keys_api: !at_least(12, 1, 0),
            has_key_migration: at_least(9, 1, 0) && !at_least(12, 1, 0),
            login_embeds_org: at_least(10, 4, 1),
            lowercases_autogen_login: at_least(11, 4, 0),
            has_role_none: at_least(10, 2, 0),
            converts_keys_at_startup: at_least(11, 6, 0),
            last_used_unreliable: at_least(10, 1, 0) && !at_least(10, 3, 0),
            reports_key_last_used: at_least(9, 5, 0),
        }
    }

    /// Capabilities of a server that hides its version, from one probe:
    /// whether the key API still answers.
    pub fn probed(has_keys_api: bool) -> Self {
        Capabilities {
            version: None,
            has_keys_api,
            has_key_migration: has_keys_api,
            login_embeds_org: true,
            lowercases_autogen_login: true,
            has_role_none: true,
            converts_keys_at_startup: !has_keys_api,
            last_used_unreliable: false,
            // A hidden version may be older than 9.5: assume no report.
            reports_key_last_used: false,
        }
    }

    /// The version for messages and reports: "hidden" when unknown.
    pub fn version_label(&self) -> String {
        self.version
            .map_or_else(|| "hidden".into(), |v| v.to_string())
    }

    /// True for versions keyshift supports (9.1 on, or unknown).
    pub fn is_supported(&self) -> bool {
        self.version.is_none_or(|v| v >= Version::new(9, 1, 0))
    }

    /// The login Grafana derives for a new SA named `name` in `org`.
    pub fn service_account_login(&self, org: i64, name: &str) -> String {
        let slug = name.to_lowercase().replace(' ', "-");
        if self.login_embeds_org {
            // Grafana formats "sa-" + "-" + org + "-" + name, then collapses
            // the first "--": only names starting with "-" keep a double dash.
            collapse_first_double_dash(&format!("sa--{org}-{slug}"))
        } else {
            format!("sa-{slug}")
        }
    }

    /// The login Grafana gives the SA of a migrated key named `key_name`.
    pub fn autogen_login(&self, org: i64, key_name: &str) -> String {
        if self.lowercases_autogen_login {
            let slug = key_name.to_lowercase().replace(' ', "-");
            collapse_first_double_dash(&format!("sa-autogen-{org}-{slug}"))
        } else {
            format!("sa-autogen-{org}-{key_name}")
        }
    }
}

fn collapse_first_double_dash(login: &str) -> String {
    login.replacen("--", "-", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Suffixes are stripped and a missing patch number is zero.
    #[test]
    fn parses_versions() {
        let cases = [
            ("11.5.0-pre", Version::new(11, 5, 0)),
            ("12.0.0+security-01", Version::new(12, 0, 0)),
            ("10.4", Version::new(10, 4, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Version>().unwrap(), want, "{text}");
        }
        assert!("eleven".parse::<Version>().is_err());
        assert!("".parse::<Version>().is_err());
    }

    // Version gates follow grafana-api.md §12.
    #[test]
    fn gates_by_version() {
        let caps = |s: &str| Capabilities::of(s.parse().unwrap());
        assert!(!caps("10.4.0").login_embeds_org && caps("10.4.1").login_embeds_org);
        assert!(!caps("10.1.9").has_role_none && caps("10.2.0").has_role_none);
        assert!(caps("12.0.3").has_keys_api && !caps("12.1.0").has_keys_api);
        assert!(caps("10.1.5").last_used_unreliable && !caps("10.3.0").last_used_unreliable);
        assert!(!caps("9.0.9").is_supported() && caps("9.1.0").is_supported());
        assert!(!caps("9.4.7").reports_key_last_used && caps("9.5.0").reports_key_last_used);
        assert!(!Capabilities::probed(true).reports_key_last_used);
    }

    // Login derivation per §9.2, including the first "--" collapse.
    #[test]
    fn derives_logins() {
        let new = Capabilities::of(Version::new(11, 0, 0));
        assert_eq!(new.service_account_login(1, "CI Bot"), "sa-1-ci-bot");
        assert_eq!(new.service_account_login(2, "-x"), "sa-2--x");
        let old = Capabilities::of(Version::new(9, 5, 0));
        assert_eq!(old.service_account_login(1, "CI Bot"), "sa-ci-bot");
        assert_eq!(old.autogen_login(3, "My Key"), "sa-autogen-3-My Key");
        let newest = Capabilities::of(Version::new(11, 6, 0));
        assert_eq!(newest.autogen_login(3, "My Key"), "sa-autogen-3-my-key");
        assert_eq!(newest.autogen_login(3, "-x"), "sa-autogen-3-x");
    }
}
