//! Shared fixtures: a simulator, a config pointing at it, and helpers.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use grafana_sim::credential::encode_legacy;
use grafana_sim::estate::{EstateKey, EstateOrg, EstateServiceAccount, EstateToken, SecretText};
use grafana_sim::{Estate, Profile, Role, SimConfig, SimHandle};
use keyshift::config::Config;
use keyshift::job::{Job, JobResult};
use keyshift::ledger::{CredentialRecord, Ledger};
use tempfile::TempDir;

/// The admin password every fixture uses.
pub const ADMIN_PASSWORD: &str = "sim-admin-Pa55word";

/// Awaits `future` or fails with `what` after 60 s.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(60), future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// A simulator plus a keyshift config and state directory for it.
pub struct Fixture {
    /// The simulator (shared so that test hooks can reach it).
    pub sim: Arc<SimHandle>,
    /// Holds config, ledger, reports and sink.
    pub dir: TempDir,
    /// Extra TOML appended to the config.
    pub extra: String,
    /// The `[grafana.auth]` table; basic auth as the admin by default.
    pub auth: String,
}

impl Fixture {
    /// Starts a simulator with `estate` on `profile`.
    pub async fn start(profile: Profile, estate: Estate) -> Fixture {
        Fixture::start_with(SimConfig::new(profile).with_estate(estate)).await
    }

    /// Starts a simulator from a full config (the admin password is set).
    pub async fn start_with(mut config: SimConfig) -> Fixture {
        config.admin_password = ADMIN_PASSWORD.into();
        let sim = within("simulator start", grafana_sim::start(config))
            .await
            .expect("sim starts");
        Fixture {
            sim: Arc::new(sim),
            dir: tempfile::tempdir().expect("temp dir"),
            extra: String::new(),
            auth: "kind = \"basic\"\nuser = \"admin\"\npassword_file = \"admin-password\"\n".into(),
        }
    }

    /// Path of the sink directory.
    pub fn tokens_dir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// Path of the ledger.
    pub fn ledger_path(&self) -> PathBuf {
        self.dir.path().join("ledger.sqlite")
    }

    /// Writes and loads the config; `rules` are `[[use_case]]` tables.
    pub fn config(&self, rules: &str) -> Config {
        std::fs::write(self.dir.path().join("admin-password"), ADMIN_PASSWORD).unwrap();
        let text = format!(
            "[grafana]\nurl = \"{}\"\nconcurrency = 4\nmax_retries = 2\nretry_budget = \"5s\"\n\
             [grafana.auth]\n{}\n{rules}\n[sink]\nkind = \"directory\"\npath = \"tokens\"\n\
             [ledger]\npath = \"ledger.sqlite\"\n[reports]\ndir = \"reports\"\n{}",
            self.sim.url(),
            self.auth,
            self.extra
        );
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        Config::load(&path).expect("test config loads")
    }

    /// A job over the whole estate.
    pub fn job(&self, rules: &str) -> Job {
        keyshift::app::job(&self.config(rules), &[], "test").expect("job sets up")
    }

    /// Runs migrate to the end.
    pub async fn migrate(&self, rules: &str) -> JobResult {
        let job = self.job(rules);
        within("migrate", job.migrate(None))
            .await
            .expect("migrate runs")
    }

    /// Runs plan.
    pub async fn plan(&self, rules: &str) -> JobResult {
        let job = self.job(rules);
        within("plan", job.plan()).await.expect("plan runs")
    }

    /// Every credential record, from a fresh read of the ledger file.
    pub fn credentials(&self) -> Vec<CredentialRecord> {
        let ledger = Ledger::open(self.ledger_path()).expect("ledger opens");
        ledger.credentials(None).expect("credentials read")
    }

    /// The delivered token documents in the sink directory.
    pub fn delivered(&self) -> Vec<serde_json::Value> {
        read_documents(&self.tokens_dir())
    }
}

/// Reads every JSON document of a sink directory.
pub fn read_documents(dir: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut docs: Vec<serde_json::Value> = entries
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .map(|bytes| serde_json::from_slice(&bytes).expect("sink file is JSON"))
        .collect();
    docs.sort_by_key(|d| d["token_name"].as_str().unwrap_or_default().to_string());
    docs
}

/// An estate builder.
#[derive(Default)]
pub struct EstateBuilder {
    estate: Estate,
    next_key: i64,
}

impl EstateBuilder {
    /// A builder with orgs 1..=n named "org-<id>" (org 1 is "Main Org.").
    pub fn orgs(n: i64) -> Self {
        let orgs = (1..=n)
            .map(|id| EstateOrg {
                id,
                name: if id == 1 {
                    "Main Org.".into()
                } else {
                    format!("org-{id}")
                },
            })
            .collect();
        EstateBuilder {
            estate: Estate {
                orgs,
                ..Estate::default()
            },
            next_key: 1000,
        }
    }

    /// Adds a legacy key with a known secret; returns the secret.
    pub fn key(&mut self, org: i64, name: &str, role: Role) -> String {
        self.key_with(org, name, role, None, None)
    }

    /// Adds a legacy key with expiry and last use in days from now.
    pub fn key_with(
        &mut self,
        org: i64,
        name: &str,
        role: Role,
        expires_days: Option<i64>,
        used_days_ago: Option<i64>,
    ) -> String {
        self.next_key += 1;
        let secret = encode_legacy(org, name, &format!("s3cret{}x{name}", self.next_key));
        let now = Utc::now();
        self.estate.api_keys.push(EstateKey {
            id: Some(self.next_key),
            org,
            name: name.into(),
            role,
            created: Some(now - chrono::Duration::days(400)),
            expires: expires_days.map(|d| now + chrono::Duration::days(d)),
            last_used: used_days_ago.map(|d| now - chrono::Duration::days(d)),
            secret: Some(SecretText(secret.clone())),
            secret_hash: None,
        });
        secret
    }

    /// Adds a service account with one token.
    pub fn account(&mut self, org: i64, name: &str, role: Role, token: &str, external: bool) {
        self.estate.service_accounts.push(EstateServiceAccount {
            id: None,
            uid: None,
            org,
            name: name.into(),
            login: None,
            role,
            disabled: false,
            external,
            permissions: Vec::new(),
            created: None,
            tokens: vec![EstateToken {
                id: None,
                name: token.into(),
                secret: None,
                secret_hash: None,
                created: None,
                expires: None,
                last_used: None,
                revoked: false,
            }],
        });
    }

    /// The estate.
    pub fn build(self) -> Estate {
        self.estate
    }
}
