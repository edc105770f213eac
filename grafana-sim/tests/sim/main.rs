//! Integration tests of grafana-sim over HTTP on 127.0.0.1.

mod auth;
mod common;
mod control;
mod details;
mod faults;
mod flows;
mod invariants;
mod matrix;
