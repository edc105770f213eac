//! Reconcile after a migration: each finding kind, report and repair.

use grafana_sim::{Mutation, Profile, Role as SimRole};
use keyshift::config::SaDeletedRepair;
use keyshift::daemon::StopToken;
use keyshift::ledger::{CredentialState, RunOutcome};

use crate::flow::{estate, key, kinds, within, World};

const FIX: &str = r#"
[reconcile.repair]
role_changed = "fix"
name_changed = "fix"
token_missing = "reissue"
token_expiring = "rotate"
new_credentials = "migrate"
"#;

// ci-a is used most recently and keeps its secret; ci-b is reissued.
async fn migrated(extra: &str) -> World {
    let keys = vec![
        key("ci-a", SimRole::Editor, Some(1), None),
        key("ci-b", SimRole::Editor, Some(40), None),
        key("etl-main", SimRole::Viewer, Some(2), None),
    ];
    let world = World::start(Profile::V11_3, None, estate(keys), extra).await;
    world.migrate().await;
    world
}

// A fresh migration reconciles clean, and a second run writes nothing.
#[tokio::test]
async fn clean_estate_has_no_attention_findings() {
    let world = migrated("").await;
    let result = world.reconcile(true).await;
    assert_eq!(
        result.report.outcome,
        RunOutcome::Done,
        "{:?}",
        kinds(&result)
    );
    assert_eq!(result.writes, 0);
    let writes_before = world.sim.write_count();
    world.reconcile(true).await;
    assert_eq!(world.sim.write_count(), writes_before);
}

// Renamed, escalated and disabled accounts are reported, not touched.
#[tokio::test]
async fn account_drift_reported() {
    let world = migrated("").await;
    let ci = world.account_of("ci");
    let etl = world.account_of("etl");
    world
        .sim
        .mutate(Mutation::RenameServiceAccount {
            id: ci,
            name: "ci-old".into(),
        })
        .unwrap();
    world
        .sim
        .mutate(Mutation::SetServiceAccountRole {
            id: ci,
            role: SimRole::Admin,
        })
        .unwrap();
    world
        .sim
        .mutate(Mutation::SetServiceAccountRole {
            id: etl,
            role: SimRole::None,
        })
        .unwrap();
    world
        .sim
        .mutate(Mutation::SetServiceAccountDisabled {
            id: etl,
            disabled: true,
        })
        .unwrap();
    let writes = world.sim.write_count();

    let result = world.reconcile(false).await;

    let found = kinds(&result);
    for kind in [
        "sa-renamed",
        "sa-role-escalated",
        "sa-role-reduced",
        "sa-disabled",
    ] {
        assert!(found.contains(&kind), "{kind} missing from {found:?}");
    }
    assert_eq!(result.report.outcome, RunOutcome::Attention);
    assert_eq!(
        world.sim.write_count(),
        writes,
        "report mode wrote to grafana"
    );
    let recorded = world
        .job
        .ledger
        .findings(keyshift::ledger::RunId(result.report.run_id));
    assert_eq!(recorded.unwrap().len(), result.findings.len());
}

// With fix, name and role are set back; a disabled account stays disabled.
#[tokio::test]
async fn account_drift_repaired() {
    let world = migrated(FIX).await;
    let ci = world.account_of("ci");
    world
        .sim
        .mutate(Mutation::RenameServiceAccount {
            id: ci,
            name: "ci-old".into(),
        })
        .unwrap();
    world
        .sim
        .mutate(Mutation::SetServiceAccountRole {
            id: ci,
            role: SimRole::Admin,
        })
        .unwrap();
    world
        .sim
        .mutate(Mutation::SetServiceAccountDisabled {
            id: ci,
            disabled: true,
        })
        .unwrap();

    let result = world.reconcile(true).await;

    let (name, role, disabled) = world.sim.with_state(|s| {
        let user = s.service_account(1, ci).unwrap();
        let info = user.service_account.as_ref().unwrap();
        (user.name.clone(), user.orgs[&1], info.disabled)
    });
    assert_eq!(name, "ci");
    assert_eq!(role, SimRole::Editor);
    assert!(
        disabled,
        "a disabled account was re-enabled without reenable_disabled"
    );
    let disabled = result
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "sa-disabled")
        .unwrap();
    assert!(disabled.repaired.is_none());
    assert_eq!(result.report.outcome, RunOutcome::Attention);
}

// FC-18: SA deleted, token deleted, token revoked; report then repair.
#[tokio::test]
async fn fc18_sa_or_token_deleted_outside() {
    let world = migrated(FIX).await;
    let etl = world.account_of("etl");
    let ci_b = world
        .job
        .ledger
        .credential(1, world.key_id("ci-b"))
        .unwrap()
        .unwrap();
    let replacement = ci_b.replacement_token_id.unwrap();
    let kept = world.key_id("ci-a");
    world
        .sim
        .mutate(Mutation::DeleteServiceAccount { id: etl })
        .unwrap();
    world
        .sim
        .mutate(Mutation::DeleteToken { id: replacement })
        .unwrap();
    world
        .sim
        .mutate(Mutation::RevokeToken { id: kept })
        .unwrap();

    let report = world.reconcile(false).await;
    let found = kinds(&report);
    for kind in ["sa-deleted", "token-deleted", "token-revoked"] {
        assert!(found.contains(&kind), "{kind} missing from {found:?}");
    }
    let delivered = world.delivered();

    // token_missing = "reissue" does not bring back a deleted account.
    let tokens_only = world.reconcile(true).await;
    let deleted = tokens_only
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "sa-deleted")
        .expect("sa-deleted still reported");
    assert!(deleted.repaired.is_none(), "{deleted:?}");
    assert_eq!(world.account_of("etl"), etl, "recreated without sa_deleted");
    // ci-b's new file replaces its deleted token's; ci-a gets its first.
    assert_eq!(world.delivered(), delivered + 1);

    let mut recreate = world.reconciler(true);
    recreate.settings.reconcile.repair.sa_deleted = SaDeletedRepair::Recreate;
    let repaired = within("reconcile", recreate.run(&StopToken::never()))
        .await
        .unwrap();
    assert!(
        repaired
            .findings
            .iter()
            .filter(|f| f.kind.as_str() != "cutover-waiting")
            .all(|f| f.repaired.is_some()),
        "{:?}",
        repaired.findings
    );
    let new_etl = world.account_of("etl");
    assert_ne!(new_etl, etl);
    assert!(world
        .sim
        .with_state(|s| s.service_account(1, new_etl).is_some()));
    // etl-main kept its secret in the deleted account: now it has a file.
    assert_eq!(world.delivered(), delivered + 2);
    let ci_a = world.job.ledger.credential(1, kept).unwrap().unwrap();
    assert_eq!(ci_a.state, CredentialState::Reissued);
    let again = world.reconcile(false).await;
    let left: Vec<_> = again
        .findings
        .iter()
        .filter(|f| f.needs_attention())
        .collect();
    assert!(left.is_empty(), "drift left after repair: {left:?}");
}

// FC-05: a token list at the cap makes a missing token unknown, unrepaired.
#[tokio::test]
async fn fc05_token_list_at_cap_is_unknown() {
    let world = migrated(FIX).await;
    let ci = world.account_of("ci");
    for n in 0..300 {
        let name = format!("zz-foreign-{n:03}");
        world
            .sim
            .mutate(Mutation::CreateToken {
                service_account_id: ci,
                name,
                seconds_to_live: None,
            })
            .unwrap();
    }
    let ci_b = world
        .job
        .ledger
        .credential(1, world.key_id("ci-b"))
        .unwrap()
        .unwrap();
    world
        .sim
        .mutate(Mutation::DeleteToken {
            id: ci_b.replacement_token_id.unwrap(),
        })
        .unwrap();
    let writes = world.sim.write_count();

    let result = world.reconcile(true).await;

    let found = kinds(&result);
    assert!(found.contains(&"token-unknown"), "{found:?}");
    assert!(found.contains(&"listing-incomplete"), "{found:?}");
    assert!(!found.contains(&"token-deleted"), "{found:?}");
    assert_eq!(
        world.sim.write_count(),
        writes,
        "repaired on an incomplete list"
    );
}

// Expiring tokens are rotated: the new one is delivered before the old goes.
#[tokio::test]
async fn token_expiring_rotated_and_expired_reported() {
    let keys = vec![
        key("ci-a", SimRole::Editor, Some(1), None),
        key("ci-b", SimRole::Editor, Some(40), Some(10)),
    ];
    let extra = format!("[reconcile]\nexpiring_within = \"5d\"\n{FIX}");
    let world = World::start(Profile::V11_3, None, estate(keys), &extra).await;
    world.migrate().await;
    let old = world
        .job
        .ledger
        .credential(1, world.key_id("ci-b"))
        .unwrap()
        .unwrap();
    let old_token = old.replacement_token_id.unwrap();

    // Four days left of a ten-day lifetime: a new token would help.
    world.sim.advance_clock(chrono::Duration::days(6));
    let report = world.reconcile(false).await;
    assert!(
        kinds(&report).contains(&"token-expiring"),
        "{:?}",
        kinds(&report)
    );

    let files = world.delivered();
    let rotated = world.reconcile(true).await;
    // The new token's file replaces the deleted one's: no dead secret.
    assert_eq!(world.delivered(), files, "the old token's file stayed");
    let finding = rotated
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "token-expiring");
    assert!(finding.unwrap().repaired.is_some());
    assert!(!world.row_exists(old_token), "the old token was kept");
    let new = world.job.ledger.credential(1, old.key_id).unwrap().unwrap();
    assert_ne!(new.replacement_token_id, Some(old_token));
    assert!(world.row_exists(new.replacement_token_id.unwrap()));

    world.sim.advance_clock(chrono::Duration::days(11));
    let expired = world.reconcile(false).await;
    assert!(
        kinds(&expired).contains(&"token-expired"),
        "{:?}",
        kinds(&expired)
    );
}

// A key created after migration is reported, then migrated on repair.
#[tokio::test]
async fn new_legacy_key_reported_then_migrated() {
    let world = migrated(FIX).await;
    let created = world.sim.mutate(Mutation::CreateApiKey {
        org: 1,
        name: "ci-late".into(),
        role: SimRole::Editor,
        seconds_to_live: None,
    });
    let id = created.unwrap().id.unwrap();

    let report = world.reconcile(false).await;
    assert!(
        kinds(&report).contains(&"new-legacy-key"),
        "{:?}",
        kinds(&report)
    );

    let repaired = world.reconcile(true).await;
    let finding = repaired
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "new-legacy-key");
    assert!(finding.unwrap().repaired.is_some());
    let credential = world.job.ledger.credential(1, id).unwrap().unwrap();
    assert_eq!(credential.state, CredentialState::Reissued);
}

// FC-08: Grafana 11.6 converts keys at restart; recognised by token id.
#[tokio::test]
async fn fc08_grafana_converts_keys_after_migration() {
    let sim = grafana_sim::start(grafana_sim::SimConfig::new(Profile::V11_6))
        .await
        .unwrap();
    // Loaded after start: the keys stay plain until the next restart.
    let keys = vec![
        key("ci-a", SimRole::Editor, Some(1), None),
        key("ci-b", SimRole::Editor, Some(40), None),
        key("etl-one", SimRole::Editor, Some(3), None),
        key("etl-two", SimRole::Viewer, Some(3), None),
    ];
    sim.load_estate(&estate(keys)).unwrap();
    let world = World::with_sim(sim, "");
    world.migrate().await;
    let etl = world.key_id("etl-one");
    let ci_b = world.key_id("ci-b");
    let conflict = world.job.ledger.credential(1, etl).unwrap().unwrap();
    assert_eq!(
        conflict.state,
        CredentialState::Conflict,
        "etl roles differ"
    );

    world.sim.restart();
    let result = world.reconcile(false).await;

    let converted: Vec<_> = result
        .findings
        .iter()
        .filter(|f| f.kind.as_str() == "converted-by-grafana")
        .collect();
    assert_eq!(converted.len(), 3, "{:?}", result.findings);
    assert!(!kinds(&result).contains(&"token-deleted"));
    let etl_now = world.job.ledger.credential(1, etl).unwrap().unwrap();
    assert_eq!(etl_now.state, CredentialState::AutoMigrated);
    assert!(etl_now.holder_sa_id.is_some());
    let ci_b_now = world.job.ledger.credential(1, ci_b).unwrap().unwrap();
    assert_eq!(ci_b_now.state, CredentialState::Reissued);
    assert!(converted
        .iter()
        .any(|f| f.detail.contains("now holds the legacy secret")));
}

// FC-23: at the token limit, only expired tokens keyshift made are freed.
#[tokio::test]
async fn fc23_token_limit_frees_own_expired_tokens() {
    let keys = vec![
        key("ci-a", SimRole::Editor, Some(1), None),
        key("ci-b", SimRole::Editor, Some(40), Some(10)),
    ];
    let extra = format!("{FIX}\n").replace(
        "[reconcile.repair]",
        "[reconcile]\ntoken_limit = 99\nexpiring_within = \"5d\"\n\n[reconcile.repair]",
    );
    let world = World::start(Profile::V11_3, None, estate(keys), &extra).await;
    world.migrate().await;
    let ci = world.account_of("ci");
    let ci_b = world.key_id("ci-b");
    let mut own = Vec::new();
    for n in 0..60 {
        let made = world.sim.mutate(Mutation::CreateToken {
            service_account_id: ci,
            name: format!("ks-old-{n:02}"),
            seconds_to_live: Some(60),
        });
        let id = made.unwrap().id.unwrap();
        own.push(id);
        world
            .job
            .ledger
            .record_token(&keyshift::ledger::TokenRecord {
                org_id: 1,
                sa_id: ci,
                token_id: id,
                name: format!("ks-old-{n:02}"),
                key_id: ci_b,
                requested_expires: None,
                granted_expires: None,
                created_at: chrono::Utc::now() + chrono::Duration::seconds(n),
                delivered_at: None,
                deleted_at: None,
            })
            .unwrap();
    }
    let foreign: Vec<i64> = (0..5)
        .map(|n| {
            let made = world.sim.mutate(Mutation::CreateToken {
                service_account_id: ci,
                name: format!("human-{n}"),
                seconds_to_live: Some(60),
            });
            made.unwrap().id.unwrap()
        })
        .collect();
    for n in 0..32 {
        world
            .sim
            .mutate(Mutation::CreateToken {
                service_account_id: ci,
                name: format!("live-{n:02}"),
                seconds_to_live: None,
            })
            .unwrap();
    }
    world.sim.set_settings(grafana_sim::Settings {
        max_tokens_per_service_account: Some(99),
        ..Default::default()
    });
    // ci-b's token (ten-day lifetime) is then within five days of expiry.
    world.sim.advance_clock(chrono::Duration::days(6));
    assert_eq!(world.sim.with_state(|s| s.tokens_of(ci).len()), 99);

    let report = world.reconcile(false).await;
    assert!(
        kinds(&report).contains(&"near-token-limit"),
        "{:?}",
        kinds(&report)
    );

    let repaired = world.reconcile(true).await;
    let rotated = repaired
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "token-expiring");
    assert!(
        rotated.unwrap().repaired.is_some(),
        "{:?}",
        repaired.findings
    );
    assert!(
        !world.row_exists(own[0]),
        "the oldest own expired token stays"
    );
    assert!(
        own[1..].iter().all(|id| world.row_exists(*id)),
        "more than needed deleted"
    );
    assert!(
        foreign.iter().all(|id| world.row_exists(*id)),
        "a foreign token was deleted"
    );
    assert!(repaired
        .report
        .notes
        .iter()
        .any(|n| n.contains("token limit")));
}

// A token whose successor would expire as soon is not rotated (churn).
#[tokio::test]
async fn rotation_that_cannot_help_is_not_made() {
    let keys = vec![
        key("ci-a", SimRole::Editor, Some(1), None),
        key("ci-b", SimRole::Editor, Some(40), Some(10)),
    ];
    let world = World::start(Profile::V11_3, None, estate(keys), FIX).await;
    world.migrate().await;
    let key_id = world.key_id("ci-b");
    let before = world.job.ledger.credential(1, key_id).unwrap().unwrap();
    let writes = world.sim.write_count();

    let result = world.reconcile(true).await;

    assert_eq!(world.sim.write_count(), writes, "rotated to no effect");
    let finding = result
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "token-expiring")
        .expect("token-expiring reported");
    assert!(finding.repaired.is_none());
    assert!(
        finding.detail.contains("rotation would not help"),
        "{}",
        finding.detail
    );
    let after = world.job.ledger.credential(1, key_id).unwrap().unwrap();
    assert_eq!(after.replacement_token_id, before.replacement_token_id);
}

// Without --repair, reconcile changes nothing, even with
// `migration.new_credentials = true` (the daemon always repairs).
#[tokio::test]
async fn new_credentials_are_migrated_only_with_repair() {
    let world = migrated("[migration]\nnew_credentials = true\n").await;
    world
        .sim
        .mutate(Mutation::CreateApiKey {
            org: 1,
            name: "ci-late".into(),
            role: SimRole::Editor,
            seconds_to_live: None,
        })
        .unwrap();
    let writes = world.sim.write_count();
    let report = world.reconcile(false).await;
    assert_eq!(
        world.sim.write_count(),
        writes,
        "reconcile without --repair wrote"
    );
    let new = report
        .findings
        .iter()
        .find(|f| f.kind.as_str() == "new-legacy-key");
    assert!(new.is_some_and(|f| f.repaired.is_none()));
    world.reconcile(true).await;
    assert!(
        world.sim.write_count() > writes,
        "with --repair the key is migrated"
    );
}
