//! A wrapper that keeps secrets out of logs and debug output.

use std::fmt;

/// A secret value: a Grafana password or a token.
///
/// It has no `Display` impl and its `Debug` impl prints `Secret(***)`, so
/// it cannot reach a log line, an error message or a panic by accident.
/// Code that really needs the value calls [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// Returns the secret value; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Returns true when the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Debug output never contains the wrapped value.
    #[test]
    fn debug_is_redacted() {
        let secret = Secret::new("glsa_hunter2");
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(secret.expose(), "glsa_hunter2");
    }
}
