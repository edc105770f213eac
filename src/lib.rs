//! keyshift moves Grafana API keys to service accounts and keeps them true.
//!
//! Module map:

pub mod role;
pub mod secret; // Secret: keeps passwords and tokens out of logs // Role: Grafana's basic org roles
