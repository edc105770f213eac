//! Grafana's HTTP routes, one file per area.

pub mod health;
pub mod keys;
pub mod migrate;
pub mod orgs;
pub mod service_accounts;
pub mod tokens;

use std::collections::HashMap;

use rand::Rng;
use serde_json::{json, Value};

use crate::auth::Identity;
use crate::profile::{Options, Profile, Settings};
use crate::state::State;

/// A response before it becomes HTTP.
#[derive(Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Content type; None writes no header.
    pub content_type: Option<&'static str>,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

// Bodies may carry a new token's secret: Debug shows their size only.
impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .field("content_type", &self.content_type)
            .finish_non_exhaustive()
    }
}

impl Reply {
    /// A JSON body.
    pub fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(value).expect("json values serialise"),
            content_type: Some("application/json"),
            headers: vec![],
        }
    }

    /// The classic `{"message": …}` body.
    pub fn message(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({ "message": message }))
    }

    /// The structured errutil body.
    pub fn errutil(status: u16, message_id: &str, message: &str) -> Reply {
        let body = json!({"statusCode": status, "messageId": message_id, "message": message});
        Reply::json(status, &body)
    }

    /// A plain-text body.
    pub fn text(status: u16, text: &str) -> Reply {
        Reply {
            status,
            body: text.as_bytes().to_vec(),
            content_type: Some("text/plain; charset=utf-8"),
            headers: vec![],
        }
    }

    /// Unknown or removed route.
    pub fn not_found() -> Reply {
        Reply::message(404, "Not found")
    }

    /// 400 for an unparsable body.
    pub fn bad_request_data() -> Reply {
        Reply::message(400, "Bad request data")
    }

    /// The body as JSON (tests and the control API).
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// One parsed Grafana request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// Method, upper case.
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// Query parameters (last one wins).
    pub query: HashMap<String, String>,
    /// Raw body.
    pub body: Vec<u8>,
}

impl Request {
    /// A query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A query parameter as a number, or the default.
    pub fn param_i64(&self, name: &str, default: i64) -> i64 {
        self.param(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// A query parameter that is `true`.
    pub fn param_true(&self, name: &str) -> bool {
        self.param(name) == Some("true")
    }

    /// The body parsed as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// Everything a route handler sees, under the state lock.
pub struct Ctx<'a> {
    /// The version profile.
    pub profile: Profile,
    /// The [U] switches.
    pub options: &'a Options,
    /// Server settings.
    pub settings: &'a Settings,
    /// The database.
    pub state: &'a mut State,
    /// The request.
    pub req: &'a Request,
    /// The signed-in identity.
    pub who: &'a Identity,
}

impl Ctx<'_> {
    /// The org in context.
    pub fn org(&self) -> i64 {
        self.who.org_id
    }

    /// None when the identity holds `action`, else the RBAC 403.
    pub fn require(&mut self, action: &str) -> Option<Reply> {
        if self.who.can(action) {
            return None;
        }
        Some(self.access_denied(action))
    }

    /// The RBAC denial body of §2.3 (3).
    pub fn access_denied(&mut self, action: &str) -> Reply {
        let digits: u64 = self.state.rng.gen_range(1_000_000_000..10_000_000_000);
        let message = format!(
            "You'll need additional permissions to perform this action. \
             Permissions needed: {action}"
        );
        let body = json!({"title": "Access denied", "message": message,
                          "accessErrorId": format!("ACE{digits}")});
        Reply::json(403, &body)
    }

    /// An SA error in the era's shape: classic or errutil.
    pub fn sa_error(&self, status: u16, classic: &str, id: &str, message: &str) -> Reply {
        if self.profile.errutil_errors() {
            Reply::errutil(status, id, message)
        } else {
            Reply::message(status, classic)
        }
    }

    /// SA routes accept UIDs and DTOs carry `uid`.
    pub fn uses_uid(&self) -> bool {
        self.profile.sa_uid() || (self.profile == Profile::V11_3 && self.options.sa_uid_paths)
    }
}
