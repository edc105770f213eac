//! keyshift moves Grafana API keys to service accounts and keeps them true.
//!
//! Module map:

pub mod ledger; // Ledger: SQLite record of runs, credentials, accounts, calls
pub mod report; // RunReport: per-run Markdown and JSON reports, retention
pub mod role; // Role: Grafana's basic org roles
pub mod secret; // Secret: keeps passwords and tokens out of logs
