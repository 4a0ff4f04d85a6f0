//! Retry backoff and retention: the two policies a job carries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serde_ms::ms;

/// How long to wait before the next attempt after a failed one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Backoff {
    /// The same delay every time.
    Fixed {
        /// The delay.
        #[serde(with = "ms")]
        delay: Duration,
    },
    /// `base * 2^(attempt-1)`, capped at `max`, with "full jitter" (a random point in
    /// the upper half), so that many jobs failing together do not retry together.
    Exponential {
        /// The first delay.
        #[serde(with = "ms")]
        base: Duration,
        /// The largest delay.
        #[serde(with = "ms")]
        max: Duration,
        /// Randomise the delay between half and all of it.
        jitter: bool,
    },
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
            jitter: true,
        }
    }
}

impl Backoff {
    /// The delay after failed attempt number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        match *self {
            Backoff::Fixed { delay } => delay,
            Backoff::Exponential { base, max, jitter } => {
                let exp = attempt.saturating_sub(1).min(30);
                let full = base.saturating_mul(1u32 << exp).min(max);
                if jitter && !full.is_zero() {
                    let half = full / 2;
                    half + full.mul_f64(rand::random::<f64>() * 0.5)
                } else {
                    full
                }
            }
        }
    }
}

/// How many finished jobs of one kind to keep.
///
/// Applied when a job finishes, with that job's policy, to the whole finished set of
/// its kind (as BullMQ does): a job with `last(10)` trims the completed set to 10,
/// whatever the policies of the jobs already in it. Give the jobs of one queue one
/// policy. `none()` is the exception: it deletes only the finishing job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Keep at most this many (None = no count limit).
    pub count: Option<u64>,
    /// Delete those older than this (None = no age limit).
    pub age: Option<Duration>,
}

impl Retention {
    /// Keep every finished job forever (only bounded by your own cleaning).
    pub const fn all() -> Self {
        Retention {
            count: None,
            age: None,
        }
    }
    /// Delete the job as soon as it finishes.
    pub const fn none() -> Self {
        Retention {
            count: Some(0),
            age: None,
        }
    }
    /// Keep the last `n`.
    pub const fn last(n: u64) -> Self {
        Retention {
            count: Some(n),
            age: None,
        }
    }
    /// Keep those younger than `age`.
    pub const fn max_age(age: Duration) -> Self {
        Retention {
            count: None,
            age: Some(age),
        }
    }
    /// The default for completed jobs: the last 1000, none older than a day.
    pub const fn default_completed() -> Self {
        Retention {
            count: Some(1000),
            age: Some(Duration::from_secs(24 * 3600)),
        }
    }
    /// The default for failed and cancelled jobs: the last 10 000, none older than a week.
    pub const fn default_failed() -> Self {
        Retention {
            count: Some(10_000),
            age: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
    /// (count, age ms) as the scripts take them: -1 = all, 0 = no age limit.
    pub(crate) fn script_args(&self) -> (i64, u64) {
        (
            self.count
                .map(|c| c.min(i64::MAX as u64) as i64)
                .unwrap_or(-1),
            self.age.map(|a| a.as_millis() as u64).unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_grows_and_caps() {
        let b = Backoff::Exponential {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: false,
        };
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(3), Duration::from_millis(400));
        assert_eq!(b.delay(10), Duration::from_secs(1));
        let j = Backoff::Exponential {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: true,
        };
        for _ in 0..100 {
            let d = j.delay(2);
            assert!(
                d >= Duration::from_millis(100) && d <= Duration::from_millis(200),
                "{d:?}"
            );
        }
    }
}
