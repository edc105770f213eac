//! Discovery: what the selected orgs of a Grafana server hold.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tracing::{debug, info, warn};

use crate::grafana::wire::{ApiKey, Org, ServiceAccount, Token};
use crate::grafana::{Capabilities, Client, ErrorKind, GrafanaError, Listing};
use crate::role::Role;

/// Prefix of the accounts Grafana makes when it converts a key.
pub const AUTOGEN_PREFIX: &str = "sa-autogen-";

/// Which orgs keyshift can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrgScope {
    /// Basic auth as a server admin: every org.
    AllOrgs,
    /// A token: only the token's own org is reachable.
    TokenOrg,
}

/// Chooses orgs by id or name.
#[derive(Debug, Clone, Default)]
pub struct OrgFilter {
    /// Ids or names to keep; empty or `*` keeps all.
    pub include: Vec<String>,
    /// Ids or names to drop.
    pub exclude: Vec<String>,
}

impl OrgFilter {
    /// The included ids and names that match none of `orgs`.
    pub fn unmatched(&self, orgs: &[Org]) -> Vec<String> {
        let matches = |s: &String| orgs.iter().any(|o| s == &o.name || s.parse() == Ok(o.id));
        self.include
            .iter()
            .filter(|s| *s != "*" && !matches(s))
            .cloned()
            .collect()
    }

    /// True when `org` is selected.
    pub fn selects(&self, org: &Org) -> bool {
        let named = |list: &[String]| {
            list.iter()
                .any(|s| s == "*" || s == &org.name || s.parse() == Ok(org.id))
        };
        (self.include.is_empty() || named(&self.include)) && !named(&self.exclude)
    }
}

/// Where a source credential lives now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A legacy API key, not attached to any account.
    LegacyKey,
    /// The token of an account Grafana made from a key (`sa-autogen-*`).
    AutogenToken {
        /// The account holding it.
        service_account: i64,
    },
}

/// A credential to migrate: a legacy key or an `sa-autogen-*` token.
#[derive(Debug, Clone)]
pub struct SourceCredential {
    /// The original key id (Grafana keeps it on conversion).
    pub key_id: i64,
    /// The original key name.
    pub name: String,
    /// The key's role (for a token: its account's role).
    pub role: Role,
    /// Expiry, if any.
    pub expires: Option<DateTime<Utc>>,
    /// Last use, if Grafana knows it.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Where it lives.
    pub source: Source,
}

impl SourceCredential {
    /// True when expired at `now` (Grafana: `expires <= now`).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }
}

/// What kind of account a service account is, for keyshift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// Made by Grafana from a key.
    Autogen,
    /// Managed by Grafana or a plugin: never touched.
    Managed,
    /// Anything else: keyshift's own, or foreign.
    Other,
}

/// A service account and its tokens.
#[derive(Debug, Clone)]
pub struct AccountInventory {
    /// The account as the search returned it.
    pub account: ServiceAccount,
    /// Its kind.
    pub kind: AccountKind,
    /// Its tokens (Grafana caps the list at 300).
    pub tokens: Listing<Token>,
}

/// Everything found in one org.
#[derive(Debug, Clone)]
pub struct OrgInventory {
    /// The org.
    pub org: Org,
    /// Legacy keys not attached to an account.
    pub keys: Vec<ApiKey>,
    /// The key list hit Grafana's cap: more keys may be hidden.
    pub keys_maybe_truncated: bool,
    /// Why the keys could not be listed (e.g. 403 without `apikeys:read`).
    pub keys_unreadable: Option<String>,
    /// Every service account, with tokens.
    pub accounts: Vec<AccountInventory>,
}

impl OrgInventory {
    /// The source credentials of the org: legacy keys and autogen tokens.
    pub fn sources(&self) -> Vec<SourceCredential> {
        // A key Grafana converted between the two listings shows in both:
        // the account holding it is the newer truth (11.6+).
        let converted: BTreeSet<i64> = self
            .accounts
            .iter()
            .filter(|a| a.kind == AccountKind::Autogen)
            .flat_map(|a| a.tokens.items.iter().map(|t| t.id))
            .collect();
        let keys = self.keys.iter().filter(|k| !converted.contains(&k.id));
        let keys = keys.map(|key| SourceCredential {
            key_id: key.id,
            name: key.name.clone(),
            role: key.role,
            expires: key.expiration,
            last_used_at: key.last_used_at,
            source: Source::LegacyKey,
        });
        let tokens = self
            .accounts
            .iter()
            .filter(|a| a.kind == AccountKind::Autogen)
            .flat_map(|a| {
                // Only the converted key's own row; a token someone added to
                // the account later is not a source credential.
                let key_name = a
                    .account
                    .name
                    .strip_prefix(AUTOGEN_PREFIX)
                    .unwrap_or_default();
                let rows = a.tokens.items.iter().filter(move |t| t.name == key_name);
                rows.map(|token| SourceCredential {
                    key_id: token.id,
                    name: token.name.clone(),
                    role: a.account.role,
                    expires: token.expiration,
                    last_used_at: token.last_used_at,
                    source: Source::AutogenToken {
                        service_account: a.account.id,
                    },
                })
            });
        keys.chain(tokens).collect()
    }

    /// Every key and token name in the org: they share one namespace.
    pub fn credential_names(&self) -> BTreeSet<&str> {
        let keys = self.keys.iter().map(|k| k.name.as_str());
        let tokens = self.accounts.iter().flat_map(|a| a.tokens.items.iter());
        keys.chain(tokens.map(|t| t.name.as_str())).collect()
    }

    /// The account with this id.
    pub fn account(&self, id: i64) -> Option<&AccountInventory> {
        self.accounts.iter().find(|a| a.account.id == id)
    }
}

/// The estate: every selected org of one server.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Grafana's URL.
    pub url: String,
    /// What the server can do.
    pub capabilities: Capabilities,
    /// Which orgs were reachable.
    pub scope: OrgScope,
    /// The selected orgs.
    pub orgs: Vec<OrgInventory>,
    /// Orgs the selection names that were not found among the reachable
    /// ones: a typo, a deleted org, or one a token cannot reach.
    pub unmatched: Vec<String>,
}

impl Inventory {
    /// Every login in the inventory, for login collision checks (before
    /// 10.4.1 logins are unique server-wide, not per org).
    ///
    /// Keys are lowercased: Grafana compares logins without case.
    pub fn logins(&self) -> HashMap<String, (i64, i64)> {
        let accounts = self
            .orgs
            .iter()
            .flat_map(|o| o.accounts.iter().map(move |a| (o, a)));
        accounts
            .map(|(o, a)| (a.account.login.to_lowercase(), (o.org.id, a.account.id)))
            .collect()
    }
}

/// Classifies an account: Grafana- or plugin-managed ones are never touched.
pub fn account_kind(account: &ServiceAccount) -> AccountKind {
    let login = account.login.as_str();
    let managed_login = login.starts_with("sa-extsvc-")
        || login
            .strip_prefix("sa-")
            .and_then(|rest| rest.split_once('-'))
            .is_some_and(|(org, rest)| org.parse::<i64>().is_ok() && rest.starts_with("extsvc-"));
    if account.is_external || account.name.starts_with("extsvc-") || managed_login {
        AccountKind::Managed
    } else if account.name.starts_with(AUTOGEN_PREFIX) && is_autogen_login(login) {
        AccountKind::Autogen
    } else {
        AccountKind::Other
    }
}

/// True for a login Grafana gives the account it makes from a key:
/// `sa-autogen-<org>-…`, or `sa-<org>-autogen-<org>-…` after the 10.4
/// login rewrite. An account someone named `sa-autogen-…` by hand gets
/// `sa-<org>-sa-autogen-…` or `sa-sa-autogen-…` instead, and is not one.
fn is_autogen_login(login: &str) -> bool {
    let login = login.to_ascii_lowercase();
    if login.starts_with(AUTOGEN_PREFIX) {
        return true;
    }
    let rewritten = login
        .strip_prefix("sa-")
        .and_then(|rest| rest.split_once('-'));
    rewritten.is_some_and(|(org, rest)| org.parse::<i64>().is_ok() && rest.starts_with("autogen-"))
}

/// Reads the orgs that `filter` selects.
///
/// # Errors
/// When a listing fails; the caller decides whether the run stops.
pub async fn discover(client: &Client, filter: &OrgFilter) -> Result<Inventory, GrafanaError> {
    discover_until(client, filter, &|| false).await
}

/// Like [`discover`], but reads no further org once `stop` says so: the
/// inventory is then partial, and the caller must not judge from it.
///
/// # Errors
/// When a listing fails.
pub async fn discover_until(
    client: &Client,
    filter: &OrgFilter,
    stop: &(dyn Fn() -> bool + Sync),
) -> Result<Inventory, GrafanaError> {
    let (orgs, scope) = reachable_orgs(client).await?;
    let unmatched = filter.unmatched(&orgs);
    if !unmatched.is_empty() {
        warn!(?unmatched, "selected orgs not found or not reachable");
    }
    let selected: Vec<Org> = orgs.into_iter().filter(|o| filter.selects(o)).collect();
    let first = selected.first().map_or(0, |o| o.id);
    let capabilities = client.capabilities(first).await?;
    let mut inventories = Vec::with_capacity(selected.len());
    for org in selected {
        if stop() {
            info!(org = org.id, "discovery stopped on request");
            break;
        }
        inventories.push(discover_org(client, &capabilities, org).await?);
    }
    let version = capabilities.version_label();
    info!(orgs = inventories.len(), %version, "estate discovered");
    Ok(Inventory {
        url: client.base_url().to_string(),
        capabilities,
        scope,
        orgs: inventories,
        unmatched,
    })
}

/// The orgs the credential reaches, and how far it reaches.
///
/// With a token only its own org answers: say so rather than "one org".
///
/// # Errors
/// When the listing fails.
pub async fn reachable_orgs(client: &Client) -> Result<(Vec<Org>, OrgScope), GrafanaError> {
    if client.uses_token() {
        let org = client.current_org(0).await?;
        warn!(
            org = org.id,
            "authenticated with a token: only its own org is reachable"
        );
        return Ok((vec![org], OrgScope::TokenOrg));
    }
    Ok((client.orgs().await?, OrgScope::AllOrgs))
}

/// Reads one org: keys, accounts and their tokens.
///
/// # Errors
/// When a listing fails or the org in context is not the one asked for.
pub async fn discover_org(
    client: &Client,
    capabilities: &Capabilities,
    org: Org,
) -> Result<OrgInventory, GrafanaError> {
    let current = client.current_org(org.id).await?;
    if current.id != org.id {
        return Err(GrafanaError::Unexpected {
            org: org.id,
            what: format!(
                "grafana acts in org {} instead; is the user a member?",
                current.id
            ),
        });
    }
    let (keys, keys_maybe_truncated, keys_unreadable) =
        match list_keys(client, capabilities, org.id).await {
            Ok((keys, truncated)) => (keys, truncated, None),
            // One org's refusal must not hide the rest of the estate.
            Err(e) if e.kind() == Some(&ErrorKind::Forbidden) => {
                warn!(org = org.id, error = %e, "cannot list API keys");
                (Vec::new(), false, Some(e.to_string()))
            }
            Err(e) => return Err(e),
        };
    let accounts = list_accounts(client, org.id).await?;
    debug!(
        org = org.id,
        keys = keys.len(),
        accounts = accounts.len(),
        "org discovered"
    );
    Ok(OrgInventory {
        org,
        keys,
        keys_maybe_truncated,
        keys_unreadable,
        accounts,
    })
}

async fn list_keys(
    client: &Client,
    capabilities: &Capabilities,
    org: i64,
) -> Result<(Vec<ApiKey>, bool), GrafanaError> {
    if !capabilities.has_keys_api {
        return Ok((Vec::new(), false));
    }
    match client.api_keys(org).await {
        Ok(listing) => Ok((listing.items, listing.maybe_truncated)),
        // A 404 on a removed route is information, not a failure.
        Err(e) if e.kind() == Some(&ErrorKind::NotFound) => Ok((Vec::new(), false)),
        Err(e) => Err(e),
    }
}

async fn list_accounts(client: &Client, org: i64) -> Result<Vec<AccountInventory>, GrafanaError> {
    let accounts = client.search_service_accounts(org, "").await?;
    stream::iter(accounts)
        .map(|account| async move {
            let tokens = client.tokens(org, account.id).await?;
            let kind = account_kind(&account);
            Ok::<_, GrafanaError>(AccountInventory {
                account,
                kind,
                tokens,
            })
        })
        .buffered(8)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, login: &str, external: bool) -> ServiceAccount {
        serde_json::from_value(serde_json::json!({
            "id": 1, "name": name, "login": login, "role": "Viewer", "isExternal": external
        }))
        .unwrap()
    }

    // Managed accounts are recognised by name, login prefix or flag (FC-22).
    #[test]
    fn classifies_accounts() {
        let cases = [
            (
                "extsvc-grafana-oncall-app",
                "sa-1-extsvc-grafana-oncall-app",
                false,
                AccountKind::Managed,
            ),
            ("oncall", "sa-1-extsvc-oncall", false, AccountKind::Managed),
            ("plugin", "sa-extsvc-plugin", false, AccountKind::Managed),
            ("anything", "sa-1-anything", true, AccountKind::Managed),
            (
                "sa-autogen-etl",
                "sa-autogen-1-etl",
                false,
                AccountKind::Autogen,
            ),
            ("ci", "sa-1-ci", false, AccountKind::Other),
            (
                "sa-autogen-ci",
                "sa-1-autogen-1-ci",
                false,
                AccountKind::Autogen,
            ),
            // Named so by hand: Grafana gave it an ordinary login.
            (
                "sa-autogen-solo one",
                "sa-3-sa-autogen-solo-one",
                false,
                AccountKind::Other,
            ),
            ("sa-autogen-x", "sa-sa-autogen-x", false, AccountKind::Other),
        ];
        for (name, login, external, want) in cases {
            assert_eq!(
                account_kind(&account(name, login, external)),
                want,
                "{name}"
            );
        }
    }

    // The org filter matches ids and names and applies exclusions last.
    #[test]
    fn filters_orgs() {
        let org = |id, name: &str| Org {
            id,
            name: name.into(),
        };
        let filter = OrgFilter {
            include: vec!["*".into()],
            exclude: vec!["2".into()],
        };
        assert!(filter.selects(&org(1, "Main Org.")) && !filter.selects(&org(2, "b")));
        let filter = OrgFilter {
            include: vec!["team-b".into()],
            exclude: vec![],
        };
        assert!(filter.selects(&org(7, "team-b")) && !filter.selects(&org(1, "Main Org.")));
    }
}
