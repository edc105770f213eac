//! `keyshift run`: the scheduling loop around reconciliation.
//!
//! The daemon knows nothing about Grafana. It calls a job (an async
//! function) on a cron schedule, one run at a time, and a reload callback
//! on SIGHUP, and it keeps systemd and the metrics informed:
//!
//! - a tick that comes while a run is going is skipped, logged and counted;
//! - at start, one catch-up run when a fire time was missed since the last
//!   run and that run is older than the schedule's period;
//! - SIGHUP calls `reload`; an error keeps the current settings;
//! - the first SIGTERM/SIGINT stops new runs and sets the job's
//!   [`StopToken`]; the daemon returns [`Exit::Stopped`] (code 0) when the
//!   run in flight returns. A second signal returns [`Exit::Forced`] at
//!   once (code 128 + signal: 143 for SIGTERM, 130 for SIGINT) and drops
//!   the run, which the ledger closes as interrupted on the next start.
//!
//! Tests drive it in-process: signals come from a channel and wall time
//! from a [`Clock`] that follows tokio's (pausable) clock.

mod clock;
mod job;
mod signal;

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;
use tracing::{error, info, info_span, warn, Instrument};

pub use clock::Clock;
pub use job::{BoxFuture, JobOutcome, Outcome, StopToken, Trigger};
pub use signal::{os_signals, Signal};

use crate::metrics::{Health, Metrics};
use crate::notify::Notifier;
use crate::schedule::Schedule;

/// The longest single sleep; after it the wall clock is read again, so a
/// clock step or a suspend delays a run by at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// An error from the reload callback, logged and otherwise ignored.
pub type ReloadError = Box<dyn std::error::Error + Send + Sync>;

/// The settings a reload may replace.
#[derive(Clone, Debug)]
pub struct Settings {
    /// When runs happen.
    pub schedule: Schedule,
}

/// Everything the daemon needs besides the job itself.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// Settings at start; SIGHUP may replace them.
    pub settings: Settings,
    /// When the last run (of any trigger) started, from the ledger.
    pub last_run: Option<DateTime<Utc>>,
    /// Whether to catch up a missed run at start.
    pub catch_up: bool,
    /// Whether to ping systemd's watchdog when it asks for it.
    pub watchdog: bool,
    /// The run kind metrics label the job's runs with (`reconcile`).
    pub job_kind: &'static str,
}

/// How [`Daemon::run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Stopped by a signal after the run in flight finished.
    Stopped(Signal),
    /// A second signal came while waiting for the run; it was dropped.
    Forced(Signal),
    /// The signal source closed; treated as a clean stop.
    SignalsClosed,
}

impl Exit {
    /// Returns the process exit code: 0, or 128 + signal when forced.
    pub fn code(self) -> i32 {
        match self {
            Exit::Stopped(_) | Exit::SignalsClosed => 0,
            Exit::Forced(signal) => signal.exit_code(),
        }
    }
}

/// The daemon, assembled before it runs.
pub struct Daemon {
    options: DaemonOptions,
    signals: mpsc::Receiver<Signal>,
    clock: Clock,
    notifier: Notifier,
    metrics: Metrics,
}

impl Daemon {
    /// Creates a daemon on the system clock, without systemd or metrics.
    pub fn new(options: DaemonOptions, signals: mpsc::Receiver<Signal>) -> Self {
        Daemon {
            options,
            signals,
            clock: Clock::system(),
            notifier: Notifier::disabled(),
            metrics: Metrics::new(),
        }
    }

    /// Uses `clock` for wall time (tests pass a derived clock).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sends readiness, status and watchdog pings through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Records runs, skipped ticks and health in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Runs until a signal stops it.
    ///
    /// `job` starts one run and must return quickly with its future;
    /// `reload` re-reads the config, swaps whatever the job reads, and
    /// returns the new daemon settings.
    pub async fn run<J, R>(self, job: J, reload: R) -> Exit
    where
        J: Fn(Trigger, StopToken) -> BoxFuture<JobOutcome>,
        R: FnMut() -> Result<Settings, ReloadError>,
    {
        let Daemon {
            options,
            signals,
            clock,
            notifier,
            metrics,
        } = self;
        let next_tick = first_tick(&options.settings.schedule, clock.now());
        let (stop, _) = watch::channel(false);
        let state = Loop {
            settings: options.settings.clone(),
            job_kind: options.job_kind,
            clock,
            notifier,
            metrics,
            job,
            reload,
            next_tick,
            running: None,
            stop,
            stopping: None,
            last: None,
        };
        state.run(options, signals).await
    }
}

/// A run in flight.
struct Running {
    handle: JoinHandle<JobOutcome>,
    trigger: Trigger,
    started: Instant,
}

/// A run that ended (or panicked), with what was known when it began.
type Finished = (Result<JobOutcome, JoinError>, Running);

/// The outcome of the last finished run, for the status line.
struct LastRun {
    outcome: JobOutcome,
    at: DateTime<Utc>,
}

/// The daemon's mutable state while it runs.
struct Loop<J, R> {
    settings: Settings,
    job_kind: &'static str,
    clock: Clock,
    notifier: Notifier,
    metrics: Metrics,
    job: J,
    reload: R,
    next_tick: DateTime<Utc>,
    running: Option<Running>,
    stop: watch::Sender<bool>,
    stopping: Option<Signal>,
    last: Option<LastRun>,
}

impl<J, R> Loop<J, R>
where
    J: Fn(Trigger, StopToken) -> BoxFuture<JobOutcome>,
    R: FnMut() -> Result<Settings, ReloadError>,
{
    async fn run(mut self, options: DaemonOptions, mut signals: mpsc::Receiver<Signal>) -> Exit {
        self.start(&options);
        let mut watchdog = self.watchdog_timer(options.watchdog);

        loop {
            let pause = self.until_next_tick();
            tokio::select! {
                received = signals.recv() => match received {
                    Some(Signal::Reload) => self.on_reload(),
                    Some(signal) => {
                        if let Some(exit) = self.on_stop_signal(signal) {
                            return exit;
                        }
                    }
                    None => return self.on_signals_closed().await,
                },
                finished = wait(&mut self.running) => {
                    self.on_finished(finished);
                    if let Some(signal) = self.stopping {
                        info!(signal = signal.name(), "stopped");
                        return Exit::Stopped(signal);
                    }
                }
                () = tokio::time::sleep(pause), if self.stopping.is_none() => {
                    if self.clock.now() >= self.next_tick {
                        self.on_tick();
                    }
                }
                _ = tick(&mut watchdog) => self.ping_watchdog(),
            }
        }
    }

    /// Starts up: catch-up run if due, then READY=1.
    fn start(&mut self, options: &DaemonOptions) {
        let now = self.clock.now();
        let schedule = &self.settings.schedule;
        info!(schedule = %schedule, next = %stamp(self.next_tick), "daemon started");
        if options.catch_up && is_catch_up_due(schedule, options.last_run, now) {
            info!(last_run = ?options.last_run.map(stamp), "catching up a missed run");
            self.start_run(Trigger::CatchUp(options.last_run));
        }

        self.metrics.set_health(Health::Ready);
        self.notify("ready", Notifier::ready);
        self.publish_status();
    }

    fn watchdog_timer(&self, enabled: bool) -> Option<tokio::time::Interval> {
        let interval = self.notifier.watchdog_interval().filter(|_| enabled)?;
        // Half the interval, as systemd recommends, so one late ping
        // does not get the service killed.
        let mut timer = tokio::time::interval(interval / 2);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(every = ?interval / 2, "watchdog enabled");
        Some(timer)
    }

    fn until_next_tick(&self) -> Duration {
        let left = (self.next_tick - self.clock.now()).to_std();
        left.unwrap_or(Duration::ZERO).min(MAX_SLEEP)
    }

    /// Starts a run unless one is going; then schedules the next tick.
    fn on_tick(&mut self) {
        let due = self.next_tick;
        if let Some(running) = &self.running {
            info!(
                tick = %stamp(due),
                running = %running.trigger,
                "tick skipped: a run is still going"
            );
            self.metrics.record_skipped_tick();
        } else {
            self.start_run(Trigger::Scheduled(due));
        }

        // From `now` too: after a clock step or suspend, one run, not a
        // burst for every fire time that passed.
        let after = due.max(self.clock.now());
        self.next_tick = first_tick(&self.settings.schedule, after);
        self.publish_status();
    }

    fn start_run(&mut self, trigger: Trigger) {
        let span = info_span!("run", trigger = %trigger);
        let stop = StopToken::new(self.stop.subscribe());
        let future = (self.job)(trigger, stop).instrument(span);
        info!(trigger = %trigger, "run started");
        self.running = Some(Running {
            handle: tokio::spawn(future),
            trigger,
            started: Instant::now(),
        });
    }

    fn on_finished(&mut self, finished: Finished) {
        let (result, running) = finished;
        let took = running.started.elapsed();
        let outcome = result.unwrap_or_else(|e| {
            error!(error = %e, "run panicked");
            JobOutcome::new(Outcome::Failed, "run panicked")
        });
        let at = self.clock.now();
        self.metrics
            .record_run(self.job_kind, outcome.outcome.as_str(), at, took);
        self.log_outcome(&outcome, running.trigger, took);
        self.last = Some(LastRun { outcome, at });
        self.publish_status();
    }

    fn log_outcome(&self, outcome: &JobOutcome, trigger: Trigger, took: Duration) {
        let summary = outcome.summary.as_str();
        let next = stamp(self.next_tick);
        match outcome.outcome {
            Outcome::Done | Outcome::Attention => info!(
                %trigger, outcome = outcome.outcome.as_str(), summary, ?took, %next,
                "run finished"
            ),
            Outcome::Interrupted => warn!(%trigger, summary, ?took, "run interrupted"),
            Outcome::Failed => error!(%trigger, summary, ?took, %next, "run failed"),
        }
    }

    fn on_reload(&mut self) {
        if self.stopping.is_some() {
            info!("reload ignored: shutting down");
            return;
        }
        self.notify("reloading", Notifier::reloading);
        match (self.reload)() {
            Ok(settings) => self.apply(settings),
            Err(error) => error!(%error, "reload failed; keeping the current config"),
        }
        self.notify("ready", Notifier::ready);
        self.publish_status();
    }

    fn apply(&mut self, settings: Settings) {
        let now = self.clock.now();
        self.next_tick = first_tick(&settings.schedule, now);
        info!(
            schedule = %settings.schedule,
            next = %stamp(self.next_tick),
            "config reloaded"
        );
        self.settings = settings;
    }

    /// First signal: stop; second: give up on the run in flight.
    fn on_stop_signal(&mut self, signal: Signal) -> Option<Exit> {
        if self.stopping.is_some() {
            warn!(signal = signal.name(), "second signal: exiting at once");
            if let Some(running) = self.running.take() {
                running.handle.abort();
            }
            return Some(Exit::Forced(signal));
        }

        self.stopping = Some(signal);
        self.metrics.set_health(Health::Stopping);
        self.notify("stopping", Notifier::stopping);
        // send_replace: the value must stick even with no job listening.
        self.stop.send_replace(true);
        if self.running.is_none() {
            info!(signal = signal.name(), "stopped");
            return Some(Exit::Stopped(signal));
        }
        info!(signal = signal.name(), "stopping after the call in flight");
        self.notifier_status("stopping: waiting for the run to reach a safe point");
        None
    }

    /// The signal source went away: stop as for SIGTERM, but wait.
    async fn on_signals_closed(&mut self) -> Exit {
        warn!("signal source closed; stopping");
        self.metrics.set_health(Health::Stopping);
        self.notify("stopping", Notifier::stopping);
        self.stop.send_replace(true);
        if self.running.is_some() {
            let finished = wait(&mut self.running).await;
            self.on_finished(finished);
        }
        Exit::SignalsClosed
    }

    fn ping_watchdog(&self) {
        self.notify("watchdog", Notifier::watchdog);
    }

    fn publish_status(&self) {
        let text = status_text(
            self.running.as_ref().map(|r| r.trigger),
            self.last.as_ref(),
            self.next_tick,
        );
        self.notifier_status(&text);
    }

    fn notifier_status(&self, text: &str) {
        if let Err(error) = self.notifier.status(text) {
            warn!(%error, "failed to send status to systemd");
        }
    }

    fn notify(&self, what: &str, send: fn(&Notifier) -> Result<(), crate::notify::NotifyError>) {
        if let Err(error) = send(&self.notifier) {
            warn!(%error, message = what, "failed to notify systemd");
        }
    }
}

/// Waits for the run in flight, or forever when there is none.
async fn wait(running: &mut Option<Running>) -> Finished {
    let Some(current) = running else {
        return std::future::pending().await;
    };
    let result = (&mut current.handle).await;
    let finished = running.take().expect("run present while awaited");
    (result, finished)
}

/// Waits for the watchdog timer, or forever when there is none.
async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Returns the first fire time after `t`.
fn first_tick(schedule: &Schedule, t: DateTime<Utc>) -> DateTime<Utc> {
    // Schedule::parse refuses schedules with no future fire time, so this
    // only falls back for one whose last year has passed since; a
    // far-future tick then keeps the daemon idle rather than crashing it.
    schedule.next_after(t).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Decides whether a run is owed at start after downtime.
///
/// Due when there never was a run, or when a fire time passed since the
/// last run *and* that run is older than the schedule's period: the first
/// condition avoids a run the schedule never asked for (a Friday-to-Monday
/// gap in a weekdays schedule), the second one right after a manual run.
pub fn is_catch_up_due(
    schedule: &Schedule,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    let Some(last) = last_run else {
        return true;
    };
    let missed = schedule.next_after(last).is_some_and(|fire| fire <= now);
    let period = schedule.period(now).unwrap_or(Duration::MAX);
    let age = (now - last).to_std().unwrap_or(Duration::ZERO);
    missed && age >= period
}

/// Builds the one-line status `systemctl status` shows.
fn status_text(running: Option<Trigger>, last: Option<&LastRun>, next: DateTime<Utc>) -> String {
    let now = match running {
        Some(trigger) => format!("running ({trigger})"),
        None => "idle".to_owned(),
    };
    let last = match last {
        Some(last) if last.outcome.summary.is_empty() => {
            format!(
                "; last run {} at {}",
                last.outcome.outcome.as_str(),
                stamp(last.at)
            )
        }
        Some(last) => format!(
            "; last run {} at {} ({})",
            last.outcome.outcome.as_str(),
            stamp(last.at),
            last.outcome.summary
        ),
        None => String::new(),
    };
    format!("{now}; next run {}{last}", stamp(next))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests;
