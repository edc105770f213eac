//! keyshift's metrics and the `/metrics` and `/healthz` endpoints.
//!
//! [`Metrics`] is a cheap handle (an `Arc`) shared by the daemon, the jobs
//! it runs and the Grafana client. `/healthz` is liveness only: it answers
//! 200 `ok` while the daemon is ready and 503 while it starts or stops. A
//! failed run does not make it fail, since restarting the daemon cannot fix
//! Grafana being down; alert on `keyshift_runs_total{outcome="failed"}`
//! instead.

pub mod registry;
mod server;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use registry::Registry;
pub use registry::{Declaration, Kind};
pub use server::{serve, MetricsServer, ServeError};

/// Runs by kind and outcome.
pub const RUNS_TOTAL: &str = "keyshift_runs_total";
/// Unix time of the last finished run, by kind.
pub const LAST_RUN_TIMESTAMP: &str = "keyshift_last_run_timestamp_seconds";
/// Duration of the last finished run, by kind.
pub const LAST_RUN_DURATION: &str = "keyshift_last_run_duration_seconds";
/// Source credentials known to the ledger, by state.
pub const CREDENTIALS: &str = "keyshift_credentials";
/// Open findings of the last reconcile, by kind and severity.
pub const FINDINGS: &str = "keyshift_findings";
/// Grafana HTTP requests, by route template and status.
pub const GRAFANA_REQUESTS: &str = "keyshift_grafana_requests_total";
/// Grafana request latency histogram, by route template.
pub const GRAFANA_REQUEST_DURATION: &str = "keyshift_grafana_request_duration_seconds";
/// Scheduled ticks skipped because a run was still going.
pub const SKIPPED_TICKS: &str = "keyshift_skipped_ticks_total";
/// 1 while the daemon takes runs, 0 while it starts or stops.
pub const UP: &str = "keyshift_up";

/// Every family keyshift exports, in the order a scrape lists them.
pub const DECLARATIONS: &[Declaration] = &[
    declare(
        RUNS_TOTAL,
        Kind::Counter,
        "Runs finished, by kind and outcome.",
    ),
    declare(
        LAST_RUN_TIMESTAMP,
        Kind::Gauge,
        "Unix time the last run finished.",
    ),
    declare(LAST_RUN_DURATION, Kind::Gauge, "Seconds the last run took."),
    declare(
        CREDENTIALS,
        Kind::Gauge,
        "Source credentials by ledger state.",
    ),
    declare(FINDINGS, Kind::Gauge, "Findings of the last reconcile."),
    declare(GRAFANA_REQUESTS, Kind::Counter, "Grafana API requests."),
    declare(
        GRAFANA_REQUEST_DURATION,
        Kind::Histogram,
        "Grafana API latency.",
    ),
    declare(SKIPPED_TICKS, Kind::Counter, "Ticks skipped during a run."),
    declare(UP, Kind::Gauge, "1 while the daemon takes runs."),
];

/// Request latency buckets in seconds: Grafana answers in milliseconds
/// when healthy, and the client's default timeout is 30 s.
const BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

const fn declare(name: &'static str, kind: Kind, help: &'static str) -> Declaration {
    Declaration { name, help, kind }
}

/// Returns the names of every exported metric family.
pub fn names() -> impl Iterator<Item = &'static str> {
    DECLARATIONS.iter().map(|d| d.name)
}

/// Whether the process is fit to serve, as `/healthz` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// Still starting up.
    Starting = 0,
    /// Running and taking scheduled runs.
    Ready = 1,
    /// Shutting down.
    Stopping = 2,
}

/// A shared handle to the process's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    health: AtomicU8,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates an empty set of metrics, health `Starting`.
    pub fn new() -> Self {
        let inner = Inner {
            registry: Registry::new(DECLARATIONS, BUCKETS),
            health: AtomicU8::new(Health::Starting as u8),
        };
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// Records a finished run and when it finished.
    ///
    /// `kind` is the run kind (`reconcile`, `migrate`), `outcome` the run
    /// outcome (`done`, `attention`, `failed`, `interrupted`).
    pub fn record_run(&self, kind: &str, outcome: &str, at: DateTime<Utc>, took: Duration) {
        let r = &self.inner.registry;
        r.add(RUNS_TOTAL, &[("kind", kind), ("outcome", outcome)], 1.0);
        let seconds = at.timestamp_millis() as f64 / 1000.0;
        r.set(LAST_RUN_TIMESTAMP, &[("kind", kind)], seconds);
        r.set(LAST_RUN_DURATION, &[("kind", kind)], took.as_secs_f64());
    }

    /// Counts a tick skipped because a run was in flight.
    pub fn record_skipped_tick(&self) {
        self.inner.registry.add(SKIPPED_TICKS, &[], 1.0);
    }

    /// Replaces the credential counts with a fresh snapshot by state.
    pub fn set_credentials<'a>(&self, by_state: impl IntoIterator<Item = (&'a str, u64)>) {
        let r = &self.inner.registry;
        r.clear(CREDENTIALS);
        for (state, n) in by_state {
            r.set(CREDENTIALS, &[("state", state)], n as f64);
        }
    }

    /// Replaces the finding counts with those of the latest reconcile.
    pub fn set_findings<'a>(&self, by_kind: impl IntoIterator<Item = (&'a str, &'a str, u64)>) {
        let r = &self.inner.registry;
        r.clear(FINDINGS);
        for (kind, severity, n) in by_kind {
            let labels = [("kind", kind), ("severity", severity)];
            r.set(FINDINGS, &labels, n as f64);
        }
    }

    /// Records one Grafana request.
    ///
    /// `route` must be the route template (`/api/serviceaccounts/:id`),
    /// never the concrete path, or every id becomes its own series.
    /// `status` is `None` when no response arrived (label `error`).
    pub fn record_grafana_request(&self, route: &str, status: Option<u16>, took: Duration) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        let r = &self.inner.registry;
        r.add(
            GRAFANA_REQUESTS,
            &[("route", route), ("status", &status)],
            1.0,
        );
        r.observe(
            GRAFANA_REQUEST_DURATION,
            &[("route", route)],
            took.as_secs_f64(),
        );
    }

    /// Sets the health `/healthz` reports and `keyshift_up` with it.
    pub fn set_health(&self, health: Health) {
        self.inner.health.store(health as u8, Ordering::Relaxed);
        let up = if health == Health::Ready { 1.0 } else { 0.0 };
        self.inner.registry.set(UP, &[], up);
    }

    /// Returns the health last set.
    pub fn health(&self) -> Health {
        match self.inner.health.load(Ordering::Relaxed) {
            1 => Health::Ready,
            2 => Health::Stopping,
            _ => Health::Starting,
        }
    }

    /// Renders every metric in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        self.inner.registry.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Runs are counted per kind and outcome, with the last time and duration.
    #[test]
    fn runs_are_counted_by_kind_and_outcome() {
        let metrics = Metrics::new();
        let at = DateTime::from_timestamp(1_700_000_000, 500_000_000).unwrap();
        metrics.record_run("reconcile", "done", at, Duration::from_millis(1500));
        metrics.record_run("reconcile", "done", at, Duration::from_millis(2500));
        metrics.record_run("reconcile", "failed", at, Duration::from_secs(1));

        let text = metrics.render();
        for expected in [
            "keyshift_runs_total{kind=\"reconcile\",outcome=\"done\"} 2\n",
            "keyshift_runs_total{kind=\"reconcile\",outcome=\"failed\"} 1\n",
            "keyshift_last_run_timestamp_seconds{kind=\"reconcile\"} 1700000000.5\n",
            "keyshift_last_run_duration_seconds{kind=\"reconcile\"} 1\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    // Snapshot gauges replace the previous snapshot entirely.
    #[test]
    fn snapshots_replace_previous_values() {
        let metrics = Metrics::new();
        metrics.set_findings([("token_deleted", "critical", 2)]);
        metrics.set_findings([("role_changed", "warning", 1)]);
        metrics.set_credentials([("kept", 3), ("reissued", 4)]);

        let text = metrics.render();
        assert!(!text.contains("token_deleted"), "{text}");
        assert!(text.contains("keyshift_findings{kind=\"role_changed\",severity=\"warning\"} 1"));
        assert!(
            text.contains("keyshift_credentials{state=\"reissued\"} 4"),
            "{text}"
        );
    }

    // A request without a response is labelled status="error".
    #[test]
    fn grafana_requests_without_status_are_errors() {
        let metrics = Metrics::new();
        let route = "/api/serviceaccounts/:id";
        metrics.record_grafana_request(route, Some(404), Duration::from_millis(20));
        metrics.record_grafana_request(route, None, Duration::from_secs(31));

        let text = metrics.render();
        let requests = format!("keyshift_grafana_requests_total{{route=\"{route}\"");
        assert!(
            text.contains(&format!("{requests},status=\"404\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{requests},status=\"error\"}} 1")),
            "{text}"
        );
        let overflow =
            format!("{GRAFANA_REQUEST_DURATION}_bucket{{route=\"{route}\",le=\"30\"}} 1");
        assert!(text.contains(&overflow), "{text}");
    }

    // Health drives keyshift_up: 1 only when ready.
    #[test]
    fn health_sets_up_gauge() {
        let metrics = Metrics::new();
        assert_eq!(metrics.health(), Health::Starting);
        metrics.set_health(Health::Ready);
        assert!(metrics.render().contains("\nkeyshift_up 1\n"));
        metrics.set_health(Health::Stopping);
        assert_eq!(metrics.health(), Health::Stopping);
        assert!(metrics.render().contains("\nkeyshift_up 0\n"));
    }
}
