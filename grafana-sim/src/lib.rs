//! grafana-sim: a stateful simulator of Grafana's HTTP API.
//!
//! Module map:
//! - [`profile`]: version profiles, [U] options and server settings
//! - [`credential`]: `glsa_` tokens and legacy keys, hashing
//! - [`state`]: the simulated database and clock
//! - [`estate`]: the estate document (load / export)
//! - [`login`]: service-account login derivation
//! - [`auth`]: authentication and authorization of requests
//! - [`api`]: Grafana's routes, one file per area
//! - [`routes`]: route table and templates
//! - [`migration`]: keys → `sa-autogen-*` accounts
//! - [`mutate`]: out-of-band changes
//! - [`faults`]: fault injection rules
//! - [`requests`]: the request log
//! - [`control`]: the `/__sim/` control API
//! - [`server`]: the hyper server
//! - [`generate`]: the estate generator

pub mod api;
pub mod auth;
pub mod control;
pub mod credential;
pub mod estate;
pub mod faults;
pub mod generate;
pub mod login;
pub mod migration;
pub mod mutate;
pub mod profile;
pub mod requests;
pub mod routes;
pub mod server;
pub mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::info;

pub use auth::{AuthFailure, AuthKind, Identity};
pub use estate::{Admin, Estate, EstateError};
pub use faults::{FaultAction, FaultRule, FaultRuleError, Trigger};
pub use migration::MigrationResult;
pub use mutate::{Mutation, MutationOutcome};
pub use profile::{Options, Profile, ProfileError, Settings};
pub use requests::{RequestCount, RequestRecord};
pub use state::{Role, State, StateError};

use faults::Faults;
use requests::RequestLog;

/// Interval of the startup-migration server lock (13.x code).
const MIGRATION_LOCK_MINUTES: i64 = 30;

/// How to start a simulator.
#[derive(Clone)]
pub struct SimConfig {
    /// Version profile.
    pub profile: Profile,
    /// Version reported by `/api/health`; default per profile.
    pub version: Option<String>,
    /// [U] switches.
    pub options: Options,
    /// Server settings.
    pub settings: Settings,
    /// Server admin login.
    pub admin_login: String,
    /// Server admin password.
    pub admin_password: String,
    /// Initial estate; None starts with org 1 and the admin only.
    pub estate: Option<Estate>,
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("profile", &self.profile)
            .field("version", &self.version)
            .field("options", &self.options)
            .field("settings", &self.settings)
            .field("admin_login", &self.admin_login)
            .field("admin_password", &"***")
            .finish_non_exhaustive()
    }
}

impl SimConfig {
    /// A config with the profile's default options and `admin:admin`.
    pub fn new(profile: Profile) -> SimConfig {
        SimConfig {
            profile,
            version: None,
            options: Options::for_profile(profile),
            settings: Settings::default(),
            admin_login: "admin".into(),
            admin_password: "admin".into(),
            estate: None,
        }
    }

    /// A config for a profile name (`10.4`) or a full version
    /// (`11.2.1`, `v11.2.1`); a full version is also what `/api/health`
    /// reports, without a leading `v`.
    ///
    /// # Errors
    /// When the text names no profile.
    pub fn for_version(text: &str) -> Result<SimConfig, ProfileError> {
        let mut config = SimConfig::new(text.parse()?);
        let version = text.trim().trim_start_matches(['v', 'V']);
        if version.matches('.').count() >= 2 {
            config.version = Some(version.to_string());
        }
        Ok(config)
    }

    /// Sets the initial estate.
    pub fn with_estate(mut self, estate: Estate) -> SimConfig {
        self.estate = Some(estate);
        self
    }
}

/// Error starting or serving a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The estate could not be loaded.
    #[error("failed to load the estate")]
    Estate(#[from] EstateError),
    /// The listener could not be bound or read.
    #[error("failed to listen on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// What a restart did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RestartSummary {
    /// The startup migration ran (profile 11.6+ and lock free).
    pub migration_ran: bool,
    /// Orgs visited.
    pub orgs: usize,
    /// Plain keys found.
    pub total: usize,
    /// Keys converted.
    pub migrated: usize,
    /// Keys that failed (left plain).
    pub failed: usize,
}

/// The database and the settings, behind one lock.
pub(crate) struct Db {
    pub(crate) state: State,
    pub(crate) settings: Settings,
}

/// The shared simulator core.
pub(crate) struct Sim {
    pub(crate) profile: Profile,
    pub(crate) version: String,
    pub(crate) options: Options,
    pub(crate) admin: Admin,
    pub(crate) db: Mutex<Db>,
    pub(crate) log: Mutex<RequestLog>,
    pub(crate) faults: Mutex<Faults>,
}

// A poisoned lock only means a handler panicked; the data stays usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Sim {
    fn new(config: SimConfig) -> Result<Sim, SimError> {
        let admin = Admin {
            login: config.admin_login,
            password: config.admin_password,
        };
        let estate = config.estate.unwrap_or_default();
        let state = estate.to_state(config.profile, &admin)?;
        let version = config
            .version
            .unwrap_or_else(|| config.profile.default_version().into());
        let sim = Sim {
            profile: config.profile,
            version,
            options: config.options,
            admin,
            db: Mutex::new(Db {
                state,
                settings: config.settings,
            }),
            log: Mutex::new(RequestLog::default()),
            faults: Mutex::new(Faults::default()),
        };
        // Grafana runs its startup work when it starts, not only on restart.
        sim.restart();
        Ok(sim)
    }

    pub(crate) fn db(&self) -> MutexGuard<'_, Db> {
        lock(&self.db)
    }

    pub(crate) fn log(&self) -> MutexGuard<'_, RequestLog> {
        lock(&self.log)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub(crate) fn load_estate(&self, estate: &Estate) -> Result<(), EstateError> {
        let mut state = estate.to_state(self.profile, &self.admin)?;
        let mut db = self.db();
        state.keep_clock_of(&db.state);
        db.state = state;
        Ok(())
    }

    pub(crate) fn restart(&self) -> RestartSummary {
        let mut db = self.db();
        let state = &mut db.state;
        let mut summary = RestartSummary::default();
        if !self.profile.startup_migration() || self.is_migration_locked(state) {
            return summary;
        }
        // The lock row is written before the work, as in Grafana.
        state.migration_lock_at = Some(state.now());
        summary.migration_ran = true;
        let orgs: Vec<i64> = state.orgs().map(|o| o.id).collect();
        for org in orgs {
            let result = migration::migrate_org(state, self.profile, org, false);
            summary.orgs += 1;
            summary.total += result.total;
            summary.migrated += result.migrated;
            summary.failed += result.failed;
        }
        if summary.total > 0 {
            info!(
                total_keys = summary.total,
                migrated = summary.migrated,
                failed = summary.failed,
                "API key migration finished"
            );
        }
        summary
    }

    fn is_migration_locked(&self, state: &State) -> bool {
        let window = Duration::minutes(MIGRATION_LOCK_MINUTES);
        self.options.startup_migration_lock
            && state
                .migration_lock_at
                .is_some_and(|at| state.now() - at < window)
    }

    pub(crate) fn whoami(&self, credential: &str) -> Result<Identity, AuthFailure> {
        let header = credential_header(credential);
        let input = auth::AuthInput {
            authorization: Some(&header),
            observe_only: true,
            ..auth::AuthInput::default()
        };
        let mut db = self.db();
        auth::authenticate(self.profile, &self.options, &mut db.state, input)
    }
}

/// Turns a credential into an `Authorization` header: full headers pass
/// through, `user:password` becomes basic auth, anything else a bearer.
fn credential_header(credential: &str) -> String {
    use base64::Engine;
    let text = credential.trim();
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("basic ") || lower.starts_with("bearer ") {
        return text.to_string();
    }
    if text.contains(':') && !text.starts_with("glsa_") {
        let encoded = base64::engine::general_purpose::STANDARD.encode(text);
        return format!("Basic {encoded}");
    }
    format!("Bearer {text}")
}

/// Starts a simulator on `127.0.0.1:0`; dropping the handle stops it.
///
/// # Errors
/// When the estate does not load or the port cannot be bound.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let addr = "127.0.0.1:0";
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Listen {
            addr: addr.into(),
            source,
        })?;
    start_on(config, listener).await
}

/// Starts a simulator on a bound listener, e.g. the address of one that
/// was shut down, to simulate an upgrade and restart of the same server.
///
/// # Errors
/// When the estate does not load or the listener has no address.
pub async fn start_on(config: SimConfig, listener: TcpListener) -> Result<SimHandle, SimError> {
    let local = listener.local_addr().map_err(|source| SimError::Listen {
        addr: "listener".into(),
        source,
    })?;
    let sim = Arc::new(Sim::new(config)?);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(server::run(sim.clone(), listener, stopped));
    Ok(SimHandle {
        sim,
        addr: local,
        stop: Some(stop),
        task: Some(task),
    })
}

/// Serves a simulator on a bound listener until the process ends; logs
/// "listening" once the estate has loaded.
///
/// # Errors
/// When the estate does not load or the listener has no address.
pub async fn serve(config: SimConfig, listener: TcpListener) -> Result<(), SimError> {
    let addr = listener.local_addr().map_err(|source| SimError::Listen {
        addr: "listener".into(),
        source,
    })?;
    let sim = Arc::new(Sim::new(config)?);
    info!(%addr, profile = %sim.profile, "grafana-sim listening");
    let (_stop, stopped) = oneshot::channel();
    server::run(sim, listener, stopped).await;
    Ok(())
}

/// A running in-process simulator.
pub struct SimHandle {
    sim: Arc<Sim>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

impl SimHandle {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The profile being simulated.
    pub fn profile(&self) -> Profile {
        self.sim.profile
    }

    /// Exports the whole state (hashes, never secrets).
    pub fn export_estate(&self) -> Estate {
        Estate::from_state(&self.sim.db().state)
    }

    /// Replaces the whole state; the clock offset is kept.
    ///
    /// # Errors
    /// When the estate does not load; the old state stays.
    pub fn load_estate(&self, estate: &Estate) -> Result<(), EstateError> {
        self.sim.load_estate(estate)
    }

    /// Runs a closure on the state (read-only inspection in tests).
    pub fn with_state<T>(&self, read: impl FnOnce(&State) -> T) -> T {
        read(&self.sim.db().state)
    }

    /// Moves the simulator's clock.
    ///
    /// # Panics
    /// When the clock would leave the years 0..=9999 (the clock stays
    /// put and the simulator keeps answering); see
    /// [`SimHandle::try_advance_clock`].
    pub fn advance_clock(&self, by: Duration) {
        if let Err(err) = self.try_advance_clock(by) {
            panic!("{err}");
        }
    }

    /// Moves the simulator's clock unless it would leave 0..=9999.
    ///
    /// # Errors
    /// [`StateError::TimeOutOfRange`]; the clock stays put.
    pub fn try_advance_clock(&self, by: Duration) -> Result<(), StateError> {
        self.sim.db().state.advance_clock(by)
    }

    /// The simulator's now.
    pub fn now(&self) -> DateTime<Utc> {
        self.sim.db().state.now()
    }

    /// Re-runs startup work (11.6+: converts every plain key).
    pub fn restart(&self) -> RestartSummary {
        self.sim.restart()
    }

    /// Applies an out-of-band change.
    ///
    /// # Errors
    /// When the target does not exist or a name or login collides.
    pub fn mutate(&self, mutation: Mutation) -> Result<MutationOutcome, StateError> {
        mutate::apply(&mut self.sim.db().state, self.sim.profile, mutation)
    }

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.sim.log().records()
    }

    /// Request counts per route template and status.
    pub fn request_counts(&self) -> Vec<RequestCount> {
        self.sim.log().counts()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.sim.log().clear()
    }

    /// Logged Grafana requests that were not GET or HEAD.
    pub fn write_count(&self) -> usize {
        self.sim.log().write_count()
    }

    /// Installs a fault rule.
    ///
    /// # Panics
    /// When the rule does not validate (see [`FaultRule::validate`]):
    /// a typo in a test's rule would otherwise never fire.
    pub fn add_fault(&self, rule: FaultRule) {
        if let Err(err) = rule.validate() {
            panic!("invalid fault rule: {err}");
        }
        self.sim.faults().add(rule)
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.sim.faults().clear()
    }

    /// Replaces the server settings.
    pub fn set_settings(&self, settings: Settings) {
        self.sim.db().settings = settings;
    }

    /// The identity a credential authenticates as, or Grafana's refusal.
    ///
    /// The credential is a token, `user:password`, or a full
    /// `Authorization` header value. Nothing is recorded (no
    /// `lastUsedAt`, no failed-login count).
    pub fn whoami(&self, credential: &str) -> Result<Identity, AuthFailure> {
        self.sim.whoami(credential)
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Debug output of a config never shows the admin password.
    #[test]
    fn config_debug_hides_the_password() {
        let mut config = SimConfig::new(Profile::V10_4);
        config.admin_password = "hunter2".into();
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    // Credentials become the right Authorization header.
    #[test]
    fn credential_headers() {
        assert_eq!(credential_header("glsa_x"), "Bearer glsa_x");
        assert!(credential_header("admin:pw").starts_with("Basic "));
        assert_eq!(credential_header("Bearer t"), "Bearer t");
    }
}
