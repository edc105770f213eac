//! Legacy API key routes `/api/auth/keys` (grafana-api.md §5).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::{Ctx, Reply};
use crate::credential;
use crate::profile::{KeyCreate, Settings};
use crate::state::{format_time, shift, KeyRow, Role, StateError};

/// Grafana's hard limit on the key list.
const KEY_LIST_CAP: usize = 100;

/// `GET /api/auth/keys`: plain keys only, by name, capped at 100.
pub fn list(ctx: &mut Ctx<'_>) -> Reply {
    if let Some(denied) = ctx.require("apikeys:read") {
        return denied;
    }
    let now = ctx.state.now();
    let include_expired = ctx.req.param_true("includeExpired");
    let last_used = ctx.profile.key_list_last_used();
    let items: Vec<Value> = ctx
        .state
        .plain_keys_in(ctx.who.org_id)
        .filter(|k| include_expired || k.expires.is_none_or(|e| e >= now))
        .take(KEY_LIST_CAP)
        .map(|k| key_dto(k, last_used))
        .collect();
    Reply::json(200, &Value::Array(items))
}

fn key_dto(key: &KeyRow, with_last_used: bool) -> Value {
    let mut item = Map::new();
    item.insert("id".into(), key.id.into());
    item.insert("name".into(), key.name.clone().into());
    item.insert("role".into(), key.role.as_str().into());
    if let Some(expires) = key.expires {
        item.insert("expiration".into(), format_time(expires).into());
    }
    if let (true, Some(used)) = (with_last_used, key.last_used) {
        item.insert("lastUsedAt".into(), format_time(used).into());
    }
    Value::Object(item)
}

/// `DELETE /api/auth/keys/:id`: only plain keys of the caller's org.
pub fn delete(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    if let Some(denied) = ctx.require("apikeys:delete") {
        return denied;
    }
    let Ok(id) = id.parse::<i64>() else {
        return Reply::message(400, "id is invalid");
    };
    let org = ctx.org();
    let found = ctx.state.key(id);
    if !found.is_some_and(|k| k.org == org && k.service_account_id.is_none()) {
        return Reply::message(404, "Failed to delete API key");
    }
    ctx.state.remove_key(id);
    Reply::message(200, "API key deleted")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewKey {
    name: String,
    role: String,
    #[serde(default)]
    seconds_to_live: i64,
}

/// `POST /api/auth/keys`: 200 until 11.2, then 410.
pub fn create(ctx: &mut Ctx<'_>) -> Reply {
    if let Some(denied) = ctx.require("apikeys:create") {
        return denied;
    }
    if ctx.profile.key_create() == KeyCreate::Gone {
        return Reply::message(
            410,
            "this endpoint has been removed, please use POST /api/serviceaccounts \
             and POST /api/serviceaccounts/{id}/tokens instead",
        );
    }
    let Some(body) = ctx.req.json::<NewKey>() else {
        return Reply::bad_request_data();
    };
    // `None` is only a role where SA creation accepts it too (10.2+).
    let role = body.role.parse::<Role>().ok();
    let allowed = role.filter(|r| *r != Role::None || ctx.profile.role_none_accepted());
    let Some(role) = allowed else {
        return Reply::message(400, "Invalid role specified");
    };
    if role > ctx.who.role() {
        return Reply::message(403, "Cannot assign a role higher than user's role");
    }
    let now = ctx.state.now();
    let expires = match key_expiry(ctx.settings, now, body.seconds_to_live) {
        Ok(expires) => expires,
        Err(reply) => return reply,
    };
    insert_key(ctx, &body.name, role, expires)
}

fn insert_key(ctx: &mut Ctx<'_>, name: &str, role: Role, expires: Option<DateTime<Utc>>) -> Reply {
    let org = ctx.org();
    let (key, secret) = credential::new_legacy(&mut ctx.state.rng, org, name);
    let row = KeyRow {
        id: 0,
        org,
        name: name.to_string(),
        hash: credential::hash_secret(&secret),
        role,
        created: ctx.state.now(),
        expires,
        last_used: None,
        service_account_id: None,
        revoked: false,
    };
    match ctx.state.insert_key(row) {
        Ok(id) => Reply::json(200, &json!({"id": id, "name": name, "key": key})),
        Err(StateError::KeyNameTaken { .. }) => {
            Reply::message(409, "API key, organization ID and name must be unique")
        }
        Err(_) => Reply::message(500, "Failed to add API Key"),
    }
}

/// Expiry under `api_key_max_seconds_to_live`.
pub fn key_expiry(
    settings: &Settings,
    now: DateTime<Utc>,
    seconds: i64,
) -> Result<Option<DateTime<Utc>>, Reply> {
    check_lifetime(settings, seconds)?;
    let invalid = || Reply::message(400, "Invalid API key expiration");
    match seconds {
        s if s < 0 => Err(invalid()),
        0 => Ok(None),
        // Past year 9999 is refused rather than overflowing.
        s => shift(now, s).map(Some).ok_or_else(invalid),
    }
}

/// The `api_key_max_seconds_to_live` checks; also used for tokens.
pub fn check_lifetime(settings: &Settings, seconds: i64) -> Result<(), Reply> {
    let max = settings.api_key_max_seconds_to_live;
    if max != -1 && seconds == 0 {
        let text = "Number of seconds before expiration should be set";
        return Err(Reply::message(400, text));
    }
    if max != -1 && seconds > max {
        let text = "Number of seconds before expiration is greater than the global limit";
        return Err(Reply::message(400, text));
    }
    Ok(())
}
