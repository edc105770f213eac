//! Table-driven tests of the planner.

use super::*;
use crate::grafana::wire::{ApiKey, Org, ServiceAccount, Token};
use crate::grafana::{Capabilities, Listing, Version};
use crate::inventory::{AccountInventory, OrgScope};
use chrono::TimeZone;
use regex::Regex;
use std::time::Duration;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
}

fn key(id: i64, name: &str, role: Role, used_days_ago: Option<i64>) -> ApiKey {
    ApiKey {
        id,
        name: name.into(),
        role,
        expiration: None,
        last_used_at: used_days_ago.map(|d| now() - chrono::Duration::days(d)),
    }
}

fn account(id: i64, name: &str, login: &str, tokens: Vec<Token>) -> AccountInventory {
    let account: ServiceAccount = serde_json::from_value(serde_json::json!({
        "id": id, "name": name, "login": login, "role": "Editor", "orgId": 1
    }))
    .unwrap();
    let kind = crate::inventory::account_kind(&account);
    AccountInventory {
        account,
        kind,
        tokens: Listing {
            items: tokens,
            maybe_truncated: false,
        },
    }
}

fn token(id: i64, name: &str) -> Token {
    serde_json::from_value(serde_json::json!({"id": id, "name": name})).unwrap()
}

fn inventory(version: &str, keys: Vec<ApiKey>, accounts: Vec<AccountInventory>) -> Inventory {
    let org = OrgInventory {
        org: Org {
            id: 1,
            name: "Main Org.".into(),
        },
        keys,
        keys_maybe_truncated: false,
        keys_unreadable: None,
        accounts,
    };
    Inventory {
        url: "http://127.0.0.1:3000/".into(),
        capabilities: Capabilities::of(version.parse::<Version>().unwrap()),
        scope: OrgScope::AllOrgs,
        orgs: vec![org],
        unmatched: Vec::new(),
    }
}

fn rule(name: &str, pattern: &str, role: Option<Role>) -> Rule {
    Rule {
        name: name.into(),
        pattern: Regex::new(pattern).unwrap(),
        orgs: vec![],
        role,
    }
}

fn policy(rules: Vec<Rule>) -> Policy {
    Policy {
        rules,
        ..Policy::default()
    }
}

fn only_use_case(plan: &Plan) -> &UseCasePlan {
    assert_eq!(plan.use_cases().count(), 1, "{plan:#?}");
    plan.use_cases().next().unwrap()
}

// The most recently used key keeps its secret through per-key migration;
// the others get tokens named after the use case and their key id.
#[test]
fn keeps_most_recent_and_reissues_rest() {
    let keys = vec![
        key(1, "ci-a", Role::Editor, Some(10)),
        key(2, "ci-b", Role::Editor, Some(1)),
        key(3, "ci-c", Role::Editor, None),
    ];
    let inv = inventory("10.4.2", keys, vec![]);
    let plan = plan(
        &inv,
        &Known::default(),
        &policy(vec![rule("ci", "^ci-", None)]),
        now(),
    );
    let uc = only_use_case(&plan);
    assert_eq!(uc.target, Target::MigrateKey { key_id: 2 });
    assert_eq!(uc.role, Some(Role::Editor));
    let names: Vec<&str> = uc
        .steps
        .iter()
        .map(|s| match s {
            Step::MigrateKey { .. } => "migrate",
            Step::Rename { .. } => "rename",
            Step::CreateToken { name, .. } => name.as_str(),
            _ => "other",
        })
        .collect();
    assert_eq!(names, ["migrate", "rename", "ks-ci-1", "ks-ci-3"]);
    assert_eq!(uc.members[1].action, Action::Keep);
}

// Members with different roles and no role in the rule are a conflict.
#[test]
fn mixed_roles_conflict() {
    let keys = vec![
        key(1, "ci-a", Role::Editor, None),
        key(2, "ci-b", Role::Admin, None),
    ];
    let inv = inventory("10.4.2", keys, vec![]);
    let plan = plan(
        &inv,
        &Known::default(),
        &policy(vec![rule("ci", "^ci-", None)]),
        now(),
    );
    let uc = only_use_case(&plan);
    assert!(
        uc.conflict.as_deref().unwrap().contains("different roles"),
        "{uc:?}"
    );
    assert!(uc.steps.is_empty());
    assert!(plan.has_conflicts());
}

// A forced role resolves mixed roles and flags the members it changes.
#[test]
fn forced_role_flags_changed_members() {
    let keys = vec![
        key(1, "ci-a", Role::Editor, Some(1)),
        key(2, "ci-b", Role::Admin, None),
    ];
    let inv = inventory("10.4.2", keys, vec![]);
    let rules = vec![rule("ci", "^ci-", Some(Role::Editor))];
    let plan = plan(&inv, &Known::default(), &policy(rules), now());
    let uc = only_use_case(&plan);
    assert_eq!(uc.role, Some(Role::Editor));
    assert!(uc.members[1].flags[0].contains("from Admin to Editor"));
    assert!(uc.members[0].flags.is_empty());
}

// FC-01: a foreign account with the use-case name blocks the use case.
#[test]
fn fc01_name_taken_by_foreign_account() {
    let inv = inventory(
        "10.4.2",
        vec![key(1, "deploy", Role::Editor, None)],
        vec![account(9, "deploy", "sa-1-deploy", vec![])],
    );
    let plan = plan(&inv, &Known::default(), &Policy::default(), now());
    let uc = only_use_case(&plan);
    assert!(uc
        .conflict
        .as_deref()
        .unwrap()
        .starts_with("name-taken: service account 9"));
    assert!(uc.steps.is_empty());
}

// A foreign account whose name differs only in case also blocks.
#[test]
fn name_taken_ignores_case() {
    let inv = inventory(
        "10.4.2",
        vec![key(1, "mon", Role::Viewer, None)],
        vec![account(9, "Mon", "sa-1-mon", vec![])],
    );
    let plan = plan(&inv, &Known::default(), &Policy::default(), now());
    let conflict = only_use_case(&plan).conflict.clone().unwrap();
    assert!(conflict.contains("already named \"Mon\""), "{conflict}");
}

// Role None is refused before 10.2 and accepted from it (FC-17).
#[test]
fn fc17_role_none_needs_10_2() {
    let rules = vec![rule("exporter", "^exp", Some(Role::None))];
    for (version, blocked) in [("10.1.5", true), ("10.4.2", false)] {
        let inv = inventory(version, vec![key(1, "exp", Role::Viewer, None)], vec![]);
        let plan = plan(&inv, &Known::default(), &policy(rules.clone()), now());
        assert_eq!(
            only_use_case(&plan).conflict.is_some(),
            blocked,
            "{version}"
        );
    }
}

// Expired keys are skipped, and never used as the keeper (FC-06).
#[test]
fn fc06_expired_skipped() {
    let mut old = key(1, "app-old", Role::Viewer, Some(0));
    old.expiration = Some(now() - chrono::Duration::days(30));
    let mut soon = key(2, "app-soon", Role::Viewer, Some(5));
    soon.expiration = Some(now() + chrono::Duration::days(3));
    let inv = inventory(
        "10.4.2",
        vec![old, soon, key(3, "app-x", Role::Viewer, Some(9))],
        vec![],
    );
    let plan = plan(
        &inv,
        &Known::default(),
        &policy(vec![rule("app", "^app-", None)]),
        now(),
    );
    let uc = only_use_case(&plan);
    assert!(matches!(uc.members[0].action, Action::Skip(ref r) if r.contains("expired")));
    assert_eq!(uc.target, Target::MigrateKey { key_id: 2 });
    let ttl = uc.steps.iter().find_map(|s| match s {
        Step::CreateToken {
            key_id: 3,
            seconds_to_live,
            ..
        } => Some(*seconds_to_live),
        _ => None,
    });
    assert_eq!(
        ttl,
        Some(0),
        "a key without expiry gets a token without expiry"
    );
}

// Lifetimes over the configured limit are clamped and flagged (FC-14).
#[test]
fn fc14_lifetime_clamped() {
    let mut long = key(2, "job-long", Role::Viewer, None);
    long.expiration = Some(now() + chrono::Duration::days(90));
    let mut short = key(3, "job-short", Role::Viewer, None);
    short.expiration = Some(now() + chrono::Duration::hours(2));
    let keys = vec![key(1, "job-forever", Role::Viewer, Some(1)), long, short];
    let inv = inventory("10.4.2", keys, vec![]);
    let mut pol = policy(vec![rule("job", "^job-", None)]);
    pol.max_token_lifetime = Some(Duration::from_secs(86_400));
    let plan = plan(&inv, &Known::default(), &pol, now());
    let ttls: Vec<(i64, i64)> = plan
        .use_cases()
        .flat_map(|u| &u.steps)
        .filter_map(|s| match s {
            Step::CreateToken {
                key_id,
                seconds_to_live,
                ..
            } => Some((*key_id, *seconds_to_live)),
            _ => None,
        })
        .collect();
    assert_eq!(ttls, vec![(2, 86_400), (3, 7_200)]);
    let uc = only_use_case(&plan);
    assert!(uc
        .members
        .iter()
        .any(|m| m.key_id == 2 && m.flags.iter().any(|f| f.contains("lifetime-shortened"))));
}

// An autogen account with one token is adopted and renamed (11.6+).
#[test]
fn adopts_autogen_account() {
    let accounts = vec![
        account(
            20,
            "sa-autogen-etl-a",
            "sa-autogen-1-etl-a",
            vec![token(5, "etl-a")],
        ),
        account(
            21,
            "sa-autogen-etl-b",
            "sa-autogen-1-etl-b",
            vec![token(6, "etl-b")],
        ),
    ];
    let inv = inventory("12.1.0", vec![], accounts);
    let plan = plan(
        &inv,
        &Known::default(),
        &policy(vec![rule("etl", "^etl-", None)]),
        now(),
    );
    let uc = only_use_case(&plan);
    assert!(matches!(uc.target, Target::Adopt { id: 20 | 21 }));
    assert!(uc
        .steps
        .iter()
        .any(|s| *s == Step::Rename { to: "etl".into() }));
    assert_eq!(
        uc.steps
            .iter()
            .filter(|s| matches!(s, Step::CreateToken { .. }))
            .count(),
        1
    );
}

// A new member whose role differs from the owned account's is a
// conflict, not a silent change of privilege.
#[test]
fn new_member_with_other_role_is_a_conflict() {
    let inv = inventory(
        "10.4.2",
        vec![
            key(3, "ci-new", Role::Admin, None),
            key(4, "ci-ok", Role::Editor, None),
        ],
        vec![account(30, "ci", "sa-1-ci", vec![token(2, "ci-b")])],
    );
    let known = Known {
        accounts: vec![OwnedAccount {
            org: 1,
            id: 30,
            use_case: "ci".into(),
            name: "ci".into(),
            role: Role::Editor,
        }],
        ..Known::default()
    };
    let plan = plan(&inv, &known, &policy(vec![rule("ci", "^ci-", None)]), now());
    let uc = only_use_case(&plan);
    let action = |id| &uc.members.iter().find(|m| m.key_id == id).unwrap().action;
    assert!(matches!(action(3), Action::Conflict(why) if why.contains("role Admin")));
    assert_eq!(action(4), &Action::Reissue);
    assert_eq!(uc.steps.len(), 1, "{:?}", uc.steps);
}

// After a complete migration the plan has no steps (idempotence).
#[test]
fn migrated_credentials_are_unchanged() {
    let inv = inventory(
        "10.4.2",
        vec![key(1, "ci-a", Role::Editor, None)],
        vec![account(
            30,
            "ci",
            "sa-autogen-1-ci-b",
            vec![token(2, "ci-b"), token(40, "ks-ci-1")],
        )],
    );
    let known = Known {
        accounts: vec![OwnedAccount {
            org: 1,
            id: 30,
            use_case: "ci".into(),
            name: "ci".into(),
            role: Role::Editor,
        }],
        tokens: vec![OwnedToken {
            org: 1,
            account: 30,
            id: 40,
            name: "ks-ci-1".into(),
            key_id: 1,
            delivered: true,
        }],
        credentials: HashMap::from([((1, 1), Progress::Migrated), ((1, 2), Progress::Migrated)]),
        settled: vec![],
    };
    let plan = plan(&inv, &known, &policy(vec![rule("ci", "^ci-", None)]), now());
    assert!(!plan.has_changes(), "{plan:#?}");
}
