//! Wall time for cron, derived so that a paused tokio clock drives it.
//!
//! Cron needs wall time; sleeping needs tokio's monotonic clock. In
//! production [`Clock::system`] reads the system clock and the daemon
//! re-reads it after every (capped) sleep, so a clock step is noticed. In
//! tests [`Clock::starting_at`] returns `start_wall + (tokio_now -
//! start_instant)`, so `tokio::time::pause` and `advance` move wall time
//! too.

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// A source of wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    offset: Option<(DateTime<Utc>, Instant)>,
}

impl Clock {
    /// The system's real-time clock.
    pub fn system() -> Self {
        Clock { offset: None }
    }

    /// A clock reading `wall` now and following tokio's clock after.
    pub fn starting_at(wall: DateTime<Utc>) -> Self {
        Clock {
            offset: Some((wall, Instant::now())),
        }
    }

    /// Returns the current wall time.
    pub fn now(&self) -> DateTime<Utc> {
        match self.offset {
            None => Utc::now(),
            Some((wall, instant)) => {
                let elapsed = Instant::now().saturating_duration_since(instant);
                // A chrono overflow needs ~292 years of uptime.
                wall + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    // The derived clock moves exactly as far as the paused tokio clock.
    #[tokio::test(start_paused = true)]
    async fn derived_clock_follows_tokio_time() {
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let clock = Clock::starting_at(start);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), start + chrono::Duration::seconds(90));
    }
}
