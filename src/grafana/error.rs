//! Errors of the Grafana client and their classification.

use std::time::Duration;

/// What a failed Grafana call means for the caller.
///
/// Classified by Grafana's `messageId` first and the HTTP status second,
/// since status codes drifted between versions (409 became 400 in 10.0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The credential keyshift uses was rejected: stop the run, never retry.
    CredentialRejected,
    /// The caller lacks a permission for this one operation.
    Forbidden,
    /// The object or route does not exist.
    NotFound,
    /// A service account with that name or login exists.
    NameTaken,
    /// A key or token with that name exists in the org.
    TokenNameTaken,
    /// The role is not valid on this server (e.g. `None` before 10.2).
    InvalidRole,
    /// The token lifetime is over a server limit.
    LifetimeLimit,
    /// The service account holds as many tokens as the server allows
    /// (Amazon Managed Grafana and similar; OSS has no such limit).
    TokenLimit,
    /// The route was removed (410), e.g. key creation on 11.3+.
    Gone,
    /// 429; wait at least this long before the next try.
    RateLimited(Option<Duration>),
    /// 502, 503 or 504: worth retrying.
    Unavailable,
    /// 500: the change may or may not have been made.
    ServerError,
    /// Any other 4xx.
    BadRequest,
    /// Any other status.
    Other,
}

/// An error talking to Grafana.
#[derive(Debug, thiserror::Error)]
pub enum GrafanaError {
    /// Grafana answered with an error status.
    #[error("{method} {route} in org {org}: HTTP {status}: {message}")]
    Status {
        /// HTTP method.
        method: &'static str,
        /// Route template, e.g. `/api/serviceaccounts/:id`.
        route: &'static str,
        /// Org in context (0 for server-wide calls).
        org: i64,
        /// HTTP status.
        status: u16,
        /// Grafana's `messageId`, when it sent one.
        message_id: Option<String>,
        /// Grafana's message, or the start of a non-JSON body.
        message: String,
        /// What the error means.
        kind: ErrorKind,
    },
    /// No answer: connection refused or reset, or a timeout.
    #[error("{method} {route} in org {org}: no answer from grafana")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Route template.
        route: &'static str,
        /// Org in context.
        org: i64,
        /// The transport error (it never contains credentials).
        #[source]
        source: reqwest::Error,
    },
    /// Grafana answered 2xx with a body keyshift cannot read.
    #[error("{method} {route} in org {org}: unexpected response body")]
    Decode {
        /// HTTP method.
        method: &'static str,
        /// Route template.
        route: &'static str,
        /// Org in context.
        org: i64,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// The client could not be built from its options.
    #[error("cannot build the http client: {reason}")]
    Setup {
        /// What is wrong.
        reason: String,
    },
    /// The server runs a Grafana version keyshift does not support.
    #[error("grafana {version} is not supported: keyshift needs 9.1 or newer")]
    Unsupported {
        /// The version the server reported.
        version: String,
    },
    /// A check of Grafana's state after a call found something unexpected.
    #[error("org {org}: {what}")]
    Unexpected {
        /// Org in context.
        org: i64,
        /// What was found.
        what: String,
    },
}

impl GrafanaError {
    /// The classification, when Grafana answered with a status.
    pub fn kind(&self) -> Option<&ErrorKind> {
        match self {
            GrafanaError::Status { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// True for the errors PRODUCT.md §5 allows retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            GrafanaError::Transport { .. } => true,
            GrafanaError::Status { kind, .. } => {
                matches!(kind, ErrorKind::RateLimited(_) | ErrorKind::Unavailable)
            }
            _ => false,
        }
    }

    /// True when the change the call asked for may have been made anyway.
    pub fn may_have_applied(&self) -> bool {
        match self {
            GrafanaError::Transport { .. } => true,
            GrafanaError::Status { kind, .. } => {
                matches!(kind, ErrorKind::ServerError | ErrorKind::Unavailable)
            }
            _ => false,
        }
    }

    /// True when keyshift's own credential was rejected: the run must stop.
    pub fn is_credential_rejected(&self) -> bool {
        self.kind() == Some(&ErrorKind::CredentialRejected)
    }

    /// The HTTP status, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            GrafanaError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's `Retry-After` hint, for a 429.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind() {
            Some(ErrorKind::RateLimited(after)) => *after,
            _ => None,
        }
    }
}

/// Classifies an error answer.
pub fn classify(
    status: u16,
    message_id: Option<&str>,
    message: &str,
    retry_after: Option<Duration>,
) -> ErrorKind {
    if let Some(kind) = message_id.and_then(classify_message_id) {
        return kind;
    }
    classify_status(status, message, retry_after)
}

fn classify_message_id(id: &str) -> Option<ErrorKind> {
    let kind = match id {
        "serviceaccounts.ErrAlreadyExists" => ErrorKind::NameTaken,
        "serviceaccounts.ErrTokenAlreadyExists" => ErrorKind::TokenNameTaken,
        "serviceaccounts.ErrRoleForbidden" => ErrorKind::Forbidden,
        "serviceaccounts.ErrInvalidRoleSpecified" => ErrorKind::InvalidRole,
        "serviceaccounts.ErrTokenLimitReached" => ErrorKind::TokenLimit,
        "serviceaccounts.ErrNotFound" | "serviceaccounts.ErrTokenNotFound" => ErrorKind::NotFound,
        // 10.x answers a wrong password with 400; a lockout looks the same.
        "password-auth.failed" | "login-attempt.blocked" => ErrorKind::CredentialRejected,
        id if id.starts_with("api-key.") || id.starts_with("identity.") => {
            ErrorKind::CredentialRejected
        }
        _ => return None,
    };
    Some(kind)
}

fn classify_status(status: u16, message: &str, retry_after: Option<Duration>) -> ErrorKind {
    let lower = message.to_ascii_lowercase();
    match status {
        401 => ErrorKind::CredentialRejected,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::TokenNameTaken,
        410 => ErrorKind::Gone,
        429 => ErrorKind::RateLimited(retry_after),
        400 if lower.contains("expiration") => ErrorKind::LifetimeLimit,
        400 if lower.contains("invalid role") => ErrorKind::InvalidRole,
        400 if lower.contains("token limit") => ErrorKind::TokenLimit,
        // 9.x says only this when a login is taken.
        400 if lower.contains("failed to create service account") => ErrorKind::NameTaken,
        400..=499 => ErrorKind::BadRequest,
        500 => ErrorKind::ServerError,
        502..=504 => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // messageId wins over the status; versions without one fall back to it.
    #[test]
    fn classifies_by_message_id_then_status() {
        let cases: &[(u16, Option<&str>, &str, ErrorKind)] = &[
            (
                400,
                Some("serviceaccounts.ErrTokenLimitReached"),
                "",
                ErrorKind::TokenLimit,
            ),
            (
                400,
                Some("serviceaccounts.ErrTokenAlreadyExists"),
                "",
                ErrorKind::TokenNameTaken,
            ),
            (
                409,
                None,
                "UNIQUE constraint failed",
                ErrorKind::TokenNameTaken,
            ),
            (
                400,
                Some("serviceaccounts.ErrAlreadyExists"),
                "",
                ErrorKind::NameTaken,
            ),
            (
                400,
                None,
                "Failed to create service account",
                ErrorKind::NameTaken,
            ),
            (
                400,
                Some("password-auth.failed"),
                "Invalid username",
                ErrorKind::CredentialRejected,
            ),
            (401, None, "invalid API key", ErrorKind::CredentialRejected),
            (
                403,
                Some("serviceaccounts.ErrRoleForbidden"),
                "",
                ErrorKind::Forbidden,
            ),
            (
                400,
                Some("serviceaccounts.ErrInvalidRoleSpecified"),
                "",
                ErrorKind::InvalidRole,
            ),
            (
                400,
                None,
                "The expiration date input exceeds the limit for service account access tokens",
                ErrorKind::LifetimeLimit,
            ),
            (
                400,
                None,
                "Number of seconds before expiration should be set",
                ErrorKind::LifetimeLimit,
            ),
            (
                500,
                None,
                "Service account deletion error",
                ErrorKind::ServerError,
            ),
            (503, None, "", ErrorKind::Unavailable),
            (410, None, "this endpoint has been removed", ErrorKind::Gone),
        ];
        for (status, id, message, want) in cases {
            assert_eq!(
                &classify(*status, *id, message, None),
                want,
                "{status} {id:?} {message}"
            );
        }
    }

    // Only 429, 502-504 and transport errors are retryable.
    #[test]
    fn retryable_statuses() {
        let error = |status| GrafanaError::Status {
            method: "GET",
            route: "/api/x",
            org: 1,
            status,
            message_id: None,
            message: String::new(),
            kind: classify(status, None, "", None),
        };
        let retryable: Vec<u16> = [400, 401, 403, 404, 409, 429, 500, 502, 503, 504]
            .into_iter()
            .filter(|s| error(*s).is_retryable())
            .collect();
        assert_eq!(retryable, vec![429, 502, 503, 504]);
    }
}
