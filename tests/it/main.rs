//! Integration tests: one binary, one module per area.

mod cli;
mod client;
mod cutover;
mod dashboard;
mod field_cases;
mod flow;
mod migrate;
mod reconcile;
mod rehearse;
mod revert;
mod service;
mod support;
mod systemd;
