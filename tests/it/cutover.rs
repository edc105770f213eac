//! Cut-over driven by the simulator's clock, and FC-20.

use chrono::Duration;

use grafana_sim::{Mutation, Profile, Role as SimRole};
use keyshift::ledger::CredentialState;

use crate::flow::{estate, key, kinds, World};

const WHEN_UNUSED: &str = r#"
[cutover]
policy = "when-unused"
unused_for = "7d"
grace = "1d"
"#;

fn keys() -> Vec<grafana_sim::estate::EstateKey> {
    vec![
        key("ci-a", SimRole::Editor, Some(1), None),
        key("ci-b", SimRole::Editor, Some(40), None),
        key("ci-c", SimRole::Editor, Some(50), None),
    ]
}

// A recently used credential is kept; one unused past the period goes.
#[tokio::test]
async fn when_unused_revokes_only_unused() {
    let world = World::start(Profile::V11_3, None, estate(keys()), WHEN_UNUSED).await;
    world.migrate().await;
    let (used, unused) = (world.key_id("ci-b"), world.key_id("ci-c"));

    world.sim.advance_clock(Duration::days(9));
    world
        .sim
        .mutate(Mutation::MarkUsed {
            credential_id: used,
            at: None,
        })
        .unwrap();
    let result = world.reconcile(false).await;

    let state = |id| world.job.ledger.credential(1, id).unwrap().unwrap().state;
    assert_eq!(state(unused), CredentialState::Revoked);
    assert!(!world.row_exists(unused), "the unused key still exists");
    assert_eq!(state(used), CredentialState::Reissued);
    assert!(world.row_exists(used));
    let revoked = result
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "cutover-revoked")
        .unwrap();
    assert!(
        revoked.detail.contains("breaks every consumer"),
        "{}",
        revoked.detail
    );
    let found = kinds(&result);
    assert!(
        found.contains(&"cutover-waiting") && found.contains(&"legacy-still-used"),
        "{found:?}"
    );
}

// With `never`, nothing is revoked and readiness is reported.
#[tokio::test]
async fn never_reports_readiness_only() {
    let world = World::start(Profile::V11_3, None, estate(keys()), "").await;
    world.migrate().await;
    let writes = world.sim.write_count();

    world.sim.advance_clock(Duration::days(60));
    let result = world.reconcile(false).await;

    assert_eq!(world.sim.write_count(), writes);
    let ready = kinds(&result)
        .iter()
        .filter(|k| **k == "cutover-ready")
        .count();
    assert_eq!(ready, 2, "{:?}", result.findings);
}

// FC-20: on 10.1 lastUsedAt is not proof of non-use: nothing is revoked.
#[tokio::test]
async fn fc20_last_used_distrusted_on_10_1() {
    let world = World::start(Profile::V10_0, Some("10.1.5"), estate(keys()), WHEN_UNUSED).await;
    world.migrate().await;
    let writes = world.sim.write_count();

    world.sim.advance_clock(Duration::days(40));
    let result = world.reconcile(false).await;

    assert_eq!(
        world.sim.write_count(),
        writes,
        "revoked on a distrusted version"
    );
    let unjudged = kinds(&result)
        .iter()
        .filter(|k| **k == "cutover-unjudged")
        .count();
    assert_eq!(unjudged, 2, "{:?}", result.findings);
}

// Before 9.5 the key list has no lastUsedAt: no key is judged unused.
#[tokio::test]
async fn key_use_unreported_before_9_5() {
    let world = World::start(Profile::V9_1, None, estate(keys()), WHEN_UNUSED).await;
    world.migrate().await;
    let writes = world.sim.write_count();

    world.sim.advance_clock(Duration::days(60));
    let result = world.reconcile(false).await;

    assert_eq!(
        world.sim.write_count(),
        writes,
        "revoked a key of unknown use"
    );
    let cutover: Vec<_> = result
        .findings
        .iter()
        .filter(|f| f.kind.as_str().starts_with("cutover-"))
        .collect();
    assert!(!cutover.is_empty(), "{:?}", result.findings);
    for finding in &cutover {
        assert_eq!(finding.kind.as_str(), "cutover-unjudged", "{finding:?}");
        assert!(
            finding.detail.contains("does not report key use"),
            "{finding:?}"
        );
    }
    for finding in &result.findings {
        assert!(!finding.detail.contains("never used"), "{finding:?}");
    }
}

// A key whose replacement token is gone is not revoked: it is the only
// working credential left; a healthy one beside it is.
#[tokio::test]
async fn replacement_gone_blocks_revocation() {
    let world = World::start(Profile::V11_3, None, estate(keys()), WHEN_UNUSED).await;
    world.migrate().await;
    let (b, c) = (world.key_id("ci-b"), world.key_id("ci-c"));
    let record = |id| world.job.ledger.credential(1, id).unwrap().unwrap();
    let token = record(c).replacement_token_id.expect("c was replaced");
    world
        .sim
        .mutate(Mutation::DeleteToken { id: token })
        .unwrap();
    world.sim.advance_clock(Duration::days(9));
    let result = world.reconcile(false).await;

    assert!(
        world.row_exists(c),
        "revoked a key whose replacement is gone"
    );
    assert_eq!(record(c).state, CredentialState::Reissued);
    let blocked = result
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "cutover-blocked")
        .expect("a cutover-blocked finding");
    assert!(blocked.detail.contains("is gone"), "{}", blocked.detail);
    assert!(blocked.needs_attention());
    assert!(!world.row_exists(b), "a healthy cut-over was blocked");
}

// No key is revoked while its replacement's account is disabled.
#[tokio::test]
async fn disabled_account_blocks_revocation() {
    let world = World::start(Profile::V11_3, None, estate(keys()), WHEN_UNUSED).await;
    world.migrate().await;
    let writes = world.sim.write_count();
    let sa = world.account_of("ci");
    let disable = Mutation::SetServiceAccountDisabled {
        id: sa,
        disabled: true,
    };
    world.sim.mutate(disable).unwrap();
    world.sim.advance_clock(Duration::days(40));
    let result = world.reconcile(false).await;

    assert_eq!(
        world.sim.write_count(),
        writes,
        "revoked into a disabled account"
    );
    let blocked: Vec<_> = result
        .findings
        .iter()
        .filter(|f| f.kind.as_str() == "cutover-blocked")
        .collect();
    assert_eq!(blocked.len(), 2, "{:?}", result.findings);
    assert!(blocked.iter().all(|f| f.detail.contains("disabled")));
}

// Grafana 11.6 converting a key while reconcile runs: the delete finds no
// key, the secret lives on as a token, so the credential is not recorded
// as revoked; the next reconcile revokes the token and its account.
#[tokio::test]
async fn key_converted_during_cutover_is_not_called_revoked() {
    let world = World::start(Profile::V11_6, None, estate(keys()), WHEN_UNUSED).await;
    world.migrate().await;
    let late = Mutation::CreateApiKey {
        org: 1,
        name: "ci-z".into(),
        role: SimRole::Editor,
        seconds_to_live: None,
    };
    let id = world.sim.mutate(late).unwrap().id.unwrap();
    world.migrate().await;
    world.sim.advance_clock(Duration::days(9));
    world.sim.add_fault(grafana_sim::FaultRule {
        method: Some("GET".into()),
        route: Some("/api/auth/keys".into()),
        action: grafana_sim::FaultAction::RestartAfter,
        trigger: grafana_sim::Trigger::Once,
    });
    world.reconcile(false).await;
    let state = |id| world.job.ledger.credential(1, id).unwrap().unwrap().state;
    assert_ne!(
        state(id),
        CredentialState::Revoked,
        "its secret still works"
    );
    assert!(world.row_exists(id), "the converted row is still there");

    world.reconcile(false).await;
    assert_eq!(state(id), CredentialState::Revoked);
    assert!(
        !world.row_exists(id),
        "revoked means the secret no longer works"
    );
}
