//! Integration tests: one binary, one module per area.

mod dashboard;
mod systemd;
