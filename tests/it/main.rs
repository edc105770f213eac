//! Integration tests: one binary, one module per area.

mod cutover;
mod dashboard;
mod reconcile;
mod revert;
mod service;
mod support;
mod systemd;
