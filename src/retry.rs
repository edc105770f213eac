//! Retries with capped exponential backoff and jitter.
//!
//! This is the only module that uses the `backoff` crate, so that moving
//! to its successor is a one-file change.

use std::future::Future;
use std::time::Duration;

use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;

/// How hard to retry one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Total time one call may spend retrying.
    pub budget: Duration,
    /// First wait.
    pub initial_interval: Duration,
    /// Longest single wait (a `Retry-After` hint may exceed it).
    pub max_interval: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 6,
            budget: Duration::from_secs(120),
            initial_interval: Duration::from_millis(200),
            max_interval: Duration::from_secs(10),
        }
    }
}

/// The outcome of one attempt, as the retry loop sees it.
pub enum Attempt<T, E> {
    /// Done, successfully or not; do not try again.
    Final(Result<T, E>),
    /// Failed in a way worth retrying, after at least `after` if given.
    Retry(E, Option<Duration>),
}

/// Runs `attempt` until it is final or the policy is spent.
///
/// `attempt` receives the attempt number, starting at 0. When the policy
/// is spent, the last error is returned.
pub async fn run<T, E, F, Fut>(policy: &RetryPolicy, mut attempt: F) -> Result<T, E>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let mut schedule = schedule(policy);
    let mut number = 0;
    loop {
        let (error, hint) = match attempt(number).await {
            Attempt::Final(result) => return result,
            Attempt::Retry(error, hint) => (error, hint),
        };
        if number >= policy.max_retries {
            return Err(error);
        }
        let Some(wait) = next_wait(&mut schedule, hint, policy) else {
            return Err(error);
        };
        tokio::time::sleep(wait).await;
        number += 1;
    }
}

fn schedule(policy: &RetryPolicy) -> ExponentialBackoff {
    ExponentialBackoff {
        initial_interval: policy.initial_interval,
        current_interval: policy.initial_interval,
        max_interval: policy.max_interval,
        max_elapsed_time: Some(policy.budget),
        ..ExponentialBackoff::default()
    }
}

// A server's Retry-After wins over the schedule, but never over the budget:
// a hint longer than what is left ends the retries.
fn next_wait(
    schedule: &mut ExponentialBackoff,
    hint: Option<Duration>,
    policy: &RetryPolicy,
) -> Option<Duration> {
    let jittered = schedule.next_backoff()?;
    let Some(hint) = hint else {
        return Some(jittered);
    };
    let elapsed = schedule.get_elapsed_time();
    (elapsed + hint <= policy.budget).then_some(hint.max(jittered.min(policy.initial_interval)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            budget: Duration::from_secs(60),
            initial_interval: Duration::from_millis(1),
            max_interval: Duration::from_millis(4),
        }
    }

    // A retryable failure is tried max_retries more times, then returned.
    #[tokio::test]
    async fn stops_after_max_retries() {
        let calls = Cell::new(0);
        let result: Result<(), &str> = run(&quick(), |_| {
            calls.set(calls.get() + 1);
            async { Attempt::Retry("busy", None) }
        })
        .await;
        assert_eq!(result, Err("busy"));
        assert_eq!(calls.get(), 4);
    }

    // A final error is returned at once, without retrying.
    #[tokio::test]
    async fn final_error_is_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), &str> = run(&quick(), |_| {
            calls.set(calls.get() + 1);
            async { Attempt::Final(Err("forbidden")) }
        })
        .await;
        assert_eq!((result, calls.get()), (Err("forbidden"), 1));
    }

    // A Retry-After hint is honoured: the second attempt comes after it.
    #[tokio::test(start_paused = true)]
    async fn honours_retry_after() {
        let start = tokio::time::Instant::now();
        let result: Result<u32, &str> = run(&quick(), |n| async move {
            if n == 0 {
                Attempt::Retry("slow down", Some(Duration::from_secs(30)))
            } else {
                Attempt::Final(Ok(n))
            }
        })
        .await;
        assert_eq!(result, Ok(1));
        assert!(
            start.elapsed() >= Duration::from_secs(30),
            "{:?}",
            start.elapsed()
        );
    }

    // A Retry-After longer than the budget ends the retries at once.
    #[tokio::test(start_paused = true)]
    async fn hint_beyond_budget_gives_up() {
        let policy = RetryPolicy {
            budget: Duration::from_secs(5),
            ..quick()
        };
        let result: Result<(), &str> = run(&policy, |_| async {
            Attempt::Retry("slow", Some(Duration::from_secs(60)))
        })
        .await;
        assert_eq!(result, Err("slow"));
    }
}
