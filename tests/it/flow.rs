//! A simulated Grafana, a config and a migrated estate for flow tests.

use std::path::Path;
use std::sync::Arc;

use chrono::Utc;
use grafana_sim::estate::{EstateKey, EstateOrg};
use grafana_sim::{Estate, Profile, Role as SimRole, SimConfig, SimHandle};
use keyshift::config::Config;
use keyshift::daemon::StopToken;
use keyshift::job::Job;
use keyshift::reconcile::{ReconcileResult, Reconciler};
use tempfile::TempDir;

pub use crate::support::within;

/// A key of org 1, last used `used_days` ago, expiring in `expires_days`.
pub fn key(
    name: &str,
    role: SimRole,
    used_days: Option<i64>,
    expires_days: Option<i64>,
) -> EstateKey {
    let now = Utc::now();
    EstateKey {
        id: None,
        org: 1,
        name: name.into(),
        role,
        created: Some(now - chrono::Duration::days(400)),
        expires: expires_days.map(|d| now + chrono::Duration::days(d)),
        last_used: used_days.map(|d| now - chrono::Duration::days(d)),
        secret: None,
        secret_hash: None,
    }
}

/// Org 1 holding `keys`.
pub fn estate(keys: Vec<EstateKey>) -> Estate {
    Estate {
        orgs: vec![EstateOrg {
            id: 1,
            name: "Main Org.".into(),
        }],
        users: Vec::new(),
        api_keys: keys,
        service_accounts: Vec::new(),
    }
}

/// A simulator, a workspace with a config, and a job over both.
pub struct World {
    pub sim: SimHandle,
    pub dir: TempDir,
    pub config: Config,
    pub job: Job,
}

/// Use-case rules shared by the flow tests.
pub const RULES: &str = r#"
[[use_case]]
name = "ci"
match = "^ci-"

[[use_case]]
name = "etl"
match = "^etl-"

[[use_case]]
name = "backup"
match = "backup"
"#;

impl World {
    /// Starts the simulator with `estate` and writes a config with `extra`.
    pub async fn start(
        profile: Profile,
        version: Option<&str>,
        estate: Estate,
        extra: &str,
    ) -> World {
        let mut sim_config = SimConfig::new(profile).with_estate(estate);
        sim_config.version = version.map(str::to_string);
        let sim = within("simulator start", grafana_sim::start(sim_config))
            .await
            .expect("simulator starts");
        World::with_sim(sim, extra)
    }

    /// Writes a config for a running simulator.
    pub fn with_sim(sim: SimHandle, extra: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &sim.url(), extra);
        let job = keyshift::app::job(&config, &[], "test").unwrap();
        World {
            sim,
            dir,
            config,
            job,
        }
    }

    /// Migrates the estate; panics unless something was migrated.
    pub async fn migrate(&self) {
        let result = within("migrate", self.job.migrate(None)).await.unwrap();
        assert!(result.writes > 0, "migration wrote nothing");
    }

    /// A reconciler on the simulator's clock as it reads now.
    pub fn reconciler(&self, repair: bool) -> Reconciler {
        let now = self.sim.now();
        Reconciler {
            job: self.job.clone(),
            settings: keyshift::app::reconcile_settings(&self.config),
            repair,
            now: Arc::new(move || now),
        }
    }

    /// Runs one reconcile on the simulator's clock.
    pub async fn reconcile(&self, repair: bool) -> ReconcileResult {
        let reconciler = self.reconciler(repair);
        within("reconcile", reconciler.run(&StopToken::never()))
            .await
            .expect("reconcile runs")
    }

    /// The id of the live owned account of a use case.
    pub fn account_of(&self, use_case: &str) -> i64 {
        let ledger = &self.job.ledger;
        let account = ledger.service_account_for_use_case(1, use_case).unwrap();
        account.expect("use case has an account").sa_id
    }

    /// A key's id in the simulator, by name.
    pub fn key_id(&self, name: &str) -> i64 {
        self.sim.with_state(|s| {
            s.keys()
                .find(|k| k.name == name)
                .map(|k| k.id)
                .unwrap_or_else(|| panic!("no key or token named {name}"))
        })
    }

    /// Whether a key or token row exists.
    pub fn row_exists(&self, id: i64) -> bool {
        self.sim.with_state(|s| s.key(id).is_some())
    }

    /// Token files the directory sink holds.
    pub fn delivered(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("tokens"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// The finding kinds of a result, in order.
pub fn kinds(result: &ReconcileResult) -> Vec<&'static str> {
    result.findings.iter().map(|f| f.kind.as_str()).collect()
}

fn write_config(dir: &Path, url: &str, extra: &str) -> Config {
    use std::os::unix::fs::PermissionsExt;
    let secret = dir.join("admin-password");
    std::fs::write(&secret, "admin").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = format!(
        r#"
[grafana]
url = "{url}"
concurrency = 2
max_retries = 0

[grafana.auth]
kind = "basic"
user = "admin"
password_file = "admin-password"

[sink]
kind = "directory"
path = "tokens"

[ledger]
path = "ledger.sqlite"

[reports]
dir = "reports"
{RULES}
{extra}
"#
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).expect("test config loads")
}
