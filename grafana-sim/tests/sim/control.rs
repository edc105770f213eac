//! Clock, restart, request log and the `/__sim/` control API.

use chrono::Duration;
use grafana_sim::{AuthKind, Profile, SimConfig};
use serde_json::json;

use crate::common::{timed, Auth, Sim};

// Advancing the clock expires a token (expires <= now).
#[tokio::test]
async fn clock_expires_tokens() {
    let sim = Sim::start(Profile::V10_4).await;
    let sa = sim.create_sa("bot", "Viewer").await;
    let path = format!("/api/serviceaccounts/{sa}/tokens");
    let resp = sim
        .admin(
            "POST",
            &path,
            Some(json!({"name": "t", "secondsToLive": 3600})),
        )
        .await;
    let token = resp.body["key"].as_str().unwrap().to_string();
    assert_eq!(
        sim.send("GET", "/api/org", Auth::Bearer(&token), None)
            .await
            .status,
        200
    );
    let clock = sim
        .send(
            "POST",
            "/__sim/clock/advance",
            Auth::None,
            Some(json!({"seconds": 3600})),
        )
        .await;
    assert_eq!(clock.body["offset_seconds"], 3600);
    let resp = sim
        .send("GET", "/api/org", Auth::Bearer(&token), None)
        .await;
    assert_eq!(resp.status, 401);
    let list = sim.admin("GET", &path, None).await;
    assert_eq!(
        list.body[0]["hasExpired"], false,
        "hasExpired uses expires < now"
    );
    sim.handle.advance_clock(Duration::seconds(1));
    assert_eq!(
        sim.admin("GET", &path, None).await.body[0]["hasExpired"],
        true
    );
}

// Restart on 11.6 converts plain keys in every org, with -001 retries,
// keeps secrets working, and counts failures.
#[tokio::test]
async fn restart_converts_keys_on_11_6() {
    let estate = json!({"orgs": [{"id": 2, "name": "b"}]});
    let sim = Sim::with_estate(Profile::V11_6, estate).await;
    let (k1, secret) = sim.create_key(1, "CI Key", "Editor");
    sim.create_key(2, "ci key", "Viewer");
    let m = json!({"op": "create_service_account", "org": 1, "name": "autogen-1-ci-key",
                   "role": "Viewer"});
    sim.handle
        .mutate(serde_json::from_value(m).unwrap())
        .unwrap();
    // Take the plain autogen login of org 1 to force a retry.
    let mut estate = sim.handle.export_estate();
    let taken = estate
        .service_accounts
        .iter_mut()
        .find(|s| s.name == "autogen-1-ci-key")
        .unwrap();
    taken.login = Some("sa-autogen-1-ci-key".into());
    sim.handle.load_estate(&estate).unwrap();
    let summary = sim.send("POST", "/__sim/restart", Auth::None, None).await;
    assert_eq!(summary.body["migration_ran"], true);
    assert_eq!(
        (
            summary.body["total"].clone(),
            summary.body["migrated"].clone()
        ),
        (json!(2), json!(2))
    );
    let who = sim.handle.whoami(&secret).unwrap();
    assert_eq!(who.kind, AuthKind::ServiceAccountToken);
    let sa = sim
        .handle
        .with_state(|s| s.user(who.user_id.unwrap()).unwrap().clone());
    assert_eq!(
        (sa.name.as_str(), sa.login.as_str()),
        ("sa-autogen-CI Key", "sa-autogen-1-ci-key-001")
    );
    assert!(sim
        .handle
        .with_state(|s| s.user_by_login("sa-autogen-2-ci-key").is_some()));
    assert_eq!(sim.handle.with_state(|s| s.key(k1).unwrap().id), k1);
}

// With the lock option a second restart within 30 minutes does nothing.
#[tokio::test]
async fn restart_lock_option() {
    let mut config = SimConfig::new(Profile::V12_1);
    config.options.startup_migration_lock = true;
    let sim = Sim::start_with(config).await;
    sim.create_key(1, "late", "Viewer");
    assert!(!sim.handle.restart().migration_ran, "start took the lock");
    sim.handle.advance_clock(Duration::minutes(31));
    let summary = sim.handle.restart();
    assert_eq!((summary.migration_ran, summary.migrated), (true, 1));
    let unlocked = Sim::start(Profile::V12_1).await;
    assert!(
        unlocked.handle.restart().migration_ran,
        "no lock: every restart runs"
    );
    let old = Sim::start(Profile::V11_3).await;
    assert!(!old.handle.restart().migration_ran);
}

// The request log records method, route, status, org and auth kind, with
// counts and writes; the control API is not logged.
#[tokio::test]
async fn request_log_records_and_counts() {
    let sim = Sim::start(Profile::V10_4).await;
    sim.admin("GET", "/api/org", None).await;
    sim.create_sa("bot", "Viewer").await;
    sim.send("GET", "/api/nope", Auth::None, None).await;
    let records = sim.handle.requests();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].route, "GET /api/org");
    assert_eq!(
        (records[0].org, records[0].auth),
        (Some(1), AuthKind::Basic)
    );
    assert_eq!(
        (records[1].route.as_str(), records[1].status),
        ("POST /api/serviceaccounts", 201)
    );
    assert_eq!(
        (records[2].route.as_str(), records[2].status),
        ("unmatched", 404)
    );
    assert_eq!(sim.handle.write_count(), 1);
    let http = sim.send("GET", "/__sim/requests", Auth::None, None).await;
    assert_eq!(http.body["writes"], 1);
    assert_eq!(http.body["counts"].as_array().unwrap().len(), 3);
    sim.send("DELETE", "/__sim/requests", Auth::None, None)
        .await;
    assert!(sim.handle.requests().is_empty());
}

// Estate export over HTTP loads back into another simulator unchanged.
#[tokio::test]
async fn estate_round_trip_over_http() {
    let sim = Sim::start(Profile::V10_4).await;
    let sa = sim.create_sa("bot", "Editor").await;
    let (_, token) = sim.create_token(sa, "t").await;
    sim.create_key(1, "k", "Viewer");
    let exported = sim.send("GET", "/__sim/estate", Auth::None, None).await;
    assert!(!exported.text.contains(&token), "exports carry hashes only");
    let other = Sim::start(Profile::V10_4).await;
    let put = other
        .send(
            "PUT",
            "/__sim/estate",
            Auth::None,
            Some(exported.body.clone()),
        )
        .await;
    assert_eq!(put.status, 200);
    let again = other.send("GET", "/__sim/estate", Auth::None, None).await;
    assert_eq!(again.body, exported.body);
    assert_eq!(
        other
            .send("GET", "/api/org", Auth::Bearer(&token), None)
            .await
            .status,
        200
    );
    let bad = other
        .send("PUT", "/__sim/estate", Auth::None, Some(json!({"orgs": 3})))
        .await;
    assert_eq!(bad.status, 400);
}

// whoami answers the identity, or Grafana's 401 body, without side effects.
#[tokio::test]
async fn whoami_over_http() {
    let sim = Sim::start(Profile::V11_6).await;
    let resp = sim
        .send(
            "POST",
            "/__sim/whoami",
            Auth::None,
            Some(json!({"credential": "admin:admin"})),
        )
        .await;
    assert_eq!(resp.body["identity"]["login"], "admin");
    assert_eq!(resp.body["identity"]["server_admin"], true);
    for _ in 0..6 {
        let bad = sim
            .send(
                "POST",
                "/__sim/whoami",
                Auth::None,
                Some(json!({"credential": "admin:x"})),
            )
            .await;
        assert_eq!(bad.status, 401);
    }
    assert_eq!(
        sim.admin("GET", "/api/org", None).await.status,
        200,
        "whoami counts no failures"
    );
}

// Mutations over HTTP change state; a missing target is 404.
#[tokio::test]
async fn mutate_over_http() {
    let sim = Sim::start(Profile::V10_4).await;
    let sa = sim.create_sa("bot", "Viewer").await;
    let ops = [
        json!({"op": "rename_service_account", "id": sa, "name": "renamed"}),
        json!({"op": "set_service_account_role", "id": sa, "role": "Admin"}),
        json!({"op": "set_service_account_disabled", "id": sa, "disabled": true}),
    ];
    for op in ops {
        let resp = sim
            .send("POST", "/__sim/mutate", Auth::None, Some(op))
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text);
    }
    let got = sim
        .admin("GET", &format!("/api/serviceaccounts/{sa}"), None)
        .await;
    assert_eq!(
        (got.body["name"].clone(), got.body["role"].clone()),
        (json!("renamed"), json!("Admin"))
    );
    assert_eq!(got.body["isDisabled"], true);
    let missing = json!({"op": "delete_token", "id": 999});
    assert_eq!(
        sim.send("POST", "/__sim/mutate", Auth::None, Some(missing))
            .await
            .status,
        404
    );
}

// Settings can be changed at run time and apply to the next request.
#[tokio::test]
async fn settings_over_http() {
    let sim = Sim::start(Profile::V10_4).await;
    let settings = json!({"api_key_max_seconds_to_live": 60, "hide_version": true});
    assert_eq!(
        sim.send("PUT", "/__sim/settings", Auth::None, Some(settings))
            .await
            .status,
        200
    );
    let health = sim.send("GET", "/api/health", Auth::None, None).await;
    assert!(health.body.get("version").is_none());
    let sa = sim.create_sa("bot", "Viewer").await;
    let path = format!("/api/serviceaccounts/{sa}/tokens");
    let resp = sim.admin("POST", &path, Some(json!({"name": "t"}))).await;
    assert_eq!(
        resp.body,
        json!({"message": "Number of seconds before expiration should be set"})
    );
}

// Shutting down or dropping the handle stops the server.
#[tokio::test]
async fn shutdown_and_drop_stop_the_server() {
    for explicit in [true, false] {
        let sim = Sim::start(Profile::V10_4).await;
        let url = format!("{}/api/health", sim.handle.url());
        assert_eq!(
            sim.send("GET", "/api/health", Auth::None, None)
                .await
                .status,
            200
        );
        if explicit {
            crate::common::timed(sim.handle.shutdown()).await;
        } else {
            drop(sim);
            tokio::task::yield_now().await;
        }
        let client = reqwest::Client::new();
        let result = crate::common::timed(client.get(&url).send()).await;
        assert!(
            result.is_err(),
            "server still answers after stop (explicit={explicit})"
        );
    }
}

// Huge or overflowing clock moves answer 400 JSON, leave the clock put
// and the simulator answering.
#[tokio::test]
async fn clock_advance_out_of_range_is_refused() {
    let sim = Sim::start(Profile::V10_4).await;
    let huge = [i64::MAX, i64::MIN, 400_000_000_000, -100_000_000_000];
    for seconds in huge {
        let body = Some(json!({ "seconds": seconds }));
        let resp = sim
            .send("POST", "/__sim/clock/advance", Auth::None, body)
            .await;
        assert_eq!(resp.status, 400, "{seconds}: {}", resp.text);
        assert!(resp.body["error"].is_string(), "{seconds}: {}", resp.text);
        let clock = sim.send("GET", "/__sim/clock", Auth::None, None).await;
        assert_eq!(clock.body["offset_seconds"], 0);
        let health = sim.send("GET", "/api/health", Auth::None, None).await;
        assert_eq!(health.status, 200);
    }
    let err = sim.handle.try_advance_clock(Duration::days(4_000_000));
    assert!(err.is_err());
}

// Out-of-range lifetimes in mutations, settings and token creation
// answer 400 (or no limit) instead of panicking the handler.
#[tokio::test]
async fn out_of_range_lifetimes_do_not_panic() {
    let sim = Sim::start(Profile::V10_4).await;
    let sa = sim.create_sa("bot", "Viewer").await;
    let m = json!({"op": "create_token", "service_account_id": sa, "name": "t",
                   "seconds_to_live": i64::MAX});
    let resp = sim.send("POST", "/__sim/mutate", Auth::None, Some(m)).await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    let limit = json!({"token_expiration_day_limit": i64::MAX});
    let resp = sim
        .send("PUT", "/__sim/settings", Auth::None, Some(limit))
        .await;
    assert_eq!(resp.status, 200);
    let path = format!("/api/serviceaccounts/{sa}/tokens");
    let ok = json!({"name": "a", "secondsToLive": 3600});
    assert_eq!(sim.admin("POST", &path, Some(ok)).await.status, 200);
    let far = json!({"name": "b", "secondsToLive": i64::MAX});
    let resp = sim.admin("POST", &path, Some(far)).await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    sim.send("PUT", "/__sim/settings", Auth::None, Some(json!({})))
        .await;
    let far = json!({"name": "c", "secondsToLive": 400_000_000_000_i64});
    let resp = sim.admin("POST", &path, Some(far)).await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    let key = json!({"name": "k", "role": "Viewer", "secondsToLive": i64::MAX});
    let resp = sim.admin("POST", "/api/auth/keys", Some(key)).await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert_eq!(resp.body["message"], "Invalid API key expiration");
}

// `serve` with an estate that does not load exits with an error and never
// logs "listening".
#[tokio::test]
async fn serve_logs_listening_only_after_the_estate_loads() {
    let dir = std::env::temp_dir().join(format!("grafana-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad-estate.json");
    let estate = json!({"api_keys": [{"org": 99, "name": "k", "role": "Viewer"}]});
    std::fs::write(&path, estate.to_string()).unwrap();
    let bin = env!("CARGO_BIN_EXE_grafana-sim");
    // Killed on drop, so a server that wrongly keeps running is stopped.
    let child = tokio::process::Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--estate"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let output = timed(child.wait_with_output()).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("estate"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
}
