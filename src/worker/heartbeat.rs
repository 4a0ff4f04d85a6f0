//! Renews the leases of every job this worker holds in one script call per beat, and
//! tells handlers to stop when their lease is lost or a cancel was recorded for them
//! (the backstop for a cancel message this worker missed).
//!
//! Self-fencing: a worker cut off from Redis cannot hear that its leases lapsed, and
//! another worker may already run the job. So every held job keeps the earliest its
//! lease can end (when the last successful claim or renewal was sent, plus the lease);
//! once that passes, the heartbeat stops the handler itself (an exec child gets
//! SIGTERM), counts it as lock lost, and writes nothing: the job is recovered by a
//! sweeper as any stalled job. A renewal is bounded by the beat interval, so a hung
//! Redis cannot hold the check up.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::inflight::{InFlight, StopReason};
use crate::conn::SharedConn;
use crate::error::Result;
use crate::keys::Keys;
use crate::metrics::{self as m, QueueMetrics};
use crate::scripts;

/// What the heartbeat of one queue uses, and nothing else.
pub(crate) struct HeartbeatParams {
    pub conn: SharedConn,
    pub keys: Keys,
    /// Whose leases are renewed, and under which name the worker is listed.
    pub worker_id: String,
    /// Each renewal extends a lease by this much.
    pub lease: Duration,
    /// Time between beats (`heartbeat`); the worker's entry lives three beats.
    pub interval: Duration,
    /// The jobs whose leases are renewed and whose handlers are fenced.
    pub inflight: InFlight,
    /// For `lock_lost`.
    pub metrics: QueueMetrics,
    /// What the worker says about itself in `baton workers`.
    pub about: About,
}

/// A worker's self-description for `baton workers`, renewed with every beat.
#[derive(Debug, Clone)]
pub(crate) struct About {
    pub concurrency: usize,
    pub started_ms: u128,
}

impl About {
    /// The description, with `held` jobs in flight.
    fn describe(&self, held: usize) -> String {
        serde_json::json!({
            "host": super::builder::hostname(),
            "pid": std::process::id(),
            "concurrency": self.concurrency,
            "in_flight": held,
            "started_ms": self.started_ms,
            // Takes compact jobs (lua/compact.lua's upgrade gate looks for this).
            "compact": 1,
            // When this description was written: the dashboard's "last heartbeat".
            "beat_ms": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or(0),
        })
        .to_string()
    }
}

/// The heartbeat loop.
pub(crate) struct Heartbeat {
    p: HeartbeatParams,
}

impl Heartbeat {
    pub fn new(p: HeartbeatParams) -> Heartbeat {
        Heartbeat { p }
    }

    /// Beats every `heartbeat` interval until `stop` fires; between beats, and while a
    /// renewal is on its way, fences each handler the moment its lease may end.
    pub async fn run(self, stop: CancellationToken) {
        let beat = self.p.interval;
        let mut every = tokio::time::interval(beat);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let ticked = self.fencing(every.tick());
            tokio::select! {
                _ = ticked => {}
                _ = stop.cancelled() => return,
            }
            let renewal = self.fencing(tokio::time::timeout(beat, self.tick()));
            let r = tokio::select! {
                r = renewal => r,
                _ = stop.cancelled() => return,
            };
            let r = r.unwrap_or_else(|_| {
                Err(crate::Error::Unavailable {
                    timeout: beat,
                    detail: "lease renewal took longer than a heartbeat interval".into(),
                })
            });
            if let Err(e) = r {
                tracing::warn!(queue = self.p.keys.queue(), error = %e, "heartbeat failed; leases not renewed this beat");
                metrics::counter!(m::REDIS_ERRORS, "queue" => self.p.keys.queue().to_string(), "op" => "renew").increment(1);
            }
        }
    }

    /// Awaits `f`, fencing handlers whenever one's lease may end meanwhile.
    async fn fencing<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        let mut f = std::pin::pin!(f);
        loop {
            let next = self.next_fence();
            tokio::select! {
                v = &mut f => return v,
                _ = tokio::time::sleep_until(next) => {
                    self.fence(tokio::time::Instant::now());
                }
            }
        }
    }

    /// When the next handler must be fenced: its lease's earliest end, less
    /// [`Heartbeat::margin`]. Far off when none is left to fence. Handlers already told
    /// to stop (cancel, timeout, shutdown) are on their way out within the abort grace
    /// and are not waited on here: a past deadline that fencing cannot act on would
    /// wake this loop again at once, and keep it spinning.
    fn next_fence(&self) -> tokio::time::Instant {
        let margin = self.margin();
        self.p
            .inflight
            .running_handles()
            .iter()
            .filter(|(_, h)| h.reason().is_none())
            .map(|(_, h)| h.lease_until() - margin)
            .min()
            .unwrap_or_else(|| tokio::time::Instant::now() + self.p.interval)
    }

    /// How early, before the lease's earliest end, a handler is fenced (timer slop):
    /// a tenth of the lease, at most 250 ms.
    fn margin(&self) -> Duration {
        (self.p.lease / 10).min(Duration::from_millis(250))
    }

    /// Stops every running handler whose lease may have ended (see the module docs).
    /// Returns how many were stopped.
    pub fn fence(&self, now: tokio::time::Instant) -> usize {
        let s = &self.p;
        let margin = self.margin();
        let mut stopped = 0;
        for (id, h) in s.inflight.running_handles() {
            if h.lease_until() - margin <= now && h.stop(StopReason::LeaseLost) {
                tracing::warn!(queue = s.keys.queue(), job_id = %id,
                    "lease lost: no renewal reached redis within the lease; stopping the handler (self-fencing)");
                s.metrics.lock_lost.increment(1);
                s.inflight.remove(&id, h.token);
                stopped += 1;
            }
        }
        stopped
    }

    /// One beat: renew, then stop the handlers whose lease is lost or whose job was cancelled.
    pub async fn tick(&self) -> Result<()> {
        let s = &self.p;
        let held = s.inflight.leases();
        let description = s.about.describe(held.len());
        let ttl = s.interval * 3;
        let sent = tokio::time::Instant::now();
        let reply = s
            .conn
            .run(async |c| {
                scripts::renew(c, &s.keys, &s.worker_id, s.lease, ttl, &description, &held).await
            })
            .await?;
        let renewed: std::collections::HashMap<&str, u64> =
            held.iter().map(|(id, t)| (id.as_str(), *t)).collect();
        let lost: std::collections::HashSet<&str> = reply.lost.iter().map(String::as_str).collect();
        for (id, token) in &held {
            if lost.contains(id.as_str()) {
                continue;
            }
            if let Some(h) = s.inflight.get(id).filter(|h| h.token == *token) {
                h.renewed(sent, s.lease);
            }
        }
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
                s.metrics.lock_lost.increment(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A heartbeat built alone, from its own params: no worker, and no Redis (the
    /// connection is lazy and fencing never uses it).
    fn alone(inflight: InFlight) -> Heartbeat {
        let connector = crate::conn::Connector::new("redis://127.0.0.1:1").expect("a URL");
        Heartbeat::new(HeartbeatParams {
            conn: SharedConn::new(connector, Duration::from_secs(1)),
            keys: Keys::new("q"),
            worker_id: "w".into(),
            lease: Duration::from_secs(30),
            interval: Duration::from_secs(10),
            inflight,
            metrics: QueueMetrics::new("q", "w"),
            about: About {
                concurrency: 1,
                started_ms: 0,
            },
        })
    }

    #[tokio::test]
    async fn fences_only_the_handlers_whose_lease_may_have_ended() {
        let inflight = InFlight::default();
        let now = tokio::time::Instant::now();
        let (late, _) = inflight.insert("late", 1, now);
        let (fine, _) = inflight.insert("fine", 2, now + Duration::from_secs(30));
        let heartbeat = alone(inflight.clone());
        assert_eq!(heartbeat.fence(now), 1);
        assert_eq!(late.reason(), Some(StopReason::LeaseLost));
        assert_eq!(fine.reason(), None);
        assert!(inflight.get("late").is_none(), "a fenced job is let go");
        assert!(inflight.get("fine").is_some());
    }
}
