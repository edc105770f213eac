//! keyshift moves Grafana API keys to service accounts and keeps them true.
//!
//! Module map:
//! - `app`: builds keyshift's parts from a loaded config
//! - `apply`: carries out a plan, intent before and result after each call
//! - `cli`: the command line: flags, commands and exit codes
//! - `config`: the TOML config, parsed and validated into typed values
//! - `cutover`: when a replaced credential may be revoked
//! - `daemon`: the `keyshift run` loop: schedule, signals, reload
//! - `grafana`: the HTTP client, wire types, errors and version gates
//! - `inventory`: discovery of the estate: orgs, keys, accounts, tokens
//! - `job`: the one-shot jobs, plan and migrate, from config to report
//! - `ledger`: the SQLite record of runs, credentials, accounts and calls
//! - `metrics`: Prometheus registry, `/metrics` and `/healthz`
//! - `notify`: the systemd notify protocol
//! - `output`: plans and reports rendered for a terminal
//! - `plan`: planning, a pure function of inventory, ledger and policy
//! - `reconcile`: drift findings, repairs and the cut-over
//! - `rehearse`: the whole job against a built-in simulated Grafana
//! - `report`: per-run Markdown and JSON reports, with retention
//! - `resume`: settles intents a killed run left without a result
//! - `revert`: undoes what keyshift did for a use case or a key
//! - `retry`: capped exponential backoff (the only user of `backoff`)
//! - `role`: Grafana's basic org roles
//! - `schedule`: cron expressions in crontab or seconds form
//! - `secret`: keeps passwords and tokens out of logs
//! - `service`: `keyshift run`: the daemon wired to reconcile
//! - `sink`: delivers new token secrets to a directory or a command
//! - `telemetry`: tracing subscriber setup (text, JSON, journal)

pub mod app;
pub mod apply;
pub mod cli;
pub mod config;
pub mod cutover;
pub mod daemon;
pub mod grafana;
pub mod inventory;
pub mod job;
pub mod ledger;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod plan;
pub mod reconcile;
pub mod rehearse;
pub mod report;
pub mod resume;
pub mod retry;
pub mod revert;
pub mod role;
pub mod schedule;
pub mod secret;
pub mod service;
pub mod sink;
pub mod telemetry;
