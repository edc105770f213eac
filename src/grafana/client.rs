//! The Grafana HTTP client: one org per call, bounded, paced and retried.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;
use tracing::trace;

use super::error::{classify, ErrorKind, GrafanaError};
use super::wire::ErrorBody;
use crate::retry::{self, Attempt, RetryPolicy};
use crate::secret::Secret;

/// How keyshift authenticates to Grafana.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A user, normally the server admin, with basic auth.
    Basic {
        /// Login.
        user: String,
        /// Password.
        password: Secret,
    },
    /// A service-account token (or an API key), bound to one org.
    Token(Secret),
}

impl Credentials {
    /// True for a token: it reaches only its own org.
    pub fn is_token(&self) -> bool {
        matches!(self, Credentials::Token(_))
    }

    fn header(&self) -> Result<HeaderValue, GrafanaError> {
        use base64::Engine as _;
        let text = match self {
            Credentials::Basic { user, password } => {
                let pair = format!("{user}:{}", password.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            Credentials::Token(token) => format!("Bearer {}", token.expose()),
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| GrafanaError::Setup {
            reason: "the credential contains characters not allowed in a header".into(),
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Everything needed to build a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Grafana's base URL.
    pub url: Url,
    /// Extra trusted CA certificates, PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Timeout to connect.
    pub connect_timeout: Duration,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Requests started per second at most.
    pub requests_per_second: Option<f64>,
    /// Retry policy for retryable failures.
    pub retry: RetryPolicy,
}

impl ClientOptions {
    /// Options with defaults for everything but the URL.
    pub fn new(url: Url) -> Self {
        ClientOptions {
            url,
            ca_pem: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            concurrency: 4,
            requests_per_second: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// Receives one event per HTTP exchange, for metrics.
pub trait RequestObserver: Send + Sync {
    /// Called after each attempt; `status` is 0 when there was no answer.
    fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration);
}

/// One request, described before it is sent.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Route template, for logs and metrics.
    pub route: &'static str,
    /// Path with the ids filled in.
    pub path: String,
    /// Query parameters.
    pub query: Vec<(&'static str, String)>,
    /// Org in context; 0 for none.
    pub org: i64,
    /// JSON body.
    pub body: Option<serde_json::Value>,
    /// A POST that may safely be sent again whatever happened to an
    /// earlier try (Grafana's per-key migration is a no-op once done).
    pub idempotent: bool,
}

impl Request {
    /// A request without query or body.
    pub fn new(method: Method, route: &'static str, path: String, org: i64) -> Self {
        Request {
            method,
            route,
            path,
            query: Vec::new(),
            org,
            body: None,
            idempotent: false,
        }
    }

    /// Marks a POST as safe to send again.
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Adds a query parameter.
    pub fn query(mut self, name: &'static str, value: impl ToString) -> Self {
        self.query.push((name, value.to_string()));
        self
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: &impl Serialize) -> Self {
        self.body = Some(serde_json::to_value(body).expect("wire types always serialise"));
        self
    }

    fn method_name(&self) -> &'static str {
        match self.method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            Method::PUT => "PUT",
            _ => "HEAD",
        }
    }

    /// True for requests that change nothing on the server.
    pub fn is_read(&self) -> bool {
        matches!(self.method, Method::GET | Method::HEAD)
    }
}

/// A cheap-to-clone handle on a Grafana server.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    auth: HeaderValue,
    token_auth: bool,
    permits: Semaphore,
    pacer: Option<Pacer>,
    retry: RetryPolicy,
    observer: Option<Arc<dyn RequestObserver>>,
}

impl Client {
    /// Builds a client; no request is made.
    ///
    /// # Errors
    /// When the CA bundle cannot be read or the credential is not a valid
    /// header value.
    pub fn new(options: &ClientOptions, credentials: &Credentials) -> Result<Self, GrafanaError> {
        let mut builder = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("keyshift/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &options.ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem).map_err(setup_error)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(setup_error)?;
        let inner = Inner {
            http,
            base: options.url.clone(),
            auth: credentials.header()?,
            token_auth: credentials.is_token(),
            permits: Semaphore::new(options.concurrency.max(1)),
            pacer: options
                .requests_per_second
                .filter(|r| *r > 0.0)
                .map(Pacer::new),
            retry: options.retry.clone(),
            observer: None,
        };
        Ok(Client {
            inner: Arc::new(inner),
        })
    }

    /// Returns a client that reports every exchange to `observer`.
    pub fn with_observer(self, observer: Arc<dyn RequestObserver>) -> Self {
        let inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("with_observer must be called before the client is cloned"));
        Client {
            inner: Arc::new(Inner {
                observer: Some(observer),
                ..inner
            }),
        }
    }

    /// Grafana's base URL.
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// True when authenticating with a token (one org only).
    pub fn uses_token(&self) -> bool {
        self.inner.token_auth
    }

    /// Sends a request, retrying what is safe, and decodes the answer.
    ///
    /// Reads, PATCH and DELETE are retried on 429, 502-504 and transport
    /// errors. POST is retried only on 429, which Grafana answers before it
    /// changes anything; other POST failures go to [`Client::create`].
    ///
    /// # Errors
    /// The last error when the call failed for good.
    pub async fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T, GrafanaError> {
        let bytes = self.call_raw(request).await?;
        decode(request, &bytes)
    }

    /// Like [`Client::call`] but returns the raw body.
    ///
    /// # Errors
    /// The last error when the call failed for good.
    pub async fn call_raw(&self, request: &Request) -> Result<Vec<u8>, GrafanaError> {
        let is_post = request.method == Method::POST && !request.idempotent;
        retry::run(&self.inner.retry, |_| async {
            match self.send(request).await {
                Ok(bytes) => Attempt::Final(Ok(bytes)),
                Err(e) if is_post && e.may_have_applied() => Attempt::Final(Err(e)),
                Err(e) if e.is_retryable() => {
                    let hint = e.retry_after();
                    Attempt::Retry(e, hint)
                }
                Err(e) => Attempt::Final(Err(e)),
            }
        })
        .await
    }

    /// Sends a create request; when the outcome is unknown (no answer, or
    /// a 5xx), asks `lookup` whether it was made before trying again.
    ///
    /// Returns `Created(T)` from a 2xx answer, or `Found(F)` when the
    /// lookup found the object after an unknown outcome.
    ///
    /// # Errors
    /// The last error when the object was not made.
    pub async fn create<T, F, L, Fut>(
        &self,
        request: &Request,
        lookup: L,
    ) -> Result<Created<T, F>, GrafanaError>
    where
        T: DeserializeOwned,
        L: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Option<F>, GrafanaError>>,
    {
        // Set once an attempt ended without telling whether it applied.
        let unknown = AtomicBool::new(false);
        retry::run(&self.inner.retry, |_| {
            let (lookup, unknown) = (&lookup, &unknown);
            async move {
                if unknown.load(Ordering::Relaxed) {
                    if let Some(done) = look_up(lookup).await {
                        return done;
                    }
                }
                let error = match self.send(request).await.and_then(|b| decode(request, &b)) {
                    Ok(made) => return Attempt::Final(Ok(Created::Created(made))),
                    Err(error) => error,
                };
                let was_unknown = unknown.load(Ordering::Relaxed);
                unknown.store(was_unknown || error.may_have_applied(), Ordering::Relaxed);
                // A 500 is not retried, but it may have applied; and a
                // "name taken" after an unknown outcome may be our own.
                let name_taken = matches!(
                    error.kind(),
                    Some(ErrorKind::NameTaken | ErrorKind::TokenNameTaken)
                );
                if !error.is_retryable() && (error.may_have_applied() || was_unknown && name_taken)
                {
                    return look_up(lookup).await.unwrap_or(Attempt::Final(Err(error)));
                }
                if error.is_retryable() {
                    let hint = error.retry_after();
                    return Attempt::Retry(error, hint);
                }
                Attempt::Final(Err(error))
            }
        })
        .await
    }

    /// One attempt, without retries.
    async fn send(&self, request: &Request) -> Result<Vec<u8>, GrafanaError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .expect("semaphore is never closed");
        if let Some(pacer) = &self.inner.pacer {
            pacer.wait().await;
        }
        let started = Instant::now();
        let result = self.exchange(request).await;
        let status = match &result {
            Ok(_) => 200,
            Err(e) => e.status().unwrap_or(0),
        };
        self.report(request, status, started.elapsed());
        result
    }

    async fn exchange(&self, request: &Request) -> Result<Vec<u8>, GrafanaError> {
        let transport = |source| GrafanaError::Transport {
            method: request.method_name(),
            route: request.route,
            org: request.org,
            source,
        };
        let response = self.build(request).send().await.map_err(transport)?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let bytes = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(status_error(request, status, &bytes, retry_after))
    }

    fn build(&self, request: &Request) -> reqwest::RequestBuilder {
        let mut url = self.inner.base.clone();
        let base_path = url.path().trim_end_matches('/').to_string();
        url.set_path(&format!("{base_path}{}", request.path));
        let mut builder = self
            .inner
            .http
            .request(request.method.clone(), url)
            .header(AUTHORIZATION, self.inner.auth.clone())
            .query(&request.query);
        if request.org > 0 {
            builder = builder.header("X-Grafana-Org-Id", request.org);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        builder
    }

    fn report(&self, request: &Request, status: u16, elapsed: Duration) {
        trace!(
            method = request.method_name(),
            route = request.route,
            org = request.org,
            status,
            elapsed_ms = elapsed.as_millis() as u64,
            "grafana request"
        );
        if let Some(observer) = &self.inner.observer {
            observer.observe(request.method_name(), request.route, status, elapsed);
        }
    }
}

// Runs a create's lookup: Some(final attempt) when it settles the outcome.
async fn look_up<T, F, L, Fut>(lookup: &L) -> Option<Attempt<Created<T, F>, GrafanaError>>
where
    L: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<F>, GrafanaError>>,
{
    match lookup().await {
        Ok(Some(found)) => Some(Attempt::Final(Ok(Created::Found(found)))),
        Ok(None) => None,
        Err(e) => Some(Attempt::Final(Err(e))),
    }
}

/// The result of [`Client::create`].
#[derive(Debug)]
pub enum Created<T, F> {
    /// Grafana answered with the new object.
    Created(T),
    /// The outcome was unknown and a lookup found the object.
    Found(F),
}

/// Spaces request starts to stay under a rate.
struct Pacer {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pacer {
    fn new(per_second: f64) -> Self {
        Pacer {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

fn decode<T: DeserializeOwned>(request: &Request, bytes: &[u8]) -> Result<T, GrafanaError> {
    serde_json::from_slice(bytes).map_err(|source| GrafanaError::Decode {
        method: request.method_name(),
        route: request.route,
        org: request.org,
        source,
    })
}

fn status_error(
    request: &Request,
    status: StatusCode,
    bytes: &[u8],
    retry_after: Option<Duration>,
) -> GrafanaError {
    let body: ErrorBody = serde_json::from_slice(bytes).unwrap_or_default();
    let message = body.message.unwrap_or_else(|| {
        // Some errors are plain text (the token day limit, from 10.0 on).
        String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            .trim()
            .to_string()
    });
    let kind = classify(
        status.as_u16(),
        body.message_id.as_deref(),
        &message,
        retry_after,
    );
    GrafanaError::Status {
        method: request.method_name(),
        route: request.route,
        org: request.org,
        status: status.as_u16(),
        message_id: body.message_id,
        message,
        kind,
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

fn setup_error(e: reqwest::Error) -> GrafanaError {
    GrafanaError::Setup {
        reason: e.to_string(),
    }
}
