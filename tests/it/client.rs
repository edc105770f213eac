//! The Grafana client against the simulator: what is retried, what is
//! looked up, what is never repeated.

use grafana_sim::{FaultAction, FaultRule, Profile, Role, Trigger};
use keyshift::grafana::{Client, ErrorKind, TokenCreated};

use crate::support::{within, EstateBuilder, Fixture};

async fn setup() -> (Fixture, Client) {
    let mut estate = EstateBuilder::orgs(1);
    estate.account(1, "holder", Role::Editor, "first", false);
    let fixture = Fixture::start(Profile::V10_4, estate.build()).await;
    let client = keyshift::app::client(&fixture.config("")).unwrap();
    (fixture, client)
}

fn fault(method: &str, route: &str, action: FaultAction, trigger: Trigger) -> FaultRule {
    FaultRule {
        method: Some(method.into()),
        route: Some(route.into()),
        action,
        trigger,
    }
}

fn count(fixture: &Fixture, method: &str, route: &str) -> usize {
    let requests = fixture.sim.requests().into_iter();
    requests
        .filter(|r| r.method == method && r.route.ends_with(route))
        .count()
}

// 429 with Retry-After and gateway errors are retried until an answer.
#[tokio::test]
async fn retries_rate_limits_and_gateway_errors() {
    let (fixture, client) = setup().await;
    let limited = FaultAction::Status {
        status: 429,
        retry_after: Some(1),
    };
    fixture
        .sim
        .add_fault(fault("GET", "/api/org", limited, Trigger::Once));
    // The fixture allows two retries: two gateway errors, then an answer.
    let gateway = FaultAction::Status {
        status: 503,
        retry_after: None,
    };
    fixture
        .sim
        .add_fault(fault("GET", "/api/orgs", gateway, Trigger::Times { n: 2 }));
    let started = std::time::Instant::now();
    let org = within("current org", client.current_org(1)).await.unwrap();
    assert_eq!(org.id, 1);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After honoured"
    );
    let orgs = within("orgs", client.orgs()).await.unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(count(&fixture, "GET", "/api/orgs"), 3);
}

// 400, 403, 404, 409 and 500 on a read are never retried.
#[tokio::test]
async fn does_not_retry_refusals() {
    let (fixture, client) = setup().await;
    let action = FaultAction::Status {
        status: 500,
        retry_after: None,
    };
    fixture
        .sim
        .add_fault(fault("GET", "/api/org", action, Trigger::Times { n: 5 }));
    let error = within("current org", client.current_org(1))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), Some(&ErrorKind::ServerError));
    assert_eq!(count(&fixture, "GET", "/api/org"), 1);
    let missing = within("missing account", client.service_account(1, 999))
        .await
        .unwrap();
    assert!(missing.is_none(), "a 404 reads as absent");
    assert_eq!(count(&fixture, "GET", "/api/serviceaccounts/:id"), 1);
}

// A create whose answer is lost is looked up before any retry: the
// account made is returned, and no second one is created.
#[tokio::test]
async fn lost_create_answer_is_looked_up() {
    let (fixture, client) = setup().await;
    let lost = FaultAction::ApplyThenFail { drop: true };
    fixture
        .sim
        .add_fault(fault("POST", "/api/serviceaccounts", lost, Trigger::Once));
    let editor = keyshift::role::Role::Editor;
    let made = within("create", client.create_service_account(1, "ci", editor)).await;
    let made = made.expect("found by lookup");
    assert_eq!(made.name, "ci");
    let named: Vec<_> = fixture
        .sim
        .export_estate()
        .service_accounts
        .into_iter()
        .filter(|a| a.name == "ci")
        .collect();
    assert_eq!(named.len(), 1, "no duplicate");
    assert_eq!(count(&fixture, "POST", "/api/serviceaccounts"), 1);
}

// A token made by a create that answered 500 is found, but its secret is
// lost: the caller is told so instead of getting a token it cannot use.
#[tokio::test]
async fn token_found_after_500_has_lost_its_secret() {
    let (fixture, client) = setup().await;
    let sa = fixture.sim.export_estate().service_accounts[0].id.unwrap();
    let failed = FaultAction::ApplyThenFail { drop: false };
    let rule = fault(
        "POST",
        "/api/serviceaccounts/:id/tokens",
        failed,
        Trigger::Once,
    );
    fixture.sim.add_fault(rule);
    let created = within("token", client.create_token(1, sa, "ks-x-1", 0))
        .await
        .unwrap();
    assert!(matches!(created, TokenCreated::SecretLost(ref t) if t.name == "ks-x-1"));
    assert_eq!(
        count(&fixture, "POST", "/api/serviceaccounts/:id/tokens"),
        1
    );
    let created = within("token", client.create_token(1, sa, "ks-x-2", 0))
        .await
        .unwrap();
    let TokenCreated::New(token) = created else {
        panic!("a normal create returns the secret")
    };
    assert!(token.secret.expose().starts_with("glsa_"));
    assert!(
        !format!("{token:?}").contains("glsa_"),
        "Debug hides the secret"
    );
}

// Grafana's per-key migration is a no-op once done, so a gateway error on
// it is retried like a read. (After a lost answer the retry may get 500,
// "no keys to convert": the applier then reads the state; see FC-09.)
#[tokio::test]
async fn per_key_migration_is_retried() {
    let mut estate = EstateBuilder::orgs(1);
    estate.key(1, "k", Role::Viewer);
    let fixture = Fixture::start(Profile::V10_4, estate.build()).await;
    let client = keyshift::app::client(&fixture.config("")).unwrap();
    let key = fixture.sim.export_estate().api_keys[0].id.unwrap();
    let route = "/api/serviceaccounts/migrate/:keyId";
    let busy = FaultAction::Status {
        status: 503,
        retry_after: None,
    };
    fixture
        .sim
        .add_fault(fault("POST", route, busy, Trigger::Times { n: 2 }));
    within("migrate key", client.migrate_key(1, key))
        .await
        .expect("retried to success");
    assert_eq!(
        count(&fixture, "POST", "/api/serviceaccounts/migrate/:keyId"),
        3
    );
    assert_eq!(fixture.sim.export_estate().service_accounts.len(), 1);
}
