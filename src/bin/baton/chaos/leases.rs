//! The live invariant of a chaos run: no job stays active past its lease. Sampled while
//! no fault is in force (and a lease plus a sweep has passed since the last one healed,
//! so every worker had time to renew or the sweeper to recover).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::Result;

use super::server::Probe;

/// When the last fault healed; `None` while one is in force.
pub type Quiet = Arc<Mutex<Option<Instant>>>;

/// Counts of the sampler.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct LeaseSamples {
    /// Samples taken.
    pub samples: u64,
    /// Active jobs seen whose lease had ended longer ago than a sweep plus a second.
    pub expired: u64,
}

/// One sample: active jobs whose lease deadline is older than `slack` on Redis's clock.
pub async fn expired(redis: &Probe, queues: &[String], slack: Duration) -> Result<u64> {
    let mut c = redis.conn().await?;
    let mut n = 0;
    for queue in queues {
        let active = baton::keys::Keys::new(queue).active();
        // The clock of the node that holds the queue (TIME routed by the queue's key
        // would need a key; all nodes share this machine's clock).
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut c).await?;
        let cutoff = (secs * 1000 + micros / 1000).saturating_sub(slack.as_millis() as u64);
        let k: u64 = redis::cmd("ZCOUNT")
            .arg(&active)
            .arg("-inf")
            .arg(format!("({cutoff}"))
            .query_async(&mut c)
            .await?;
        n += k;
    }
    Ok(n)
}

/// Whether the run is quiet long enough (`settle` since the last heal) to sample.
pub fn quiet_for(q: &Quiet, settle: Duration) -> bool {
    matches!(*q.lock().unwrap(), Some(t) if t.elapsed() >= settle)
}
