//! Migration routes and the 9.x helpers (grafana-api.md §8).

use serde_json::json;

use crate::api::{Ctx, Reply};
use crate::migration::{migrate_key, migrate_org};
use crate::profile::BulkMigrate;

/// `POST /api/serviceaccounts/migrate`.
pub fn bulk(ctx: &mut Ctx<'_>) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:create") {
        return denied;
    }
    let org = ctx.org();
    let stop = ctx.profile.bulk_migrate() == BulkMigrate::StopOnError;
    let result = migrate_org(ctx.state, ctx.profile, org, stop);
    if !stop {
        let body = serde_json::to_value(&result).expect("plain struct");
        return Reply::json(200, &body);
    }
    if result.failed > 0 {
        return Reply::message(500, "Internal server error");
    }
    ctx.state.migrated_orgs.insert(org);
    Reply::message(200, "API keys migrated to service accounts")
}

/// `POST /api/serviceaccounts/migrate/:keyId`.
///
/// A key that is not among the org's plain keys is a silent no-op; an
/// org without plain keys answers 500 (Grafana's "no API keys to
/// convert found").
pub fn one(ctx: &mut Ctx<'_>, key: &str) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:create") {
        return denied;
    }
    let Ok(key_id) = key.parse::<i64>() else {
        return Reply::message(400, "Key ID is invalid");
    };
    if key_id == 0 && ctx.profile.errutil_errors() {
        let id = "serviceaccounts.ErrInvalidAPIKeyId";
        return Reply::errutil(400, id, "invalid api key id");
    }
    let org = ctx.org();
    let (any, present) = {
        let mut plain = ctx.state.plain_keys_in(org).peekable();
        (plain.peek().is_some(), plain.any(|k| k.id == key_id))
    };
    if !any {
        return Reply::message(500, "Error converting API key");
    }
    if present && migrate_key(ctx.state, ctx.profile, key_id).is_err() {
        return Reply::message(500, "Error converting API key");
    }
    Reply::message(200, "Service accounts migrated")
}

/// `GET /api/serviceaccounts/migrationstatus` (9.x).
pub fn status(ctx: &mut Ctx<'_>) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:read") {
        return denied;
    }
    let migrated = ctx.state.migrated_orgs.contains(&ctx.org());
    Reply::json(200, &json!({ "migrated": migrated }))
}

/// `POST /api/serviceaccounts/hideApiKeys` (9.x).
pub fn hide_keys(ctx: &mut Ctx<'_>) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:create") {
        return denied;
    }
    let org = ctx.org();
    ctx.state.hidden_key_orgs.insert(org);
    Reply::message(200, "API keys hidden")
}

/// `POST /api/serviceaccounts/:id/revert/:keyId` (later 9.x): detaches
/// the key and deletes the account, which must hold exactly that token.
pub fn revert(ctx: &mut Ctx<'_>, id: &str, key: &str) -> Reply {
    if let Some(denied) = ctx.require("serviceaccounts:delete") {
        return denied;
    }
    let (Ok(sa_id), Ok(key_id)) = (id.parse::<i64>(), key.parse::<i64>()) else {
        return Reply::message(400, "Service Account ID is invalid");
    };
    let org = ctx.org();
    let owned = ctx
        .state
        .key(key_id)
        .is_some_and(|k| k.service_account_id == Some(sa_id));
    let exists = ctx.state.service_account(org, sa_id).is_some();
    if !exists || !owned || ctx.state.token_count(sa_id) != 1 {
        return Reply::message(500, "Error reverting API key");
    }
    ctx.state.set_key_owner(key_id, None).expect("owned key");
    ctx.state
        .delete_service_account(sa_id)
        .expect("existing account");
    Reply::message(200, "Reverted service account to API key")
}
