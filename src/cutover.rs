//! Cut-over: when a replaced credential may be revoked.
//!
//! The judgement is a pure function of the policy, the server version,
//! the time and what Grafana says about the old credential's last use, so
//! tests drive it with any clock. Revocation itself happens during a
//! reconcile (see [`crate::reconcile`]), through the ledger's intent log.

use chrono::{DateTime, Duration, Utc};

use crate::config::CutoverConfig;

/// How far behind real use Grafana's `lastUsedAt` may lag: it is written
/// lazily, at most every few minutes (Grafana 10.x authn).
pub const LAST_USED_LAG: Duration = Duration::minutes(5);

/// What is known about a replaced credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    /// Grafana's `lastUsedAt` of the old credential.
    pub last_used: Option<DateTime<Utc>>,
    /// When its replacement was delivered.
    pub delivered: DateTime<Utc>,
}

/// The judgement on one replaced credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Unused long enough and past its grace: may be revoked.
    Qualifies,
    /// Not yet; `until` is the earliest time it could qualify.
    Waiting {
        /// Earliest time it could qualify if it stays unused.
        until: DateTime<Utc>,
    },
    /// `lastUsedAt` cannot be trusted on this version (10.1, 10.2).
    Unjudged,
}

/// Judges one replaced credential against the cut-over settings.
///
/// Non-use is counted from the later of the last use (plus Grafana's lag
/// in writing it) and the delivery of the replacement: before delivery,
/// the old credential was the only one its consumers had.
pub fn judge(
    config: &CutoverConfig,
    version: &str,
    now: DateTime<Utc>,
    evidence: Evidence,
) -> Verdict {
    if config.distrusts_last_used(version) {
        return Verdict::Unjudged;
    }
    let unused_for = to_chrono(config.unused_for);
    let grace_ends = evidence.delivered + to_chrono(config.grace);
    let quiet_since = match evidence.last_used {
        Some(used) => (used + LAST_USED_LAG).max(evidence.delivered),
        None => evidence.delivered,
    };
    let until = (quiet_since + unused_for).max(grace_ends);
    if now >= until {
        Verdict::Qualifies
    } else {
        Verdict::Waiting { until }
    }
}

/// True when the old credential was used after its consumers had the
/// whole grace period to move to the replacement.
pub fn is_used_past_grace(config: &CutoverConfig, evidence: Evidence) -> bool {
    let grace_ends = evidence.delivered + to_chrono(config.grace);
    evidence.last_used.is_some_and(|used| used > grace_ends)
}

fn to_chrono(d: std::time::Duration) -> Duration {
    Duration::from_std(d).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CutoverPolicy;

    fn config() -> CutoverConfig {
        CutoverConfig {
            policy: CutoverPolicy::WhenUnused,
            unused_for: std::time::Duration::from_secs(7 * 86_400),
            grace: std::time::Duration::from_secs(86_400),
            distrust_last_used: vec!["10.1".into(), "10.2".into()],
        }
    }

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::days(days)
    }

    // Unused past the period and the grace qualifies; recent use waits.
    #[test]
    fn unused_and_recent_use() {
        let old = Evidence {
            last_used: Some(at(-30)),
            delivered: at(0),
        };
        assert_eq!(judge(&config(), "11.5.0", at(7), old), Verdict::Qualifies);
        let recent = Evidence {
            last_used: Some(at(5)),
            ..old
        };
        let until = at(12) + LAST_USED_LAG;
        assert_eq!(
            judge(&config(), "11.5.0", at(7), recent),
            Verdict::Waiting { until }
        );
    }

    // The grace period holds even for a credential never used at all.
    #[test]
    fn grace_counts_from_delivery() {
        let mut config = config();
        config.unused_for = std::time::Duration::from_secs(3600);
        let never = Evidence {
            last_used: None,
            delivered: at(0),
        };
        assert!(matches!(
            judge(&config, "11.5.0", at(0) + Duration::hours(2), never),
            Verdict::Waiting { .. }
        ));
        assert_eq!(judge(&config, "11.5.0", at(1), never), Verdict::Qualifies);
    }

    // 10.1 and 10.2 never qualify: lastUsedAt stopped updating (FC-20).
    #[test]
    fn distrusted_versions_are_unjudged() {
        let old = Evidence {
            last_used: Some(at(-90)),
            delivered: at(-60),
        };
        assert_eq!(judge(&config(), "10.1.5", at(0), old), Verdict::Unjudged);
        assert_eq!(judge(&config(), "10.10.0", at(0), old), Verdict::Qualifies);
    }

    // Use after delivery plus grace is flagged; use within grace is not.
    #[test]
    fn use_past_grace() {
        let within = Evidence {
            last_used: Some(at(0) + Duration::hours(2)),
            delivered: at(0),
        };
        assert!(!is_used_past_grace(&config(), within));
        let after = Evidence {
            last_used: Some(at(3)),
            ..within
        };
        assert!(is_used_past_grace(&config(), after));
    }
}
