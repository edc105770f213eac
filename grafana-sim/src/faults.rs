//! Fault injection: rules on (method, route template) with triggers.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::routes::TEMPLATES;

/// What a matching rule does to the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer this status without running the handler; 429 carries
    /// `Retry-After`.
    Status {
        /// 429, 500, 502, 503 or 504.
        status: u16,
        /// Seconds for `Retry-After` (429 only; default 1).
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Wait before handling.
    Latency {
        /// Milliseconds.
        ms: u64,
    },
    /// Close the connection without an answer.
    Drop,
    /// Run and commit the handler, then answer 500 or drop.
    ApplyThenFail {
        /// Drop the connection instead of answering 500.
        #[serde(default)]
        drop: bool,
    },
    /// Run the handler, then re-run startup work (on 11.6+ the key
    /// conversion) before answering: Grafana's own migration landing
    /// between two reads of a client.
    RestartAfter,
    /// Run the handler, then apply an out-of-band change before
    /// answering: drift or a revoked credential in the middle of a run.
    MutateAfter {
        /// The change.
        mutation: crate::mutate::Mutation,
    },
}

/// When a matching rule fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// The first matching call only.
    Once,
    /// The first `n` matching calls.
    Times {
        /// How many.
        n: u64,
    },
    /// Every `n`th matching call (n, 2n, …).
    EveryNth {
        /// The period.
        n: u64,
    },
    /// Each call with probability `p`, from a seeded generator.
    Probability {
        /// 0.0 – 1.0.
        p: f64,
        /// Seed: same seed, same sequence.
        seed: u64,
    },
}

/// A fault rule; `None` method or route matches anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// HTTP method, or None for any.
    #[serde(default)]
    pub method: Option<String>,
    /// Route template (`POST /api/serviceaccounts/:id/tokens`) or its
    /// path part, or None for any.
    #[serde(default)]
    pub route: Option<String>,
    /// What happens.
    pub action: FaultAction,
    /// When it happens.
    pub trigger: Trigger,
}

impl FaultRule {
    fn matches(&self, method: &str, template: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        let path = template.split_once(' ').map_or(template, |(_, p)| p);
        let route_ok = self
            .route
            .as_deref()
            .is_none_or(|r| r == template || r == path);
        method_ok && route_ok
    }
}

/// Statuses a `status` fault may answer.
const FAULT_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

/// Why a fault rule cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultRuleError {
    /// The status is not one a fault may answer.
    #[error("fault status {status} is not one of 429, 500, 502, 503, 504")]
    Status {
        /// The rejected status.
        status: u16,
    },
    /// The method and route match no route template.
    #[error("route {route:?} matches no route template; known templates: {known}")]
    Route {
        /// The rule's method and route, as given.
        route: String,
        /// The known templates, comma-separated.
        known: String,
    },
}

impl FaultRule {
    /// Checks the status and that the route names a known template.
    ///
    /// # Errors
    /// [`FaultRuleError`] naming the rule's problem.
    pub fn validate(&self) -> Result<(), FaultRuleError> {
        if let FaultAction::Status { status, .. } = self.action {
            if !FAULT_STATUSES.contains(&status) {
                return Err(FaultRuleError::Status { status });
            }
        }
        let Some(route) = self.route.as_deref() else {
            return Ok(());
        };
        let method = self.method.as_deref();
        if TEMPLATES.iter().any(|t| names_template(method, route, t)) {
            return Ok(());
        }
        let given = method.map_or(route.to_string(), |m| format!("{m} {route}"));
        Err(FaultRuleError::Route {
            route: given,
            known: TEMPLATES.join(", "),
        })
    }
}

// The same test `matches` applies to a request, on a template.
fn names_template(method: Option<&str>, route: &str, template: &str) -> bool {
    let rule = FaultRule {
        method: method.map(str::to_string),
        route: Some(route.to_string()),
        action: FaultAction::Drop,
        trigger: Trigger::Once,
    };
    let template_method = template.split_once(' ').map_or("", |(m, _)| m);
    rule.matches(template_method, template)
}

/// A rule with its counters, as listed by the control API.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveFault {
    /// The rule.
    pub rule: FaultRule,
    /// Matching calls seen.
    pub seen: u64,
    /// Times it fired.
    pub fired: u64,
    #[serde(skip)]
    rng: Option<ChaCha8Rng>,
}

/// The installed rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<ActiveFault>,
}

impl Faults {
    /// Installs a rule.
    pub fn add(&mut self, rule: FaultRule) {
        let rng = match rule.trigger {
            Trigger::Probability { seed, .. } => Some(ChaCha8Rng::seed_from_u64(seed)),
            _ => None,
        };
        self.rules.push(ActiveFault {
            rule,
            seen: 0,
            fired: 0,
            rng,
        });
    }

    /// Removes every rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// The rules with their counters.
    pub fn list(&self) -> Vec<ActiveFault> {
        self.rules.clone()
    }

    /// The actions that fire for this call, in rule order.
    pub fn check(&mut self, method: &str, template: &str) -> Vec<FaultAction> {
        let mut fired = vec![];
        for active in &mut self.rules {
            if !active.rule.matches(method, template) {
                continue;
            }
            active.seen += 1;
            if fires(active) {
                active.fired += 1;
                fired.push(active.rule.action.clone());
            }
        }
        fired
    }
}

fn fires(active: &mut ActiveFault) -> bool {
    match active.rule.trigger {
        Trigger::Once => active.fired == 0,
        Trigger::Times { n } => active.fired < n,
        Trigger::EveryNth { n } => n > 0 && active.seen % n == 0,
        Trigger::Probability { p, .. } => {
            let rng = active.rng.as_mut().expect("seeded at install");
            rng.gen::<f64>() < p
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(trigger: Trigger) -> FaultRule {
        FaultRule {
            method: Some("POST".into()),
            route: Some("/api/serviceaccounts".into()),
            action: FaultAction::Drop,
            trigger,
        }
    }

    fn pattern(trigger: Trigger, calls: usize) -> Vec<bool> {
        let mut faults = Faults::default();
        faults.add(rule(trigger));
        (0..calls)
            .map(|_| !faults.check("POST", "POST /api/serviceaccounts").is_empty())
            .collect()
    }

    // Once, N times and every Nth fire on the expected calls only.
    #[test]
    fn counting_triggers() {
        assert_eq!(pattern(Trigger::Once, 3), [true, false, false]);
        assert_eq!(pattern(Trigger::Times { n: 2 }, 3), [true, true, false]);
        let every = pattern(Trigger::EveryNth { n: 2 }, 4);
        assert_eq!(every, [false, true, false, true]);
    }

    // The same seed gives the same firing sequence.
    #[test]
    fn probability_is_deterministic() {
        let a = pattern(Trigger::Probability { p: 0.5, seed: 9 }, 50);
        let b = pattern(Trigger::Probability { p: 0.5, seed: 9 }, 50);
        assert_eq!(a, b);
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
    }

    // Rules match on method and route; other calls are untouched.
    #[test]
    fn rules_match_method_and_route() {
        let mut faults = Faults::default();
        faults.add(rule(Trigger::Times { n: 10 }));
        assert!(faults
            .check("GET", "GET /api/serviceaccounts/search")
            .is_empty());
        assert!(faults.check("post", "POST /api/serviceaccounts").len() == 1);
    }
}
