//! Fault injection over HTTP: each action and trigger.

use std::time::Instant;

use grafana_sim::{FaultAction, FaultRule, Profile, Trigger};
use serde_json::json;

use crate::common::{timed, Auth, Sim};

fn rule(method: &str, route: &str, action: FaultAction, trigger: Trigger) -> FaultRule {
    FaultRule {
        method: Some(method.into()),
        route: Some(route.into()),
        action,
        trigger,
    }
}

// A 429 carries Retry-After and fires once; the handler did not run.
#[tokio::test]
async fn status_fault_once_with_retry_after() {
    let sim = Sim::start(Profile::V10_4).await;
    let action = FaultAction::Status {
        status: 429,
        retry_after: Some(7),
    };
    sim.handle
        .add_fault(rule("POST", "/api/serviceaccounts", action, Trigger::Once));
    let body = json!({"name": "a"});
    let first = sim
        .admin("POST", "/api/serviceaccounts", Some(body.clone()))
        .await;
    assert_eq!(
        (first.status, first.retry_after.as_deref()),
        (429, Some("7"))
    );
    assert!(sim
        .handle
        .with_state(|s| s.user_by_login("sa-1-a").is_none()));
    let second = sim.admin("POST", "/api/serviceaccounts", Some(body)).await;
    assert_eq!(second.status, 201);
}

// N times and every Nth fire on the expected calls, per status code.
#[tokio::test]
async fn times_and_every_nth() {
    let sim = Sim::start(Profile::V10_4).await;
    let s503 = FaultAction::Status {
        status: 503,
        retry_after: None,
    };
    sim.handle
        .add_fault(rule("GET", "GET /api/org", s503, Trigger::Times { n: 2 }));
    let s502 = FaultAction::Status {
        status: 502,
        retry_after: None,
    };
    sim.handle
        .add_fault(rule("GET", "/api/orgs", s502, Trigger::EveryNth { n: 2 }));
    let mut org = vec![];
    let mut orgs = vec![];
    for _ in 0..4 {
        org.push(sim.admin("GET", "/api/org", None).await.status);
        orgs.push(sim.admin("GET", "/api/orgs", None).await.status);
    }
    assert_eq!(org, [503, 503, 200, 200]);
    assert_eq!(orgs, [200, 502, 200, 502]);
}

// Probability faults with the same seed give the same sequence.
#[tokio::test]
async fn probability_is_seeded() {
    let mut runs = vec![];
    for _ in 0..2 {
        let sim = Sim::start(Profile::V10_4).await;
        let action = FaultAction::Status {
            status: 500,
            retry_after: None,
        };
        let trigger = Trigger::Probability { p: 0.5, seed: 42 };
        sim.handle.add_fault(FaultRule {
            method: None,
            route: None,
            action,
            trigger,
        });
        let mut seen = vec![];
        for _ in 0..20 {
            seen.push(sim.admin("GET", "/api/org", None).await.status);
        }
        runs.push(seen);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].contains(&500) && runs[0].contains(&200));
}

// Latency delays the answer by at least the given time.
#[tokio::test]
async fn latency_delays() {
    let sim = Sim::start(Profile::V10_4).await;
    let action = FaultAction::Latency { ms: 150 };
    sim.handle
        .add_fault(rule("GET", "/api/org", action, Trigger::Once));
    let started = Instant::now();
    assert_eq!(sim.admin("GET", "/api/org", None).await.status, 200);
    assert!(started.elapsed().as_millis() >= 150);
}

// A dropped connection gives the client an error and logs status 0.
#[tokio::test]
async fn drop_closes_without_answer() {
    let sim = Sim::start(Profile::V10_4).await;
    sim.handle
        .add_fault(rule("GET", "/api/org", FaultAction::Drop, Trigger::Once));
    let url = format!("{}/api/org", sim.handle.url());
    let result = timed(
        reqwest::Client::new()
            .get(url)
            .basic_auth("admin", Some("admin"))
            .send(),
    )
    .await;
    assert!(result.is_err(), "expected a transport error");
    assert_eq!(sim.handle.requests()[0].status, 0);
}

// Apply-then-fail commits the change and answers 500 (or drops).
#[tokio::test]
async fn apply_then_fail_commits() {
    let sim = Sim::start(Profile::V10_4).await;
    let action = FaultAction::ApplyThenFail { drop: false };
    sim.handle
        .add_fault(rule("POST", "/api/serviceaccounts", action, Trigger::Once));
    let resp = sim
        .admin("POST", "/api/serviceaccounts", Some(json!({"name": "a"})))
        .await;
    assert_eq!(resp.status, 500);
    assert!(sim
        .handle
        .with_state(|s| s.user_by_login("sa-1-a").is_some()));
    let action = FaultAction::ApplyThenFail { drop: true };
    sim.handle
        .add_fault(rule("POST", "/api/serviceaccounts", action, Trigger::Once));
    let url = format!("{}/api/serviceaccounts", sim.handle.url());
    let req = reqwest::Client::new()
        .post(url)
        .basic_auth("admin", Some("admin"));
    let result = timed(req.json(&json!({"name": "b"})).send()).await;
    assert!(result.is_err());
    assert!(sim
        .handle
        .with_state(|s| s.user_by_login("sa-1-b").is_some()));
    sim.handle.clear_faults();
    let again = sim
        .admin("POST", "/api/serviceaccounts", Some(json!({"name": "c"})))
        .await;
    assert_eq!(again.status, 201);
}

// restart_after lands Grafana's 11.6 conversion right after a key listing.
#[tokio::test]
async fn restart_after_converts_between_reads() {
    let sim = Sim::start(Profile::V11_6).await;
    sim.create_key(1, "etl", "Editor");
    let rule = rule(
        "GET",
        "/api/auth/keys",
        FaultAction::RestartAfter,
        Trigger::Once,
    );
    sim.handle.add_fault(rule);
    let first = sim.admin("GET", "/api/auth/keys", None).await;
    assert_eq!(
        first.body[0]["name"], "etl",
        "the answer was computed before the restart"
    );
    let second = sim.admin("GET", "/api/auth/keys", None).await;
    assert_eq!(second.body, json!([]));
}

// mutate_after revokes the caller's own token after its first call.
#[tokio::test]
async fn mutate_after_revokes_mid_run() {
    let sim = Sim::start(Profile::V11_6).await;
    let sa = sim.create_sa("bot", "Admin").await;
    let (id, token) = sim.create_token(sa, "t").await;
    let mutation = grafana_sim::Mutation::RevokeToken { id };
    let action = FaultAction::MutateAfter { mutation };
    sim.handle
        .add_fault(rule("GET", "/api/org", action, Trigger::Once));
    let auth = crate::common::Auth::Bearer(&token);
    assert_eq!(sim.send("GET", "/api/org", auth, None).await.status, 200);
    let after = sim.send("GET", "/api/org", auth, None).await;
    assert_eq!(
        (after.status, after.body["messageId"].clone()),
        (401, json!("api-key.revoked"))
    );
}

// The control API refuses fault statuses other than 429/500/502/503/504
// and routes that name no template, saying why.
#[tokio::test]
async fn invalid_fault_rules_are_refused() {
    let sim = Sim::start(Profile::V10_4).await;
    let status = |code| json!({"kind": "status", "status": code});
    let once = json!({"kind": "once"});
    let refused = [
        json!({"route": "/api/org", "action": status(404), "trigger": once}),
        json!({"route": "/api/nope", "action": status(500), "trigger": once}),
        json!({"method": "GET", "route": "/api/serviceaccounts/migrate",
               "action": status(500), "trigger": once}),
        json!({"route": "POST /api/serviceaccounts/:id/tokenz",
               "action": {"kind": "drop"}, "trigger": once}),
    ];
    for rule in refused {
        let resp = sim
            .send("POST", "/__sim/faults", Auth::None, Some(rule.clone()))
            .await;
        assert_eq!(resp.status, 400, "{rule}: {}", resp.text);
        let text = resp.body["error"].as_str().unwrap_or_default();
        let names_problem = text.contains("404") || text.contains("/api/serviceaccounts/search");
        assert!(names_problem, "{text}");
    }
    let good = [
        json!({"method": "POST", "route": "/api/serviceaccounts/:id/tokens",
               "action": status(503), "trigger": once}),
        json!({"route": "GET /api/org", "action": status(429), "trigger": once}),
        json!({"action": {"kind": "drop"}, "trigger": once}),
    ];
    for rule in good {
        let resp = sim
            .send("POST", "/__sim/faults", Auth::None, Some(rule.clone()))
            .await;
        assert_eq!(resp.status, 200, "{rule}: {}", resp.text);
    }
    let listed = sim.send("GET", "/__sim/faults", Auth::None, None).await;
    assert_eq!(listed.body.as_array().map(Vec::len), Some(3));
}
