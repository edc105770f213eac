//! Building keyshift's parts from a loaded config.

use std::sync::Arc;

use crate::config::{Config, GrafanaAuth, OrgFilter as ConfigOrgs, OrgRef, SinkConfig};
use crate::grafana::{Client, ClientOptions, Credentials, GrafanaError};
use crate::inventory::OrgFilter;
use crate::job::Job;
use crate::ledger::{Ledger, LedgerError};
use crate::plan::{ExpiredPolicy, LifetimePolicy, Policy, Rule};
use crate::report::ReportStore;
use crate::retry::RetryPolicy;
use crate::sink::Sink;

/// An error while setting up from the config.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The CA file cannot be read.
    #[error("cannot read grafana.ca_file {path}")]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client cannot be built.
    #[error(transparent)]
    Client(#[from] GrafanaError),
    /// The ledger cannot be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger's directory cannot be created.
    #[error("cannot create the ledger directory {path}")]
    LedgerDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The Grafana client the config describes.
///
/// # Errors
/// When the CA file cannot be read or the client cannot be built.
pub fn client(config: &Config) -> Result<Client, SetupError> {
    let grafana = &config.grafana;
    let ca_pem = match &grafana.ca_file {
        Some(path) => Some(std::fs::read(path).map_err(|source| SetupError::CaFile {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let options = ClientOptions {
        url: grafana.url.clone(),
        ca_pem,
        timeout: grafana.timeout,
        connect_timeout: grafana.connect_timeout,
        concurrency: grafana.concurrency,
        requests_per_second: grafana.requests_per_second.map(f64::from),
        retry: RetryPolicy {
            max_retries: grafana.max_retries,
            budget: grafana.retry_budget,
            ..RetryPolicy::default()
        },
    };
    Ok(Client::new(&options, &credentials(config))?)
}

/// The credentials keyshift logs in with.
pub fn credentials(config: &Config) -> Credentials {
    match &config.grafana.auth {
        GrafanaAuth::Basic { user, password } => Credentials::Basic {
            user: user.clone(),
            password: password.secret.clone(),
        },
        GrafanaAuth::Token { token } => Credentials::Token(token.secret.clone()),
    }
}

/// The migration policy of the config.
pub fn policy(config: &Config) -> Policy {
    let rules = config.use_cases.iter().map(|rule| Rule {
        name: rule.name.clone(),
        pattern: rule.pattern.clone(),
        orgs: org_refs(&rule.orgs),
        role: rule.role,
    });
    let migration = &config.migration;
    Policy {
        rules: rules.collect(),
        keep_secrets: migration.keep_secrets,
        expired: match migration.expired {
            crate::config::ExpiredPolicy::Skip => ExpiredPolicy::Skip,
            crate::config::ExpiredPolicy::Delete => ExpiredPolicy::Delete,
        },
        lifetime: match migration.lifetime_limit {
            crate::config::LifetimeLimitPolicy::Clamp => LifetimePolicy::Clamp,
            crate::config::LifetimeLimitPolicy::Skip => LifetimePolicy::Skip,
        },
        max_token_lifetime: migration.max_token_lifetime,
        token_prefix: migration.token_name_prefix.clone(),
    }
}

/// The orgs to work on: `--org` flags win over the config.
pub fn org_filter(config: &Config, flags: &[String]) -> OrgFilter {
    if !flags.is_empty() {
        return OrgFilter {
            include: flags.to_vec(),
            exclude: Vec::new(),
        };
    }
    let selection = &config.orgs;
    OrgFilter {
        include: org_refs(&selection.include),
        exclude: selection.exclude.iter().map(org_ref).collect(),
    }
}

fn org_refs(filter: &ConfigOrgs) -> Vec<String> {
    match filter {
        ConfigOrgs::All => Vec::new(),
        ConfigOrgs::Only(refs) => refs.iter().map(org_ref).collect(),
    }
}

fn org_ref(r: &OrgRef) -> String {
    match r {
        OrgRef::Id(id) => id.to_string(),
        OrgRef::Name(name) => name.clone(),
    }
}

/// Opens the ledger, creating its directory (0700) when missing.
///
/// # Errors
/// When the directory cannot be made or the ledger cannot be opened,
/// e.g. because another process holds it.
pub fn ledger(config: &Config) -> Result<Ledger, SetupError> {
    let path = &config.ledger.path;
    if let Some(dir) = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        create_private_dir(dir).map_err(|source| SetupError::LedgerDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(Ledger::open(path)?)
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The report store of the config.
pub fn reports(config: &Config) -> ReportStore {
    let reports = &config.reports;
    ReportStore::new(&reports.dir, reports.keep as usize, reports.max_age)
}

/// A job over everything the config describes.
///
/// # Errors
/// When the client or the ledger cannot be set up.
pub fn job(config: &Config, orgs: &[String], trigger: &str) -> Result<Job, SetupError> {
    Ok(Job {
        client: client(config)?,
        ledger: Arc::new(ledger(config)?),
        sink: Arc::new(sink(config)),
        policy: policy(config),
        orgs: org_filter(config, orgs),
        concurrency: config.grafana.concurrency,
        trigger: trigger.to_string(),
    })
}

/// The token sink of the config. A command sink does not inherit the
/// environment variable that holds keyshift's own Grafana secret.
pub fn sink(config: &Config) -> Sink {
    let secret_var = match &config.grafana.auth.credential().source {
        crate::config::SecretSource::Env { var } => Some(var.clone()),
        _ => None,
    };
    Sink::from_config(&config.sink).withholding(secret_var)
}

/// Where the sink puts secrets, for messages.
pub fn sink_description(config: &Config) -> String {
    match &config.sink {
        SinkConfig::Directory { path } => format!("directory {}", path.display()),
        SinkConfig::Exec { command, .. } => format!("command {}", command.join(" ")),
    }
}

/// The reconcile settings of the config.
pub fn reconcile_settings(config: &Config) -> crate::reconcile::Settings {
    crate::reconcile::Settings {
        reconcile: config.reconcile.clone(),
        cutover: config.cutover.clone(),
        migrate_new: config.migration.new_credentials,
        token_limit: config.reconcile.token_limit,
    }
}

/// A reconcile job over everything the config describes.
///
/// # Errors
/// When the client or the ledger cannot be set up.
pub fn reconciler(
    config: &Config,
    orgs: &[String],
    trigger: &str,
    repair: bool,
) -> Result<crate::reconcile::Reconciler, SetupError> {
    Ok(crate::reconcile::Reconciler {
        job: job(config, orgs, trigger)?,
        settings: reconcile_settings(config),
        repair,
        now: Arc::new(chrono::Utc::now),
    })
}
