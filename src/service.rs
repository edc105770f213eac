//! `keyshift run`: the daemon wired to reconcile.
//!
//! [`crate::daemon`] knows schedules and signals, not Grafana; this module
//! gives it a job (one reconcile, which also migrates new credentials when
//! the config says so) and a reload (re-read the config, keep the ledger),
//! and connects the Grafana client's requests to the metrics.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::app::{self, SetupError};
use crate::config::{Config, ConfigError};
use crate::daemon::{
    self, BoxFuture, Clock, Daemon, DaemonOptions, JobOutcome, Outcome, Settings, Signal,
    StopToken, Trigger,
};
use crate::grafana::RequestObserver;
use crate::ledger::{Ledger, RunKind, RunOutcome};
use crate::metrics::{self, Metrics};
use crate::notify::Notifier;
use crate::reconcile::{Now, Reconciler};
use crate::report::ReportStore;

/// Re-reads the config on SIGHUP.
pub type LoadConfig = Box<dyn FnMut() -> Result<Config, ConfigError> + Send>;

/// Everything `keyshift run` needs; tests pass their own parts.
pub struct ServeOptions {
    /// The config at start.
    pub config: Config,
    /// Where a reload reads the config from.
    pub load: LoadConfig,
    /// SIGHUP, SIGTERM, SIGINT (a channel in tests).
    pub signals: mpsc::Receiver<Signal>,
    /// Wall time for the schedule.
    pub clock: Clock,
    /// systemd notifications.
    pub notifier: Notifier,
    /// The registry `/metrics` serves.
    pub metrics: Metrics,
    /// The clock reconcile judges by.
    pub now: Now,
}

/// The bound metrics address, for logs and tests.
pub type MetricsAddr = Option<SocketAddr>;

/// What a run of the daemon needs between ticks.
struct Current {
    reconciler: Reconciler,
    reports: ReportStore,
}

/// Feeds each Grafana request into the metrics, by route template.
struct Observer(Metrics);

impl RequestObserver for Observer {
    fn observe(&self, _method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = (status != 0).then_some(status);
        self.0.record_grafana_request(route, status, elapsed);
    }
}

/// Runs `keyshift run` from the command line until a signal stops it.
///
/// # Errors
/// When setup fails (ledger, client, signals, notify socket, metrics).
pub async fn run(config: Config) -> anyhow::Result<crate::cli::Exit> {
    let env = crate::config::Environment::from_process();
    let path = config.origin.clone();
    let options = ServeOptions {
        load: Box::new(move || Config::load_with(&path, &env)),
        signals: daemon::os_signals()?,
        clock: Clock::system(),
        notifier: Notifier::from_env()?,
        metrics: Metrics::new(),
        now: Arc::new(chrono::Utc::now),
        config,
    };
    let exit = serve(options).await?;
    match exit.code() {
        0 => Ok(crate::cli::Exit::Done),
        // A second signal: exit at once with 128 + signal.
        code => std::process::exit(code),
    }
}

/// Builds the daemon around reconcile and runs it until stopped.
///
/// # Errors
/// When the ledger, client or metrics server cannot be set up.
pub async fn serve(options: ServeOptions) -> Result<daemon::Exit, ServeError> {
    let ServeOptions {
        config,
        mut load,
        signals,
        clock,
        notifier,
        metrics,
        now,
    } = options;
    let ledger = Arc::new(app::ledger(&config)?);
    let _server = match config.daemon.metrics_listen {
        Some(addr) => Some(metrics::serve(addr, metrics.clone()).await?),
        None => None,
    };
    let current = Arc::new(Mutex::new(build(&config, &ledger, &metrics, &now)?));
    let last_run = ledger
        .last_run(Some(RunKind::Reconcile))?
        .map(|r| r.started_at);
    publish_ledger(&ledger, &metrics);
    let daemon_options = DaemonOptions {
        settings: Settings {
            schedule: config.reconcile.schedule.clone(),
        },
        last_run,
        catch_up: config.daemon.catch_up,
        watchdog: config.daemon.watchdog,
        job_kind: "reconcile",
    };
    let job = {
        let (current, metrics) = (current.clone(), metrics.clone());
        move |trigger: Trigger, stop: StopToken| one_run(&current, &metrics, trigger, stop)
    };
    let reload = {
        let (current, ledger, metrics, now) =
            (current.clone(), ledger.clone(), metrics.clone(), now);
        move || -> Result<Settings, daemon::ReloadError> {
            let config = load()?;
            let fresh = build(&config, &ledger, &metrics, &now)?;
            *current.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
            info!(schedule = %config.reconcile.schedule, "config reloaded");
            Ok(Settings {
                schedule: config.reconcile.schedule.clone(),
            })
        }
    };
    let daemon = Daemon::new(daemon_options, signals)
        .with_clock(clock)
        .with_notifier(notifier)
        .with_metrics(metrics);
    let exit = daemon.run(job, reload).await;
    if let Err(error) = ledger.checkpoint() {
        warn!(error = %error, "ledger checkpoint at exit failed");
    }
    Ok(exit)
}

// The ledger is opened once: a reload must not drop its lock.
fn build(
    config: &Config,
    ledger: &Arc<Ledger>,
    metrics: &Metrics,
    now: &Now,
) -> Result<Current, SetupError> {
    if config.ledger.path != ledger.path() {
        warn!(path = %config.ledger.path.display(),
            "ledger.path changed; it takes effect at the next start");
    }
    let observer = Arc::new(Observer(metrics.clone()));
    let job = crate::job::Job {
        client: app::client(config)?.with_observer(observer),
        ledger: ledger.clone(),
        sink: Arc::new(crate::app::sink(config)),
        policy: app::policy(config),
        orgs: app::org_filter(config, &[]),
        concurrency: config.grafana.concurrency,
        trigger: "schedule".into(),
    };
    Ok(Current {
        reconciler: Reconciler {
            job,
            settings: app::reconcile_settings(config),
            repair: true,
            now: now.clone(),
        },
        reports: app::reports(config),
    })
}

fn one_run(
    current: &Mutex<Current>,
    metrics: &Metrics,
    trigger: Trigger,
    stop: StopToken,
) -> BoxFuture<JobOutcome> {
    let (mut reconciler, reports) = {
        let current = current.lock().unwrap_or_else(PoisonError::into_inner);
        (current.reconciler.clone(), current.reports.clone())
    };
    reconciler.job.trigger = trigger.as_str().to_string();
    let metrics = metrics.clone();
    Box::pin(async move {
        let outcome = match reconciler.run(&stop).await {
            Ok(result) => {
                for report in result.nested.iter().chain([&result.report]) {
                    if let Err(error) = reports.write(report) {
                        warn!(error = %error, "cannot write the run report");
                    }
                }
                for nested in &result.nested {
                    let took = (nested.finished_at - nested.started_at)
                        .to_std()
                        .unwrap_or_default();
                    metrics.record_run(
                        "migrate",
                        nested.outcome.as_str(),
                        nested.finished_at,
                        took,
                    );
                }
                let summary = format!(
                    "{} finding(s), {} need attention",
                    result.findings.len(),
                    result.report.needs_human.len()
                );
                JobOutcome::new(outcome_of(result.report.outcome), summary)
            }
            Err(error) => {
                error!(error = %error, "reconcile failed");
                JobOutcome::new(Outcome::Failed, "reconcile failed; see the log")
            }
        };
        publish_ledger(&reconciler.job.ledger, &metrics);
        outcome
    })
}

fn outcome_of(outcome: RunOutcome) -> Outcome {
    match outcome {
        RunOutcome::Done => Outcome::Done,
        RunOutcome::Attention => Outcome::Attention,
        RunOutcome::Failed => Outcome::Failed,
        RunOutcome::Interrupted => Outcome::Interrupted,
    }
}

// Credentials by state and the last reconcile's findings by kind.
fn publish_ledger(ledger: &Ledger, metrics: &Metrics) {
    let Ok(credentials) = ledger.credentials(None) else {
        return;
    };
    let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
    for credential in &credentials {
        *by_state.entry(credential.state.as_str()).or_default() += 1;
    }
    metrics.set_credentials(by_state);
    let last = ledger.last_run(Some(RunKind::Reconcile)).ok().flatten();
    let findings = last
        .and_then(|run| ledger.findings(run.id).ok())
        .unwrap_or_default();
    let mut by_kind = std::collections::BTreeMap::<(String, &str), u64>::new();
    for finding in &findings {
        *by_kind
            .entry((finding.kind.clone(), finding.severity.as_str()))
            .or_default() += 1;
    }
    metrics.set_findings(by_kind.iter().map(|((k, s), n)| (k.as_str(), *s, *n)));
}

/// An error setting up `keyshift run`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The ledger, client or sink.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The ledger failed while starting.
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
    /// The metrics address cannot be served.
    #[error(transparent)]
    Metrics(#[from] metrics::ServeError),
}
