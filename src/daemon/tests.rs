//! In-process daemon tests on a paused tokio clock.
//!
//! Signals come from a channel, wall time from a derived [`Clock`], and
//! job "work" is a virtual-time sleep, so every test is deterministic and
//! runs in milliseconds of real time.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use chrono::TimeZone;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::time::timeout;

use super::*;

/// Virtual-time limit for every await; a hang fails instead of stalling.
const LIMIT: Duration = Duration::from_secs(6 * 3600);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match timeout(LIMIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

fn wall(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 5, h, m, s).unwrap()
}

fn every(expr: &str) -> Settings {
    Settings {
        schedule: Schedule::parse(expr).unwrap(),
    }
}

/// What a test job does once started.
#[derive(Clone, Copy)]
enum Work {
    /// Finish at once with `Done`.
    Instant,
    /// Work this long, then report `Interrupted` if asked to stop.
    For(Duration),
    /// Never finish, even when asked to stop.
    Hang,
}

/// A started run as the job saw it: trigger and wall time at start.
type Started = (Trigger, DateTime<Utc>);

fn job(
    clock: Clock,
    work: Work,
    log: UnboundedSender<Started>,
) -> impl Fn(Trigger, StopToken) -> BoxFuture<JobOutcome> {
    move |trigger, stop| {
        log.send((trigger, clock.now())).unwrap();
        Box::pin(async move {
            match work {
                Work::Instant => {}
                Work::For(d) => tokio::time::sleep(d).await,
                Work::Hang => std::future::pending::<()>().await,
            }
            if stop.is_stopping() {
                JobOutcome::new(Outcome::Interrupted, "stopped between calls")
            } else {
                JobOutcome::new(Outcome::Done, "0 findings")
            }
        })
    }
}

/// A daemon running in a task, with its inputs and outputs.
struct Harness {
    signals: mpsc::Sender<Signal>,
    started: UnboundedReceiver<Started>,
    metrics: Metrics,
    reloads: Arc<AtomicUsize>,
    daemon: JoinHandle<Exit>,
}

struct Setup {
    settings: Settings,
    last_run: Option<DateTime<Utc>>,
    work: Work,
    reload_to: Option<Settings>,
    notifier: Notifier,
}

impl Setup {
    fn new(expr: &str) -> Self {
        Setup {
            settings: every(expr),
            // Just before start: no catch-up unless a test asks for one.
            last_run: Some(wall(9, 59, 59)),
            work: Work::Instant,
            reload_to: None,
            notifier: Notifier::disabled(),
        }
    }

    fn spawn(self) -> Harness {
        let clock = Clock::starting_at(wall(10, 0, 3));
        let (signal_tx, signal_rx) = mpsc::channel(8);
        let (log, started) = mpsc::unbounded_channel();
        let metrics = Metrics::new();
        let reloads = Arc::new(AtomicUsize::new(0));
        let options = DaemonOptions {
            settings: self.settings,
            last_run: self.last_run,
            catch_up: true,
            watchdog: true,
            job_kind: "reconcile",
        };

        let counter = reloads.clone();
        let reload_to = self.reload_to;
        let reload = move || {
            counter.fetch_add(1, Ordering::SeqCst);
            reload_to
                .clone()
                .ok_or_else(|| "config.toml: key reconcile.schedule: bad".into())
        };
        let daemon = Daemon::new(options, signal_rx)
            .with_clock(clock)
            .with_notifier(self.notifier)
            .with_metrics(metrics.clone());
        let job = job(clock, self.work, log);
        Harness {
            signals: signal_tx,
            started,
            metrics,
            reloads,
            daemon: tokio::spawn(daemon.run(job, reload)),
        }
    }
}

impl Harness {
    async fn next_run(&mut self) -> Started {
        let started = within("a run to start", self.started.recv()).await;
        started.expect("daemon dropped the job")
    }

    async fn send(&self, signal: Signal) {
        within("the signal channel", self.signals.send(signal))
            .await
            .unwrap();
    }

    async fn exit(self) -> (Exit, Metrics, UnboundedReceiver<Started>) {
        let exit = within("the daemon to exit", self.daemon).await.unwrap();
        (exit, self.metrics, self.started)
    }
}

fn sample(metrics: &Metrics, series: &str) -> f64 {
    let text = metrics.render();
    let line = text
        .lines()
        .find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

const DONE_RUNS: &str = r#"keyshift_runs_total{kind="reconcile",outcome="done"}"#;

// Runs start at each fire time of the schedule, on wall-clock time.
#[tokio::test(start_paused = true)]
async fn runs_on_schedule() {
    let mut h = Setup::new("*/10 * * * * *").spawn();

    for s in [10, 20, 30] {
        let (trigger, at) = h.next_run().await;
        assert_eq!(trigger, Trigger::Scheduled(wall(10, 0, s)));
        assert_eq!(at, wall(10, 0, s));
    }
    h.send(Signal::Terminate).await;

    let (exit, metrics, _) = h.exit().await;
    assert_eq!(exit, Exit::Stopped(Signal::Terminate));
    assert_eq!(exit.code(), 0);
    assert_eq!(sample(&metrics, DONE_RUNS), 3.0);
}

// A tick that comes during a run is skipped and counted, never overlapped.
#[tokio::test(start_paused = true)]
async fn tick_during_run_is_skipped() {
    let mut setup = Setup::new("*/10 * * * * *");
    setup.work = Work::For(Duration::from_secs(25));
    let mut h = setup.spawn();

    let (first, _) = h.next_run().await;
    let (second, at) = h.next_run().await;

    // 10:00:10 runs until :35, so the :20 and :30 ticks are skipped.
    assert_eq!(first, Trigger::Scheduled(wall(10, 0, 10)));
    assert_eq!(second, Trigger::Scheduled(wall(10, 0, 40)));
    assert_eq!(at, wall(10, 0, 40));
    assert_eq!(sample(&h.metrics, "keyshift_skipped_ticks_total"), 2.0);
}

// After downtime longer than a period, one catch-up run starts at once.
#[tokio::test(start_paused = true)]
async fn catches_up_once_after_downtime() {
    let mut setup = Setup::new("*/10 * * * * *");
    setup.last_run = Some(wall(8, 0, 0));
    let mut h = setup.spawn();

    let (first, at) = h.next_run().await;
    let (second, _) = h.next_run().await;

    assert_eq!(first, Trigger::CatchUp(Some(wall(8, 0, 0))));
    assert_eq!(at, wall(10, 0, 3));
    assert_eq!(second, Trigger::Scheduled(wall(10, 0, 10)));
}

// Catch-up is due only when a fire time was missed and the run is old.
#[test]
fn catch_up_rule() {
    let weekdays = Schedule::parse("0 9 * * 1-5").unwrap();
    let hourly = Schedule::parse("0 * * * *").unwrap();
    let friday_run = Utc.with_ymd_and_hms(2026, 1, 2, 9, 0, 0).unwrap();
    let monday_early = Utc.with_ymd_and_hms(2026, 1, 5, 8, 0, 0).unwrap();
    let cases = [
        (&hourly, None, wall(10, 30, 0), true),
        (&hourly, Some(wall(7, 0, 0)), wall(10, 30, 0), true),
        (&hourly, Some(wall(10, 0, 0)), wall(10, 30, 0), false),
        // A manual run at 9:59 makes the 10:00 one unnecessary.
        (&hourly, Some(wall(9, 59, 0)), wall(10, 5, 0), false),
        (&weekdays, Some(friday_run), monday_early, false),
    ];
    for (schedule, last, now, due) in cases {
        let got = is_catch_up_due(schedule, last, now);
        assert_eq!(got, due, "{schedule} last={last:?} now={now}");
    }
}

// SIGHUP swaps in the reloaded schedule and computes the next tick from it.
#[tokio::test(start_paused = true)]
async fn reload_swaps_the_schedule() {
    let mut setup = Setup::new("0 0 * * * *");
    setup.reload_to = Some(every("*/10 * * * * *"));
    let mut h = setup.spawn();

    h.send(Signal::Reload).await;
    let (trigger, _) = h.next_run().await;

    // Hourly would have fired at 11:00; the reloaded schedule at 10:00:10.
    assert_eq!(trigger, Trigger::Scheduled(wall(10, 0, 10)));
    assert_eq!(h.reloads.load(Ordering::SeqCst), 1);
}

// A failed reload keeps the old schedule and the daemon keeps running.
#[tokio::test(start_paused = true)]
async fn failed_reload_keeps_the_old_schedule() {
    let mut h = Setup::new("*/10 * * * * *").spawn();

    h.send(Signal::Reload).await;
    let (first, _) = h.next_run().await;
    let (second, _) = h.next_run().await;

    assert_eq!(h.reloads.load(Ordering::SeqCst), 1);
    assert_eq!(first, Trigger::Scheduled(wall(10, 0, 10)));
    assert_eq!(second, Trigger::Scheduled(wall(10, 0, 20)));
}

// SIGTERM during a run: the job is told to stop, finishes, daemon exits 0.
#[tokio::test(start_paused = true)]
async fn terminate_waits_for_the_run_in_flight() {
    let mut setup = Setup::new("*/10 * * * * *");
    setup.work = Work::For(Duration::from_secs(30));
    let mut h = setup.spawn();

    let (_, started_at) = h.next_run().await;
    h.send(Signal::Terminate).await;
    let begun = Instant::now();
    let (exit, metrics, mut started) = h.exit().await;

    assert_eq!(exit, Exit::Stopped(Signal::Terminate));
    assert_eq!(started_at, wall(10, 0, 10));
    // It waited out the 30 s call and started nothing after the signal.
    assert_eq!(begun.elapsed(), Duration::from_secs(30));
    assert!(started.try_recv().is_err(), "a run started after SIGTERM");
    let interrupted = r#"keyshift_runs_total{kind="reconcile",outcome="interrupted"}"#;
    assert_eq!(sample(&metrics, interrupted), 1.0);
    assert_eq!(sample(&metrics, "keyshift_up"), 0.0);
}

// A second signal while waiting exits at once with 128 + signal.
#[tokio::test(start_paused = true)]
async fn second_signal_exits_at_once() {
    let mut setup = Setup::new("*/10 * * * * *");
    setup.work = Work::Hang;
    let mut h = setup.spawn();

    h.next_run().await;
    h.send(Signal::Terminate).await;
    h.send(Signal::Interrupt).await;
    let (exit, _, _) = h.exit().await;

    assert_eq!(exit, Exit::Forced(Signal::Interrupt));
    assert_eq!(exit.code(), 130);
}

// SIGTERM while idle exits at once, without starting a run.
#[tokio::test(start_paused = true)]
async fn terminate_while_idle_exits() {
    let h = Setup::new("0 0 * * * *").spawn();
    h.send(Signal::Interrupt).await;
    let (exit, metrics, mut started) = h.exit().await;
    assert_eq!(exit, Exit::Stopped(Signal::Interrupt));
    assert!(started.try_recv().is_err());
    assert!(!metrics.render().contains("keyshift_runs_total{"));
}

/// A notify socket in a temp dir, read continuously like systemd does:
/// Linux queues only 10 datagrams (`net.unix.max_dgram_qlen`) by default.
struct NotifyListener {
    _dir: tempfile::TempDir,
    path: String,
    socket: Arc<tokio::net::UnixDatagram>,
    received: Arc<std::sync::Mutex<Vec<String>>>,
    reader: JoinHandle<()>,
}

impl NotifyListener {
    fn bind() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = Arc::new(tokio::net::UnixDatagram::bind(&path).unwrap());
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, r) = (socket.clone(), received.clone());
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.recv(&mut buf).await {
                r.lock().unwrap().push(text(&buf[..n]));
            }
        });
        let path = path.to_str().unwrap().to_owned();
        NotifyListener {
            _dir: dir,
            path,
            socket,
            received,
            reader,
        }
    }

    /// Stops reading and returns every message, queued ones included.
    fn messages(self) -> Vec<String> {
        self.reader.abort();
        let mut messages = self.received.lock().unwrap().clone();
        let mut buf = [0u8; 1024];
        while let Ok(n) = self.socket.try_recv(&mut buf) {
            messages.push(text(&buf[..n]));
        }
        messages
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

// systemd hears READY, STATUS, WATCHDOG, RELOADING and STOPPING in order.
#[tokio::test(start_paused = true)]
async fn systemd_is_notified() {
    let listener = NotifyListener::bind();
    let watchdog = Some(Duration::from_secs(8));
    let mut setup = Setup::new("*/10 * * * * *");
    setup.notifier = Notifier::for_address(&listener.path, watchdog).unwrap();
    let mut h = setup.spawn();

    h.send(Signal::Reload).await;
    h.next_run().await;
    h.next_run().await;
    h.send(Signal::Terminate).await;
    h.exit().await;

    let messages = listener.messages();
    let position = |prefix: &str| {
        let found = messages.iter().position(|m| m.starts_with(prefix));
        found.unwrap_or_else(|| panic!("no {prefix} in {messages:?}"))
    };
    assert_eq!(messages[0], "READY=1");
    assert!(position("RELOADING=1\nMONOTONIC_USEC=") > 0);
    assert_eq!(messages.iter().filter(|m| *m == "READY=1").count(), 2);
    // 20 s at a ping every 4 s: at least four pings.
    assert!(messages.iter().filter(|m| *m == "WATCHDOG=1").count() >= 4);
    let status = &messages[position("STATUS=")];
    assert!(status.contains("next run 2026-01-05T10:00:10Z"), "{status}");
    assert!(messages.iter().any(|m| m.contains("last run done at")));
    let stopping = position("STOPPING=1");
    assert!(stopping > position("RELOADING=1"));
    let after = &messages[stopping + 1..];
    assert!(
        after.iter().all(|m| m.starts_with("STATUS=stopping")),
        "{after:?}"
    );
}
