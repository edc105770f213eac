//! keyshift moves Grafana API keys to service accounts and keeps them true.
//!
//! Module map:

pub mod daemon; // Daemon: `keyshift run` schedule loop, signals, reload
pub mod metrics; // Metrics: Prometheus registry, /metrics and /healthz
pub mod notify; // Notifier: the systemd sd_notify protocol
pub mod role; // Role: Grafana's basic org roles
pub mod schedule; // Schedule: cron expressions in crontab or seconds form
pub mod secret; // Secret: keeps passwords and tokens out of logs
