//! Route table: (method, path) → route and its template.
//!
//! Templates such as `POST /api/serviceaccounts/:id/tokens` name routes
//! in the request log and in fault rules. Routes a profile lacks resolve
//! to [`Route::NotFound`], which answers Grafana's 404.

use crate::api::{self, Ctx, Reply};
use crate::profile::{BulkMigrate, KeyCreate, Profile};

/// A Grafana route with its path parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'p> {
    /// `GET`/`HEAD /api/health`.
    Health,
    /// `GET /healthz`.
    Healthz,
    /// `GET /api/orgs`.
    Orgs,
    /// `GET /api/orgs/:orgId`.
    OrgById(&'p str),
    /// `GET /api/org`.
    CurrentOrg,
    /// `GET /api/user`.
    SignedInUser,
    /// `GET /api/auth/keys`.
    ListKeys,
    /// `POST /api/auth/keys`.
    CreateKey,
    /// `DELETE /api/auth/keys/:id`.
    DeleteKey(&'p str),
    /// `GET /api/serviceaccounts/search`.
    SearchServiceAccounts,
    /// `POST /api/serviceaccounts`.
    CreateServiceAccount,
    /// `GET /api/serviceaccounts/:id`.
    GetServiceAccount(&'p str),
    /// `PATCH /api/serviceaccounts/:id`.
    PatchServiceAccount(&'p str),
    /// `DELETE /api/serviceaccounts/:id`.
    DeleteServiceAccount(&'p str),
    /// `GET /api/serviceaccounts/:id/tokens`.
    ListTokens(&'p str),
    /// `POST /api/serviceaccounts/:id/tokens`.
    CreateToken(&'p str),
    /// `DELETE /api/serviceaccounts/:id/tokens/:tokenId`.
    DeleteToken(&'p str, &'p str),
    /// `POST /api/serviceaccounts/migrate`.
    Migrate,
    /// `POST /api/serviceaccounts/migrate/:keyId`.
    MigrateKey(&'p str),
    /// `GET /api/serviceaccounts/migrationstatus` (9.x).
    MigrationStatus,
    /// `POST /api/serviceaccounts/hideApiKeys` (9.x).
    HideApiKeys,
    /// `POST /api/serviceaccounts/:id/revert/:keyId` (9.x).
    Revert(&'p str, &'p str),
    /// No such route in this profile.
    NotFound,
}

/// Resolves a request to a route and its template.
pub fn resolve<'p>(profile: Profile, method: &str, path: &'p str) -> (Route<'p>, &'static str) {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let route = match (method, segments.as_slice()) {
        ("GET" | "HEAD", ["api", "health"]) => Route::Health,
        ("GET" | "HEAD", ["healthz"]) => Route::Healthz,
        ("GET", ["api", "orgs"]) => Route::Orgs,
        ("GET", ["api", "orgs", id]) => Route::OrgById(id),
        ("GET", ["api", "org"]) => Route::CurrentOrg,
        ("GET", ["api", "user"]) => Route::SignedInUser,
        (_, ["api", "auth", "keys", ..]) => key_route(profile, method, &segments[3..]),
        (_, ["api", "serviceaccounts", rest @ ..]) => sa_route(profile, method, rest),
        _ => Route::NotFound,
    };
    (route, template(route, method))
}

fn key_route<'p>(profile: Profile, method: &str, rest: &[&'p str]) -> Route<'p> {
    if !profile.has_key_routes() {
        return Route::NotFound;
    }
    match (method, rest) {
        ("GET", []) => Route::ListKeys,
        ("POST", []) if profile.key_create() != KeyCreate::NotFound => Route::CreateKey,
        ("DELETE", [id]) => Route::DeleteKey(id),
        _ => Route::NotFound,
    }
}

fn sa_route<'p>(profile: Profile, method: &str, rest: &[&'p str]) -> Route<'p> {
    let helpers = profile.has_9x_helpers();
    let bulk = profile.bulk_migrate() != BulkMigrate::NotFound;
    match (method, rest) {
        ("GET", ["search"]) => Route::SearchServiceAccounts,
        ("POST", []) => Route::CreateServiceAccount,
        ("POST", ["migrate"]) if bulk => Route::Migrate,
        ("POST", ["migrate", key]) if profile.has_key_migrate() => Route::MigrateKey(key),
        ("GET", ["migrationstatus"]) if helpers => Route::MigrationStatus,
        ("POST", ["hideApiKeys"]) if helpers => Route::HideApiKeys,
        ("POST", [id, "revert", key]) if helpers => Route::Revert(id, key),
        ("GET", [id]) => Route::GetServiceAccount(id),
        ("PATCH", [id]) => Route::PatchServiceAccount(id),
        ("DELETE", [id]) => Route::DeleteServiceAccount(id),
        ("GET", [id, "tokens"]) => Route::ListTokens(id),
        ("POST", [id, "tokens"]) => Route::CreateToken(id),
        ("DELETE", [id, "tokens", token]) => Route::DeleteToken(id, token),
        _ => Route::NotFound,
    }
}

/// The template naming a route in logs and fault rules.
pub fn template(route: Route<'_>, method: &str) -> &'static str {
    match route {
        Route::Health if method == "HEAD" => "HEAD /api/health",
        Route::Health => "GET /api/health",
        Route::Healthz => "GET /healthz",
        Route::Orgs => "GET /api/orgs",
        Route::OrgById(_) => "GET /api/orgs/:orgId",
        Route::CurrentOrg => "GET /api/org",
        Route::SignedInUser => "GET /api/user",
        Route::ListKeys => "GET /api/auth/keys",
        Route::CreateKey => "POST /api/auth/keys",
        Route::DeleteKey(_) => "DELETE /api/auth/keys/:id",
        Route::SearchServiceAccounts => "GET /api/serviceaccounts/search",
        Route::CreateServiceAccount => "POST /api/serviceaccounts",
        Route::GetServiceAccount(_) => "GET /api/serviceaccounts/:id",
        Route::PatchServiceAccount(_) => "PATCH /api/serviceaccounts/:id",
        Route::DeleteServiceAccount(_) => "DELETE /api/serviceaccounts/:id",
        Route::ListTokens(_) => "GET /api/serviceaccounts/:id/tokens",
        Route::CreateToken(_) => "POST /api/serviceaccounts/:id/tokens",
        Route::DeleteToken(..) => "DELETE /api/serviceaccounts/:id/tokens/:tokenId",
        Route::Migrate => "POST /api/serviceaccounts/migrate",
        Route::MigrateKey(_) => "POST /api/serviceaccounts/migrate/:keyId",
        Route::MigrationStatus => "GET /api/serviceaccounts/migrationstatus",
        Route::HideApiKeys => "POST /api/serviceaccounts/hideApiKeys",
        Route::Revert(..) => "POST /api/serviceaccounts/:id/revert/:keyId",
        Route::NotFound => "unmatched",
    }
}

/// Every route template, `unmatched` (unknown paths) included.
pub const TEMPLATES: [&str; 24] = [
    "HEAD /api/health",
    "GET /api/health",
    "GET /healthz",
    "GET /api/orgs",
    "GET /api/orgs/:orgId",
    "GET /api/org",
    "GET /api/user",
    "GET /api/auth/keys",
    "POST /api/auth/keys",
    "DELETE /api/auth/keys/:id",
    "GET /api/serviceaccounts/search",
    "POST /api/serviceaccounts",
    "GET /api/serviceaccounts/:id",
    "PATCH /api/serviceaccounts/:id",
    "DELETE /api/serviceaccounts/:id",
    "GET /api/serviceaccounts/:id/tokens",
    "POST /api/serviceaccounts/:id/tokens",
    "DELETE /api/serviceaccounts/:id/tokens/:tokenId",
    "POST /api/serviceaccounts/migrate",
    "POST /api/serviceaccounts/migrate/:keyId",
    "GET /api/serviceaccounts/migrationstatus",
    "POST /api/serviceaccounts/hideApiKeys",
    "POST /api/serviceaccounts/:id/revert/:keyId",
    "unmatched",
];

/// Routes that answer without authentication.
pub fn is_public(route: Route<'_>) -> bool {
    matches!(route, Route::Health | Route::Healthz | Route::NotFound)
}

/// Runs the handler of an authenticated route.
pub fn dispatch(route: Route<'_>, ctx: &mut Ctx<'_>) -> Reply {
    use api::{keys, migrate, orgs, service_accounts as sa, tokens};
    match route {
        Route::Health | Route::Healthz | Route::NotFound => Reply::not_found(),
        Route::Orgs => orgs::list(ctx),
        Route::OrgById(id) => orgs::get(ctx, id),
        Route::CurrentOrg => orgs::current(ctx),
        Route::SignedInUser => orgs::signed_in_user(ctx),
        Route::ListKeys => keys::list(ctx),
        Route::CreateKey => keys::create(ctx),
        Route::DeleteKey(id) => keys::delete(ctx, id),
        Route::SearchServiceAccounts => sa::search(ctx),
        Route::CreateServiceAccount => sa::create(ctx),
        Route::GetServiceAccount(id) => sa::get(ctx, id),
        Route::PatchServiceAccount(id) => sa::patch(ctx, id),
        Route::DeleteServiceAccount(id) => sa::delete(ctx, id),
        Route::ListTokens(id) => tokens::list(ctx, id),
        Route::CreateToken(id) => tokens::create(ctx, id),
        Route::DeleteToken(id, token) => tokens::delete(ctx, id, token),
        Route::Migrate => migrate::bulk(ctx),
        Route::MigrateKey(key) => migrate::one(ctx, key),
        Route::MigrationStatus => migrate::status(ctx),
        Route::HideApiKeys => migrate::hide_keys(ctx),
        Route::Revert(id, key) => migrate::revert(ctx, id, key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Removed routes resolve to NotFound per profile; others to templates.
    #[test]
    fn routes_follow_the_profile() {
        let (route, _) = resolve(Profile::V12_1, "GET", "/api/auth/keys");
        assert_eq!(route, Route::NotFound);
        let (route, t) = resolve(Profile::V11_6, "POST", "/api/serviceaccounts/7/tokens");
        assert_eq!(
            (route, t),
            (
                Route::CreateToken("7"),
                "POST /api/serviceaccounts/:id/tokens"
            )
        );
        let (route, _) = resolve(Profile::V9_5, "GET", "/api/serviceaccounts/migrationstatus");
        assert_eq!(route, Route::GetServiceAccount("migrationstatus"));
        let (route, _) = resolve(Profile::V9_1, "GET", "/api/serviceaccounts/migrationstatus");
        assert_eq!(route, Route::MigrationStatus);
        let (route, _) = resolve(Profile::V12_1, "POST", "/api/serviceaccounts/migrate");
        assert_eq!(route, Route::NotFound);
        let (route, _) = resolve(Profile::V12_1, "POST", "/api/auth/keys");
        assert_eq!(route, Route::NotFound);
        let (route, _) = resolve(Profile::V11_3, "POST", "/api/auth/keys");
        assert_eq!(route, Route::CreateKey);
    }

    // Every template a resolved route can have is listed in TEMPLATES.
    #[test]
    fn templates_list_every_route() {
        let paths = [
            "/api/health",
            "/healthz",
            "/api/orgs",
            "/api/orgs/2",
            "/api/org",
            "/api/user",
            "/api/auth/keys",
            "/api/auth/keys/3",
            "/api/serviceaccounts",
            "/api/serviceaccounts/search",
            "/api/serviceaccounts/4",
            "/api/serviceaccounts/4/tokens",
            "/api/serviceaccounts/4/tokens/5",
            "/api/serviceaccounts/migrate",
            "/api/serviceaccounts/migrate/6",
            "/api/serviceaccounts/migrationstatus",
            "/api/serviceaccounts/hideApiKeys",
            "/api/serviceaccounts/4/revert/6",
            "/nowhere",
        ];
        let methods = ["GET", "HEAD", "POST", "PATCH", "DELETE"];
        for profile in Profile::ALL {
            for (path, method) in paths.iter().flat_map(|p| methods.map(|m| (p, m))) {
                let (_, template) = resolve(profile, method, path);
                assert!(TEMPLATES.contains(&template), "{template}");
            }
        }
    }
}
