//! The control API under `/__sim/` (no Grafana route lives there).
//!
//! Every operation is also a typed method of [`crate::SimHandle`].

use chrono::Duration;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{Reply, Request};
use crate::estate::Estate;
use crate::faults::FaultRule;
use crate::mutate::{self, Mutation};
use crate::profile::Settings;
use crate::state::{format_time, StateError};
use crate::Sim;

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

#[derive(Deserialize)]
struct Whoami {
    credential: String,
}

/// Answers one control request.
pub(crate) fn handle(sim: &Sim, req: &Request) -> Reply {
    let path = req.path.trim_start_matches("/__sim").trim_end_matches('/');
    match (req.method.as_str(), path) {
        ("GET", "/estate") => Reply::json(200, &to_value(&export(sim))),
        ("PUT", "/estate") => load(sim, req),
        ("GET", "/clock") => clock(sim),
        ("POST", "/clock/advance") => advance(sim, req),
        ("POST", "/restart") => Reply::json(200, &to_value(&sim.restart())),
        ("POST", "/mutate") => apply_mutation(sim, req),
        ("GET", "/requests") => requests(sim),
        ("DELETE", "/requests") => {
            sim.log().clear();
            ok()
        }
        ("POST", "/faults") => add_fault(sim, req),
        ("GET", "/faults") => Reply::json(200, &to_value(&sim.faults().list())),
        ("DELETE", "/faults") => {
            sim.faults().clear();
            ok()
        }
        ("GET", "/settings") => Reply::json(200, &to_value(&sim.db().settings)),
        ("PUT", "/settings") => set_settings(sim, req),
        ("POST", "/whoami") => whoami(sim, req),
        _ => error(404, "no such control endpoint"),
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("control types serialise")
}

fn ok() -> Reply {
    Reply::json(200, &json!({"ok": true}))
}

fn error(status: u16, text: &str) -> Reply {
    Reply::json(status, &json!({ "error": text }))
}

fn export(sim: &Sim) -> Estate {
    Estate::from_state(&sim.db().state)
}

fn load(sim: &Sim, req: &Request) -> Reply {
    let Some(estate) = req.json::<Estate>() else {
        return error(400, "body is not an estate document");
    };
    match sim.load_estate(&estate) {
        Ok(()) => ok(),
        Err(err) => error(400, &error_chain(&err)),
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn clock(sim: &Sim) -> Reply {
    let db = sim.db();
    let body = json!({"now": format_time(db.state.now()),
                      "offset_seconds": db.state.clock_offset().num_seconds()});
    Reply::json(200, &body)
}

fn advance(sim: &Sim, req: &Request) -> Reply {
    let Some(body) = req.json::<Advance>() else {
        return error(400, "expected {\"seconds\": N}");
    };
    let Some(by) = Duration::try_seconds(body.seconds) else {
        let err = StateError::TimeOutOfRange {
            seconds: body.seconds,
        };
        return error(400, &err.to_string());
    };
    let moved = sim.db().state.advance_clock(by);
    match moved {
        Ok(()) => clock(sim),
        Err(err) => error(400, &err.to_string()),
    }
}

fn apply_mutation(sim: &Sim, req: &Request) -> Reply {
    let mutation = match serde_json::from_slice::<Mutation>(&req.body) {
        Ok(m) => m,
        Err(err) => return error(400, &format!("invalid mutation: {err}")),
    };
    let result = mutate::apply(&mut sim.db().state, sim.profile, mutation);
    match result {
        Ok(outcome) => Reply::json(200, &to_value(&outcome)),
        Err(err @ (StateError::NoKey(_) | StateError::NoServiceAccount(_))) => {
            error(404, &err.to_string())
        }
        Err(err @ StateError::TimeOutOfRange { .. }) => error(400, &err.to_string()),
        Err(err) => error(409, &err.to_string()),
    }
}

fn requests(sim: &Sim) -> Reply {
    let log = sim.log();
    let body = json!({"requests": log.records(), "counts": log.counts(),
                      "writes": log.write_count()});
    Reply::json(200, &body)
}

fn add_fault(sim: &Sim, req: &Request) -> Reply {
    let rule = match serde_json::from_slice::<FaultRule>(&req.body) {
        Ok(rule) => rule,
        Err(err) => return error(400, &format!("invalid fault rule: {err}")),
    };
    match rule.validate() {
        Ok(()) => {
            sim.faults().add(rule);
            ok()
        }
        Err(err) => error(400, &format!("invalid fault rule: {err}")),
    }
}

fn set_settings(sim: &Sim, req: &Request) -> Reply {
    match serde_json::from_slice::<Settings>(&req.body) {
        Ok(settings) => {
            sim.db().settings = settings;
            ok()
        }
        Err(err) => error(400, &format!("invalid settings: {err}")),
    }
}

// The body is {"credential": "..."} or the bare credential text.
fn whoami(sim: &Sim, req: &Request) -> Reply {
    let credential = match req.json::<Whoami>() {
        Some(body) => body.credential,
        None => String::from_utf8_lossy(&req.body).trim().to_string(),
    };
    match sim.whoami(&credential) {
        Ok(identity) => Reply::json(200, &json!({ "identity": identity })),
        Err(failure) => Reply::json(failure.status, &failure.body),
    }
}
