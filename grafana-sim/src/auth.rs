//! Who is calling: authentication and authorization (grafana-api.md §2).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::credential::{self, Credential};
use crate::profile::{Options, Profile};
use crate::state::{KeyRow, Role, State};

/// Brute-force protection: this many failures in the window lock a login.
const MAX_LOGIN_FAILURES: usize = 5;
/// Brute-force protection window (Grafana: 5 minutes).
const LOGIN_FAILURE_WINDOW_MINUTES: i64 = 5;

/// How a request authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    /// No credentials (or a route without authentication).
    None,
    /// Basic auth with a user's password.
    Basic,
    /// A plain legacy API key.
    ApiKey,
    /// A service-account token (migrated keys included).
    ServiceAccountToken,
}

/// The signed-in identity of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// How it authenticated.
    pub kind: AuthKind,
    /// User or service-account id; None for a plain API key.
    pub user_id: Option<i64>,
    /// Key row id for key and token authentication.
    pub key_id: Option<i64>,
    /// Login of the user or service account, or the key name.
    pub login: String,
    /// Org in context; -1 when the user is not a member.
    pub org_id: i64,
    /// Basic role in that org; None without membership.
    pub org_role: Option<Role>,
    /// Grafana server admin.
    pub server_admin: bool,
    /// Extra RBAC actions.
    pub permissions: Vec<String>,
}

impl Identity {
    /// Does the identity hold this RBAC action in its org?
    pub fn can(&self, action: &str) -> bool {
        let from_role = match self.org_role {
            Some(Role::Admin) => {
                action.starts_with("serviceaccounts")
                    || action.starts_with("apikeys:")
                    || action == "orgs:read"
            }
            Some(Role::Editor | Role::Viewer) => action == "orgs:read",
            _ => false,
        };
        from_role || self.permissions.iter().any(|p| grants(p, action))
    }

    /// The role used for "role above your own" checks.
    pub fn role(&self) -> Role {
        self.org_role.unwrap_or(Role::None)
    }
}

// `serviceaccounts:*` grants every `serviceaccounts:` action.
fn grants(permission: &str, action: &str) -> bool {
    match permission.strip_suffix('*') {
        Some(prefix) => action.starts_with(prefix),
        None => permission == action,
    }
}

/// A refused authentication: status and the body Grafana would send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuthFailure {
    /// HTTP status (401, or 400 for a 10.x wrong password).
    pub status: u16,
    /// JSON body.
    pub body: Value,
    /// What was presented.
    pub kind: AuthKind,
}

/// The credential and org selection of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthInput<'a> {
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// `X-Grafana-Org-Id`.
    pub org_header: Option<&'a str>,
    /// `targetOrgId` query parameter.
    pub target_org: Option<&'a str>,
    /// Leave `lastUsedAt` and the brute-force counters untouched.
    pub observe_only: bool,
}

/// Resolves the identity of a request, updating `lastUsedAt` and the
/// brute-force counters as Grafana does.
pub fn authenticate(
    profile: Profile,
    options: &Options,
    state: &mut State,
    input: AuthInput<'_>,
) -> Result<Identity, AuthFailure> {
    let authn = Authn {
        profile,
        options,
        requested: requested_org(options, input),
        observe_only: input.observe_only,
    };
    let unauthorized = || AuthFailure {
        status: 401,
        body: json!({"message": "Unauthorized"}),
        kind: AuthKind::None,
    };
    let header = input.authorization.ok_or_else(unauthorized)?.trim();
    if let Some(token) = strip_scheme(header, "Bearer ") {
        return authn.token(state, token.trim());
    }
    let encoded = strip_scheme(header, "Basic ").ok_or_else(unauthorized)?;
    let decoded = STANDARD.decode(encoded.trim()).ok();
    let text = decoded.and_then(|d| String::from_utf8(d).ok());
    let (user, password) = text
        .as_deref()
        .and_then(|t| t.split_once(':'))
        .ok_or_else(unauthorized)?;
    match user {
        "api_key" => authn.token(state, password),
        _ => authn.password(state, user, password),
    }
}

/// What one authentication works with besides the state.
struct Authn<'a> {
    profile: Profile,
    options: &'a Options,
    requested: Option<i64>,
    observe_only: bool,
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let head = header.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| &header[scheme.len()..])
}

// In the authn era `targetOrgId` wins over the header; org 0 names no
// org, so the key's or user's own org applies.
fn requested_org(options: &Options, input: AuthInput<'_>) -> Option<i64> {
    let named = |text: &str| text.trim().parse().ok().filter(|id: &i64| *id != 0);
    let target = input.target_org.filter(|_| options.authn_era);
    target
        .and_then(named)
        .or_else(|| input.org_header.and_then(named))
}

impl Authn<'_> {
    fn password(
        &self,
        state: &mut State,
        login: &str,
        password: &str,
    ) -> Result<Identity, AuthFailure> {
        let key = login.to_lowercase();
        let now = state.now();
        let blocked = is_locked(state, &key, now);
        let hash = credential::hash_secret(password);
        let user = state
            .user_by_login(login)
            .filter(|u| u.service_account.is_none());
        let matches = user.is_some_and(|u| u.password_hash == Some(hash));
        if blocked || !matches {
            if !blocked && !self.observe_only {
                state.login_failures.entry(key).or_default().push_back(now);
            }
            return Err(self.wrong_password(blocked));
        }
        let user = user.expect("matched above");
        let org = self.requested.unwrap_or_else(|| current_org(user));
        let role = user.orgs.get(&org).copied();
        Ok(Identity {
            kind: AuthKind::Basic,
            user_id: Some(user.id),
            key_id: None,
            login: user.login.clone(),
            org_id: if role.is_some() { org } else { -1 },
            org_role: role,
            server_admin: user.server_admin,
            permissions: user.permissions.clone(),
        })
    }

    // A locked login reads like a wrong password; ≈10.x authn code named
    // it `login-attempt.blocked`, 13.x code `password-auth.failed`.
    fn wrong_password(&self, blocked: bool) -> AuthFailure {
        let options = self.options;
        let body = if options.wrong_password_400 || options.authn_era {
            // Only a wrong password is 400; a lock stays 401 (§2.4).
            let status = match options.wrong_password_400 && !blocked {
                true => 400,
                false => 401,
            };
            let id = match blocked && self.profile < Profile::V11_3 {
                true => "login-attempt.blocked",
                false => "password-auth.failed",
            };
            errutil(status, id, "Invalid username or password")
        } else {
            json!({"message": "invalid username or password"})
        };
        AuthFailure {
            status: body["statusCode"].as_u64().unwrap_or(401) as u16,
            body,
            kind: AuthKind::Basic,
        }
    }

    fn token(&self, state: &mut State, token: &str) -> Result<Identity, AuthFailure> {
        let row = find_row(state, token).cloned();
        let kind = match &row {
            Some(r) if r.service_account_id.is_some() => AuthKind::ServiceAccountToken,
            _ => AuthKind::ApiKey,
        };
        let refuse = |r: TokenRefusal| r.failure(self.options, kind);
        let row = row.ok_or_else(|| refuse(TokenRefusal::Invalid))?;
        check_row(self, state, &row).map_err(refuse)?;
        if !self.observe_only {
            touch_last_used(self.options, state, &row);
        }
        Ok(token_identity(state, &row, kind))
    }
}

// Drops failures older than the window; locked at the threshold.
fn is_locked(state: &mut State, key: &str, now: DateTime<Utc>) -> bool {
    let window = now - Duration::minutes(LOGIN_FAILURE_WINDOW_MINUTES);
    let failures = state.login_failures.entry(key.to_string()).or_default();
    while failures.front().is_some_and(|t| *t <= window) {
        failures.pop_front();
    }
    failures.len() >= MAX_LOGIN_FAILURES
}

// A user's current org: org 1 when a member, else its first org.
fn current_org(user: &crate::state::User) -> i64 {
    if user.orgs.contains_key(&1) {
        return 1;
    }
    user.orgs.keys().next().copied().unwrap_or(1)
}

/// The five-key body the authn middleware writes.
pub fn errutil(status: u16, message_id: &str, message: &str) -> Value {
    json!({"extra": null, "message": message, "messageId": message_id,
           "statusCode": status, "traceID": ""})
}

/// Token refusals, each with its legacy and authn-era wording.
#[derive(Debug, Clone, Copy)]
enum TokenRefusal {
    Invalid,
    Expired,
    Revoked,
    OrgMismatch,
    Disabled,
}

impl TokenRefusal {
    fn failure(self, options: &Options, kind: AuthKind) -> AuthFailure {
        let (legacy, id, message) = match self {
            Self::Invalid => ("invalid API key", "api-key.invalid", "Invalid API key"),
            Self::Expired => ("Expired API key", "api-key.expired", "Expired API key"),
            Self::Revoked => ("Revoked token", "api-key.revoked", "Revoked API key"),
            Self::OrgMismatch => (
                "API key does not belong to the requested organization",
                "api-key.organization-mismatch",
                "API key does not belong to the requested organization",
            ),
            Self::Disabled => (
                "Service account is disabled",
                "identity.disabled",
                "Unauthorized",
            ),
        };
        let body = if options.authn_era {
            errutil(401, id, message)
        } else {
            json!({"message": legacy})
        };
        AuthFailure {
            status: 401,
            body,
            kind,
        }
    }
}

fn find_row<'s>(state: &'s State, token: &str) -> Option<&'s KeyRow> {
    let credential = Credential::parse(token)?;
    match &credential {
        Credential::Glsa(_) => state.key_by_hash(&credential.hash()),
        Credential::Legacy { name, org, .. } => state
            .key_by_name(*org, name)
            .filter(|row| row.hash == credential.hash()),
    }
}

// Order as in authn's validateApiKey: expiry, revocation, org, plain key;
// the disabled check comes with the identity.
fn check_row(authn: &Authn<'_>, state: &State, row: &KeyRow) -> Result<(), TokenRefusal> {
    let (options, requested) = (authn.options, authn.requested);
    if row.is_expired(state.now()) {
        return Err(TokenRefusal::Expired);
    }
    if row.revoked {
        return Err(TokenRefusal::Revoked);
    }
    if options.authn_era && requested.is_some_and(|org| org != row.org) {
        return Err(TokenRefusal::OrgMismatch);
    }
    let Some(sa_id) = row.service_account_id else {
        return match authn.profile.plain_keys_authenticate() {
            true => Ok(()),
            false => Err(TokenRefusal::Invalid),
        };
    };
    let sa = state.user(sa_id).and_then(|u| u.service_account.as_ref());
    match sa {
        Some(info) if !info.disabled => Ok(()),
        _ => Err(TokenRefusal::Disabled),
    }
}

// The authn client skips the write when the last one is under 5 minutes old.
fn touch_last_used(options: &Options, state: &mut State, row: &KeyRow) {
    let now = state.now();
    let fresh = row
        .last_used
        .is_some_and(|t| now - t < Duration::minutes(5));
    if options.last_used_precision && fresh {
        return;
    }
    state.update_key(row.id, |r| r.last_used = Some(now));
}

fn token_identity(state: &State, row: &KeyRow, kind: AuthKind) -> Identity {
    let owner = row.service_account_id.and_then(|id| state.user(id));
    Identity {
        kind,
        user_id: owner.map(|u| u.id),
        key_id: Some(row.id),
        login: owner.map_or_else(|| row.name.clone(), |u| u.login.clone()),
        org_id: row.org,
        org_role: Some(owner.map_or(row.role, |u| u.sa_role())),
        server_admin: false,
        permissions: owner.map(|u| u.permissions.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estate::{Admin, Estate};

    fn state() -> State {
        let admin = Admin {
            login: "admin".into(),
            password: "pw".into(),
        };
        Estate::default().to_state(Profile::V10_4, &admin).unwrap()
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
    }

    // Five wrong passwords lock the login even for the right password.
    #[test]
    fn brute_force_locks_after_five_failures() {
        let mut state = state();
        let options = Options::for_profile(Profile::V10_4);
        let good = basic("admin", "pw");
        let bad = basic("ADMIN", "nope");
        let call = |state: &mut State, header: &str| {
            let input = AuthInput {
                authorization: Some(header),
                ..AuthInput::default()
            };
            authenticate(Profile::V10_4, &options, state, input)
        };
        assert!(call(&mut state, &good).is_ok());
        for _ in 0..5 {
            assert_eq!(call(&mut state, &bad).unwrap_err().status, 401);
        }
        assert!(call(&mut state, &good).is_err());
        state.advance_clock(Duration::minutes(6)).unwrap();
        assert!(call(&mut state, &good).is_ok());
    }

    // Without membership in the requested org the identity has org -1.
    #[test]
    fn non_member_gets_org_minus_one() {
        let mut state = state();
        let options = Options::for_profile(Profile::V10_4);
        let header = basic("admin", "pw");
        let input = AuthInput {
            authorization: Some(&header),
            org_header: Some("7"),
            ..AuthInput::default()
        };
        let id = authenticate(Profile::V10_4, &options, &mut state, input).unwrap();
        assert_eq!((id.org_id, id.org_role), (-1, None));
        assert!(!id.can("serviceaccounts:read"));
    }

    // A wildcard permission grants the actions under its prefix only.
    #[test]
    fn wildcard_permissions() {
        assert!(grants("serviceaccounts:*", "serviceaccounts:write"));
        assert!(!grants("serviceaccounts:*", "apikeys:read"));
        assert!(grants("apikeys:read", "apikeys:read"));
    }
}
