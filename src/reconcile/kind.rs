//! Finding kinds and their severity, in one table.
//!
//! | kind                  | severity | what was seen                                   |
//! |-----------------------|----------|-------------------------------------------------|
//! | `sa-deleted`          | critical | an owned account answers 404                    |
//! | `sa-renamed`          | warning  | its name is not the one keyshift set            |
//! | `sa-role-escalated`   | critical | its role is above the intended one              |
//! | `sa-role-reduced`     | warning  | its role is below the intended one              |
//! | `sa-disabled`         | warning  | it was disabled                                 |
//! | `token-deleted`       | critical | an owned token is gone from a complete list     |
//! | `token-unknown`       | warning  | not in a list at Grafana's cap: maybe hidden    |
//! | `token-revoked`       | critical | secret scanning revoked it (`isRevoked`)        |
//! | `token-expired`       | warning  | it expired                                      |
//! | `token-expiring`      | warning  | it expires within `reconcile.expiring_within`   |
//! | `legacy-still-used`   | warning  | a replaced credential used after delivery+grace |
//! | `new-legacy-key`      | warning  | a legacy key the ledger does not know           |
//! | `new-autogen-account` | warning  | an `sa-autogen-*` account the ledger does not know |
//! | `converted-by-grafana`| info     | Grafana 11.6+ turned a known key into a token   |
//! | `listing-incomplete`  | warning  | a list hit Grafana's cap; nothing repaired there |
//! | `near-token-limit`    | warning  | an account is at 90% of `token_limit` (FC-23)   |
//! | `cutover-revoked`     | info     | cut-over revoked a replaced credential          |
//! | `cutover-ready`       | info     | it could be revoked; the policy says `never`    |
//! | `cutover-waiting`     | info     | still in its grace or unused period             |
//! | `cutover-unjudged`    | info     | `lastUsedAt` is not trusted on this version     |
//! | `cutover-blocked`     | warning  | it qualifies, but its replacement does not work |
//! | `repair-failed`       | critical | a repair was attempted and failed               |
//!
//! A finding of warning or above that was not repaired makes the run need
//! attention (exit code 2).

use std::fmt;

use crate::ledger::Severity;

macro_rules! kinds {
    ($($variant:ident => $text:literal, $severity:ident;)+) => {
        /// What a finding is about; its text and severity never change.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum FindingKind {
            $(
                #[doc = concat!("`", $text, "`.")]
                $variant,
            )+
        }

        impl FindingKind {
            /// Every kind, in table order.
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$variant,)+];

            /// The kind as the ledger and reports spell it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(FindingKind::$variant => $text,)+
                }
            }

            /// How much a finding of this kind matters.
            pub fn severity(self) -> Severity {
                match self {
                    $(FindingKind::$variant => Severity::$severity,)+
                }
            }
        }
    };
}

kinds! {
    SaDeleted => "sa-deleted", Critical;
    SaRenamed => "sa-renamed", Warning;
    SaRoleEscalated => "sa-role-escalated", Critical;
    SaRoleReduced => "sa-role-reduced", Warning;
    SaDisabled => "sa-disabled", Warning;
    TokenDeleted => "token-deleted", Critical;
    TokenUnknown => "token-unknown", Warning;
    TokenRevoked => "token-revoked", Critical;
    TokenExpired => "token-expired", Warning;
    TokenExpiring => "token-expiring", Warning;
    LegacyStillUsed => "legacy-still-used", Warning;
    NewLegacyKey => "new-legacy-key", Warning;
    NewAutogenAccount => "new-autogen-account", Warning;
    ConvertedByGrafana => "converted-by-grafana", Info;
    ListingIncomplete => "listing-incomplete", Warning;
    NearTokenLimit => "near-token-limit", Warning;
    CutoverRevoked => "cutover-revoked", Info;
    CutoverReady => "cutover-ready", Info;
    CutoverWaiting => "cutover-waiting", Info;
    CutoverUnjudged => "cutover-unjudged", Info;
    CutoverBlocked => "cutover-blocked", Warning;
    RepairFailed => "repair-failed", Critical;
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Escalation outranks reduction, and every kind has a distinct name.
    #[test]
    fn severities_and_names() {
        assert!(FindingKind::SaRoleEscalated.severity() > FindingKind::SaRoleReduced.severity());
        assert_eq!(FindingKind::ConvertedByGrafana.severity(), Severity::Info);
        let mut names: Vec<&str> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FindingKind::ALL.len());
    }
}
