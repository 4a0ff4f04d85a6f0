//! A worker's settings and their defaults.

use std::time::Duration;

/// How a worker runs. Build with [`super::WorkerBuilder`].
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim holds a job without renewal. Default 30 s.
    pub lease: Duration,
    /// How often leases are renewed. Default [`WorkerOptions::AUTO_HEARTBEAT`]: a third
    /// of the lease, whatever the lease. One given explicitly must be shorter than the
    /// lease, or the worker is refused (see [`WorkerOptions::resolved`]).
    pub heartbeat: Duration,
    /// How often this worker looks for expired leases. Default 5 s.
    pub stalled_interval: Duration,
    /// Recoveries a job may have before it fails. Default 1.
    pub max_stalled: u32,
    /// Time in-flight jobs get to finish after a shutdown signal. Default 30 s.
    pub shutdown_timeout: Duration,
    /// Time a told-to-stop handler gets before it is aborted. Default 5 s.
    pub abort_grace: Duration,
    /// Default per-attempt timeout for jobs that set none. Default none.
    pub timeout: Option<Duration>,
    /// Refuse a Redis without noeviction and AOF (default true).
    pub check_redis: bool,
    /// Longest an idle worker blocks before looking again. Default 5 s. New jobs,
    /// retries and recoveries wake it at once; the next delayed job's due time bounds it.
    pub idle_block: Duration,
}

impl WorkerOptions {
    /// The heartbeat value that means "not given: a third of the lease" (the default).
    pub const AUTO_HEARTBEAT: Duration = Duration::MAX;

    /// The least lease, heartbeat, stalled interval and idle block.
    pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

    /// True when the heartbeat was left to follow the lease.
    pub fn heartbeat_is_auto(&self) -> bool {
        self.heartbeat == Self::AUTO_HEARTBEAT
    }

    /// The options as a worker runs them, or an error naming the setting that was given
    /// and cannot work:
    ///
    /// - heartbeat not given ([`Self::AUTO_HEARTBEAT`]): a third of the lease, so a
    ///   lease always survives two missed renewals; a lease too short for that (under
    ///   3 × [`Self::MIN_INTERVAL`]) is refused as a lease, not as a heartbeat the
    ///   caller never set;
    /// - heartbeat given: it must be shorter than the lease, else refused (never
    ///   silently replaced);
    /// - a per-attempt `timeout` must be at least 1 ms (it is kept in whole ms).
    pub fn resolved(mut self) -> crate::Result<WorkerOptions> {
        let min = Self::MIN_INTERVAL;
        if self.lease < min {
            return Err(crate::Error::Invalid(format!(
                "worker lease must be at least {min:?}, got {:?}",
                self.lease
            )));
        }
        if self.heartbeat_is_auto() {
            if self.lease < min * 3 {
                return Err(crate::Error::Invalid(format!(
                    "worker lease ({:?}) is too short: its heartbeat, a third of it, would be \
                     under {min:?}; give a lease of at least {:?}",
                    self.lease,
                    min * 3
                )));
            }
            self.heartbeat = self.lease / 3;
        } else if self.heartbeat >= self.lease {
            return Err(crate::Error::Invalid(format!(
                "worker heartbeat ({:?}) must be shorter than the lease ({:?}); \
                 leave it unset to renew at a third of the lease",
                self.heartbeat, self.lease
            )));
        }
        self.validate()?;
        Ok(self)
    }

    /// Refuses settings that cannot work, naming the setting. Expects a resolved
    /// heartbeat (see [`WorkerOptions::resolved`]).
    pub fn validate(&self) -> crate::Result<()> {
        let min = Self::MIN_INTERVAL;
        let checks: [(&str, Duration); 4] = [
            ("lease", self.lease),
            ("heartbeat", self.heartbeat),
            ("stalled_interval", self.stalled_interval),
            ("idle_block", self.idle_block),
        ];
        for (name, d) in checks {
            if d < min {
                return Err(crate::Error::Invalid(format!(
                    "worker {name} must be at least {min:?}, got {d:?}"
                )));
            }
        }
        if self.heartbeat >= self.lease {
            return Err(crate::Error::Invalid(format!(
                "worker heartbeat ({:?}) must be shorter than the lease ({:?})",
                self.heartbeat, self.lease
            )));
        }
        if let Some(t) = self.timeout.filter(|t| t.as_millis() == 0) {
            return Err(crate::Error::Invalid(format!(
                "worker timeout must be at least 1ms (it is kept in whole milliseconds), got {t:?}"
            )));
        }
        Ok(())
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 10,
            lease: Duration::from_secs(30),
            heartbeat: Self::AUTO_HEARTBEAT,
            stalled_interval: Duration::from_secs(5),
            max_stalled: 1,
            shutdown_timeout: Duration::from_secs(30),
            abort_grace: Duration::from_secs(5),
            timeout: None,
            check_redis: true,
            idle_block: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(lease_ms: u64, heartbeat_ms: Option<u64>) -> crate::Result<WorkerOptions> {
        let mut o = WorkerOptions {
            lease: Duration::from_millis(lease_ms),
            ..WorkerOptions::default()
        };
        if let Some(h) = heartbeat_ms {
            o.heartbeat = Duration::from_millis(h);
        }
        o.resolved()
    }

    #[test]
    fn heartbeat_follows_the_lease_unless_given() {
        assert_eq!(
            with(12_000, None).unwrap().heartbeat,
            Duration::from_secs(4)
        );
        assert_eq!(with(30, None).unwrap().heartbeat, Duration::from_millis(10));
        assert_eq!(
            with(12_000, Some(1_000)).unwrap().heartbeat,
            Duration::from_secs(1)
        );
        let e = with(1_000, Some(1_000)).unwrap_err().to_string();
        assert!(
            e.contains("heartbeat (1s) must be shorter than the lease (1s)"),
            "{e}"
        );
        let e = with(10, None).unwrap_err().to_string();
        assert!(e.contains("worker lease (10ms) is too short"), "{e}");
        assert!(!e.contains("heartbeat must"), "{e}");
        let e = with(5, None).unwrap_err().to_string();
        assert!(e.contains("worker lease must be at least 10ms"), "{e}");
    }

    #[test]
    fn timeouts_under_a_millisecond_are_refused() {
        let o = WorkerOptions {
            timeout: Some(Duration::from_nanos(1)),
            ..WorkerOptions::default()
        };
        let e = o.resolved().unwrap_err().to_string();
        assert!(e.contains("at least 1ms"), "{e}");
    }
}
