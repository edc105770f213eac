//! Service-account login derivation (grafana-api.md §8.1, §9).

use crate::profile::Profile;

/// Login of a service account created by `POST /api/serviceaccounts`.
///
/// 10.4.x on: `fmt("%s-%d-%s", "sa-", org, lower(name))` with spaces as
/// `-`, then only the first `--` collapsed; so `-x` in org 2 becomes
/// `sa-2--x`. Before: `sa-` + lower(name) with spaces as `-`.
pub fn service_account(profile: Profile, org: i64, name: &str) -> String {
    let slug = name.to_lowercase().replace(' ', "-");
    if profile.login_embeds_org() {
        collapse_first_double_dash(&format!("sa--{org}-{slug}"))
    } else {
        format!("sa-{slug}")
    }
}

/// Login of an external (managed) service account (§9.2):
/// `sa-<org>-extsvc-` + lower(name) with spaces as `-`.
pub fn external(org: i64, name: &str) -> String {
    let slug = name.to_lowercase().replace(' ', "-");
    format!("sa-{org}-extsvc-{slug}")
}

/// Name of the service account made from the key `key_name`.
pub fn autogen_name(key_name: &str) -> String {
    format!("sa-autogen-{key_name}")
}

/// Login of the service account made from a key; `attempt` 0 is the
/// plain login, 1..=10 add the `-001`… suffixes of 11.6+.
pub fn autogen(profile: Profile, org: i64, key_name: &str, attempt: u32) -> String {
    if !profile.migration_login_retry() {
        // 9.x – 11.5 keep case and spaces.
        return format!("sa-autogen-{org}-{key_name}");
    }
    let slug = key_name.to_lowercase().replace(' ', "-");
    let login = collapse_first_double_dash(&format!("sa-autogen-{org}-{slug}"));
    match attempt {
        0 => login,
        n => format!("{login}-{n:03}"),
    }
}

/// The login the 10.4.x/11.0 upgrade migration gives an SA login
/// (§9.3): `sa-<org>-` + the old login without a leading `sa-`; None
/// when it already starts with `sa-<org>-`.
pub fn upgraded(org: i64, login: &str) -> Option<String> {
    let prefix = format!("sa-{org}-");
    if login.starts_with(&prefix) {
        return None;
    }
    Some(format!(
        "{prefix}{}",
        login.strip_prefix("sa-").unwrap_or(login)
    ))
}

/// The later fix-up: `sa-<o>-<o>-…` becomes `sa-<o>-…`.
pub fn org_once(org: i64, login: &str) -> Option<String> {
    let doubled = format!("sa-{org}-{org}-");
    let rest = login.strip_prefix(&doubled)?;
    Some(format!("sa-{org}-{rest}"))
}

fn collapse_first_double_dash(text: &str) -> String {
    text.replacen("--", "-", 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Logins follow the §9.2 examples, including the single `--` collapse.
    #[test]
    fn service_account_logins_follow_grafana() {
        assert_eq!(service_account(Profile::V10_4, 1, "CI Bot"), "sa-1-ci-bot");
        assert_eq!(service_account(Profile::V10_4, 2, "-x"), "sa-2--x");
        assert_eq!(service_account(Profile::V10_0, 1, "CI Bot"), "sa-ci-bot");
        assert_eq!(service_account(Profile::V9_1, 3, "a--b"), "sa-a--b");
    }

    // Autogen logins keep case before 11.6 and slug plus suffix from 11.6.
    #[test]
    fn autogen_logins_per_era() {
        assert_eq!(
            autogen(Profile::V10_4, 1, "My Key", 0),
            "sa-autogen-1-My Key"
        );
        assert_eq!(
            autogen(Profile::V11_6, 1, "My Key", 0),
            "sa-autogen-1-my-key"
        );
        assert_eq!(autogen(Profile::V11_6, 1, "-k", 0), "sa-autogen-1-k");
        assert_eq!(autogen(Profile::V11_6, 1, "k", 3), "sa-autogen-1-k-003");
        assert_eq!(autogen_name("My Key"), "sa-autogen-My Key");
    }

    // The upgrade rewrite follows the §9.3 examples.
    #[test]
    fn upgrade_rewrites_logins() {
        assert_eq!(upgraded(1, "sa-ci-bot").as_deref(), Some("sa-1-ci-bot"));
        let autogen = upgraded(1, "sa-autogen-1-ci");
        assert_eq!(autogen.as_deref(), Some("sa-1-autogen-1-ci"));
        assert_eq!(upgraded(1, "sa-1-ci"), None);
        assert_eq!(org_once(2, "sa-2-2-x").as_deref(), Some("sa-2-x"));
        assert_eq!(org_once(2, "sa-2-x"), None);
    }
}
