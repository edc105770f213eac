//! keyshift moves Grafana API keys to service accounts and keeps them true.
//!
//! Module map:

pub mod grafana; // Grafana client: wire types, errors, versions, routes
pub mod inventory; // discovery of the estate: orgs, keys, accounts, tokens
pub mod plan;
pub mod retry;
pub mod role; // Role: Grafana's basic org roles
pub mod secret; // Secret: keeps passwords and tokens out of logs // retries with capped exponential backoff (the only user of backoff) // planning: a pure function of inventory, ledger and policy
