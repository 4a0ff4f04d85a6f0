//! Finds jobs whose lease expired (their worker died, hung, or lost Redis for longer
//! than the lease) and puts them first in line again, or fails them after
//! `max_stalled` recoveries. Every worker runs one; the script makes concurrent sweeps safe.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::conn::SharedConn;
use crate::error::Result;
use crate::keys::Keys;
use crate::metrics::{self as m, QueueMetrics};
use crate::scripts::{self, Swept};

/// Most expired leases handled by one sweep call.
const MAX_PER_SWEEP: usize = 1000;

/// What the sweeper of one queue uses, and nothing else: it holds no jobs itself.
pub(crate) struct SweeperParams {
    pub conn: SharedConn,
    pub keys: Keys,
    /// Time between sweeps (`stalled_interval`).
    pub interval: Duration,
    /// Recoveries a job is allowed before it fails.
    pub max_stalled: u32,
    /// For `stalled`, `failed` and `cancelled`.
    pub metrics: QueueMetrics,
}

/// The sweeper loop.
pub(crate) struct Sweeper {
    p: SweeperParams,
}

impl Sweeper {
    pub fn new(p: SweeperParams) -> Sweeper {
        Sweeper { p }
    }

    /// Sweeps every `stalled_interval` until `stop` fires.
    pub async fn run(self, stop: CancellationToken) {
        let mut every = tokio::time::interval(self.p.interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.cancelled() => return,
            }
            loop {
                match self.tick().await {
                    Ok(n) if n >= MAX_PER_SWEEP => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(queue = self.p.keys.queue(), error = %e, "stalled-job sweep failed");
                        metrics::counter!(m::REDIS_ERRORS, "queue" => self.p.keys.queue().to_string(), "op" => "sweep").increment(1);
                        break;
                    }
                }
            }
        }
    }

    /// One sweep; returns how many expired leases it handled.
    pub async fn tick(&self) -> Result<usize> {
        let s = &self.p;
        let q = s.keys.queue().to_string();
        let swept = s
            .conn
            .run(async |c| scripts::sweep(c, &s.keys, s.max_stalled, MAX_PER_SWEEP).await)
            .await?;
        for (id, what) in &swept {
            tracing::warn!(queue = %q, job_id = %id, outcome = ?what, "recovered a job whose lease expired");
            s.metrics.stalled.increment(1);
            match what {
                Swept::Failed => s.metrics.failed.increment(1),
                Swept::Cancelled => s.metrics.cancelled.increment(1),
                Swept::Requeued => {}
            }
        }
        Ok(swept.len())
    }
}
