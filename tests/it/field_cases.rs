//! Field cases of field-cases.md that concern migrate, one test each.

use std::sync::Arc;
use std::time::Duration;

use grafana_sim::{FaultAction, FaultRule, Mutation, Profile, Role, SimConfig, Trigger};
use keyshift::grafana::RequestObserver;
use keyshift::ledger::{CredentialState, Ledger, RunOutcome};
use keyshift::report::MemberStatus;

use crate::support::{within, EstateBuilder, Fixture};

fn state_of(fixture: &Fixture, name: &str) -> (CredentialState, Option<String>) {
    let record = fixture.credentials().into_iter().find(|c| c.name == name);
    let record = record.unwrap_or_else(|| panic!("{name} is not in the ledger"));
    (record.state, record.reason)
}

fn writes_to(fixture: &Fixture, path_part: &str) -> usize {
    let requests = fixture.sim.requests().into_iter();
    requests
        .filter(|r| r.method != "GET" && r.path.contains(path_part))
        .count()
}

// FC-01: a foreign account already has the use-case name: the key is a
// conflict naming that account, the account is untouched, and a rerun
// decides the same.
#[tokio::test]
async fn fc01_name_taken_by_foreign_account() {
    let mut estate = EstateBuilder::orgs(1);
    estate.key(1, "deploy", Role::Editor);
    estate.account(1, "deploy", Role::Viewer, "deploy-token", false);
    let fixture = Fixture::start(Profile::V10_4, estate.build()).await;
    let foreign = fixture.sim.export_estate().service_accounts[0].id.unwrap();

    fixture.migrate("").await;
    let (state, reason) = state_of(&fixture, "deploy");
    assert_eq!(state, CredentialState::Conflict);
    assert!(reason
        .unwrap()
        .contains(&format!("service account {foreign}")));
    assert_eq!(
        writes_to(&fixture, &format!("/api/serviceaccounts/{foreign}")),
        0
    );
    let writes = fixture.sim.write_count();
    fixture.migrate("").await;
    assert_eq!(state_of(&fixture, "deploy").0, CredentialState::Conflict);
    assert_eq!(
        fixture.sim.write_count(),
        writes,
        "a rerun decides the same, writing nothing"
    );
    let exported = fixture.sim.export_estate();
    assert_eq!(
        exported.service_accounts[0].role,
        Role::Viewer,
        "foreign role untouched"
    );
}

// FC-02: token names share one namespace with every key and token of the
// org: keyshift's names cannot hit key names, a taken name is a conflict
// found before any create, and Grafana's refusal is classified as such.
#[tokio::test]
async fn fc02_token_names_unique_across_the_org() {
    let mut estate = EstateBuilder::orgs(1);
    estate.key_with(1, "OnCall", Role::Admin, None, Some(1));
    estate.key_with(1, "oncall-backup", Role::Admin, None, Some(5));
    estate.key(1, "ks-oncall-1002", Role::Viewer); // squats keyshift's name for key 1002
    let fixture = Fixture::start(Profile::V10_4, estate.build()).await;
    let rules = "[[use_case]]\nname = \"oncall\"\nmatch = \"(?i)^oncall\"\n";
    let result = fixture.migrate(rules).await;
    let (state, reason) = state_of(&fixture, "oncall-backup");
    assert_eq!(
        state,
        CredentialState::Conflict,
        "{}",
        keyshift::output::table(&result.report)
    );
    assert!(reason.unwrap().contains("ks-oncall-1002"));
    let failed_creates = fixture
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.route.ends_with("/tokens") && r.status >= 400);
    assert_eq!(
        failed_creates.count(),
        0,
        "the collision is found before any create"
    );

    // Grafana's answer to a duplicate name: 409 before 10.0, 400 after.
    for profile in [Profile::V9_5, Profile::V10_4] {
        let mut estate = EstateBuilder::orgs(1);
        estate.account(1, "oncall", Role::Editor, "OnCall", false);
        let fixture = Fixture::start(profile, estate.build()).await;
        let client = keyshift::app::client(&fixture.config("")).unwrap();
        let sa = fixture.sim.export_estate().service_accounts[0].id.unwrap();
        let error = client.create_token(1, sa, "OnCall", 0).await.unwrap_err();
        assert_eq!(
            error.kind(),
            Some(&keyshift::grafana::ErrorKind::TokenNameTaken),
            "{profile:?}"
        );
    }
}

// FC-04: 150 keys and 3 expired ones: the list shows 100, migrate re-lists
// until it is short and every key is handled; the plan says the list may
// be incomplete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fc04_key_list_capped_at_100() {
    let mut estate = EstateBuilder::orgs(1);
    for i in 0..150 {
        estate.key(1, &format!("key-{i:03}"), Role::Viewer);
    }
    for i in 1..=3 {
        estate.key_with(1, &format!("zz-old-{i}"), Role::Viewer, Some(-30), None);
    }
    let fixture = Fixture::start(Profile::V11_3, estate.build()).await;
    let plan = fixture.plan("").await;
    assert!(plan
        .report
        .needs_human
        .iter()
        .any(|n| n.contains("listing saturated")));
    assert!(plan
        .report
        .notes
        .iter()
        .any(|n| n.contains("more may be hidden")));

    let result = within("migrate", fixture.job("").migrate(None))
        .await
        .unwrap();
    let records = fixture.credentials();
    let kept = records
        .iter()
        .filter(|r| r.state == CredentialState::Kept)
        .count();
    let skipped = records
        .iter()
        .filter(|r| r.state == CredentialState::Skipped)
        .count();
    assert_eq!((kept, skipped, records.len()), (150, 3, 153));
    assert!(
        result.report.needs_human.is_empty(),
        "{:?}",
        result.report.needs_human
    );
}

// FC-06: expired keys are skipped, not revived; the others' tokens expire
// when the keys did, computed from the expiry timestamp; no expiry stays
// no expiry; the ledger keeps both expiries.
#[tokio::test]
async fn fc06_expired_and_nearly_expired_keys() {
    let mut estate = EstateBuilder::orgs(1);
    estate.key_with(1, "old-backup", Role::Viewer, Some(-700), Some(800));
    estate.key_with(1, "nightly", Role::Editor, Some(3), Some(1));
    estate.key_with(1, "quarterly", Role::Viewer, Some(60), Some(1));
    estate.key_with(1, "forever", Role::Admin, None, Some(1));
    let mut fixture = Fixture::start(Profile::V10_4, estate.build()).await;
    fixture.extra = "[migration]\nkeep_secrets = false\n".into();
    fixture.migrate("").await;

    assert_eq!(state_of(&fixture, "old-backup").0, CredentialState::Skipped);
    let keys = fixture.sim.export_estate().api_keys;
    let tokens: Vec<_> = fixture
        .sim
        .export_estate()
        .service_accounts
        .into_iter()
        .flat_map(|a| a.tokens)
        .collect();
    for name in ["nightly", "quarterly", "forever"] {
        let key = keys.iter().find(|k| k.name == name).unwrap();
        let token = tokens
            .iter()
            .find(|t| t.name.ends_with(&format!("-{}", key.id.unwrap())))
            .unwrap();
        match (key.expires, token.expires) {
            (None, None) => {}
            (Some(want), Some(got)) => assert!((want - got).num_seconds().abs() < 60, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        let record = fixture
            .credentials()
            .into_iter()
            .find(|c| c.name == name)
            .unwrap();
        assert_eq!(record.state, CredentialState::Reissued, "{name}");
        let stored = record.expires.map(|e| e.timestamp());
        assert_eq!(
            stored,
            key.expires.map(|e| e.timestamp()),
            "{name}: original expiry kept"
        );
        assert_eq!(
            record.effective_expires.is_some(),
            key.expires.is_some(),
            "{name}"
        );
    }
    assert!(tokens.iter().all(|t| !t.name.contains("old-backup")));
}

// FC-08: Grafana 11.6 converts keys at startup between two runs: a key
// still pending is followed into its sa-autogen account by its id, not
// reported deleted, and migrated; a replaced key's converted row is
// reported as holding the old secret.
#[tokio::test]
async fn fc08_grafana_converts_keys_underneath() {
    let mut estate = EstateBuilder::orgs(1);
    estate.key_with(1, "etl", Role::Editor, None, Some(1));
    estate.key_with(1, "report", Role::Viewer, None, Some(1));
    let mut fixture = Fixture::start(Profile::V11_3, estate.build()).await;
    fixture.extra = "[migration]\nkeep_secrets = false\n".into();
    // The first account creation fails, so "etl" (first by name) stays open.
    fixture.sim.add_fault(FaultRule {
        method: Some("POST".into()),
        route: Some("/api/serviceaccounts".into()),
        action: FaultAction::Status {
            status: 500,
            retry_after: None,
        },
        trigger: Trigger::Once,
    });
    let mut job = fixture.job("");
    job.concurrency = 1;
    within("first migrate", job.migrate(None)).await.unwrap();
    drop(job);
    assert_eq!(state_of(&fixture, "etl").0, CredentialState::Blocked);
    assert_eq!(state_of(&fixture, "report").0, CredentialState::Reissued);
    let etl_id = fixture
        .sim
        .export_estate()
        .api_keys
        .iter()
        .find(|k| k.name == "etl")
        .unwrap()
        .id;

    // Upgrade: the same server, same address, now 11.6.
    let addr = fixture.sim.addr();
    let exported = fixture.sim.export_estate();
    let sim = Arc::try_unwrap(std::mem::replace(&mut fixture.sim, placeholder().await))
        .ok()
        .unwrap();
    within("shutdown", sim.shutdown()).await;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("same address");
    let mut config = SimConfig::new(Profile::V11_6).with_estate(exported);
    config.admin_password = crate::support::ADMIN_PASSWORD.into();
    fixture.sim = Arc::new(grafana_sim::start_on(config, listener).await.unwrap());
    let converted = fixture.sim.export_estate().service_accounts;
    let holder = converted
        .iter()
        .find(|a| a.tokens.iter().any(|t| t.id == etl_id))
        .unwrap();
    assert_eq!(holder.name, "sa-autogen-etl");

    let result = fixture.migrate("").await;
    let etl = fixture
        .credentials()
        .into_iter()
        .find(|c| c.name == "etl")
        .unwrap();
    assert_eq!(
        etl.state,
        CredentialState::Reissued,
        "{}",
        keyshift::output::table(&result.report)
    );
    assert_eq!(
        etl.holder_sa_id, holder.id,
        "followed into the converted account"
    );
    assert!(
        fixture.delivered().iter().all(|d| d["token_name"] != "etl"),
        "FC-02"
    );
    let report = result.report.orgs[0]
        .use_cases
        .iter()
        .flat_map(|u| &u.members);
    let report_member = report.clone().find(|m| m.name == "report").unwrap();
    assert!(
        report_member.detail.contains("sa-autogen"),
        "{}",
        report_member.detail
    );
}

async fn placeholder() -> Arc<grafana_sim::SimHandle> {
    Arc::new(
        grafana_sim::start(SimConfig::new(Profile::V11_6))
            .await
            .unwrap(),
    )
}

// FC-09: a migration call that applies but loses its answer is looked
// up, not lost: the key is kept in the same run, with one account; the
// unknown intent is settled by the next run. A call that failed without
// applying leaves its key blocked (the run needs attention) until the
// next run finishes it. Neither ever makes a duplicate.
#[tokio::test]
async fn fc09_partial_failure_then_resume() {
    for (action, recovered_at_once) in [
        (FaultAction::ApplyThenFail { drop: true }, true),
        (
            FaultAction::Status {
                status: 500,
                retry_after: None,
            },
            false,
        ),
    ] {
        let mut estate = EstateBuilder::orgs(1);
        for name in ["A", "B", "C", "D"] {
            estate.key(1, name, Role::Viewer);
        }
        let fixture = Fixture::start(Profile::V9_5, estate.build()).await;
        fixture.sim.add_fault(FaultRule {
            method: Some("POST".into()),
            route: Some("/api/serviceaccounts/migrate/:keyId".into()),
            action: action.clone(),
            trigger: Trigger::Once,
        });
        let first = fixture.migrate("").await;
        let states: Vec<_> = fixture.credentials().into_iter().map(|c| c.state).collect();
        let blocked = states
            .iter()
            .filter(|s| **s == CredentialState::Blocked)
            .count();
        assert_eq!(
            blocked,
            usize::from(!recovered_at_once),
            "{action:?}: {states:?}"
        );
        let outcome = if recovered_at_once {
            RunOutcome::Done
        } else {
            RunOutcome::Attention
        };
        assert_eq!(first.report.outcome, outcome, "{action:?}");

        fixture.migrate("").await;
        for name in ["A", "B", "C", "D"] {
            assert_eq!(state_of(&fixture, name).0, CredentialState::Kept, "{name}");
        }
        let accounts = fixture.sim.export_estate().service_accounts;
        assert_eq!(accounts.len(), 4, "one account per key, no duplicate");
        let ledger = Ledger::open(fixture.ledger_path()).unwrap();
        assert!(ledger.pending_operations().unwrap().is_empty());
    }
}

/// Sets up token authentication as an Editor service account allowed to
/// create and write service accounts; returns its token.
fn editor_token(fixture: &Fixture) -> String {
    let created = fixture.sim.mutate(Mutation::CreateServiceAccount {
        org: 1,
        name: "automation".into(),
        role: Role::Editor,
        disabled: false,
    });
    let id = created.unwrap().id.unwrap();
    let permissions = [
        "serviceaccounts:read",
        "serviceaccounts:create",
        "serviceaccounts:write",
        "apikeys:read",
    ];
    fixture
        .sim
        .mutate(Mutation::SetServiceAccountPermissions {
            id,
            permissions: permissions.iter().map(|p| p.to_string()).collect(),
        })
        .unwrap();
    let token = fixture.sim.mutate(Mutation::CreateToken {
        service_account_id: id,
        name: "automation-token".into(),
        seconds_to_live: None,
    });
    token.unwrap().key.unwrap()
}

// FC-13: acting as an Editor, a Viewer key migrates but an Admin one ends
// blocked for insufficient privilege, not downgraded; the run says it
// needs attention. A credential revoked mid-run stops the run at once.
#[tokio::test]
async fn fc13_caller_lacks_privilege() {
    let mut estate = EstateBuilder::orgs(1);
    estate.key(1, "admin-key", Role::Admin);
    estate.key(1, "viewer-key", Role::Viewer);
    let mut fixture = Fixture::start(Profile::V11_3, estate.build()).await;
    let token = editor_token(&fixture);
    std::fs::write(fixture.dir.path().join("token"), &token).unwrap();
    fixture.auth = "kind = \"token\"\ntoken_file = \"token\"\n".into();
    fixture.extra = "[migration]\nkeep_secrets = false\n".into();
    let result = fixture.migrate("").await;
    assert_eq!(
        state_of(&fixture, "viewer-key").0,
        CredentialState::Reissued
    );
    let (state, reason) = state_of(&fixture, "admin-key");
    assert_eq!(state, CredentialState::Blocked);
    assert!(reason.unwrap().starts_with("insufficient-privilege"));
    assert_eq!(
        result.report.outcome,
        keyshift::ledger::RunOutcome::Attention
    );
    let roles: Vec<Role> = fixture
        .sim
        .export_estate()
        .service_accounts
        .iter()
        .map(|a| a.role)
        .collect();
    assert!(
        !roles.contains(&Role::Admin),
        "no silent downgrade or escalation: {roles:?}"
    );
    assert!(result
        .report
        .notes
        .iter()
        .any(|n| n.contains("only its own org")));

    // Variant: the credential is revoked after the first write.
    let mut estate = EstateBuilder::orgs(1);
    for name in ["a", "b", "c", "d"] {
        estate.key(1, name, Role::Viewer);
    }
    let mut fixture = Fixture::start(Profile::V11_3, estate.build()).await;
    let token = editor_token(&fixture);
    std::fs::write(fixture.dir.path().join("token"), &token).unwrap();
    fixture.auth = "kind = \"token\"\ntoken_file = \"token\"\n".into();
    let token_id = fixture.sim.whoami(&token).unwrap().key_id.unwrap();
    let mut job = fixture.job("");
    job.concurrency = 1;
    let revoker = Arc::new(RevokeAfterFirstWrite {
        sim: fixture.sim.clone(),
        token_id,
    });
    job.client = keyshift::app::client(&fixture.config(""))
        .unwrap()
        .with_observer(revoker);
    let result = within("migrate", job.migrate(None)).await.unwrap();
    assert_eq!(result.report.outcome, keyshift::ledger::RunOutcome::Failed);
    assert!(
        result.report.needs_human[0].contains("Revoked"),
        "{:?}",
        result.report.needs_human
    );
    drop(job);
    let ledger = Ledger::open(fixture.ledger_path()).unwrap();
    let run = ledger.last_run(None).unwrap().unwrap();
    assert_eq!(run.outcome, Some(keyshift::ledger::RunOutcome::Failed));
    let rejected = fixture
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.status == 401)
        .count();
    assert_eq!(rejected, 1, "a rejected credential is never retried");
}

struct RevokeAfterFirstWrite {
    sim: Arc<grafana_sim::SimHandle>,
    token_id: i64,
}

impl RequestObserver for RevokeAfterFirstWrite {
    fn observe(&self, method: &str, _route: &str, _status: u16, _elapsed: Duration) {
        if method != "GET" {
            let _ = self.sim.mutate(Mutation::RevokeToken { id: self.token_id });
        }
    }
}

// FC-14: with the server's limits, a token that would outlive them is
// clamped to the limit and flagged, a short one keeps its lifetime, and
// the ledger keeps requested and granted expiry; without the limit in the
// config, the refusal blocks the credential once, with no retry loop.
#[tokio::test]
async fn fc14_token_lifetime_limits() {
    let estate = || {
        let mut estate = EstateBuilder::orgs(1);
        estate.key(1, "forever", Role::Viewer);
        estate.key_with(1, "long", Role::Viewer, Some(90), None);
        estate.key_with(1, "short", Role::Viewer, None, None);
        estate.build()
    };
    let mut config = SimConfig::new(Profile::V10_4).with_estate(estate());
    config.settings.api_key_max_seconds_to_live = 86_400;
    config.settings.token_expiration_day_limit = 30;
    let mut short_key = config.estate.as_mut().unwrap().api_keys.iter_mut();
    short_key.find(|k| k.name == "short").unwrap().expires =
        Some(chrono::Utc::now() + chrono::Duration::hours(2));
    let mut fixture = Fixture::start_with(config.clone()).await;
    fixture.extra = "[migration]\nkeep_secrets = false\nmax_token_lifetime = \"1d\"\n".into();
    let result = fixture.migrate("").await;
    let members: Vec<_> = result.report.orgs[0]
        .use_cases
        .iter()
        .flat_map(|u| &u.members)
        .collect();
    for name in ["forever", "long"] {
        let member = members.iter().find(|m| m.name == name).unwrap();
        assert_eq!(member.status, MemberStatus::Done, "{name}");
        assert!(
            member.detail.contains("lifetime-shortened"),
            "{name}: {}",
            member.detail
        );
    }
    let ledger = Ledger::open(fixture.ledger_path()).unwrap();
    let tokens = ledger.tokens(None).unwrap();
    let short = tokens
        .iter()
        .find(|t| t.name.starts_with("ks-short"))
        .unwrap();
    let lifetime = short.granted_expires.unwrap() - chrono::Utc::now();
    assert!(
        (7_000..=7_200).contains(&lifetime.num_seconds()),
        "{lifetime:?}"
    );
    let forever = tokens
        .iter()
        .find(|t| t.name.starts_with("ks-forever"))
        .unwrap();
    assert_eq!(forever.requested_expires, None);
    assert!(forever.granted_expires.is_some());
    drop(ledger);

    // Without the limit in the config: Grafana refuses; blocked, not looped.
    let mut fixture = Fixture::start_with(config).await;
    fixture.extra = "[migration]\nkeep_secrets = false\n".into();
    fixture.migrate("").await;
    let (state, reason) = state_of(&fixture, "forever");
    assert_eq!(state, CredentialState::Blocked);
    assert!(reason.unwrap().contains("max_token_lifetime"));
    let creates = fixture
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.route.ends_with("/tokens") && r.status == 400);
    assert_eq!(creates.count(), 2, "forever and long refused once each");
}

// FC-17: role None is refused before Grafana 10.2 and used from it on.
#[tokio::test]
async fn fc17_role_none() {
    let rules =
        "[[use_case]]\nname = \"rbac-only-exporter\"\nmatch = \"^exporter\"\nrole = \"None\"\n";
    for (profile, version, works) in [
        (Profile::V10_0, "10.1.5", false),
        (Profile::V10_4, "10.4.2", true),
    ] {
        let mut estate = EstateBuilder::orgs(1);
        estate.key(1, "exporter", Role::Viewer);
        let mut config = SimConfig::new(profile).with_estate(estate.build());
        config.version = Some(version.into());
        let mut fixture = Fixture::start_with(config).await;
        fixture.extra = "[migration]\nkeep_secrets = false\n".into();
        fixture.migrate(rules).await;
        let accounts = fixture.sim.export_estate().service_accounts;
        if works {
            assert_eq!(accounts.len(), 1, "{version}");
            assert_eq!(accounts[0].role, Role::None, "{version}");
        } else {
            assert!(
                accounts.is_empty(),
                "{version}: no silent fallback to Viewer"
            );
            let (state, reason) = state_of(&fixture, "exporter");
            assert_eq!(state, CredentialState::Conflict);
            assert!(reason.unwrap().contains("10.2"));
        }
    }
}

// FC-20: a converted key keeps its legacy-format secret: the ledger
// records the format, and the secret still works after adoption and
// rename.
#[tokio::test]
async fn fc20_legacy_format_secret_survives_adoption() {
    let mut estate = EstateBuilder::orgs(1);
    let secret = estate.key_with(1, "exporter", Role::Viewer, None, Some(40));
    assert!(secret.starts_with("eyJ"));
    let fixture = Fixture::start(Profile::V11_6, estate.build()).await;
    fixture.migrate("").await;
    let record = fixture
        .credentials()
        .into_iter()
        .find(|c| c.name == "exporter")
        .unwrap();
    assert_eq!(record.format, keyshift::ledger::SecretFormat::LegacyJson);
    assert_eq!(record.state, CredentialState::Kept);
    let identity = fixture
        .sim
        .whoami(&secret)
        .expect("the old secret still works");
    assert_eq!(identity.user_id, record.target_sa_id);
    let accounts = fixture.sim.export_estate().service_accounts;
    assert_eq!(
        accounts
            .iter()
            .find(|a| a.id == record.target_sa_id)
            .unwrap()
            .name,
        "exporter"
    );
}

// FC-22: accounts managed by Grafana or plugins are never touched, not
// counted as sources, and their token names stay reserved.
#[tokio::test]
async fn fc22_managed_accounts_left_alone() {
    let mut estate = EstateBuilder::orgs(1);
    estate.account(
        1,
        "extsvc-grafana-oncall-app",
        Role::Admin,
        "extsvc-token-grafana-oncall-app",
        true,
    );
    estate.key(1, "grafana-oncall-app", Role::Admin);
    let fixture = Fixture::start(Profile::V11_3, estate.build()).await;
    let managed = fixture.sim.export_estate().service_accounts[0].id.unwrap();
    let result = fixture.migrate("").await;
    assert_eq!(
        writes_to(&fixture, &format!("/api/serviceaccounts/{managed}")),
        0
    );
    assert_eq!(fixture.credentials().len(), 1, "only the key is a source");
    assert!(result
        .report
        .notes
        .iter()
        .any(|n| n.contains("managed by Grafana or plugins")));
    let exported = fixture.sim.export_estate();
    let managed_now = exported
        .service_accounts
        .iter()
        .find(|a| a.id == Some(managed))
        .unwrap();
    assert_eq!(managed_now.tokens.len(), 1);
    assert_eq!(managed_now.name, "extsvc-grafana-oncall-app");
}

// FC-04, grouped: when every listed key belongs to one use case, the
// replaced keys would stay in the capped list and hide the rest; they are
// parked out of it (their secrets intact) so that every key is reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fc04_grouped_keys_behind_the_cap_are_reached() {
    let mut estate = EstateBuilder::orgs(1);
    let mut secrets = Vec::new();
    for i in 0..150 {
        secrets.push(estate.key(1, &format!("key-{i:03}"), Role::Viewer));
    }
    let fixture = Fixture::start(Profile::V10_4, estate.build()).await;
    let rules = "[[use_case]]\nname = \"bulk\"\nmatch = \"^key-\"\n";
    let result = fixture.migrate(rules).await;
    let records = fixture.credentials();
    let kept = records
        .iter()
        .filter(|r| r.state == CredentialState::Kept)
        .count();
    let reissued = records
        .iter()
        .filter(|r| r.state == CredentialState::Reissued)
        .count();
    assert_eq!(
        (kept, reissued),
        (1, 149),
        "{:?}",
        result.report.needs_human
    );
    assert!(
        result.report.needs_human.is_empty(),
        "{:?}",
        result.report.needs_human
    );
    assert_eq!(fixture.delivered().len(), 149);
    for secret in &secrets {
        assert!(
            fixture.sim.whoami(secret).is_ok(),
            "every old secret works until cut-over"
        );
    }
    let writes = fixture.sim.write_count();
    fixture.migrate(rules).await;
    assert_eq!(
        fixture.sim.write_count(),
        writes,
        "a second run writes nothing"
    );
}

// FC-04 with a generated estate: replaced keys that sort first would keep
// the list full; parked (and expired ones deleted by policy), they uncover
// every key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fc04_generated_estate_behind_the_cap_is_reached() {
    let estate = grafana_sim::generate::generate(&grafana_sim::generate::GenerateConfig {
        orgs: 1,
        keys_per_org: 250,
        seed: 3,
        now: chrono::Utc::now(),
    });
    let keys = estate.api_keys.len();
    let mut fixture = Fixture::start(Profile::V10_4, estate).await;
    // Skipped keys are left untouched: when enough of them sort first they
    // fill the list, so this estate's expired keys are deleted by policy.
    fixture.extra = "[migration]\nexpired = \"delete\"\n".into();
    let result = fixture.migrate("").await;
    assert_eq!(fixture.credentials().len(), keys, "every key reached");
    let saturated = result
        .report
        .needs_human
        .iter()
        .any(|n| n.contains("saturated"));
    assert!(!saturated, "{:?}", result.report.needs_human);
}
