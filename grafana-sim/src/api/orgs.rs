//! Org routes and the signed-in user (grafana-api.md §4).

use serde_json::{json, Value};

use crate::api::service_accounts::like;
use crate::api::{Ctx, Reply};
use crate::auth::AuthKind;
use crate::state::Org;

fn org_details(org: &Org) -> Value {
    json!({"id": org.id, "name": org.name,
           "address": {"address1": "", "address2": "", "city": "",
                       "zipCode": "", "state": "", "country": ""}})
}

/// `GET /api/orgs`: server admin; zero-based paging, prefix query.
pub fn list(ctx: &mut Ctx<'_>) -> Reply {
    if !ctx.who.server_admin {
        return ctx.access_denied("orgs:read");
    }
    let perpage = match ctx.req.param_i64("perpage", 0) {
        n if n <= 0 => 1000,
        n => n,
    };
    // Grafana passes `page` through raw: offset = perpage × page.
    let page = ctx.req.param_i64("page", 0).max(0);
    let query = ctx.req.param("query").unwrap_or("");
    let name = ctx.req.param("name");
    let orgs = ctx.state.orgs().filter(|o| like_prefix(&o.name, query));
    let orgs = orgs.filter(|o| name.is_none_or(|n| o.name == n));
    let items: Vec<Value> = orgs
        .skip((perpage * page) as usize)
        .take(perpage as usize)
        .map(|o| json!({"id": o.id, "name": o.name}))
        .collect();
    Reply::json(200, &Value::Array(items))
}

/// `name LIKE 'q%'` as Grafana's default SQLite runs it: `%` and `_` are
/// wildcards and only ASCII letters match regardless of case.
fn like_prefix(name: &str, query: &str) -> bool {
    let text: Vec<char> = name.chars().map(|c| c.to_ascii_lowercase()).collect();
    let query = query.chars().map(|c| c.to_ascii_lowercase());
    let pattern: Vec<char> = query.chain(['%']).collect();
    like(&text, &pattern)
}

/// `GET /api/orgs/:orgId`.
pub fn get(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    let Ok(id) = id.parse::<i64>() else {
        return Reply::message(400, "id is invalid");
    };
    if !ctx.who.server_admin && !reads_org(ctx, id) {
        return ctx.access_denied("orgs:read");
    }
    match ctx.state.org(id) {
        Some(org) => Reply::json(200, &org_details(org)),
        None => Reply::message(404, "Organization not found"),
    }
}

// Permissions are evaluated in the addressed org: the caller's role
// there, or its own org for tokens.
fn reads_org(ctx: &Ctx<'_>, id: i64) -> bool {
    if ctx.who.org_id == id {
        return ctx.who.can("orgs:read");
    }
    let user = ctx.who.user_id.and_then(|u| ctx.state.user(u));
    let is_user = ctx.who.kind == AuthKind::Basic;
    let role = user.filter(|_| is_user).and_then(|u| u.orgs.get(&id));
    role.is_some_and(|r| *r != crate::state::Role::None)
}

/// `GET /api/org`: the org in context.
pub fn current(ctx: &mut Ctx<'_>) -> Reply {
    if let Some(denied) = ctx.require("orgs:read") {
        return denied;
    }
    match ctx.state.org(ctx.org()) {
        Some(org) => Reply::json(200, &org_details(org)),
        None => Reply::message(404, "Organization not found"),
    }
}

/// `GET /api/user`: the signed-in user or service account.
pub fn signed_in_user(ctx: &mut Ctx<'_>) -> Reply {
    let user = ctx.who.user_id.and_then(|id| ctx.state.user(id));
    let Some(user) = user else {
        return Reply::message(404, "user not found");
    };
    let body = json!({
        "id": user.id, "email": user.email, "name": user.name, "login": user.login,
        "orgId": ctx.who.org_id, "isGrafanaAdmin": user.server_admin,
        "isDisabled": user.service_account.as_ref().is_some_and(|s| s.disabled),
        "isServiceAccount": ctx.who.kind == AuthKind::ServiceAccountToken,
    });
    Reply::json(200, &body)
}
