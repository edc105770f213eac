//! Revert (FC-15).

use grafana_sim::{Mutation, Profile, Role as SimRole};
use keyshift::ledger::{CredentialState, RunOutcome};
use keyshift::revert::{Revert, Target};

use crate::flow::{estate, key, within, World};

const NEW_ACCOUNTS: &str = "[migration]\nkeep_secrets = false\n";

async fn revert(world: &World, target: Target, dry_run: bool) -> keyshift::report::RunReport {
    let revert = Revert {
        job: world.job.clone(),
        org: 1,
        target,
        dry_run,
    };
    within("revert", revert.run()).await.expect("revert runs")
}

// FC-15: keyshift's token goes; the account with a human's token stays.
#[tokio::test]
async fn fc15_revert_keeps_account_with_foreign_token() {
    let keys = vec![key("grafana-backup", SimRole::Editor, Some(1), None)];
    let world = World::start(Profile::V11_3, None, estate(keys), NEW_ACCOUNTS).await;
    world.migrate().await;
    let backup = world.account_of("backup");
    let key_id = world.key_id("grafana-backup");
    let t1 = world.job.ledger.credential(1, key_id).unwrap().unwrap();
    let t1 = t1.replacement_token_id.unwrap();
    world
        .sim
        .mutate(Mutation::CreateToken {
            service_account_id: backup,
            name: "backup-manual".into(),
            seconds_to_live: None,
        })
        .unwrap();

    let dry = revert(&world, Target::UseCase("backup".into()), true).await;
    assert!(world.row_exists(t1), "a dry run deleted the token");
    assert!(dry
        .notes
        .iter()
        .any(|n| n.starts_with("would: delete token")));

    assert_eq!(world.delivered(), 1);
    let report = revert(&world, Target::UseCase("backup".into()), false).await;

    assert!(!world.row_exists(t1));
    assert_eq!(world.delivered(), 0, "the deleted token's file stayed");
    assert!(world
        .sim
        .with_state(|s| s.service_account(1, backup).is_some()));
    assert!(
        report
            .needs_human
            .iter()
            .any(|n| n.contains("did not create")),
        "{report:?}"
    );
    assert_eq!(report.outcome, RunOutcome::Attention);
    let credential = world.job.ledger.credential(1, key_id).unwrap().unwrap();
    assert_eq!(credential.state, CredentialState::Reverted);
}

// FC-15 variant: the original key is gone on 11.4: say it is irreversible.
#[tokio::test]
async fn fc15_revert_of_deleted_key_is_irreversible() {
    let keys = vec![key("grafana-backup", SimRole::Editor, Some(1), None)];
    let world = World::start(Profile::V11_3, Some("11.4.0"), estate(keys), NEW_ACCOUNTS).await;
    world.migrate().await;
    let backup = world.account_of("backup");
    let key_id = world.key_id("grafana-backup");
    world
        .sim
        .mutate(Mutation::DeleteToken { id: key_id })
        .unwrap();

    let report = revert(&world, Target::Key(key_id), false).await;

    let said = report.needs_human.join("\n");
    assert!(
        said.contains("cannot be re-created on this version"),
        "{said}"
    );
    // The replacement is now the only working credential: it stays.
    assert!(said.contains("replacement was kept"), "{said}");
    let record = world.job.ledger.credential(1, key_id).unwrap().unwrap();
    let token = record.replacement_token_id.unwrap();
    assert!(
        world.row_exists(token),
        "the only working token was deleted"
    );
    assert!(
        world
            .sim
            .with_state(|s| s.service_account(1, backup).is_some()),
        "the account of the only working token was deleted"
    );
    assert_eq!(record.state, CredentialState::Reissued);
    let requests = world.sim.requests();
    assert!(!requests
        .iter()
        .any(|r| r.method == "POST" && r.route == "/api/auth/keys"));
}

// A key revoked at cut-over cannot come back: its replacement stays.
#[tokio::test]
async fn revert_after_cutover_keeps_replacement() {
    let keys = vec![key("grafana-backup", SimRole::Editor, Some(30), None)];
    let extra = format!(
        "{NEW_ACCOUNTS}[cutover]\npolicy = \"when-unused\"\nunused_for = \"7d\"\ngrace = \"1d\"\n"
    );
    let world = World::start(Profile::V11_3, None, estate(keys), &extra).await;
    world.migrate().await;
    let backup = world.account_of("backup");
    let key_id = world.key_id("grafana-backup");
    world.sim.advance_clock(chrono::Duration::days(9));
    world.reconcile(false).await;
    let record = world.job.ledger.credential(1, key_id).unwrap().unwrap();
    assert_eq!(record.state, CredentialState::Revoked);
    let writes = world.sim.write_count();

    let report = revert(&world, Target::UseCase("backup".into()), false).await;

    assert_eq!(world.sim.write_count(), writes, "revert changed Grafana");
    let token = record.replacement_token_id.unwrap();
    assert!(
        world.row_exists(token),
        "the only working token was deleted"
    );
    assert!(world
        .sim
        .with_state(|s| s.service_account(1, backup).is_some()));
    let said = report.needs_human.join("\n");
    assert!(said.contains("cannot be reverted"), "{said}");
    assert_eq!(report.outcome, RunOutcome::Attention);
    assert_eq!(report.grafana_version, "11.3.1");
}

// An adopted account that holds a kept secret and a replacement whose
// original was revoked stays keyshift's, under its name: renamed back
// and released, that token would be its consumer's only credential,
// watched by nobody.
#[tokio::test]
async fn revert_keeps_adopted_account_serving_replacements() {
    let keys = vec![
        key("ci-a", SimRole::Editor, Some(1), None),
        key("ci-b", SimRole::Editor, Some(40), None),
    ];
    let extra = "[cutover]\npolicy = \"when-unused\"\nunused_for = \"7d\"\ngrace = \"1d\"\n";
    let world = World::start(Profile::V11_3, None, estate(keys), extra).await;
    world.migrate().await;
    let ci = world.account_of("ci");
    let ci_b = world.key_id("ci-b");
    world.sim.advance_clock(chrono::Duration::days(9));
    world.reconcile(false).await;
    let revoked = world.job.ledger.credential(1, ci_b).unwrap().unwrap();
    assert_eq!(revoked.state, CredentialState::Revoked);

    revert(&world, Target::UseCase("ci".into()), false).await;

    let name = world
        .sim
        .with_state(|s| s.service_account(1, ci).map(|a| a.name.clone()));
    assert_eq!(name.as_deref(), Some("ci"), "the account was renamed back");
    let owned = world.job.ledger.service_account(1, ci).unwrap().unwrap();
    assert!(
        owned.deleted_at.is_none(),
        "keyshift stopped watching the account"
    );
    assert!(world.row_exists(revoked.replacement_token_id.unwrap()));
    let kept = world
        .job
        .ledger
        .credential(1, world.key_id("ci-a"))
        .unwrap()
        .unwrap();
    assert_eq!(
        kept.state,
        CredentialState::Kept,
        "its secret is still in the account"
    );
}
