//! Shared helpers: start a simulator, send requests under a timeout.

use std::future::Future;
use std::time::Duration;

use grafana_sim::{start, Estate, Profile, SimConfig, SimHandle};
use serde_json::Value;

/// Every await in these tests is bounded by this.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits `f`, failing the test when the simulator does not answer.
pub async fn timed<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, f)
        .await
        .expect("timed out: the simulator did not answer (hung handler or lock?)")
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Admin,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
    ApiKeyBasic(&'a str),
}

/// An answer with its body parsed when it is JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub content_type: Option<String>,
    pub retry_after: Option<String>,
}

/// A running simulator and a client for it.
pub struct Sim {
    pub handle: SimHandle,
    client: reqwest::Client,
    pub org_header: Option<i64>,
}

impl Sim {
    pub async fn start(profile: Profile) -> Sim {
        Sim::start_with(SimConfig::new(profile)).await
    }

    pub async fn with_estate(profile: Profile, estate: Value) -> Sim {
        let estate: Estate = serde_json::from_value(estate).expect("estate fixture parses");
        Sim::start_with(SimConfig::new(profile).with_estate(estate)).await
    }

    pub async fn start_with(config: SimConfig) -> Sim {
        let handle = timed(start(config)).await.expect("simulator starts");
        Sim {
            handle,
            client: reqwest::Client::new(),
            org_header: None,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<Value>,
    ) -> Resp {
        let url = format!("{}{}", self.handle.url(), path);
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, url);
        req = match auth {
            Auth::None => req,
            Auth::Admin => req.basic_auth("admin", Some("admin")),
            Auth::Basic(u, p) => req.basic_auth(u, Some(p)),
            Auth::Bearer(t) => req.bearer_auth(t),
            Auth::ApiKeyBasic(t) => req.basic_auth("api_key", Some(t)),
        };
        if let Some(org) = self.org_header {
            req = req.header("X-Grafana-Org-Id", org.to_string());
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = timed(req.send())
            .await
            .expect("request reaches the simulator");
        let header = |name: &str| {
            let value = resp.headers().get(name)?;
            value.to_str().ok().map(str::to_string)
        };
        let content_type = header("content-type");
        let retry_after = header("retry-after");
        let status = resp.status().as_u16();
        let text = timed(resp.text()).await.expect("body reads");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            body,
            text,
            content_type,
            retry_after,
        }
    }

    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Resp {
        self.send(method, path, Auth::Admin, body).await
    }

    /// Creates an SA as admin; returns its id.
    pub async fn create_sa(&self, name: &str, role: &str) -> i64 {
        let body = serde_json::json!({"name": name, "role": role});
        let resp = self.admin("POST", "/api/serviceaccounts", Some(body)).await;
        assert_eq!(resp.status, 201, "create SA: {}", resp.text);
        resp.body["id"].as_i64().unwrap()
    }

    /// Creates a token as admin; returns (id, secret).
    pub async fn create_token(&self, sa: i64, name: &str) -> (i64, String) {
        let body = serde_json::json!({"name": name});
        let path = format!("/api/serviceaccounts/{sa}/tokens");
        let resp = self.admin("POST", &path, Some(body)).await;
        assert_eq!(resp.status, 200, "create token: {}", resp.text);
        let id = resp.body["id"].as_i64().unwrap();
        (id, resp.body["key"].as_str().unwrap().to_string())
    }

    /// Creates a plain key out of band; returns (id, secret).
    pub fn create_key(&self, org: i64, name: &str, role: &str) -> (i64, String) {
        let mutation = serde_json::json!({"op": "create_api_key", "org": org,
                                          "name": name, "role": role});
        let out = self
            .handle
            .mutate(serde_json::from_value(mutation).unwrap())
            .unwrap();
        (out.id.unwrap(), out.key.unwrap())
    }
}

/// Profiles from `from` on.
pub fn profiles_from(from: Profile) -> impl Iterator<Item = Profile> {
    Profile::ALL.into_iter().filter(move |p| *p >= from)
}

/// Profiles before `to`.
pub fn profiles_before(to: Profile) -> impl Iterator<Item = Profile> {
    Profile::ALL.into_iter().filter(move |p| *p < to)
}

/// Is the body the five-key errutil authn body?
pub fn is_authn_body(body: &Value, message_id: &str) -> bool {
    let keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.len() == 5 && body["messageId"] == message_id && body["traceID"] == ""
}
