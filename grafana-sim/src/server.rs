//! The hyper server: one service for Grafana routes and `/__sim/`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request as HttpRequest, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::api::{health, Ctx, Reply, Request};
use crate::auth::{self, AuthInput, AuthKind};
use crate::faults::FaultAction;
use crate::requests::RequestRecord;
use crate::routes::{self, Route};
use crate::{control, mutate, Sim};

/// Returned by the service to make hyper close the connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub struct DroppedConnection;

/// Accepts connections until `stop` fires; connections die with it.
pub(crate) async fn run(sim: Arc<Sim>, listener: TcpListener, mut stop: oneshot::Receiver<()>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(sim.clone(), stream));
                }
                Err(err) => warn!(error = %err, "accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection(sim: Arc<Sim>, stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| handle(sim.clone(), req));
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(err) = conn.await {
        debug!(error = %err, "connection ended");
    }
}

/// Headers a request carries that the simulator reads.
#[derive(Default)]
struct Headers {
    authorization: Option<String>,
    org: Option<String>,
}

async fn handle(
    sim: Arc<Sim>,
    req: HttpRequest<Incoming>,
) -> Result<Response<Full<Bytes>>, DroppedConnection> {
    let (parts, body) = req.into_parts();
    let header = |name: &str| {
        let value = parts.headers.get(name)?;
        value.to_str().ok().map(str::to_string)
    };
    let headers = Headers {
        authorization: header("authorization"),
        org: header("x-grafana-org-id"),
    };
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let request = Request {
        method: parts.method.as_str().to_ascii_uppercase(),
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query().unwrap_or("")),
        body: body.to_vec(),
    };
    let head = request.method == "HEAD";
    if request.path.starts_with("/__sim/") {
        return Ok(to_response(control::handle(&sim, &request), head));
    }
    grafana(&sim, &request, &headers)
        .await
        .map(|r| to_response(r, head))
}

/// A Grafana request: faults, authentication, handler, log.
async fn grafana(sim: &Sim, req: &Request, headers: &Headers) -> Result<Reply, DroppedConnection> {
    let (route, template) = routes::resolve(sim.profile, &req.method, &req.path);
    let actions = sim.faults().check(&req.method, template);
    let mut after = vec![];
    for action in actions {
        match action {
            FaultAction::Latency { ms } => tokio::time::sleep(StdDuration::from_millis(ms)).await,
            FaultAction::Status {
                status,
                retry_after,
            } => {
                let reply = fault_reply(status, retry_after);
                log(sim, req, template, reply.status, None, AuthKind::None);
                return Ok(reply);
            }
            FaultAction::Drop => {
                log(sim, req, template, 0, None, AuthKind::None);
                return Err(DroppedConnection);
            }
            other => after.push(other),
        }
    }
    let (reply, org, kind) = run_route(sim, route, req, headers);
    let outcome = after_handler(sim, after, reply);
    let status = outcome.as_ref().map_or(0, |r| r.status);
    log(sim, req, template, status, org, kind);
    outcome
}

/// Runs the faults that act once the handler has committed.
fn after_handler(
    sim: &Sim,
    actions: Vec<FaultAction>,
    reply: Reply,
) -> Result<Reply, DroppedConnection> {
    let mut outcome = Ok(reply);
    for action in actions {
        match action {
            FaultAction::RestartAfter => drop(sim.restart()),
            FaultAction::MutateAfter { mutation } => {
                let mut db = sim.db();
                if let Err(err) = mutate::apply(&mut db.state, sim.profile, mutation) {
                    warn!(error = %err, "mutation of a fault rule failed");
                }
            }
            FaultAction::ApplyThenFail { drop: true } => outcome = Err(DroppedConnection),
            FaultAction::ApplyThenFail { drop: false } => {
                outcome = outcome.map(|_| Reply::message(500, "Internal Server Error"))
            }
            _ => {}
        }
    }
    outcome
}

fn fault_reply(status: u16, retry_after: Option<u64>) -> Reply {
    let mut reply = match status {
        429 => Reply::message(429, "Too many requests"),
        500 => Reply::message(500, "Internal Server Error"),
        _ => Reply::text(status, "fault injected by grafana-sim"),
    };
    if status == 429 {
        reply
            .headers
            .push(("retry-after", retry_after.unwrap_or(1).to_string()));
    }
    reply
}

/// Authenticates and runs a route under the state lock.
fn run_route(
    sim: &Sim,
    route: Route<'_>,
    req: &Request,
    headers: &Headers,
) -> (Reply, Option<i64>, AuthKind) {
    let mut db = sim.db();
    let db = &mut *db;
    match route {
        Route::Health => {
            let reply = health::health(sim.profile, &sim.version, &db.settings);
            return (reply, None, AuthKind::None);
        }
        Route::Healthz => return (health::healthz(), None, AuthKind::None),
        Route::NotFound => return (Reply::not_found(), None, AuthKind::None),
        _ => {}
    }
    let input = AuthInput {
        authorization: headers.authorization.as_deref(),
        org_header: headers.org.as_deref(),
        target_org: req.param("targetOrgId"),
        observe_only: false,
    };
    let who = match auth::authenticate(sim.profile, &sim.options, &mut db.state, input) {
        Ok(who) => who,
        Err(failure) => {
            return (
                Reply::json(failure.status, &failure.body),
                None,
                failure.kind,
            );
        }
    };
    let mut ctx = Ctx {
        profile: sim.profile,
        options: &sim.options,
        settings: &db.settings,
        state: &mut db.state,
        req,
        who: &who,
    };
    let reply = routes::dispatch(route, &mut ctx);
    (reply, Some(who.org_id), who.kind)
}

fn log(sim: &Sim, req: &Request, route: &str, status: u16, org: Option<i64>, auth: AuthKind) {
    debug!(method = %req.method, route, status, org, auth = ?auth, "request");
    sim.log().push(RequestRecord {
        seq: 0,
        method: req.method.clone(),
        route: route.to_string(),
        path: req.path.clone(),
        status,
        org,
        auth,
    });
}

fn to_response(reply: Reply, head: bool) -> Response<Full<Bytes>> {
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(reply.body)
    };
    let mut builder = Response::builder().status(reply.status);
    if let Some(kind) = reply.content_type {
        builder = builder.header("content-type", kind);
    }
    for (name, value) in reply.headers {
        builder = builder.header(name, value);
    }
    builder.body(Full::new(body)).unwrap_or_else(|_| {
        let mut fallback = Response::new(Full::new(Bytes::new()));
        *fallback.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// Parses a query string; later values win.
pub fn parse_query(query: &str) -> HashMap<String, String> {
    let pairs = query.split('&').filter(|p| !p.is_empty());
    pairs
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Query strings decode percent escapes and plus signs.
    #[test]
    fn query_decoding() {
        let q = parse_query("query=ci%20bot&page=2&x=a+b");
        assert_eq!(q["query"], "ci bot");
        assert_eq!(q["page"], "2");
        assert_eq!(q["x"], "a b");
    }
}
