//! Generator of large, realistic estates.
//!
//! Keys group into use cases the way real estates grow: numbered CI
//! deployers sharing a role, one exporter per environment, a backup
//! job, Terraform per team, on-call tooling, and one-off keys. Output
//! is deterministic for a (seed, now) pair.

use chrono::{DateTime, Duration, DurationRound, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::credential;
use crate::estate::{Estate, EstateKey, EstateOrg, SecretText};
use crate::state::Role;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Number of orgs, org 1 included.
    pub orgs: usize,
    /// Legacy keys per org.
    pub keys_per_org: usize,
    /// Random seed.
    pub seed: u64,
    /// Reference time for expiry and last use.
    pub now: DateTime<Utc>,
}

const ORG_NAMES: [&str; 12] = [
    "platform", "payments", "search", "mobile", "data", "security", "growth", "infra", "checkout",
    "identity", "media", "support",
];
const ENVS: [&str; 8] = [
    "prod", "staging", "dev", "qa", "eu-west", "us-east", "perf", "sandbox",
];
const TEAMS: [&str; 8] = [
    "core",
    "edge",
    "db",
    "network",
    "observability",
    "ml",
    "web",
    "api",
];
const SINGLES: [&str; 16] = [
    "alice-laptop",
    "dashboard-sync",
    "k6-load-test",
    "slack-bot",
    "status-page",
    "jira-integration",
    "old-script",
    "bob-test",
    "report-export",
    "kiosk-tv",
    "annotation-writer",
    "alert-webhook",
    "migration-tmp",
    "demo",
    "sla-report",
    "api-explorer",
];

/// A use case: name pattern, role and how many keys it has.
struct UseCase {
    names: Vec<String>,
    role: Role,
}

/// Generates an estate.
pub fn generate(config: &GenerateConfig) -> Estate {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let now = config
        .now
        .duration_trunc(Duration::hours(1))
        .unwrap_or(config.now);
    let mut estate = Estate {
        orgs: org_list(config.orgs),
        ..Estate::default()
    };
    let mut next_id = 1;
    for org in 1..=config.orgs.max(1) as i64 {
        for case in use_cases(&mut rng, config.keys_per_org) {
            for name in case.names {
                let key = make_key(&mut rng, now, org, name, case.role, next_id);
                estate.api_keys.push(key);
                next_id += 1;
            }
        }
    }
    estate
}

fn org_list(count: usize) -> Vec<EstateOrg> {
    let name = |i: usize| match i {
        0 => "Main Org.".to_string(),
        i if i <= ORG_NAMES.len() => ORG_NAMES[i - 1].to_string(),
        i => format!("{}-{}", ORG_NAMES[(i - 1) % ORG_NAMES.len()], i),
    };
    (0..count.max(1))
        .map(|i| EstateOrg {
            id: i as i64 + 1,
            name: name(i),
        })
        .collect()
}

/// Use cases filling exactly `total` keys with unique names.
fn use_cases(rng: &mut ChaCha8Rng, total: usize) -> Vec<UseCase> {
    let mut cases = vec![];
    let mut left = total;
    let mut round = 0;
    while left > 0 {
        let mut case = pick_case(rng, round);
        case.names.truncate(left);
        left -= case.names.len();
        cases.push(case);
        round += 1;
    }
    cases
}

// Later rounds add `-2`, `-3`… so names stay unique in the org; the
// first round is the unsuffixed "first" copy.
fn pick_case(rng: &mut ChaCha8Rng, round: usize) -> UseCase {
    let cycle = round / 6;
    let tag = |base: String| match cycle {
        0 => base,
        n => format!("{base}-{}", n + 1),
    };
    match round % 6 {
        0 => {
            let k = rng.gen_range(2..=6);
            let names = (1..=k).map(|i| tag(format!("ci-deploy-{i}"))).collect();
            UseCase {
                names,
                role: Role::Editor,
            }
        }
        1 => {
            let count = rng.gen_range(2..=ENVS.len());
            let envs = ENVS.choose_multiple(rng, count);
            let names = envs
                .map(|e| tag(format!("prometheus-exporter-{e}")))
                .collect();
            UseCase {
                names,
                role: Role::Viewer,
            }
        }
        2 => UseCase {
            names: vec![tag("grafana-backup".into())],
            role: Role::Admin,
        },
        3 => {
            let count = rng.gen_range(1..=4);
            let teams = TEAMS.choose_multiple(rng, count);
            let names = teams.map(|t| tag(format!("terraform-{t}"))).collect();
            UseCase {
                names,
                role: Role::Admin,
            }
        }
        4 => UseCase {
            names: vec![tag("oncall".into()), tag("oncall-escalation".into())],
            role: Role::Editor,
        },
        _ => {
            let count = rng.gen_range(1..=4);
            let picks = SINGLES.choose_multiple(rng, count);
            let names = picks.map(|s| tag(s.to_string())).collect();
            UseCase {
                names,
                role: Role::Viewer,
            }
        }
    }
}

fn make_key(
    rng: &mut ChaCha8Rng,
    now: DateTime<Utc>,
    org: i64,
    name: String,
    role: Role,
    id: i64,
) -> EstateKey {
    let (key, _) = credential::new_legacy(rng, org, &name);
    let age_days = rng.gen_range(30..700);
    let created = now - Duration::days(age_days);
    let expires = match rng.gen_range(0..100) {
        // Expired keys expired after they were created.
        0..=9 => Some(now - Duration::days(rng.gen_range(1..age_days.min(200)))),
        10..=19 => Some(now + Duration::hours(rng.gen_range(2..24 * 7))),
        20..=49 => Some(now + Duration::days(rng.gen_range(30..400))),
        _ => None,
    };
    let last_used = match rng.gen_range(0..100) {
        0..=19 => None,
        _ => Some(now - Duration::minutes(rng.gen_range(1..60 * 24 * 90))),
    };
    // A key is used between its creation and its expiry, never after.
    let last_used = last_used
        .map(|t| t.max(created))
        .map(|t| expires.map_or(t, |e| t.min(e)));
    EstateKey {
        id: Some(id),
        org,
        name,
        role,
        created: Some(created),
        expires,
        last_used,
        secret: Some(SecretText(key)),
        secret_hash: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estate::Admin;
    use crate::profile::Profile;

    fn config(seed: u64) -> GenerateConfig {
        GenerateConfig {
            orgs: 3,
            keys_per_org: 40,
            seed,
            now: Utc::now(),
        }
    }

    // Same seed, same estate; the estate loads and has M keys per org.
    #[test]
    fn generation_is_deterministic_and_loads() {
        let a = generate(&config(7));
        assert_eq!(a, generate(&config(7)));
        assert_ne!(a, generate(&config(8)));
        assert_eq!(a.orgs.len(), 3);
        assert_eq!(a.api_keys.len(), 120);
        let admin = Admin {
            login: "admin".into(),
            password: "pw".into(),
        };
        let state = a.to_state(Profile::V10_4, &admin).unwrap();
        assert_eq!(state.plain_keys_in(2).count(), 40);
    }

    // Names group into use cases and a group shares one role.
    #[test]
    fn use_cases_share_a_role() {
        let estate = generate(&config(1));
        let ci: Vec<_> = estate
            .api_keys
            .iter()
            .filter(|k| k.name.starts_with("ci-deploy-"))
            .collect();
        assert!(ci.len() >= 2);
        assert!(ci.iter().all(|k| k.role == Role::Editor));
        let now = Utc::now();
        assert!(estate
            .api_keys
            .iter()
            .any(|k| k.expires.is_some_and(|e| e < now)));
    }
}
