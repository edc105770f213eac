//! Service-account routes (grafana-api.md §6).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::{Ctx, Reply};
use crate::credential;
use crate::login;
use crate::profile::Profile;
use crate::state::{format_time, Role, ServiceAccountInfo, StateError, User};

/// Resolves `:id` to a service account of the caller's org.
///
/// Numeric ids must name an account of the org; other text is a UID
/// where the profile has UID paths, else 400.
pub fn resolve(ctx: &mut Ctx<'_>, id: &str) -> Result<i64, Reply> {
    let org = ctx.org();
    if let Ok(number) = id.parse::<i64>() {
        return match ctx.state.service_account(org, number) {
            Some(_) => Ok(number),
            None => Err(not_found(ctx)),
        };
    }
    if !ctx.uses_uid() {
        return Err(Reply::message(400, "Service Account ID is invalid"));
    }
    match ctx.state.service_account_by_uid(org, id) {
        Some(user) => Ok(user.id),
        None => Err(Reply::not_found()),
    }
}

/// The era's "service account not found" answer.
pub fn not_found(ctx: &Ctx<'_>) -> Reply {
    let classic = "Failed to retrieve service account";
    ctx.sa_error(
        404,
        classic,
        "serviceaccounts.ErrNotFound",
        "service account not found",
    )
}

/// The search/create DTO.
fn sa_dto(ctx: &Ctx<'_>, user: &User, avatar: bool) -> Value {
    let info = user.service_account.as_ref().expect("a service account");
    let mut dto = Map::new();
    dto.insert("id".into(), user.id.into());
    if ctx.uses_uid() {
        dto.insert("uid".into(), user.uid.clone().into());
    }
    dto.insert("name".into(), user.name.clone().into());
    dto.insert("login".into(), user.login.clone().into());
    dto.insert("orgId".into(), info.org.into());
    dto.insert("isDisabled".into(), info.disabled.into());
    if info.external && ctx.profile >= Profile::V10_4 {
        dto.insert("isExternal".into(), true.into());
    }
    dto.insert("role".into(), user.sa_role().as_str().into());
    dto.insert("tokens".into(), listed_tokens(ctx, user.id).into());
    let url = if avatar {
        avatar_url(&user.email)
    } else {
        String::new()
    };
    dto.insert("avatarUrl".into(), url.into());
    Value::Object(dto)
}

// Counts stop at the token list cap, as in Grafana before 12.0.
fn listed_tokens(ctx: &Ctx<'_>, id: i64) -> usize {
    let count = ctx.state.token_count(id);
    super::tokens::list_cap(ctx).map_or(count, |cap| count.min(cap))
}

// Grafana uses the MD5 of the email; a SHA-256 prefix has the same shape.
fn avatar_url(email: &str) -> String {
    let hex = credential::hash_to_hex(&credential::hash_secret(email));
    format!("/avatar/{}", &hex[..32])
}

/// The `GET /api/serviceaccounts/:id` profile DTO.
fn profile_dto(ctx: &Ctx<'_>, user: &User) -> Value {
    let mut dto = sa_dto(ctx, user, true);
    let map = dto.as_object_mut().expect("an object");
    map.insert("createdAt".into(), format_time(user.created).into());
    map.insert("updatedAt".into(), format_time(user.updated).into());
    map.insert("teams".into(), Value::Null);
    if ctx.profile.profile_tokens_omitempty() && map["tokens"] == 0 {
        map.remove("tokens");
    }
    dto
}

/// `GET /api/serviceaccounts/search`: one-based paging.
pub fn search(ctx: &mut Ctx<'_>) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:read") {
        return denied;
    }
    let perpage = match ctx.req.param_i64("perpage", 0) {
        n if n <= 0 => 1000,
        n => n,
    };
    let page = ctx.req.param_i64("page", 1).max(1);
    let matches = search_matches(ctx);
    let items: Vec<Value> = matches
        .iter()
        .skip((perpage * (page - 1)) as usize)
        .take(perpage as usize)
        .map(|u| search_item(ctx, u))
        .collect();
    let body = json!({"totalCount": matches.len(), "serviceAccounts": items,
                      "page": page, "perPage": perpage});
    Reply::json(200, &body)
}

// Search counts tokens with GROUP BY from 12.0 code on (exact); older
// code took the capped list length.
fn search_item(ctx: &Ctx<'_>, user: &User) -> Value {
    let mut dto = sa_dto(ctx, user, true);
    if ctx.profile >= Profile::V12_1 {
        dto["tokens"] = ctx.state.token_count(user.id).into();
    }
    dto
}

fn search_matches<'c>(ctx: &'c Ctx<'_>) -> Vec<&'c User> {
    let query = ctx.req.param("query").unwrap_or("").to_lowercase();
    let disabled = ctx.req.param_true("disabled");
    let expired = ctx.req.param_true("expiredTokens");
    let now = ctx.state.now();
    let hit = |u: &User| {
        let info = u.service_account.as_ref().expect("service accounts only");
        if disabled {
            return info.disabled;
        }
        let fields = [&u.email, &u.name, &u.login];
        let text = fields
            .iter()
            .any(|f| like_contains(&f.to_lowercase(), &query));
        let has_expired = || {
            let tokens = ctx.state.tokens_of(u.id);
            tokens.iter().any(|t| t.expires.is_some_and(|e| e < now))
        };
        text && (!expired || has_expired())
    };
    ctx.state
        .service_accounts_in(ctx.org())
        .filter(|u| hit(u))
        .collect()
}

/// SQL `LIKE '%q%'` as Grafana's search runs it: `%` and `_` in the
/// query are wildcards, not escaped.
fn like_contains(text: &str, query: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = format!("%{query}%").chars().collect();
    like(&text, &pattern)
}

/// SQL `LIKE` over chars: `%` any run, `_` one char, else exact.
///
/// Iterative, backtracking to the last `%`.
pub(crate) fn like(text: &[char], pattern: &[char]) -> bool {
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('%') => {
                star = Some((p, t));
                p += 1;
            }
            Some(c) if *c == '_' || *c == text[t] => {
                t += 1;
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '%')
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewServiceAccount {
    name: String,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    is_disabled: bool,
}

/// Parses and checks a requested role against the caller's own.
fn check_role(ctx: &Ctx<'_>, text: &str) -> Result<Role, Reply> {
    let role = text.parse::<Role>().ok();
    let allowed = role.filter(|r| *r != Role::None || ctx.profile.role_none_accepted());
    let Some(role) = allowed else {
        let id = "serviceaccounts.ErrInvalidRoleSpecified";
        return Err(ctx.sa_error(400, "Invalid role specified", id, "invalid role specified"));
    };
    if role > ctx.who.role() {
        let classic = "Cannot assign a role higher than user's role";
        let id = "serviceaccounts.ErrRoleForbidden";
        let text = "can not assign a role higher than user's role";
        return Err(ctx.sa_error(403, classic, id, text));
    }
    Ok(role)
}

/// `POST /api/serviceaccounts`: 201 with the DTO.
pub fn create(ctx: &mut Ctx<'_>) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:create") {
        return denied;
    }
    let body = ctx.req.json::<NewServiceAccount>();
    let Some(body) = body.filter(|b| !b.name.is_empty()) else {
        return Reply::bad_request_data();
    };
    let role = match check_role(ctx, body.role.as_deref().unwrap_or("Viewer")) {
        Ok(role) => role,
        Err(reply) => return reply,
    };
    let org = ctx.org();
    let login = login::service_account(ctx.profile, org, &body.name);
    let user = new_service_account(ctx, org, &body.name, login, role, body.is_disabled);
    match ctx.state.insert_user(user) {
        Ok(id) => {
            let user = ctx.state.user(id).expect("just inserted");
            Reply::json(201, &sa_dto(ctx, user, false))
        }
        Err(StateError::LoginTaken { .. }) => already_exists(ctx),
        Err(_) => Reply::message(500, "Failed to create service account"),
    }
}

fn already_exists(ctx: &Ctx<'_>) -> Reply {
    let id = "serviceaccounts.ErrAlreadyExists";
    let classic = "Failed to create service account";
    ctx.sa_error(400, classic, id, "service account already exists")
}

/// A new service-account user row (id assigned on insert).
pub fn new_service_account(
    ctx: &Ctx<'_>,
    org: i64,
    name: &str,
    login: String,
    role: Role,
    disabled: bool,
) -> User {
    build_service_account(ctx.state.now(), org, name, login, role, disabled)
}

/// A service-account user row built without a request context.
pub fn build_service_account(
    now: chrono::DateTime<chrono::Utc>,
    org: i64,
    name: &str,
    login: String,
    role: Role,
    disabled: bool,
) -> User {
    User {
        id: 0,
        uid: String::new(),
        email: login.clone(),
        login,
        name: name.to_string(),
        password_hash: None,
        server_admin: false,
        orgs: BTreeMap::from([(org, role)]),
        permissions: vec![],
        service_account: Some(ServiceAccountInfo {
            org,
            disabled,
            external: false,
        }),
        created: now,
        updated: now,
    }
}

/// `GET /api/serviceaccounts/:id`.
pub fn get(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:read") {
        return denied;
    }
    match resolve(ctx, id) {
        Ok(id) => {
            let user = ctx.state.user(id).expect("resolved");
            Reply::json(200, &profile_dto(ctx, user))
        }
        Err(reply) => reply,
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PatchServiceAccount {
    name: Option<String>,
    role: Option<String>,
    is_disabled: Option<bool>,
}

/// `PATCH /api/serviceaccounts/:id`: rename keeps the login.
pub fn patch(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:write") {
        return denied;
    }
    let id = match resolve(ctx, id) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let body = match ctx.req.body.is_empty() {
        true => Some(PatchServiceAccount::default()),
        false => ctx.req.json::<PatchServiceAccount>(),
    };
    let Some(body) = body else {
        return Reply::bad_request_data();
    };
    let role = match body.role.as_deref().map(|r| check_role(ctx, r)).transpose() {
        Ok(role) => role,
        Err(reply) => return reply,
    };
    ctx.state
        .update_user(id, |user| apply_patch(user, &body, role));
    let user = ctx.state.user(id).expect("resolved");
    let profile = profile_dto(ctx, user);
    let body = json!({"message": "Service account updated", "id": id,
                      "name": user.name, "serviceaccount": profile});
    Reply::json(200, &body)
}

fn apply_patch(user: &mut User, patch: &PatchServiceAccount, role: Option<Role>) {
    let info = user.service_account.as_mut().expect("resolved account");
    if let Some(disabled) = patch.is_disabled {
        info.disabled = disabled;
    }
    let org = info.org;
    if let Some(name) = &patch.name {
        user.name = name.clone();
    }
    if let Some(role) = role {
        user.orgs.insert(org, role);
    }
}

/// `DELETE /api/serviceaccounts/:id`: deletes its tokens too.
pub fn delete(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:delete") {
        return denied;
    }
    let org = ctx.org();
    let found = match id.parse::<i64>() {
        Ok(n) => ctx.state.service_account(org, n).map(|u| u.id),
        Err(_) => match resolve(ctx, id) {
            Ok(found) => Some(found),
            Err(reply) => return reply,
        },
    };
    let Some(id) = found else {
        return match ctx.profile.delete_missing_sa_status() {
            404 => not_found(ctx),
            _ => Reply::message(500, "Service account deletion error"),
        };
    };
    ctx.state
        .delete_service_account(id)
        .expect("resolved account");
    Reply::message(200, "Service account deleted")
}

#[cfg(test)]
mod tests {
    use super::*;

    // LIKE wildcards: `_` is any one character, `%` any run; plain text is a substring.
    #[test]
    fn like_matches_grafana_search() {
        assert!(like_contains("sa-1-ci-bot", "ci-b"));
        assert!(like_contains("sa-1-ci-bot", "ci_bot"));
        assert!(like_contains("sa-1-cixbot", "ci_bot"));
        assert!(like_contains("sa-1-ci-bot", "sa%bot"));
        assert!(!like_contains("sa-1-ci-bot", "bots"));
        assert!(like_contains("anything", ""));
    }
}
