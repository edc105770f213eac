//! Service-account token routes (grafana-api.md §7).

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::api::service_accounts::resolve;
use crate::api::{keys, Ctx, Reply};
use crate::credential;
use crate::profile::Profile;
use crate::state::{format_time, shift, KeyRow, Role, StateError};

/// Grafana's cap on the token list (≈9.3 on).
const TOKEN_LIST_CAP: usize = 300;

/// Tokens expiring within this window report `secondsUntilExpiration`.
const EXPIRY_WARNING_DAYS: i64 = 7;

/// The token list cap of this profile and options.
pub fn list_cap(ctx: &Ctx<'_>) -> Option<usize> {
    if ctx.profile == Profile::V9_1 && ctx.options.early_9x_tokens {
        return ctx.options.token_list_cap;
    }
    Some(ctx.options.token_list_cap.unwrap_or(TOKEN_LIST_CAP))
}

/// `GET /api/serviceaccounts/:id/tokens`: by name, capped; an unknown
/// numeric id lists nothing (Grafana checks no existence here).
pub fn list(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:read") {
        return denied;
    }
    let sa_id = match id.parse::<i64>() {
        Ok(n) => n,
        Err(_) => match resolve(ctx, id) {
            Ok(n) => n,
            Err(reply) => return reply,
        },
    };
    let now = ctx.state.now();
    let org = ctx.org();
    let cap = list_cap(ctx).unwrap_or(usize::MAX);
    let revoked_field = !(ctx.profile == Profile::V9_1 && ctx.options.early_9x_tokens);
    let items: Vec<Value> = ctx
        .state
        .tokens_of(sa_id)
        .into_iter()
        .filter(|t| t.org == org)
        .take(cap)
        .map(|t| token_dto(t, now, revoked_field))
        .collect();
    Reply::json(200, &Value::Array(items))
}

fn token_dto(token: &KeyRow, now: DateTime<Utc>, revoked_field: bool) -> Value {
    let expired = token.expires.is_some_and(|e| e < now);
    let soon = token
        .expires
        .filter(|e| !expired && *e - now <= Duration::days(EXPIRY_WARNING_DAYS));
    // A float64 in Go, but whole seconds; Go writes them without `.0`.
    let seconds = soon.map_or(0, |e| (e - now).num_seconds());
    let mut dto = Map::new();
    dto.insert("id".into(), token.id.into());
    dto.insert("name".into(), token.name.clone().into());
    dto.insert("created".into(), format_time(token.created).into());
    dto.insert("lastUsedAt".into(), token.last_used.map(format_time).into());
    dto.insert("expiration".into(), token.expires.map(format_time).into());
    dto.insert("secondsUntilExpiration".into(), seconds.into());
    dto.insert("hasExpired".into(), expired.into());
    if revoked_field {
        dto.insert("isRevoked".into(), token.revoked.into());
    }
    Value::Object(dto)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewToken {
    name: String,
    #[serde(default)]
    seconds_to_live: i64,
}

/// `POST /api/serviceaccounts/:id/tokens`: 200, the secret only here.
pub fn create(ctx: &mut Ctx<'_>, id: &str) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:write") {
        return denied;
    }
    let sa_id = match resolve(ctx, id) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let body = ctx.req.json::<NewToken>();
    let Some(body) = body.filter(|b| !b.name.is_empty()) else {
        return Reply::bad_request_data();
    };
    match token_expiry(ctx, body.seconds_to_live) {
        Ok(expires) => insert_token(ctx, sa_id, &body.name, expires),
        Err(reply) => reply,
    }
}

fn token_expiry(ctx: &Ctx<'_>, seconds: i64) -> Result<Option<DateTime<Utc>>, Reply> {
    let now = ctx.state.now();
    if seconds >= 0 {
        keys::check_lifetime(ctx.settings, seconds)?;
    }
    check_day_limit(ctx, now, seconds)?;
    let invalid = || {
        ctx.sa_error(
            400,
            "Bad request data",
            "serviceaccounts.ErrInvalidInput",
            "invalid SecondsToLive value",
        )
    };
    match seconds {
        s if s < 0 => Err(invalid()),
        0 => Ok(None),
        // Past year 9999 is refused rather than overflowing.
        s => shift(now, s).map(Some).ok_or_else(invalid),
    }
}

// `secondsToLive = 0` passes the check in every version read.
fn check_day_limit(ctx: &Ctx<'_>, now: DateTime<Utc>, seconds: i64) -> Result<(), Reply> {
    let limit = ctx.settings.token_expiration_day_limit;
    if limit <= 0 || seconds <= 0 {
        return Ok(());
    }
    let day = |t: DateTime<Utc>| t.duration_trunc(Duration::days(1)).unwrap_or(t);
    // A limit past year 9999 is no limit; a wish past it exceeds any.
    let Some(last) = limit.checked_mul(86_400).and_then(|s| shift(now, s)) else {
        return Ok(());
    };
    let wanted = shift(now, seconds);
    if wanted.is_some_and(|w| day(w) <= day(last)) {
        return Ok(());
    }
    let text = "The expiration date input exceeds the limit for service account \
                access tokens expiration date";
    Err(match ctx.profile.day_limit_plain_text() {
        true => Reply::text(400, text),
        false => Reply::message(400, text),
    })
}

fn insert_token(
    ctx: &mut Ctx<'_>,
    sa_id: i64,
    name: &str,
    expires: Option<DateTime<Utc>>,
) -> Reply {
    let limit = ctx.settings.max_tokens_per_service_account;
    if limit.is_some_and(|max| ctx.state.token_count(sa_id) >= max) {
        let id = "serviceaccounts.ErrTokenLimitReached";
        let text = "service account token limit reached";
        return ctx.sa_error(400, text, id, text);
    }
    let token = credential::new_glsa(&mut ctx.state.rng);
    let row = KeyRow {
        id: 0,
        org: ctx.org(),
        name: name.to_string(),
        hash: credential::hash_secret(&token),
        role: Role::Viewer,
        created: ctx.state.now(),
        expires,
        last_used: None,
        service_account_id: Some(sa_id),
        revoked: false,
    };
    match ctx.state.insert_key(row) {
        Ok(id) => Reply::json(200, &json!({"id": id, "name": name, "key": token})),
        Err(StateError::KeyNameTaken { .. }) => duplicate(ctx),
        Err(_) => Reply::message(500, "Failed to add service account token"),
    }
}

fn duplicate(ctx: &Ctx<'_>) -> Reply {
    let status = ctx.profile.duplicate_token_status();
    let classic = "API key, organization ID and name must be unique";
    let id = "serviceaccounts.ErrTokenAlreadyExists";
    let text = "service account token with given name already exists in the organization";
    ctx.sa_error(status, classic, id, text)
}

/// `DELETE /api/serviceaccounts/:id/tokens/:tokenId`.
pub fn delete(ctx: &mut Ctx<'_>, id: &str, token: &str) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:write") {
        return denied;
    }
    let sa_id = match resolve(ctx, id) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let Ok(token_id) = token.parse::<i64>() else {
        return Reply::message(400, "Token ID is invalid");
    };
    let row = ctx.state.key(token_id);
    if row.is_none_or(|r| r.service_account_id != Some(sa_id)) {
        let classic = "Failed to delete service account token";
        let id = "serviceaccounts.ErrTokenNotFound";
        return ctx.sa_error(404, classic, id, "service account token not found");
    }
    ctx.state.remove_key(token_id);
    Reply::message(200, "Service account token deleted")
}
