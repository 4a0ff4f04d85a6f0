//! Renews the leases of every job this worker holds in one script call per beat, and
//! tells handlers to stop when their lease is lost or a cancel was recorded for them
//! (the backstop for a cancel message this worker missed).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::inflight::StopReason;
use super::Shared;
use crate::error::Result;
use crate::metrics as m;
use crate::scripts;

/// The heartbeat loop.
pub(crate) struct Heartbeat {
    shared: Arc<Shared>,
}

impl Heartbeat {
    pub fn new(shared: Arc<Shared>) -> Heartbeat {
        Heartbeat { shared }
    }

    /// Beats every `heartbeat` interval until `stop` fires.
    pub async fn run(self, stop: CancellationToken) {
        let mut every = tokio::time::interval(self.shared.opts.heartbeat);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(queue = self.shared.keys.queue(), error = %e, "heartbeat failed; leases not renewed this beat");
                metrics::counter!(m::REDIS_ERRORS, "queue" => self.shared.keys.queue().to_string(), "op" => "renew").increment(1);
            }
        }
    }

    /// One beat: renew, then stop the handlers whose lease is lost or whose job was cancelled.
    pub async fn tick(&self) -> Result<()> {
        let s = &self.shared;
        let held = s.inflight.leases();
        let description = s.description(held.len());
        let ttl = s.opts.heartbeat * 3;
        let reply = self
            .shared
            .conn
            .run(async |c| {
                scripts::renew(c, &s.keys, &s.id, s.opts.lease, ttl, &description, &held).await
            })
            .await?;
        let renewed: std::collections::HashMap<&str, u64> =
            held.iter().map(|(id, t)| (id.as_str(), *t)).collect();
        for id in reply.lost {
            // Only the attempt whose token was sent: the job may have been claimed
            // again here meanwhile, and that attempt's lease is fine.
            let Some(h) = s
                .inflight
                .get(&id)
                .filter(|h| Some(&h.token) == renewed.get(id.as_str()))
            else {
                continue;
            };
            // A handler that already returned has its outcome with the acker, whose
            // write finds out (and counts) whether the lease was lost.
            if h.running.load(std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(queue = s.keys.queue(), job_id = %id, "lease lost; stopping its handler");
                s.metrics().lock_lost.increment(1);
                h.stop(StopReason::LeaseLost);
                s.inflight.remove(&id, h.token);
            }
        }
        for id in reply.cancel_requested {
            if let Some(h) = s.inflight.get(&id) {
                if h.stop(StopReason::Cancelled) {
                    tracing::info!(queue = s.keys.queue(), job_id = %id, "cancel found by heartbeat");
                }
            }
        }
        Ok(())
    }
}
