//! keyshift moves Grafana API keys to service accounts and keeps them true.
//!
//! Module map:
//! - `apply`: carries out a plan, intent before and result after each call
//! - `config`: the TOML config, parsed and validated into typed values
//! - `daemon`: the `keyshift run` loop: schedule, signals, reload
//! - `grafana`: the HTTP client, wire types, errors and version gates
//! - `inventory`: discovery of the estate: orgs, keys, accounts, tokens
//! - `ledger`: the SQLite record of runs, credentials, accounts and calls
//! - `metrics`: Prometheus registry, `/metrics` and `/healthz`
//! - `notify`: the systemd notify protocol
//! - `plan`: planning, a pure function of inventory, ledger and policy
//! - `report`: per-run Markdown and JSON reports, with retention
//! - `resume`: settles intents a killed run left without a result
//! - `retry`: capped exponential backoff (the only user of `backoff`)
//! - `role`: Grafana's basic org roles
//! - `schedule`: cron expressions in crontab or seconds form
//! - `secret`: keeps passwords and tokens out of logs
//! - `sink`: delivers new token secrets to a directory or a command
//! - `telemetry`: tracing subscriber setup (text, JSON, journal)

pub mod apply;
pub mod config;
pub mod daemon;
pub mod grafana;
pub mod inventory;
pub mod ledger;
pub mod metrics;
pub mod notify;
pub mod plan;
pub mod report;
pub mod resume;
pub mod retry;
pub mod role;
pub mod schedule;
pub mod secret;
pub mod sink;
pub mod telemetry;
