//! DTO shapes, validation errors and smaller route behaviours.

use chrono::Duration;
use grafana_sim::{Profile, Settings, SimConfig};
use serde_json::json;

use crate::common::{Auth, Sim};

// HEAD /api/health has no body; /healthz answers plain "Ok".
#[tokio::test]
async fn health_head_and_healthz() {
    let sim = Sim::start(Profile::V11_6).await;
    let head = sim.send("HEAD", "/api/health", Auth::None, None).await;
    assert_eq!((head.status, head.text.as_str()), (200, ""));
    let get = sim.send("GET", "/api/health", Auth::None, None).await;
    assert_eq!(get.body["version"], "11.6.0");
    assert!(
        get.text.contains("\n  \"database\""),
        "pretty-printed: {}",
        get.text
    );
    let healthz = sim.send("GET", "/healthz", Auth::None, None).await;
    assert_eq!(healthz.text, "Ok");
}

// The SA profile omits tokens when 0 from 10.0, keeps teams null, has times.
#[tokio::test]
async fn sa_profile_dto_per_era() {
    for profile in [Profile::V9_5, Profile::V10_0] {
        let sim = Sim::start(profile).await;
        let sa = sim.create_sa("bot", "Viewer").await;
        let got = sim
            .admin("GET", &format!("/api/serviceaccounts/{sa}"), None)
            .await;
        assert_eq!(
            got.body.get("tokens").is_some(),
            profile < Profile::V10_0,
            "{profile}"
        );
        assert!(got.body["teams"].is_null());
        assert!(got.body["createdAt"].as_str().unwrap().ends_with('Z'));
        assert!(got.body["avatarUrl"]
            .as_str()
            .unwrap()
            .starts_with("/avatar/"));
        sim.create_token(sa, "t").await;
        let got = sim
            .admin("GET", &format!("/api/serviceaccounts/{sa}"), None)
            .await;
        assert_eq!(got.body["tokens"], 1);
    }
}

// secondsUntilExpiration is filled only within 7 days of expiry.
#[tokio::test]
async fn seconds_until_expiration_rule() {
    let sim = Sim::start(Profile::V10_4).await;
    let sa = sim.create_sa("bot", "Viewer").await;
    let path = format!("/api/serviceaccounts/{sa}/tokens");
    for (name, ttl) in [("a-soon", 3600), ("b-later", 86400 * 30)] {
        let body = json!({"name": name, "secondsToLive": ttl});
        assert_eq!(sim.admin("POST", &path, Some(body)).await.status, 200);
    }
    let list = sim.admin("GET", &path, None).await;
    let soon = list.body[0]["secondsUntilExpiration"].as_f64().unwrap();
    assert!(soon > 3500.0 && soon <= 3600.0, "{soon}");
    assert_eq!(list.body[1]["secondsUntilExpiration"], 0.0);
    assert!(list.body[1]["expiration"].is_string());
}

// Invalid roles answer 400, roles above the caller 403, bad bodies 400.
#[tokio::test]
async fn sa_validation_errors_per_era() {
    for profile in [Profile::V9_1, Profile::V10_4] {
        let sim = Sim::with_estate(
            profile,
            json!({"users": [
            {"login": "ed", "password": "e", "orgs": {"1": "Editor"},
             "permissions": ["serviceaccounts:*"]}]}),
        )
        .await;
        let bad_role = json!({"name": "x", "role": "Boss"});
        let resp = sim
            .admin("POST", "/api/serviceaccounts", Some(bad_role))
            .await;
        assert_eq!(resp.status, 400, "{profile}");
        if profile == Profile::V10_4 {
            assert_eq!(
                resp.body["messageId"],
                "serviceaccounts.ErrInvalidRoleSpecified"
            );
        }
        let sa = sim.create_sa("bot", "Viewer").await;
        let up = json!({"role": "Admin"});
        let editor = Auth::Basic("ed", "e");
        let path = format!("/api/serviceaccounts/{sa}");
        let resp = sim.send("PATCH", &path, editor, Some(up)).await;
        assert_eq!(resp.status, 403, "{profile}: {}", resp.text);
        let role = sim.handle.with_state(|s| s.user(sa).unwrap().sa_role());
        assert_eq!(role, grafana_sim::Role::Viewer);
        let garbage = sim
            .send("POST", "/api/serviceaccounts", Auth::Admin, None)
            .await;
        assert_eq!(garbage.body, json!({"message": "Bad request data"}));
        let dup = sim
            .admin("POST", "/api/serviceaccounts", Some(json!({"name": "bot"})))
            .await;
        assert_eq!(dup.status, 400, "{profile}: login taken");
    }
}

// Tokens of another org's SA or another SA cannot be reached.
#[tokio::test]
async fn tokens_are_org_and_sa_scoped() {
    let mut sim = Sim::with_estate(Profile::V10_4, json!({"orgs": [{"id": 2, "name": "b"}]})).await;
    let a = sim.create_sa("a", "Viewer").await;
    let b = sim.create_sa("b", "Viewer").await;
    let (tid, _) = sim.create_token(a, "t").await;
    let wrong_sa = sim
        .admin(
            "DELETE",
            &format!("/api/serviceaccounts/{b}/tokens/{tid}"),
            None,
        )
        .await;
    assert_eq!(wrong_sa.status, 404);
    assert_eq!(
        wrong_sa.body["messageId"],
        "serviceaccounts.ErrTokenNotFound"
    );
    sim.org_header = Some(2);
    let other_org = sim
        .admin(
            "POST",
            &format!("/api/serviceaccounts/{a}/tokens"),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(other_org.status, 404);
    let listed = sim
        .admin("GET", &format!("/api/serviceaccounts/{a}/tokens"), None)
        .await;
    assert_eq!(listed.body, json!([]), "unknown-to-org SA lists nothing");
    let bad_id = sim
        .admin(
            "DELETE",
            &format!("/api/serviceaccounts/{a}/tokens/x"),
            None,
        )
        .await;
    assert_eq!(bad_id.status, 404, "SA checked before the token id");
}

// Key creation errors: role, ceiling, duplicate, lifetime limits.
#[tokio::test]
async fn key_create_errors() {
    let mut config = SimConfig::new(Profile::V10_4);
    config.settings = Settings {
        api_key_max_seconds_to_live: 3600,
        ..Settings::default()
    };
    let sim = Sim::start_with(config).await;
    let create = |body| sim.admin("POST", "/api/auth/keys", Some(body));
    let resp = create(json!({"name": "a", "role": "Root", "secondsToLive": 60})).await;
    assert_eq!(resp.body, json!({"message": "Invalid role specified"}));
    let resp = create(json!({"name": "a", "role": "Viewer"})).await;
    assert_eq!(
        resp.body["message"],
        "Number of seconds before expiration should be set"
    );
    let resp = create(json!({"name": "a", "role": "Viewer", "secondsToLive": 7200})).await;
    assert_eq!(resp.status, 400);
    assert_eq!(
        create(json!({"name": "a", "role": "Viewer", "secondsToLive": 60}))
            .await
            .status,
        200
    );
    let dup = create(json!({"name": "a", "role": "Viewer", "secondsToLive": 60})).await;
    assert_eq!(dup.status, 409);
}

// Org routes: by id (400, 404), current org per header, signed-in user.
#[tokio::test]
async fn org_routes_and_user() {
    let mut sim = Sim::with_estate(Profile::V10_4, json!({"orgs": [{"id": 2, "name": "b"}]})).await;
    assert_eq!(sim.admin("GET", "/api/orgs/x", None).await.status, 400);
    assert_eq!(sim.admin("GET", "/api/orgs/9", None).await.status, 404);
    let two = sim.admin("GET", "/api/orgs/2", None).await;
    assert_eq!(two.body["address"]["city"], "");
    sim.org_header = Some(2);
    assert_eq!(sim.admin("GET", "/api/org", None).await.body["name"], "b");
    let user = sim.admin("GET", "/api/user", None).await;
    assert_eq!(
        (user.body["login"].clone(), user.body["orgId"].clone()),
        (json!("admin"), json!(2))
    );
    assert_eq!(user.body["isGrafanaAdmin"], true);
}

// A member may read another org it belongs to by id, not one it does not.
#[tokio::test]
async fn org_by_id_for_members() {
    let estate = json!({"orgs": [{"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
                        "users": [{"login": "u", "password": "p",
                                   "orgs": {"1": "Viewer", "2": "Viewer"}}]});
    let sim = Sim::with_estate(Profile::V10_4, estate).await;
    let user = Auth::Basic("u", "p");
    assert_eq!(
        sim.send("GET", "/api/orgs/2", user, None).await.body["name"],
        "b"
    );
    assert_eq!(sim.send("GET", "/api/orgs/3", user, None).await.status, 403);
}

// A legacy key with the right name but a wrong secret is refused.
#[tokio::test]
async fn legacy_key_secret_is_checked() {
    let sim = Sim::start(Profile::V10_0).await;
    sim.create_key(1, "ci", "Admin");
    let forged = grafana_sim::credential::encode_legacy(1, "ci", "not-the-secret");
    let resp = sim
        .send("GET", "/api/org", Auth::Bearer(&forged), None)
        .await;
    assert_eq!(
        (resp.status, resp.body),
        (401, json!({"message": "invalid API key"}))
    );
}

// The per-SA token limit refuses creation once reached, expired ones included.
#[tokio::test]
async fn token_limit_per_service_account() {
    let mut config = SimConfig::new(Profile::V11_6);
    config.settings.max_tokens_per_service_account = Some(2);
    let sim = Sim::start_with(config).await;
    let sa = sim.create_sa("ci", "Viewer").await;
    let path = format!("/api/serviceaccounts/{sa}/tokens");
    sim.admin(
        "POST",
        &path,
        Some(json!({"name": "a", "secondsToLive": 1})),
    )
    .await;
    sim.create_token(sa, "b").await;
    sim.handle.advance_clock(Duration::seconds(5));
    let third = sim.admin("POST", &path, Some(json!({"name": "c"}))).await;
    assert_eq!(third.status, 400);
    assert_eq!(
        third.body["messageId"],
        "serviceaccounts.ErrTokenLimitReached"
    );
    let expired = sim
        .admin(
            "GET",
            "/api/serviceaccounts/search?expiredTokens=true",
            None,
        )
        .await;
    assert_eq!(expired.body["totalCount"], 1);
}

// Managed (external) SAs show isExternal from 10.4 on.
#[tokio::test]
async fn external_service_accounts_are_flagged() {
    let estate = json!({"service_accounts": [{"org": 1, "name": "extsvc-plugin",
        "login": "sa-1-extsvc-plugin", "role": "Admin", "external": true}]});
    let sim = Sim::with_estate(Profile::V11_6, estate).await;
    let search = sim.admin("GET", "/api/serviceaccounts/search", None).await;
    assert_eq!(search.body["serviceAccounts"][0]["isExternal"], true);
}

// Token counts stop at the 300 cap, except in 12.1 search (GROUP BY).
#[tokio::test]
async fn token_counts_per_era() {
    for (profile, search_count) in [(Profile::V11_6, 300), (Profile::V12_1, 301)] {
        let sim = Sim::start(profile).await;
        let sa = sim.create_sa("bot", "Viewer").await;
        for i in 0..301 {
            let m = json!({"op": "create_token", "service_account_id": sa,
                           "name": format!("t{i}")});
            sim.handle
                .mutate(serde_json::from_value(m).unwrap())
                .unwrap();
        }
        let search = sim.admin("GET", "/api/serviceaccounts/search", None).await;
        assert_eq!(
            search.body["serviceAccounts"][0]["tokens"], search_count,
            "{profile}"
        );
        let get = sim
            .admin("GET", &format!("/api/serviceaccounts/{sa}"), None)
            .await;
        assert_eq!(get.body["tokens"], 300, "{profile}");
    }
}

// Key creation refuses role None where SA creation does (before 10.0).
#[tokio::test]
async fn key_create_role_none_per_profile() {
    for (profile, want) in [
        (Profile::V9_1, 400),
        (Profile::V9_5, 400),
        (Profile::V10_0, 200),
        (Profile::V10_4, 200),
    ] {
        let sim = Sim::start(profile).await;
        let body = json!({"name": "k", "role": "None"});
        let resp = sim.admin("POST", "/api/auth/keys", Some(body)).await;
        assert_eq!(resp.status, want, "{profile}: {}", resp.text);
        if want == 400 {
            let message = &resp.body["message"];
            assert_eq!(message, "Invalid role specified", "{profile}");
        }
    }
}

// secondsUntilExpiration is written as Go writes a whole float64: no `.0`.
#[tokio::test]
async fn seconds_until_expiration_is_a_whole_number() {
    let sim = Sim::start(Profile::V10_4).await;
    let sa = sim.create_sa("bot", "Viewer").await;
    let path = format!("/api/serviceaccounts/{sa}/tokens");
    for (name, ttl) in [("a-soon", 3600), ("b-never", 0)] {
        let body = json!({"name": name, "secondsToLive": ttl});
        assert_eq!(sim.admin("POST", &path, Some(body)).await.status, 200);
    }
    let list = sim.admin("GET", &path, None).await;
    let soon = &list.body[0]["secondsUntilExpiration"];
    assert!(soon.is_u64() && soon.as_u64() > Some(3500), "{}", list.text);
    let field = r#""secondsUntilExpiration":"#;
    let values: Vec<&str> = list.text.split(field).skip(1).collect();
    assert_eq!(values.len(), 2, "{}", list.text);
    for value in values {
        let number: String = value
            .chars()
            .take_while(|c| *c != ',' && *c != '}')
            .collect();
        assert!(number.chars().all(|c| c.is_ascii_digit()), "{number}");
    }
}

// The org query is SQLite's `LIKE 'q%'`: case-insensitive for ASCII only.
#[tokio::test]
async fn org_query_is_case_insensitive_for_ascii() {
    let orgs = json!({"orgs": [{"id": 2, "name": "Team-B"}, {"id": 3, "name": "payments"},
                                {"id": 4, "name": "Équipe"}]});
    let sim = Sim::with_estate(Profile::V10_4, orgs).await;
    let ids = |body: &serde_json::Value| -> Vec<i64> {
        let items = body.as_array().cloned().unwrap_or_default();
        items.iter().filter_map(|o| o["id"].as_i64()).collect()
    };
    for (query, want) in [
        ("team", vec![2]),
        ("PAY", vec![3]),
        ("main", vec![1]),
        ("Équipe", vec![4]),
        ("équipe", vec![]),
        ("t_am", vec![2]),
    ] {
        let path = format!("/api/orgs?query={}", urlencode(query));
        let resp = sim.admin("GET", &path, None).await;
        assert_eq!(ids(&resp.body), want, "{query}: {}", resp.text);
    }
}

fn urlencode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

// An external SA without a login gets `sa-<org>-extsvc-<name>` (§9.2).
#[tokio::test]
async fn external_service_account_login_is_derived() {
    let estate = json!({"orgs": [{"id": 2, "name": "b"}],
        "service_accounts": [{"org": 2, "name": "My Plugin", "role": "Admin",
                              "external": true}]});
    let sim = Sim::with_estate(Profile::V11_6, estate).await;
    sim.handle.with_state(|state| {
        let logins: Vec<String> = state
            .users()
            .filter(|u| u.service_account.is_some())
            .map(|u| u.login.clone())
            .collect();
        assert_eq!(logins, ["sa-2-extsvc-my-plugin"]);
    });
}

// A `v`-prefixed full version selects its profile and health reports it
// without the `v`.
#[tokio::test]
async fn v_prefixed_version_is_reported_without_v() {
    let config = SimConfig::for_version("v11.2.1").unwrap();
    assert_eq!(config.profile, Profile::V10_4);
    let sim = Sim::start_with(config).await;
    let health = sim.send("GET", "/api/health", Auth::None, None).await;
    assert_eq!(health.body["version"], "11.2.1", "{}", health.text);
    let named = SimConfig::for_version("10.4").unwrap();
    assert_eq!(named.version, None);
}
