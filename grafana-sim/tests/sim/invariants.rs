//! The invariants listed under the §12 table, for every profile.

use chrono::Duration;
use grafana_sim::Profile;
use serde_json::json;

use crate::common::{profiles_before, Sim};

// (org, name) is unique across keys and tokens; other orgs are free.
#[tokio::test]
async fn key_and_token_names_share_one_namespace() {
    for profile in Profile::ALL {
        let sim = Sim::with_estate(profile, json!({"orgs": [{"id": 2, "name": "b"}]})).await;
        sim.create_key(1, "shared", "Viewer");
        let sa = sim.create_sa("bot", "Viewer").await;
        let path = format!("/api/serviceaccounts/{sa}/tokens");
        let resp = sim
            .admin("POST", &path, Some(json!({"name": "shared"})))
            .await;
        assert_eq!(resp.status, profile.duplicate_token_status(), "{profile}");
        sim.create_key(2, "shared", "Viewer");
    }
}

// The key list hides migrated and expired keys, sorts by name, caps at 100.
#[tokio::test]
async fn key_list_filters_sorts_and_caps() {
    for profile in profiles_before(Profile::V11_6) {
        let sim = Sim::start(profile).await;
        for i in (0..105).rev() {
            sim.create_key(1, &format!("k{i:03}"), "Viewer");
        }
        let expired = json!({"op": "create_api_key", "org": 1, "name": "a-expired",
                             "role": "Viewer", "seconds_to_live": 10});
        sim.handle
            .mutate(serde_json::from_value(expired).unwrap())
            .unwrap();
        sim.handle.advance_clock(Duration::seconds(20));
        let resp = sim.admin("GET", "/api/auth/keys", None).await;
        let list = resp.body.as_array().unwrap();
        assert_eq!(list.len(), 100, "{profile}");
        assert_eq!(list[0]["name"], "k000", "{profile}: expired hidden, sorted");
        let all = sim
            .admin("GET", "/api/auth/keys?includeExpired=true", None)
            .await;
        assert_eq!(all.body[0]["name"], "a-expired", "{profile}");
        let k0 = list[0]["id"].as_i64().unwrap();
        sim.admin("POST", &format!("/api/serviceaccounts/migrate/{k0}"), None)
            .await;
        let after = sim.admin("GET", "/api/auth/keys", None).await;
        assert_eq!(
            after.body[0]["name"], "k001",
            "{profile}: migrated key hidden"
        );
    }
}

// Migration keeps id, name, secret and expiry; the SA has the key's role.
#[tokio::test]
async fn migration_preserves_the_key() {
    for profile in profiles_before(Profile::V12_1) {
        let sim = Sim::start(profile).await;
        let m = json!({"op": "create_api_key", "org": 1, "name": "deploy",
                       "role": "Editor", "seconds_to_live": 86400});
        let out = sim
            .handle
            .mutate(serde_json::from_value(m).unwrap())
            .unwrap();
        let (id, key) = (out.id.unwrap(), out.key.unwrap());
        let before = sim.handle.with_state(|s| s.key(id).unwrap().expires);
        let resp = sim
            .admin("POST", &format!("/api/serviceaccounts/migrate/{id}"), None)
            .await;
        assert_eq!(resp.status, 200, "{profile}");
        let search = sim
            .admin("GET", "/api/serviceaccounts/search?query=autogen", None)
            .await;
        let sa = &search.body["serviceAccounts"][0];
        assert_eq!(sa["name"], "sa-autogen-deploy", "{profile}");
        assert_eq!(sa["role"], "Editor");
        assert_eq!(sa["tokens"], 1);
        let sa_id = sa["id"].as_i64().unwrap();
        let tokens = sim
            .admin("GET", &format!("/api/serviceaccounts/{sa_id}/tokens"), None)
            .await;
        assert_eq!(tokens.body[0]["id"], id);
        assert_eq!(tokens.body[0]["name"], "deploy");
        let after = sim.handle.with_state(|s| s.key(id).unwrap().expires);
        assert_eq!(after, before);
        let who = sim.handle.whoami(&key).unwrap();
        assert_eq!(
            who.user_id,
            Some(sa_id),
            "{profile}: old secret is now the SA"
        );
    }
}

// Deleting an SA deletes its tokens (and so kills a migrated key).
#[tokio::test]
async fn deleting_an_sa_deletes_its_tokens() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let sa = sim.create_sa("bot", "Viewer").await;
        let (token_id, secret) = sim.create_token(sa, "t").await;
        let resp = sim
            .admin("DELETE", &format!("/api/serviceaccounts/{sa}"), None)
            .await;
        assert_eq!(
            resp.body,
            json!({"message": "Service account deleted"}),
            "{profile}"
        );
        assert!(sim.handle.with_state(|s| s.key(token_id).is_none()));
        assert!(sim.handle.whoami(&secret).is_err());
    }
}

// /api/orgs pages from 0; SA search pages from 1 with totalCount.
#[tokio::test]
async fn paging_bases() {
    let orgs: Vec<_> = (2..=5)
        .map(|i| json!({"id": i, "name": format!("o{i}")}))
        .collect();
    let sim = Sim::with_estate(Profile::V10_4, json!({ "orgs": orgs })).await;
    let page0 = sim.admin("GET", "/api/orgs?perpage=2&page=0", None).await;
    assert_eq!(
        page0.body,
        json!([{"id": 1, "name": "Main Org."}, {"id": 2, "name": "o2"}])
    );
    let page1 = sim.admin("GET", "/api/orgs?perpage=2&page=1", None).await;
    assert_eq!(page1.body[0]["id"], 3);
    for name in ["c", "a", "b"] {
        sim.create_sa(name, "Viewer").await;
    }
    let p1 = sim
        .admin("GET", "/api/serviceaccounts/search?perpage=2&page=1", None)
        .await;
    assert_eq!(p1.body["totalCount"], 3);
    assert_eq!(p1.body["serviceAccounts"][0]["name"], "a");
    let p0 = sim
        .admin("GET", "/api/serviceaccounts/search?perpage=2&page=0", None)
        .await;
    assert_eq!(p0.body["page"], 1, "page 0 is treated as 1");
    let p2 = sim
        .admin("GET", "/api/serviceaccounts/search?perpage=2&page=2", None)
        .await;
    assert_eq!(p2.body["serviceAccounts"][0]["name"], "c");
}

// Create SA is 201, create token 200, and other successes 200.
#[tokio::test]
async fn success_statuses() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let sa = sim.create_sa("bot", "Viewer").await; // asserts 201
        let path = format!("/api/serviceaccounts/{sa}/tokens");
        let resp = sim.admin("POST", &path, Some(json!({"name": "t"}))).await;
        assert_eq!(resp.status, 200, "{profile}");
        let patch = json!({"name": "renamed", "role": "Editor"});
        let resp = sim
            .admin("PATCH", &format!("/api/serviceaccounts/{sa}"), Some(patch))
            .await;
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body["message"], "Service account updated");
        assert_eq!(resp.body["serviceaccount"]["name"], "renamed");
        assert_eq!(resp.body["serviceaccount"]["role"], "Editor");
        let login = resp.body["serviceaccount"]["login"].as_str().unwrap();
        assert!(login.ends_with("bot"), "{profile}: rename keeps the login");
    }
}

// The search query matches substrings of name and login; disabled filters.
#[tokio::test]
async fn search_query_and_disabled_filter() {
    let sim = Sim::start(Profile::V11_6).await;
    let a = sim.create_sa("Deploy Bot", "Viewer").await;
    sim.create_sa("exporter", "Viewer").await;
    let patch = json!({"isDisabled": true});
    sim.admin("PATCH", &format!("/api/serviceaccounts/{a}"), Some(patch))
        .await;
    let hit = sim
        .admin("GET", "/api/serviceaccounts/search?query=loy%20b", None)
        .await;
    assert_eq!(hit.body["totalCount"], 1);
    let disabled = sim
        .admin("GET", "/api/serviceaccounts/search?disabled=true", None)
        .await;
    assert_eq!(disabled.body["serviceAccounts"][0]["id"], a);
    assert_eq!(disabled.body["totalCount"], 1);
}

// Generated keys are used and expire only after creation, never used
// after expiry; later rounds are suffixed -2, -3… as the README says.
#[test]
fn generated_estates_are_consistent() {
    use grafana_sim::generate::{generate, GenerateConfig};
    for seed in 0..20 {
        let config = GenerateConfig {
            orgs: 2,
            keys_per_org: 300,
            seed,
            now: chrono::Utc::now(),
        };
        let estate = generate(&config);
        for key in &estate.api_keys {
            let created = key.created.expect("generated keys have created");
            let used_in_time = key
                .last_used
                .is_none_or(|u| u >= created && key.expires.is_none_or(|e| u <= e));
            assert!(used_in_time, "seed {seed}: {key:?}");
            assert!(key.expires.is_none_or(|e| e >= created), "{key:?}");
        }
        let names: Vec<&str> = estate.api_keys.iter().map(|k| k.name.as_str()).collect();
        assert!(names.contains(&"grafana-backup-2"), "seed {seed}");
        assert!(!names.contains(&"grafana-backup-1"), "seed {seed}");
        let mut unique = estate.api_keys.clone();
        unique.sort_by(|a, b| (a.org, &a.name).cmp(&(b.org, &b.name)));
        unique.dedup_by(|a, b| (a.org, &a.name) == (b.org, &b.name));
        assert_eq!(unique.len(), estate.api_keys.len(), "seed {seed}");
    }
}
