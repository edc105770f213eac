//! keyshift moves Grafana API keys to service accounts and keeps them true.
//!
//! Module map:

pub mod config; // Config: TOML config parsed and validated into typed values
pub mod role; // Role: Grafana's basic org roles
pub mod secret; // Secret: keeps passwords and tokens out of logs
pub mod sink; // Sink: delivers new token secrets to a directory or a command
pub mod telemetry; // tracing subscriber setup (text, JSON, journal)
