//! Reconnect backoff for a worker's loops: exponential from 100 ms to 20 s with jitter,
//! reset by the first success. Workers never give up on Redis.

use std::time::Duration;

/// Exponential backoff with "equal jitter".
#[derive(Debug, Clone)]
pub struct ReconnectBackoff {
    failures: u32,
    min: Duration,
    max: Duration,
}

impl Default for ReconnectBackoff {
    fn default() -> Self {
        ReconnectBackoff {
            failures: 0,
            min: Duration::from_millis(100),
            max: Duration::from_secs(20),
        }
    }
}

impl ReconnectBackoff {
    /// The delay before the next try after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(20);
        self.failures += 1;
        let full = self.min.saturating_mul(1u32 << exp).min(self.max);
        full / 2 + full.mul_f64(rand::random::<f64>() / 2.0)
    }
    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }
    /// A success: start again from the minimum.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = ReconnectBackoff::default();
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
        for _ in 0..30 {
            assert!(b.next_delay() <= Duration::from_secs(20));
        }
        assert!(b.next_delay() >= Duration::from_secs(10));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
