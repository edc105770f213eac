//! keyshift migrate end to end against the simulator, every profile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use grafana_sim::{Estate, Profile, Role};
use keyshift::grafana::RequestObserver;
use keyshift::ledger::CredentialState;

use crate::support::{within, EstateBuilder, Fixture};

const RULES: &str = r#"
[[use_case]]
name = "ci"
match = "^ci-"

[[use_case]]
name = "exporter"
match = "^exporter-"
"#;

/// A two-org estate with groups, singles and an expired key; returns the
/// estate and the secret of every key by name.
fn estate() -> (Estate, BTreeMap<String, String>) {
    let mut b = EstateBuilder::orgs(2);
    let mut secrets = BTreeMap::new();
    let mut add = |b: &mut EstateBuilder, org, name: &str, role, exp, used| {
        secrets.insert(name.to_string(), b.key_with(org, name, role, exp, used));
    };
    add(&mut b, 1, "ci-1", Role::Editor, None, Some(2));
    add(&mut b, 1, "ci-2", Role::Editor, None, Some(1));
    add(&mut b, 1, "ci-3", Role::Editor, Some(40), None);
    add(&mut b, 1, "backup", Role::Admin, None, Some(1));
    add(&mut b, 1, "exporter-a", Role::Viewer, None, Some(3));
    add(&mut b, 1, "exporter-b", Role::Viewer, Some(10), Some(5));
    add(&mut b, 1, "old", Role::Viewer, Some(-3), Some(30));
    add(&mut b, 2, "ci-x", Role::Editor, None, Some(1));
    add(&mut b, 2, "ci-y", Role::Editor, Some(5), Some(9));
    add(&mut b, 2, "lone", Role::Viewer, None, None);
    (b.build(), secrets)
}

/// Use case → (org, role) expected for the estate above.
fn expected_use_cases() -> Vec<(i64, &'static str, Role)> {
    vec![
        (1, "ci", Role::Editor),
        (1, "backup", Role::Admin),
        (1, "exporter", Role::Viewer),
        (2, "ci", Role::Editor),
        (2, "lone", Role::Viewer),
    ]
}

// Every credential ends migrated, skipped or in conflict; each use case
// has one account with the right role; kept secrets and reissued tokens
// authenticate as that account; a second run writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrates_multi_org_estate_on_every_profile() {
    for profile in [
        Profile::V9_5,
        Profile::V10_4,
        Profile::V11_3,
        Profile::V11_6,
        Profile::V12_1,
    ] {
        let (estate, secrets) = estate();
        let fixture = Fixture::start(profile, estate).await;
        let result = fixture.migrate(RULES).await;
        assert_eq!(
            result.report.counts.failed + result.report.counts.blocked,
            0,
            "{profile:?}"
        );
        check_credentials(&fixture, profile);
        let accounts = check_accounts(&fixture, profile);
        check_kept_secrets(&fixture, &secrets, &accounts, profile);
        check_delivered_tokens(&fixture, &accounts, profile);

        let writes = fixture.sim.write_count();
        let again = fixture.migrate(RULES).await;
        assert_eq!(
            fixture.sim.write_count(),
            writes,
            "{profile:?}: second migrate wrote"
        );
        assert!(!again.plan.has_changes(), "{profile:?}");
        let plan = fixture.plan(RULES).await;
        assert!(!plan.plan.has_changes(), "{profile:?}");
        assert_eq!(fixture.sim.write_count(), writes, "{profile:?}: plan wrote");
    }
}

fn check_credentials(fixture: &Fixture, profile: Profile) {
    let records = fixture.credentials();
    assert_eq!(records.len(), 10, "{profile:?}: {records:#?}");
    for record in &records {
        let ok = match record.state {
            CredentialState::Kept | CredentialState::Reissued => true,
            CredentialState::Skipped | CredentialState::Conflict => record.reason.is_some(),
            _ => false,
        };
        assert!(ok, "{profile:?}: {} ended {:?}", record.name, record.state);
    }
    let old = records.iter().find(|r| r.name == "old").unwrap();
    assert_eq!(old.state, CredentialState::Skipped, "{profile:?}");
}

/// (org, use case) → account id.
fn check_accounts(fixture: &Fixture, profile: Profile) -> BTreeMap<(i64, String), i64> {
    let exported = fixture.sim.export_estate();
    let mut accounts = BTreeMap::new();
    for (org, name, role) in expected_use_cases() {
        let found: Vec<_> = exported
            .service_accounts
            .iter()
            .filter(|a| a.org == org && a.name == name)
            .collect();
        assert_eq!(found.len(), 1, "{profile:?}: org {org} use case {name}");
        assert_eq!(found[0].role, role, "{profile:?}: role of {name}");
        accounts.insert((org, name.to_string()), found[0].id.unwrap());
    }
    accounts
}

fn check_kept_secrets(
    fixture: &Fixture,
    secrets: &BTreeMap<String, String>,
    accounts: &BTreeMap<(i64, String), i64>,
    profile: Profile,
) {
    let kept: Vec<_> = fixture
        .credentials()
        .into_iter()
        .filter(|r| r.state == CredentialState::Kept)
        .collect();
    assert_eq!(kept.len(), 5, "{profile:?}: one kept secret per use case");
    for record in kept {
        let account = accounts[&(record.org_id, record.use_case.clone())];
        let identity = fixture
            .sim
            .whoami(&secrets[&record.name])
            .expect("kept secret works");
        assert_eq!(
            identity.user_id,
            Some(account),
            "{profile:?}: {}",
            record.name
        );
    }
}

fn check_delivered_tokens(
    fixture: &Fixture,
    accounts: &BTreeMap<(i64, String), i64>,
    profile: Profile,
) {
    let docs = fixture.delivered();
    assert_eq!(
        docs.len(),
        4,
        "{profile:?}: ci-1, ci-3, exporter-b, ci-y reissued"
    );
    let exported = fixture.sim.export_estate();
    for doc in docs {
        let org = doc["org_id"].as_i64().unwrap();
        let use_case = doc["use_case"].as_str().unwrap().to_string();
        let identity = fixture
            .sim
            .whoami(doc["token"].as_str().unwrap())
            .expect("token works");
        assert_eq!(
            identity.user_id,
            Some(accounts[&(org, use_case.clone())]),
            "{profile:?}"
        );
        let role = expected_use_cases()
            .into_iter()
            .find(|u| u.0 == org && u.1 == use_case);
        assert_eq!(identity.org_role, role.map(|u| u.2), "{profile:?}");
        let key_name = doc["replaces"]["key_name"].as_str().unwrap();
        let key = estate()
            .0
            .api_keys
            .into_iter()
            .find(|k| k.name == key_name)
            .unwrap();
        let token = exported
            .service_accounts
            .iter()
            .flat_map(|a| &a.tokens)
            .find(|t| t.id == doc["token_id"].as_i64())
            .expect("token exists");
        match (key.expires, token.expires) {
            (None, None) => {}
            (Some(want), Some(got)) => {
                assert!(
                    (want - got).num_seconds().abs() < 60,
                    "{profile:?}: {key_name}"
                )
            }
            other => panic!("{profile:?}: {key_name}: expiry {other:?}"),
        }
    }
}

// plan reads only: every request it makes is a GET.
#[tokio::test]
async fn plan_makes_no_write_call() {
    let fixture = Fixture::start(Profile::V10_4, estate().0).await;
    let result = fixture.plan(RULES).await;
    assert!(result.plan.has_changes());
    let writes: Vec<_> = fixture
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");
}

/// Panics on the n-th write, like a process killed right after Grafana
/// applied a change and before keyshift saw the answer.
struct KillAt {
    writes: AtomicUsize,
    at: usize,
}

impl RequestObserver for KillAt {
    fn observe(&self, method: &str, _route: &str, _status: u16, _elapsed: Duration) {
        if method != "GET" && self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            panic!("simulated kill after write {}", self.at);
        }
    }
}

/// The end state that matters, without ids.
#[derive(Debug, PartialEq, Eq)]
struct EndState {
    accounts: BTreeSet<(i64, String, String, Vec<String>)>,
    keys: BTreeSet<(i64, String)>,
    ledger: BTreeMap<(i64, String), String>,
    delivered: BTreeSet<String>,
}

fn end_state(fixture: &Fixture) -> EndState {
    let exported = fixture.sim.export_estate();
    let accounts = exported.service_accounts.iter().map(|a| {
        let mut tokens: Vec<String> = a.tokens.iter().map(|t| t.name.clone()).collect();
        tokens.sort();
        (a.org, a.name.clone(), format!("{:?}", a.role), tokens)
    });
    let docs = fixture.delivered();
    // No orphan: every token keyshift made is one whose secret was delivered.
    let delivered_ids: BTreeSet<i64> = docs
        .iter()
        .map(|d| d["token_id"].as_i64().unwrap())
        .collect();
    for token in exported.service_accounts.iter().flat_map(|a| &a.tokens) {
        if token.name.starts_with("ks-") {
            assert!(
                delivered_ids.contains(&token.id.unwrap()),
                "orphan token {}",
                token.name
            );
        }
    }
    EndState {
        accounts: accounts.collect(),
        keys: exported
            .api_keys
            .iter()
            .map(|k| (k.org, k.name.clone()))
            .collect(),
        ledger: fixture
            .credentials()
            .into_iter()
            .map(|c| ((c.org_id, c.name), c.state.to_string()))
            .collect(),
        delivered: docs
            .iter()
            .map(|d| d["token_name"].as_str().unwrap().to_string())
            .collect(),
    }
}

// A migration killed after its n-th write, at many points across the
// run, converges on the next run to the same end state as an
// uninterrupted one: no duplicate account, no orphan token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_migration_converges() {
    for profile in [Profile::V10_4, Profile::V12_1] {
        let reference = Fixture::start(profile, estate().0).await;
        reference.migrate(RULES).await;
        let total = reference.sim.write_count();
        let want = end_state(&reference);
        assert!(total >= 9, "{profile:?}: only {total} writes");
        // Twelve points spread over the run, first and last write included.
        let points: BTreeSet<usize> = (0..12).map(|i| 1 + i * (total - 1) / 11).collect();
        for at in points {
            let fixture = Fixture::start(profile, estate().0).await;
            let mut job = fixture.job(RULES);
            let config = fixture.config(RULES);
            let killer = Arc::new(KillAt {
                writes: AtomicUsize::new(0),
                at,
            });
            job.client = keyshift::app::client(&config)
                .unwrap()
                .with_observer(killer);
            let killed = within(
                "killed run",
                tokio::spawn(async move { job.migrate(None).await }),
            )
            .await;
            assert!(
                killed.is_err_and(|e| e.is_panic()),
                "{profile:?}: run {at} was not killed"
            );
            fixture.migrate(RULES).await;
            assert_eq!(
                end_state(&fixture),
                want,
                "{profile:?}: killed after write {at}"
            );
        }
    }
}

// An org the config selects but Grafana does not have (a typo, or one a
// token cannot reach) is named in the report, and the run needs attention
// instead of succeeding at nothing.
#[tokio::test]
async fn unknown_selected_org_needs_attention() {
    let fixture = Fixture::start(Profile::V10_4, estate().0).await;
    let mut job = fixture.job(RULES);
    job.orgs.include = vec!["1".into(), "nosuch".into()];
    let result = within("plan", job.plan()).await.unwrap();
    assert_eq!(
        result.report.outcome,
        keyshift::ledger::RunOutcome::Attention
    );
    assert!(
        result.report.needs_human[0].contains("\"nosuch\""),
        "{:?}",
        result.report.needs_human
    );
    assert_eq!(result.report.orgs.len(), 1);
}

// Keys whose names differ only in case would get the same login from
// Grafana's per-key migration (logins compare without case): the plan
// keeps one that way and creates a new account for the other, so nothing
// fails and a second run writes nothing.
#[tokio::test]
async fn logins_differing_only_in_case_do_not_collide() {
    for profile in [Profile::V9_5, Profile::V10_4] {
        let mut estate = EstateBuilder::orgs(1);
        for name in ["foo", "Foo", "foo bar", "FOO bar"] {
            estate.key(1, name, Role::Viewer);
        }
        let fixture = Fixture::start(profile, estate.build()).await;
        let result = fixture.migrate("").await;
        let c = &result.report.counts;
        assert_eq!((c.failed, c.blocked, c.conflicts), (0, 0, 0), "{profile:?}");
        let writes = fixture.sim.write_count();
        fixture.migrate("").await;
        assert_eq!(
            fixture.sim.write_count(),
            writes,
            "{profile:?}: second run wrote"
        );
    }
}

// A key Grafana 11.6 converts between the key listing and the account
// listing is planned once, from the account that now holds it.
#[tokio::test]
async fn key_converted_during_discovery_is_planned_once() {
    let fixture = Fixture::start(Profile::V11_6, EstateBuilder::orgs(1).build()).await;
    for name in ["late-1", "late-2"] {
        let key = grafana_sim::Mutation::CreateApiKey {
            org: 1,
            name: name.into(),
            role: Role::Viewer,
            seconds_to_live: None,
        };
        fixture.sim.mutate(key).unwrap();
    }
    fixture.sim.add_fault(grafana_sim::FaultRule {
        method: Some("GET".into()),
        route: Some("/api/auth/keys".into()),
        action: grafana_sim::FaultAction::RestartAfter,
        trigger: grafana_sim::Trigger::Once,
    });
    let result = fixture.plan("").await;
    let members: Vec<_> = result.plan.use_cases().flat_map(|u| &u.members).collect();
    assert_eq!(members.len(), 2, "{members:#?}");
    assert!(members.iter().all(|m| m.source == "autogen-token"));
}

// Before Grafana 10.4.1 a login is unique across the server: the same
// new account name planned in two orgs is caught at plan time, not
// refused by Grafana halfway.
#[tokio::test]
async fn same_new_account_in_two_orgs_before_10_4_1() {
    let mut estate = EstateBuilder::orgs(3);
    for org in 1..=3 {
        estate.key(org, "solo one", Role::Viewer);
    }
    let mut fixture = Fixture::start(Profile::V9_5, estate.build()).await;
    fixture.extra = "[migration]\nkeep_secrets = false\n".into();
    let result = fixture.migrate("").await;
    let c = &result.report.counts;
    assert_eq!(
        (c.done, c.conflicts, c.failed),
        (1, 2, 0),
        "{:?}",
        result.report.needs_human
    );
    assert!(result.report.needs_human[0].contains("login-taken"));
}
