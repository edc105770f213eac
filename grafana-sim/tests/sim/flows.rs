//! Whole migrations over HTTP, checked by state and by credentials.

use grafana_sim::{AuthKind, Profile};
use serde_json::json;

use crate::common::{Auth, Sim};

fn estate() -> serde_json::Value {
    json!({"api_keys": [
        {"id": 10, "org": 1, "name": "ci", "role": "Editor"},
        {"id": 11, "org": 1, "name": "grafana-backup", "role": "Admin",
         "expires": "2099-01-01T00:00:00Z"}
    ]})
}

// A 9.x manual migration: create SA, token, delete key; new token works,
// old key is gone.
#[tokio::test]
async fn manual_migration_on_9x() {
    let sim = Sim::with_estate(Profile::V9_1, estate()).await;
    let sa = sim.create_sa("ci", "Editor").await;
    let (_, token) = sim.create_token(sa, "ci-token").await;
    let resp = sim.admin("DELETE", "/api/auth/keys/10", None).await;
    assert_eq!(resp.body, json!({"message": "API key deleted"}));
    let keys = sim.admin("GET", "/api/auth/keys", None).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 1);
    let me = sim
        .send("GET", "/api/org", Auth::Bearer(&token), None)
        .await;
    assert_eq!(me.status, 200);
    let who = sim.handle.whoami(&token).unwrap();
    assert_eq!(
        (who.user_id, who.kind),
        (Some(sa), AuthKind::ServiceAccountToken)
    );
    let login = sim.handle.with_state(|s| s.user(sa).unwrap().login.clone());
    assert_eq!(login, "sa-ci");
}

// A 10.x bulk migration: keys become sa-autogen SAs; old secrets work as
// the SA and stop when it is disabled, and again when re-enabled.
#[tokio::test]
async fn bulk_migration_on_10x_keeps_secrets() {
    let mut estate = estate();
    let (key, _) = grafana_sim::credential::new_legacy(&mut rand::thread_rng(), 1, "ci");
    estate["api_keys"][0]["secret"] = json!(key);
    let sim = Sim::with_estate(Profile::V10_4, estate).await;
    let before = sim.handle.whoami(&key).unwrap();
    assert_eq!(before.kind, AuthKind::ApiKey);
    let resp = sim
        .admin("POST", "/api/serviceaccounts/migrate", None)
        .await;
    let want = json!({"total": 2, "migrated": 2, "failed": 0,
                      "failedApikeyIDs": [], "failedDetails": []});
    assert_eq!(resp.body, want);
    assert_eq!(
        sim.admin("GET", "/api/auth/keys", None).await.body,
        json!([])
    );
    let search = sim
        .admin(
            "GET",
            "/api/serviceaccounts/search?query=sa-autogen-ci",
            None,
        )
        .await;
    let sa = search.body["serviceAccounts"][0]["id"].as_i64().unwrap();
    assert_eq!(
        search.body["serviceAccounts"][0]["login"],
        "sa-autogen-1-ci"
    );
    let ok = sim.send("GET", "/api/org", Auth::Bearer(&key), None).await;
    assert_eq!(ok.status, 200);
    let who = sim.handle.whoami(&key).unwrap();
    assert_eq!(
        (who.user_id, who.kind),
        (Some(sa), AuthKind::ServiceAccountToken)
    );
    let off = json!({"isDisabled": true});
    sim.admin("PATCH", &format!("/api/serviceaccounts/{sa}"), Some(off))
        .await;
    let refused = sim.send("GET", "/api/org", Auth::Bearer(&key), None).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.body["messageId"], "identity.disabled");
    let on = json!({"isDisabled": false});
    sim.admin("PATCH", &format!("/api/serviceaccounts/{sa}"), Some(on))
        .await;
    let back = sim
        .send("GET", "/api/org", Auth::ApiKeyBasic(&key), None)
        .await;
    assert_eq!(back.status, 200);
}

// 9.x bulk migration stops at the first failure with 500, keeping earlier ones.
#[tokio::test]
async fn bulk_migration_on_9x_stops_at_first_failure() {
    let estate = json!({
        "api_keys": [
            {"org": 1, "name": "a", "role": "Viewer"},
            {"org": 1, "name": "b", "role": "Viewer"},
            {"org": 1, "name": "c", "role": "Viewer"}],
        "service_accounts": [{"org": 1, "name": "x", "login": "sa-autogen-1-b",
                              "role": "Viewer"}]});
    let sim = Sim::with_estate(Profile::V9_1, estate).await;
    let resp = sim
        .admin("POST", "/api/serviceaccounts/migrate", None)
        .await;
    assert_eq!(
        (resp.status, resp.body.clone()),
        (500, json!({"message": "Internal server error"}))
    );
    let keys = sim.admin("GET", "/api/auth/keys", None).await;
    let names: Vec<_> = keys
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].clone())
        .collect();
    assert_eq!(names, [json!("b"), json!("c")]);
    let status = sim
        .admin("GET", "/api/serviceaccounts/migrationstatus", None)
        .await;
    assert_eq!(status.body, json!({"migrated": false}));
}

// 10.x bulk migration goes past failures and reports them.
#[tokio::test]
async fn bulk_migration_on_10x_reports_failures() {
    let estate = json!({
        "api_keys": [{"id": 5, "org": 1, "name": "a", "role": "Viewer"},
                     {"id": 6, "org": 1, "name": "b", "role": "Viewer"}],
        "service_accounts": [{"org": 1, "name": "x", "login": "sa-autogen-1-a",
                              "role": "Viewer"}]});
    let sim = Sim::with_estate(Profile::V10_0, estate).await;
    let resp = sim
        .admin("POST", "/api/serviceaccounts/migrate", None)
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body["failedApikeyIDs"], json!([5]));
    assert_eq!(resp.body["migrated"], 1);
    let detail = resp.body["failedDetails"][0].as_str().unwrap();
    assert!(detail.starts_with("API key name: a - Error: "), "{detail}");
}

// Per-key migration: no-op 200 for a key not among plain keys, 500 when
// the org has none, 400 for a non-numeric id.
#[tokio::test]
async fn per_key_migration_quirks() {
    let sim = Sim::with_estate(Profile::V10_4, estate()).await;
    let noop = sim
        .admin("POST", "/api/serviceaccounts/migrate/999", None)
        .await;
    assert_eq!(noop.body, json!({"message": "Service accounts migrated"}));
    assert_eq!(
        sim.admin("GET", "/api/auth/keys", None)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let bad = sim
        .admin("POST", "/api/serviceaccounts/migrate/x", None)
        .await;
    assert_eq!(bad.body, json!({"message": "Key ID is invalid"}));
    sim.admin("POST", "/api/serviceaccounts/migrate", None)
        .await;
    let none = sim
        .admin("POST", "/api/serviceaccounts/migrate/10", None)
        .await;
    assert_eq!(
        (none.status, none.body),
        (500, json!({"message": "Error converting API key"}))
    );
}

// 9.x revert detaches the key and deletes the SA holding only that token.
#[tokio::test]
async fn revert_on_9x() {
    let sim = Sim::with_estate(Profile::V9_1, estate()).await;
    sim.admin("POST", "/api/serviceaccounts/migrate/10", None)
        .await;
    let sa = sim
        .handle
        .with_state(|s| s.key(10).unwrap().service_account_id.unwrap());
    let resp = sim
        .admin(
            "POST",
            &format!("/api/serviceaccounts/{sa}/revert/10"),
            None,
        )
        .await;
    assert_eq!(resp.status, 200);
    sim.handle.with_state(|s| {
        assert_eq!(s.key(10).unwrap().service_account_id, None);
        assert!(s.user(sa).is_none());
    });
}
