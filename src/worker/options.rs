//! A worker's settings and their defaults.

use std::time::Duration;

/// How a worker runs. Build with [`super::WorkerBuilder`].
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim holds a job without renewal. Default 30 s.
    pub lease: Duration,
    /// How often leases are renewed. Default lease / 3.
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
    /// Refuses settings that cannot work, naming the setting.
    pub fn validate(&self) -> crate::Result<()> {
        let min = Duration::from_millis(10);
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
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return Err(crate::Error::Invalid(
                "worker timeout must be more than zero".into(),
            ));
        }
        Ok(())
    }
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 10,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(10),
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
