//! One test per row of the grafana-api.md §12 table, across profiles.

use grafana_sim::{Options, Profile, Settings, SimConfig};
use serde_json::json;

use crate::common::{profiles_before, profiles_from, Auth, Sim};

// SA login is sa-<name> before 10.4.x and sa-<org>-<name> from it.
#[tokio::test]
async fn sa_login_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let body = json!({"name": "CI Bot"});
        let resp = sim.admin("POST", "/api/serviceaccounts", Some(body)).await;
        assert_eq!(resp.status, 201, "{profile}");
        let want = if profile >= Profile::V10_4 {
            "sa-1-ci-bot"
        } else {
            "sa-ci-bot"
        };
        assert_eq!(resp.body["login"], want, "{profile}");
        assert_eq!(
            resp.body["avatarUrl"], "",
            "{profile}: create leaves avatarUrl empty"
        );
    }
}

// SA errors are classic before 10.0 and errutil-shaped from it.
#[tokio::test]
async fn sa_error_shape_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let resp = sim.admin("GET", "/api/serviceaccounts/999", None).await;
        assert_eq!(resp.status, 404, "{profile}");
        if profile >= Profile::V10_0 {
            assert_eq!(
                resp.body["messageId"], "serviceaccounts.ErrNotFound",
                "{profile}"
            );
            assert_eq!(resp.body["statusCode"], 404);
        } else {
            assert_eq!(
                resp.body,
                json!({"message": "Failed to retrieve service account"})
            );
        }
    }
}

// A duplicate token name answers 409 before 10.0 and 400 from it.
#[tokio::test]
async fn duplicate_token_status_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let sa = sim.create_sa("bot", "Viewer").await;
        sim.create_token(sa, "t").await;
        let path = format!("/api/serviceaccounts/{sa}/tokens");
        let resp = sim.admin("POST", &path, Some(json!({"name": "t"}))).await;
        let want = if profile >= Profile::V10_0 { 400 } else { 409 };
        assert_eq!(resp.status, want, "{profile}");
        assert_eq!(sim.handle.with_state(|s| s.token_count(sa)), 1, "{profile}");
    }
}

// Deleting a missing SA answers 500 before 10.0 and 404 from it.
#[tokio::test]
async fn delete_missing_sa_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let resp = sim.admin("DELETE", "/api/serviceaccounts/4242", None).await;
        let want = if profile >= Profile::V10_0 { 404 } else { 500 };
        assert_eq!(resp.status, want, "{profile}: {}", resp.text);
    }
}

// TokenDTO has lastUsedAt (null when unused) and isRevoked in every profile;
// the early-9.x option drops isRevoked.
#[tokio::test]
async fn token_dto_fields_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let sa = sim.create_sa("bot", "Viewer").await;
        sim.create_token(sa, "t").await;
        let resp = sim
            .admin("GET", &format!("/api/serviceaccounts/{sa}/tokens"), None)
            .await;
        let token = &resp.body[0];
        assert!(
            token.get("lastUsedAt").is_some_and(|v| v.is_null()),
            "{profile}"
        );
        assert_eq!(token["isRevoked"], false, "{profile}");
        assert_eq!(token["hasExpired"], false);
    }
    let mut config = SimConfig::new(Profile::V9_1);
    config.options.early_9x_tokens = true;
    let sim = Sim::start_with(config).await;
    let sa = sim.create_sa("bot", "Viewer").await;
    sim.create_token(sa, "t").await;
    let resp = sim
        .admin("GET", &format!("/api/serviceaccounts/{sa}/tokens"), None)
        .await;
    assert!(resp.body[0].get("isRevoked").is_none());
}

// The token list stops at 300, sorted by name; early 9.x has no cap.
#[tokio::test]
async fn token_list_cap_per_profile() {
    for (profile, early, want) in [
        (Profile::V9_1, false, 300),
        (Profile::V10_4, false, 300),
        (Profile::V12_1, false, 300),
        (Profile::V9_1, true, 301),
    ] {
        let mut config = SimConfig::new(profile);
        config.options.early_9x_tokens = early;
        let sim = Sim::start_with(config).await;
        let sa = sim.create_sa("bot", "Viewer").await;
        for i in 0..301 {
            let m = json!({"op": "create_token", "service_account_id": sa,
                           "name": format!("t{i:03}")});
            sim.handle
                .mutate(serde_json::from_value(m).unwrap())
                .unwrap();
        }
        let resp = sim
            .admin("GET", &format!("/api/serviceaccounts/{sa}/tokens"), None)
            .await;
        let list = resp.body.as_array().unwrap();
        assert_eq!(list.len(), want, "{profile} early={early}");
        assert_eq!(list[0]["name"], "t000");
    }
}

// The day-limit violation is JSON on 9.x and plain text from 10.0.
#[tokio::test]
async fn day_limit_body_per_profile() {
    for profile in Profile::ALL {
        let mut config = SimConfig::new(profile);
        config.settings = Settings {
            token_expiration_day_limit: 30,
            ..Settings::default()
        };
        let sim = Sim::start_with(config).await;
        let sa = sim.create_sa("bot", "Viewer").await;
        let path = format!("/api/serviceaccounts/{sa}/tokens");
        let long = json!({"name": "t", "secondsToLive": 86400 * 40});
        let resp = sim.admin("POST", &path, Some(long)).await;
        assert_eq!(resp.status, 400, "{profile}");
        let json_body = resp
            .content_type
            .as_deref()
            .is_some_and(|c| c.contains("json"));
        assert_eq!(json_body, profile < Profile::V10_0, "{profile}");
        assert!(resp.text.contains("exceeds the limit"), "{profile}");
        // secondsToLive = 0 passes and never expires.
        let zero = sim.admin("POST", &path, Some(json!({"name": "z"}))).await;
        assert_eq!(zero.status, 200, "{profile}");
    }
}

// The API key list carries lastUsedAt from 9.5 and is gone on 12.1.
#[tokio::test]
async fn key_list_last_used_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let (id, _) = sim.create_key(1, "k", "Viewer");
        let m = json!({"op": "mark_used", "credential_id": id});
        sim.handle
            .mutate(serde_json::from_value(m).unwrap())
            .unwrap();
        let resp = sim.admin("GET", "/api/auth/keys", None).await;
        if profile == Profile::V12_1 {
            assert_eq!(
                (resp.status, resp.body.clone()),
                (404, json!({"message": "Not found"}))
            );
            continue;
        }
        assert_eq!(resp.status, 200, "{profile}");
        let has = resp.body[0].get("lastUsedAt").is_some();
        assert_eq!(has, profile >= Profile::V9_5, "{profile}");
    }
}

// POST /api/auth/keys: 200 until 11.2, 410 on 11.3-12.0, 404 on 12.1.
#[tokio::test]
async fn key_create_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let body = json!({"name": "new", "role": "Viewer"});
        let resp = sim.admin("POST", "/api/auth/keys", Some(body)).await;
        let want = match profile {
            Profile::V11_3 | Profile::V11_6 => 410,
            Profile::V12_1 => 404,
            _ => 200,
        };
        assert_eq!(resp.status, want, "{profile}");
        let created = sim.handle.with_state(|s| s.key_by_name(1, "new").is_some());
        assert_eq!(created, want == 200, "{profile}");
        if want == 200 {
            let key = resp.body["key"].as_str().unwrap();
            assert!(key.starts_with("eyJrIjoi"));
            let who = sim.handle.whoami(key).unwrap();
            assert_eq!(who.org_role, Some(grafana_sim::Role::Viewer));
        }
    }
}

// GET and DELETE /api/auth/keys work until 12.0 and are 404 on 12.1.
#[tokio::test]
async fn key_delete_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let (id, _) = sim.create_key(1, "k", "Viewer");
        let resp = sim
            .admin("DELETE", &format!("/api/auth/keys/{id}"), None)
            .await;
        if profile == Profile::V12_1 {
            assert_eq!(resp.body, json!({"message": "Not found"}));
            assert!(sim.handle.with_state(|s| s.key(id).is_some()));
        } else {
            assert_eq!(
                resp.body,
                json!({"message": "API key deleted"}),
                "{profile}"
            );
            assert!(sim.handle.with_state(|s| s.key(id).is_none()));
        }
    }
}

// POST /migrate: 9.x message, 10.0+ result object, 12.1 absent.
#[tokio::test]
async fn bulk_migrate_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        sim.create_key(1, "a", "Editor");
        let resp = sim
            .admin("POST", "/api/serviceaccounts/migrate", None)
            .await;
        match profile {
            Profile::V9_1 | Profile::V9_5 => {
                let want = json!({"message": "API keys migrated to service accounts"});
                assert_eq!(resp.body, want, "{profile}");
            }
            Profile::V12_1 => assert_eq!(resp.status, 404),
            // 11.6+ converted the key at start already: nothing left.
            Profile::V11_6 => assert_eq!(resp.body["total"], 1, "{profile}"),
            _ => assert_eq!(resp.body["migrated"], 1, "{profile}"),
        }
    }
}

// A taken autogen login fails the key before 11.6 and gets -001 from it.
#[tokio::test]
async fn migration_login_collision_per_profile() {
    for profile in [Profile::V10_4, Profile::V11_3, Profile::V11_6] {
        let sim = Sim::start(profile).await;
        sim.create_sa("x", "Viewer").await;
        let login = grafana_sim::login::autogen(profile, 1, "ci", 0);
        sim.handle
            .with_state(|s| assert!(!s.is_login_taken(&login)));
        // Take the autogen login with a hand-made account (estate reload).
        let mut estate = sim.handle.export_estate();
        estate.service_accounts[0].login = Some(login.clone());
        sim.handle.load_estate(&estate).unwrap();
        let (key, _) = sim.create_key(1, "ci", "Viewer");
        let resp = sim
            .admin("POST", &format!("/api/serviceaccounts/migrate/{key}"), None)
            .await;
        let owner = sim
            .handle
            .with_state(|s| s.key(key).unwrap().service_account_id);
        if profile == Profile::V11_6 {
            assert_eq!(resp.status, 200);
            let retried = sim
                .handle
                .with_state(|s| s.user(owner.unwrap()).unwrap().login.clone());
            assert_eq!(retried, format!("{login}-001"));
        } else {
            assert_eq!(
                resp.body,
                json!({"message": "Error converting API key"}),
                "{profile}"
            );
            assert_eq!(owner, None, "{profile}");
        }
    }
}

// The 9.x helpers exist on 9.1 only.
#[tokio::test]
async fn nine_x_helpers_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let status = sim
            .admin("GET", "/api/serviceaccounts/migrationstatus", None)
            .await;
        let hide = sim
            .admin("POST", "/api/serviceaccounts/hideApiKeys", None)
            .await;
        if profile == Profile::V9_1 {
            assert_eq!(status.body, json!({"migrated": false}));
            assert_eq!(hide.body, json!({"message": "API keys hidden"}));
        } else {
            // The path falls through to /:id: 400 or, with UIDs, 404.
            assert!(
                matches!(status.status, 400 | 404),
                "{profile}: {}",
                status.status
            );
            assert_eq!(hide.status, 404, "{profile}");
        }
    }
}

// Keys are converted at startup on 11.6+ only.
#[tokio::test]
async fn startup_migration_per_profile() {
    for profile in Profile::ALL {
        let estate = json!({"api_keys": [{"org": 1, "name": "k", "role": "Editor"}]});
        let sim = Sim::with_estate(profile, estate).await;
        let owner = sim
            .handle
            .with_state(|s| s.key_by_name(1, "k").unwrap().service_account_id);
        assert_eq!(owner.is_some(), profile >= Profile::V11_6, "{profile}");
    }
}

// A wrong password answers 401, or 400 with the 10.x authnService option.
#[tokio::test]
async fn wrong_password_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let resp = sim
            .send("GET", "/api/org", Auth::Basic("admin", "bad"), None)
            .await;
        assert_eq!(resp.status, 401, "{profile}");
    }
    let mut config = SimConfig::new(Profile::V10_0);
    config.options = Options {
        wrong_password_400: true,
        ..Options::for_profile(Profile::V10_0)
    };
    let sim = Sim::start_with(config).await;
    let resp = sim
        .send("GET", "/api/org", Auth::Basic("admin", "bad"), None)
        .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.body["messageId"], "password-auth.failed");
}

// Plain API keys authenticate before 12.1 and get api-key.invalid on it.
#[tokio::test]
async fn plain_keys_authenticate_per_profile() {
    for profile in Profile::ALL {
        let sim = Sim::start(profile).await;
        let (_, key) = sim.create_key(1, "k", "Admin");
        let resp = sim.send("GET", "/api/org", Auth::Bearer(&key), None).await;
        if profile == Profile::V12_1 {
            assert_eq!(resp.status, 401);
            let want = json!({"extra": null, "message": "Invalid API key",
                              "messageId": "api-key.invalid", "statusCode": 401, "traceID": ""});
            assert_eq!(resp.body, want);
        } else {
            assert_eq!(resp.status, 200, "{profile}");
            assert_eq!(resp.body["id"], 1);
        }
    }
}

// SA routes accept UIDs from 11.6 (11.3 with the option); earlier 400.
#[tokio::test]
async fn sa_uid_paths_per_profile() {
    for (profile, option, accepts) in [
        (Profile::V10_4, false, false),
        (Profile::V11_3, false, false),
        (Profile::V11_3, true, true),
        (Profile::V11_6, false, true),
        (Profile::V12_1, false, true),
    ] {
        let mut config = SimConfig::new(profile);
        config.options.sa_uid_paths = option;
        let sim = Sim::start_with(config).await;
        let id = sim.create_sa("bot", "Viewer").await;
        let uid = sim.handle.with_state(|s| s.user(id).unwrap().uid.clone());
        let resp = sim
            .admin("GET", &format!("/api/serviceaccounts/{uid}"), None)
            .await;
        if accepts {
            assert_eq!(resp.body["id"], id, "{profile}");
            assert_eq!(resp.body["uid"], uid.as_str());
            let miss = sim.admin("GET", "/api/serviceaccounts/nouid", None).await;
            assert_eq!(miss.body, json!({"message": "Not found"}));
        } else {
            assert_eq!(resp.status, 400, "{profile}");
            assert_eq!(
                resp.body,
                json!({"message": "Service Account ID is invalid"})
            );
        }
    }
}

// Role None is refused before 10.0 and accepted from it.
#[tokio::test]
async fn role_none_per_profile() {
    for profile in profiles_before(Profile::V10_0) {
        let sim = Sim::start(profile).await;
        let body = json!({"name": "n", "role": "None"});
        let resp = sim.admin("POST", "/api/serviceaccounts", Some(body)).await;
        assert_eq!(resp.status, 400, "{profile}");
    }
    for profile in profiles_from(Profile::V10_0) {
        let sim = Sim::start(profile).await;
        let body = json!({"name": "n", "role": "None"});
        let resp = sim.admin("POST", "/api/serviceaccounts", Some(body)).await;
        assert_eq!(
            (resp.status, resp.body["role"].clone()),
            (201, json!("None")),
            "{profile}"
        );
    }
}
