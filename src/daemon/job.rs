//! What the daemon hands a run and what the run hands back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A boxed, sendable future, as a job returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why a run started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// The schedule fired at this time.
    Scheduled(DateTime<Utc>),
    /// The daemon started after missing a run; carries the last run seen.
    CatchUp(Option<DateTime<Utc>>),
}

impl Trigger {
    /// Returns the short name recorded with a run.
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Scheduled(_) => "schedule",
            Trigger::CatchUp(_) => "catch-up",
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended; mirrors the ledger's run outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Finished with nothing outstanding.
    Done,
    /// Finished, but something needs attention (drift, conflicts).
    Attention,
    /// Did not finish.
    Failed,
    /// Stopped early because the daemon is shutting down.
    Interrupted,
}

impl Outcome {
    /// Returns the label used in metrics and status text.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Attention => "attention",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// The result of one run as the daemon records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobOutcome {
    /// How the run ended.
    pub outcome: Outcome,
    /// One line for `systemctl status` (e.g. "3 findings"); no secrets.
    pub summary: String,
}

impl JobOutcome {
    /// Builds an outcome with a summary line.
    pub fn new(outcome: Outcome, summary: impl Into<String>) -> Self {
        JobOutcome {
            outcome,
            summary: summary.into(),
        }
    }
}

/// Tells a running job that the daemon is shutting down.
///
/// A job checks it between Grafana calls and returns
/// [`Outcome::Interrupted`] once it is set, after the call in flight.
#[derive(Clone, Debug)]
pub struct StopToken {
    /// `None` for a token that is never set.
    rx: Option<watch::Receiver<bool>>,
}

impl StopToken {
    pub(super) fn new(rx: watch::Receiver<bool>) -> Self {
        StopToken { rx: Some(rx) }
    }

    /// Returns a token that is never set, for running a job by hand.
    pub fn never() -> Self {
        StopToken { rx: None }
    }

    /// Returns true once shutdown has been requested.
    pub fn is_stopping(&self) -> bool {
        self.rx.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Waits until shutdown is requested.
    pub async fn stopped(&mut self) {
        match &mut self.rx {
            // An Err means the daemon is gone, which is a stop as well.
            Some(rx) => drop(rx.wait_for(|&stop| stop).await),
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // A token sees the stop request, both polled and awaited.
    #[tokio::test]
    async fn token_sees_stop() {
        let (tx, rx) = watch::channel(false);
        let mut token = StopToken::new(rx);
        assert!(!token.is_stopping());
        tx.send_replace(true);
        let waited = tokio::time::timeout(Duration::from_secs(5), token.stopped()).await;
        assert!(waited.is_ok(), "stopped() did not return after the stop");
        assert!(token.is_stopping());
    }

    // A never-set token never reports a stop.
    #[tokio::test(start_paused = true)]
    async fn never_token_never_stops() {
        let mut token = StopToken::never();
        assert!(!token.is_stopping());
        let waited = tokio::time::timeout(Duration::from_secs(60), token.stopped()).await;
        assert!(waited.is_err());
    }
}
