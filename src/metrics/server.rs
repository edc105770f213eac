//! The HTTP endpoint serving `/metrics` and `/healthz`.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use super::{Health, Metrics};

/// The content type of text exposition format 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A scraper that sends no complete request head in this time is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Binding the listen address failed.
    #[error("failed to listen on {addr} for metrics")]
    Bind {
        /// The address from the config.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
}

/// A running metrics endpoint; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl MetricsServer {
    /// Returns the bound address (useful when the port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts serving `/metrics` and `/healthz` on `addr`.
///
/// # Errors
///
/// Returns [`ServeError::Bind`] when the address cannot be bound.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> Result<MetricsServer, ServeError> {
    let bind_error = |source| ServeError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let local_addr = listener.local_addr().map_err(bind_error)?;
    info!(addr = %local_addr, "serving metrics");

    let task = tokio::spawn(accept_loop(listener, metrics));
    Ok(MetricsServer { local_addr, task })
}

async fn accept_loop(listener: TcpListener, metrics: Metrics) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Usually EMFILE; a pause lets descriptors free up
                // instead of spinning on the same error.
                debug!(%error, "metrics accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| respond(req, metrics.clone()));
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(error) = connection.await {
                debug!(%peer, %error, "metrics connection ended with an error");
            }
        });
    }
}

async fn respond(
    req: Request<Incoming>,
    metrics: Metrics,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    let response = match req.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics.render());
            let format = HeaderValue::from_static(TEXT_FORMAT);
            response.headers_mut().insert(CONTENT_TYPE, format);
            response
        }
        "/healthz" => match metrics.health() {
            Health::Ready => text(StatusCode::OK, "ok\n"),
            Health::Starting => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            Health::Stopping => text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n"),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(response)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(10);

    /// Sends one HTTP/1.1 request and returns (status, body).
    async fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    /// Parses exposition text into `name{labels}` -> value, checking
    /// every line is a comment, blank, or a sample.
    fn parse(text: &str) -> HashMap<String, f64> {
        let mut samples = HashMap::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample without value");
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad metric name in {line:?}"
            );
            if name_end < series.len() {
                assert!(series.ends_with('}'), "unclosed labels in {line:?}");
            }
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("sample value is not a number"),
            };
            samples.insert(series.to_owned(), value);
        }
        samples
    }

    // A scrape over 127.0.0.1 parses and its counters match what was recorded.
    #[tokio::test]
    async fn scrape_matches_recorded_runs() {
        let metrics = Metrics::new();
        let now = chrono::Utc::now();
        for outcome in ["done", "done", "attention"] {
            metrics.record_run("reconcile", outcome, now, Duration::from_secs(2));
        }
        metrics.record_skipped_tick();
        let server = serve(([127, 0, 0, 1], 0).into(), metrics).await.unwrap();

        let fetch = get(server.local_addr(), "GET", "/metrics");
        let (status, body) = timeout(LIMIT, fetch).await.expect("metrics scrape hung");
        assert_eq!(status, 200);
        let samples = parse(&body);
        let runs = |outcome: &str| {
            samples[&format!("keyshift_runs_total{{kind=\"reconcile\",outcome=\"{outcome}\"}}")]
        };
        assert_eq!(runs("done"), 2.0);
        assert_eq!(runs("attention"), 1.0);
        assert_eq!(samples["keyshift_skipped_ticks_total"], 1.0);
    }

    // /healthz is 503 until ready, 200 when ready, 503 when stopping.
    #[tokio::test]
    async fn healthz_follows_health() {
        let metrics = Metrics::new();
        let server = serve(([127, 0, 0, 1], 0).into(), metrics.clone())
            .await
            .unwrap();
        let addr = server.local_addr();

        let probe = || timeout(LIMIT, get(addr, "GET", "/healthz"));
        assert_eq!(probe().await.expect("healthz hung").0, 503);
        metrics.set_health(Health::Ready);
        assert_eq!(probe().await.expect("healthz hung"), (200, "ok\n".into()));
        metrics.set_health(Health::Stopping);
        assert_eq!(probe().await.expect("healthz hung").0, 503);
    }

    // Unknown paths are 404 and other methods 405.
    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let server = serve(([127, 0, 0, 1], 0).into(), Metrics::new())
            .await
            .unwrap();
        let addr = server.local_addr();
        let missing = timeout(LIMIT, get(addr, "GET", "/nope"))
            .await
            .expect("hung");
        let posted = timeout(LIMIT, get(addr, "POST", "/metrics"))
            .await
            .expect("hung");
        assert_eq!((missing.0, posted.0), (404, 405));
    }

    // Binding an address already in use names the address.
    #[tokio::test]
    async fn bind_error_names_the_address() {
        let first = serve(([127, 0, 0, 1], 0).into(), Metrics::new())
            .await
            .unwrap();
        let taken = first.local_addr();
        let err = serve(taken, Metrics::new()).await.unwrap_err();
        assert!(err.to_string().contains(&taken.to_string()), "{err}");
    }
}
