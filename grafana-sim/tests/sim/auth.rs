//! Authentication and authorization over HTTP.

use chrono::Duration;
use grafana_sim::{Profile, SimConfig};
use serde_json::json;

use crate::common::{is_authn_body, Auth, Sim};

fn two_orgs() -> serde_json::Value {
    json!({"orgs": [{"id": 2, "name": "b"}],
           "users": [{"login": "viewer", "password": "v", "orgs": {"1": "Viewer"}}]})
}

// In the authn era a token naming another org is 401 organization-mismatch;
// before it the header is ignored and the key's org is used.
#[tokio::test]
async fn token_org_binding_per_era() {
    for profile in [Profile::V10_0, Profile::V10_4] {
        let mut sim = Sim::with_estate(profile, two_orgs()).await;
        let sa = sim.create_sa("bot", "Admin").await;
        let (_, token) = sim.create_token(sa, "t").await;
        sim.org_header = Some(2);
        let resp = sim
            .send("GET", "/api/org", Auth::Bearer(&token), None)
            .await;
        if profile == Profile::V10_4 {
            assert_eq!(resp.status, 401);
            assert!(is_authn_body(&resp.body, "api-key.organization-mismatch"));
        } else {
            assert_eq!((resp.status, resp.body["id"].clone()), (200, json!(1)));
        }
    }
}

// targetOrgId selects the org in the authn era and wins over the header.
#[tokio::test]
async fn target_org_id_wins_over_header() {
    let mut sim = Sim::with_estate(Profile::V11_6, two_orgs()).await;
    sim.org_header = Some(1);
    let resp = sim.admin("GET", "/api/org?targetOrgId=2", None).await;
    assert_eq!(resp.body["id"], 2);
}

// A basic user outside the requested org gets 403 on org-scoped routes.
#[tokio::test]
async fn non_member_is_forbidden() {
    let mut sim = Sim::with_estate(Profile::V10_4, two_orgs()).await;
    sim.org_header = Some(2);
    let resp = sim
        .send(
            "GET",
            "/api/serviceaccounts/search",
            Auth::Basic("viewer", "v"),
            None,
        )
        .await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.body["title"], "Access denied");
    let id = resp.body["accessErrorId"].as_str().unwrap();
    assert!(id.starts_with("ACE") && id.len() == 13, "{id}");
}

// A Viewer cannot create SAs; /api/orgs needs a server admin.
#[tokio::test]
async fn roles_gate_routes() {
    let sim = Sim::with_estate(Profile::V10_4, two_orgs()).await;
    let viewer = Auth::Basic("viewer", "v");
    let body = json!({"name": "x"});
    let resp = sim
        .send("POST", "/api/serviceaccounts", viewer, Some(body))
        .await;
    assert_eq!(resp.status, 403);
    assert!(resp.body["message"]
        .as_str()
        .unwrap()
        .ends_with("serviceaccounts:create"));
    assert_eq!(sim.send("GET", "/api/org", viewer, None).await.status, 200);
    assert_eq!(sim.send("GET", "/api/orgs", viewer, None).await.status, 403);
    assert_eq!(sim.admin("GET", "/api/orgs", None).await.status, 200);
}

// An Editor SA with extra RBAC actions may create SAs but not above Editor.
#[tokio::test]
async fn rbac_extras_and_role_ceiling() {
    let token = grafana_sim::credential::new_glsa(&mut rand::thread_rng());
    let estate = json!({"service_accounts": [{"org": 1, "name": "automation",
        "role": "Editor", "permissions": ["serviceaccounts:create", "serviceaccounts:write"],
        "tokens": [{"name": "t", "secret": token}]}]});
    let token = token.as_str();
    let sim = Sim::with_estate(Profile::V10_4, estate).await;
    let ok = json!({"name": "helper", "role": "Viewer"});
    let resp = sim
        .send(
            "POST",
            "/api/serviceaccounts",
            Auth::Bearer(token),
            Some(ok),
        )
        .await;
    assert_eq!(resp.status, 201, "{}", resp.text);
    let high = json!({"name": "boss", "role": "Admin"});
    let resp = sim
        .send(
            "POST",
            "/api/serviceaccounts",
            Auth::Bearer(token),
            Some(high),
        )
        .await;
    assert_eq!(resp.status, 403);
    assert_eq!(resp.body["messageId"], "serviceaccounts.ErrRoleForbidden");
    let list = sim
        .send(
            "GET",
            "/api/serviceaccounts/search",
            Auth::Bearer(token),
            None,
        )
        .await;
    assert_eq!(list.status, 403, "no serviceaccounts:read");
}

// Unknown, expired and revoked tokens get their 401 bodies per era.
#[tokio::test]
async fn token_refusals_per_era() {
    for profile in [Profile::V9_5, Profile::V11_6] {
        let sim = Sim::start(profile).await;
        let sa = sim.create_sa("bot", "Viewer").await;
        let m = json!({"op": "create_token", "service_account_id": sa, "name": "short",
                       "seconds_to_live": 60});
        let out = sim
            .handle
            .mutate(serde_json::from_value(m).unwrap())
            .unwrap();
        let (_, revoked) = sim.create_token(sa, "rev").await;
        let rev_id = sim.handle.whoami(&revoked).unwrap().key_id.unwrap();
        sim.handle
            .mutate(grafana_sim::Mutation::RevokeToken { id: rev_id })
            .unwrap();
        sim.handle.advance_clock(Duration::seconds(60));
        let expired = sim
            .send("GET", "/api/org", Auth::Bearer(&out.key.unwrap()), None)
            .await;
        let revoked = sim
            .send("GET", "/api/org", Auth::Bearer(&revoked), None)
            .await;
        let unknown = sim
            .send("GET", "/api/org", Auth::Bearer("glsa_nope"), None)
            .await;
        let none = sim.send("GET", "/api/org", Auth::None, None).await;
        assert_eq!(none.body, json!({"message": "Unauthorized"}));
        if profile == Profile::V11_6 {
            assert!(is_authn_body(&expired.body, "api-key.expired"));
            assert!(is_authn_body(&revoked.body, "api-key.revoked"));
            assert!(is_authn_body(&unknown.body, "api-key.invalid"));
        } else {
            assert_eq!(expired.body, json!({"message": "Expired API key"}));
            assert_eq!(revoked.body, json!({"message": "Revoked token"}));
            assert_eq!(unknown.body, json!({"message": "invalid API key"}));
        }
        assert!([expired.status, revoked.status, unknown.status]
            .iter()
            .all(|s| *s == 401));
    }
}

// lastUsedAt is written on use; the authn era skips writes under 5 minutes.
#[tokio::test]
async fn last_used_precision() {
    let sim = Sim::start_with(SimConfig::new(Profile::V11_6)).await;
    let sa = sim.create_sa("bot", "Viewer").await;
    let (id, token) = sim.create_token(sa, "t").await;
    sim.send("GET", "/api/org", Auth::Bearer(&token), None)
        .await;
    let first = sim
        .handle
        .with_state(|s| s.key(id).unwrap().last_used)
        .unwrap();
    sim.handle.advance_clock(Duration::minutes(2));
    sim.send("GET", "/api/org", Auth::Bearer(&token), None)
        .await;
    assert_eq!(
        sim.handle.with_state(|s| s.key(id).unwrap().last_used),
        Some(first)
    );
    sim.handle.advance_clock(Duration::minutes(4));
    sim.send("GET", "/api/org", Auth::Bearer(&token), None)
        .await;
    let third = sim
        .handle
        .with_state(|s| s.key(id).unwrap().last_used)
        .unwrap();
    assert!(third > first);
}

// Five failed logins lock the user even with the right password; the
// lock is named login-attempt.blocked before 11.3.
#[tokio::test]
async fn brute_force_lockout_over_http() {
    for (profile, id) in [
        (Profile::V10_4, "login-attempt.blocked"),
        (Profile::V11_6, "password-auth.failed"),
    ] {
        let sim = Sim::start(profile).await;
        for _ in 0..5 {
            let resp = sim
                .send("GET", "/api/org", Auth::Basic("Admin", "wrong"), None)
                .await;
            assert!(is_authn_body(&resp.body, "password-auth.failed"));
        }
        let locked = sim.admin("GET", "/api/org", None).await;
        assert_eq!(locked.status, 401);
        assert!(
            is_authn_body(&locked.body, id),
            "{profile}: {}",
            locked.text
        );
        sim.handle.advance_clock(Duration::minutes(5));
        assert_eq!(sim.admin("GET", "/api/org", None).await.status, 200);
    }
}

// With wrong_password_400 only a wrong password is 400; a locked login
// still answers 401 login-attempt.blocked (§2.4).
#[tokio::test]
async fn locked_login_is_401_with_wrong_password_400() {
    let mut config = SimConfig::new(Profile::V10_4);
    config.options.wrong_password_400 = true;
    let sim = Sim::start_with(config).await;
    for _ in 0..5 {
        let resp = sim
            .send("GET", "/api/org", Auth::Basic("admin", "wrong"), None)
            .await;
        assert_eq!(resp.status, 400);
        assert!(is_authn_body(&resp.body, "password-auth.failed"));
    }
    let locked = sim.admin("GET", "/api/org", None).await;
    assert_eq!(locked.status, 401, "{}", locked.text);
    assert_eq!(locked.body["statusCode"], 401);
    assert!(is_authn_body(&locked.body, "login-attempt.blocked"));
}

// X-Grafana-Org-Id: 0 names no org: tokens keep their org, users get
// their current org.
#[tokio::test]
async fn org_header_zero_names_no_org() {
    let mut sim = Sim::with_estate(Profile::V10_4, two_orgs()).await;
    let sa = sim.create_sa("bot", "Viewer").await;
    let (_, token) = sim.create_token(sa, "t").await;
    sim.org_header = Some(0);
    let resp = sim
        .send("GET", "/api/org", Auth::Bearer(&token), None)
        .await;
    assert_eq!((resp.status, resp.body["id"].clone()), (200, json!(1)));
    let resp = sim.admin("GET", "/api/org", None).await;
    assert_eq!((resp.status, resp.body["id"].clone()), (200, json!(1)));
    let resp = sim
        .send("GET", "/api/org?targetOrgId=0", Auth::Bearer(&token), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text);
}
