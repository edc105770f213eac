//! `keyshift run` in-process: schedule, reload, stop, notify, metrics.

use std::sync::Arc;
use std::time::Duration;

use grafana_sim::{Profile, Role as SimRole};
use keyshift::config::Config;
use keyshift::daemon::{Clock, Exit, Signal};
use keyshift::ledger::{Ledger, RunKind};
use keyshift::metrics::Metrics;
use keyshift::notify::Notifier;
use keyshift::service::{serve, ServeOptions};
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;

use crate::flow::{estate, key, within, World};

const EVERY_SECOND: &str = r#"
[reconcile]
schedule = "* * * * * *"

[daemon]
catch_up = true
"#;

/// Forwards every datagram on the notify socket to a channel.
fn notify_socket(dir: &std::path::Path) -> (String, mpsc::UnboundedReceiver<String>) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok(n) = socket.recv(&mut buf).await {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if tx.send(text).is_err() {
                break;
            }
        }
    });
    (path.to_str().unwrap().to_string(), rx)
}

/// Waits for `n` runs to start, collecting every message seen.
async fn started_runs(rx: &mut mpsc::UnboundedReceiver<String>, seen: &mut Vec<String>, n: usize) {
    let mut done = 0;
    while done < n {
        let message = rx.recv().await.expect("the notify socket stays open");
        if message.starts_with("STATUS=running") {
            done += 1;
        }
        seen.push(message);
    }
}

// The daemon reconciles on schedule, survives an invalid reload, stops on
// SIGTERM, tells systemd, and its /metrics counts match the ledger's runs.
#[tokio::test]
async fn run_wires_reconcile_to_the_daemon() {
    let keys = vec![
        key("ci-a", SimRole::Editor, Some(1), None),
        key("ci-b", SimRole::Editor, Some(40), None),
    ];
    let world = World::start(Profile::V11_3, None, estate(keys), EVERY_SECOND).await;
    world.migrate().await;
    let World {
        sim,
        dir,
        config,
        job,
    } = world;
    drop(job);
    let path = config.origin.clone();
    let (socket, mut rx) = notify_socket(dir.path());
    let (signals, signal_rx) = mpsc::channel(8);
    let metrics = Metrics::new();
    let now_sim = Arc::new(sim);
    let clock_sim = now_sim.clone();
    let load_path = path.clone();
    let options = ServeOptions {
        config,
        load: Box::new(move || Config::load(&load_path)),
        signals: signal_rx,
        clock: Clock::system(),
        // Pings every 200 ms: several land in any run of this test, even a slow one.
        notifier: Notifier::for_address(&socket, Some(Duration::from_millis(400))).unwrap(),
        metrics: metrics.clone(),
        now: Arc::new(move || clock_sim.now()),
    };
    let daemon = tokio::spawn(serve(options));
    let mut seen = Vec::new();

    within("two scheduled runs", started_runs(&mut rx, &mut seen, 2)).await;
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, "[reconcile]\nschedule = \"never\"\n").unwrap();
    signals.send(Signal::Reload).await.unwrap();
    within(
        "runs after a bad reload",
        started_runs(&mut rx, &mut seen, 2),
    )
    .await;
    std::fs::write(&path, good).unwrap();
    signals.send(Signal::Terminate).await.unwrap();
    let exit = within("daemon exit", daemon)
        .await
        .unwrap()
        .expect("serve runs");
    within("STOPPING=1 on the notify socket", async {
        while !seen.iter().any(|m| m.starts_with("STOPPING=1")) {
            seen.push(rx.recv().await.expect("the notify socket stays open"));
        }
    })
    .await;

    assert_eq!(exit, Exit::Stopped(Signal::Terminate));
    assert_eq!(seen[0], "READY=1");
    assert!(seen.iter().any(|m| m == "WATCHDOG=1"), "{seen:?}");
    assert!(seen.iter().any(|m| m.starts_with("STOPPING=1")), "{seen:?}");
    let ledger = Ledger::open(dir.path().join("ledger.sqlite")).unwrap();
    let runs = ledger.runs(100).unwrap();
    let reconciles = runs.iter().filter(|r| r.kind == RunKind::Reconcile).count();
    assert!(reconciles >= 3, "{reconciles} reconcile runs");
    let reloaded = seen
        .iter()
        .position(|m| m.starts_with("RELOADING=1"))
        .unwrap();
    let after = &seen[reloaded..];
    assert!(
        after.iter().any(|m| m.contains("last run done")),
        "no run after reload"
    );
    assert!(after
        .iter()
        .any(|m| m.starts_with("STATUS=running (schedule)")));
    let text = metrics.render();
    assert_eq!(
        counter_sum(&text, "keyshift_runs_total"),
        reconciles as f64,
        "{text}"
    );
    assert!(
        text.contains("route=\"/api/serviceaccounts/:id\""),
        "{text}"
    );
    assert!(
        !text.contains("/api/serviceaccounts/1"),
        "a path became a label"
    );
    drop(now_sim);
}

/// Sums a counter's samples, checking every sample line parses.
fn counter_sum(text: &str, name: &str) -> f64 {
    let mut sum = 0.0;
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value.parse().expect("a sample value is a number");
        let metric = series.split('{').next().unwrap();
        assert!(
            metric
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name in {line:?}"
        );
        if metric == name {
            sum += value;
        }
    }
    sum
}
