//! Integration tests: one binary, one module per area.

mod dashboard;
mod field_cases;
mod migrate;
mod rehearse;
mod support;
mod systemd;
