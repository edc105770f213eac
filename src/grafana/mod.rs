//! Grafana's HTTP API as keyshift uses it.

pub mod api;
pub mod client;
pub mod error;
pub mod version;
pub mod wire;

pub use api::{Listing, NewToken, TokenCreated, KEY_LIST_CAP, TOKEN_LIST_CAP};
pub use client::{Client, ClientOptions, Credentials, Request, RequestObserver};
pub use error::{ErrorKind, GrafanaError};
pub use version::{Capabilities, Version};
