//! The scheduler loop of one queue: adds each job scheduler's tick shortly before it is
//! due (see [`crate::schedule`]). Every worker runs one per queue; the fire script's
//! compare-and-set makes racing loops add each tick's job once, so any number of
//! workers (and none, for a while) is fine.
//!
//! One pass ([`SchedulerLoop::tick`]) reads the schedulers due within
//! [`LOOKAHEAD`](crate::schedule::LOOKAHEAD) with Redis's clock (one read-only script),
//! fires each, and says when to look next: at the earliest coming tick less the
//! look-ahead, never later than [`POLL`](crate::schedule::POLL); an upsert wakes it at
//! once (through the cancel listener, see `canceller`). A scheduler whose last tick's job still waits for its time is not fired
//! again until that tick has come: one waiting job per scheduler, which an upsert or a
//! remove can take back.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::backoff::ReconnectBackoff;
use crate::conn::SharedConn;
use crate::error::Result;
use crate::keys::Keys;
use crate::metrics as m;
use crate::schedule::{self, Fired, Stored, Tick};
use crate::scripts::{self, Read};

/// Most schedulers one pass fires; a pass that found this many looks again at once.
const MAX_PER_PASS: usize = 100;

/// After losing a race for a tick, look again this soon (the winner stored the next).
const AFTER_STALE: Duration = Duration::from_millis(20);

/// What the scheduler loop of one queue uses.
pub(crate) struct SchedulerParams {
    pub conn: SharedConn,
    pub keys: Keys,
    /// Fire a tick once it is due within this.
    pub lookahead: Duration,
    /// Longest sleep between passes.
    pub poll: Duration,
    /// Told (by the cancel listener) when a scheduler of the queue was set: look again
    /// at once.
    pub changed: std::sync::Arc<tokio::sync::Notify>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Pass {
    /// Ticks whose job this pass added.
    pub added: usize,
    /// Ticks fired by someone else first (or whose scheduler changed meanwhile).
    pub stale: usize,
    /// How long to sleep before the next pass.
    pub sleep: Duration,
}

/// The scheduler loop.
pub(crate) struct SchedulerLoop {
    p: SchedulerParams,
    /// Schedulers whose stored record does not decode, logged once each.
    unreadable: Mutex<HashSet<String>>,
}

impl SchedulerLoop {
    pub fn new(p: SchedulerParams) -> SchedulerLoop {
        SchedulerLoop {
            p,
            unreadable: Mutex::default(),
        }
    }

    /// Passes until `stop` fires; a failed pass backs off (Redis away) and is counted
    /// as `baton_redis_errors_total{op="schedule"}`.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = ReconnectBackoff::default();
        loop {
            let sleep = match self.tick().await {
                Ok(pass) => {
                    backoff.reset();
                    pass.sleep
                }
                Err(e) => {
                    let d = backoff.next_delay();
                    tracing::warn!(queue = self.p.keys.queue(), error = %e, retry_in = ?d, "scheduler pass failed");
                    metrics::counter!(m::REDIS_ERRORS, "queue" => self.p.keys.queue().to_string(), "op" => "schedule").increment(1);
                    d
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.p.changed.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One pass: fires every scheduler due within the look-ahead.
    pub async fn tick(&self) -> Result<Pass> {
        let p = &self.p;
        let ahead = p.lookahead.as_millis() as u64;
        let r = p
            .conn
            .run(async |c| {
                scripts::schedule_read(c, &p.keys, Read::Due(p.lookahead, MAX_PER_PASS)).await
            })
            .await?;
        let now = r.now_ms;
        // The earliest moment (Redis clock) worth another pass.
        let mut wake = now + p.poll.as_millis() as u64;
        if let Some(b) = r.beyond_ms {
            wake = wake.min(b.saturating_sub(ahead));
        }
        let mut pass = Pass::default();
        for e in &r.entries {
            let (Some(tick), Some(seen)) = (e.next_ms, e.value.as_deref()) else {
                continue;
            };
            let Some((stored, plan)) = self.readable(&e.id, seen) else {
                continue;
            };
            if let Some(last) = stored.last_tick.filter(|l| *l > now) {
                // Its last tick's job still waits: fire the next once that has come.
                wake = wake.min(last);
                continue;
            }
            let t = Tick {
                id: &e.id,
                seen,
                stored: &stored,
                plan: &plan,
                tick,
                now,
            };
            let fired = p
                .conn
                .run(async |c| schedule::fire(c, &p.keys, t).await)
                .await?;
            match fired {
                (Fired::Stale, _) => {
                    pass.stale += 1;
                    wake = wake.min(now + AFTER_STALE.as_millis() as u64);
                }
                (how, next) => {
                    if how == Fired::Added {
                        pass.added += 1;
                        tracing::debug!(queue = p.keys.queue(), scheduler = %e.id, tick, "scheduled job added");
                    }
                    if let Some(n) = next {
                        wake = wake.min(n.saturating_sub(ahead).max(tick));
                    }
                }
            }
        }
        if r.entries.len() >= MAX_PER_PASS && pass.added + pass.stale > 0 {
            wake = now;
        }
        pass.sleep = Duration::from_millis(wake.saturating_sub(now));
        Ok(pass)
    }

    /// The stored scheduler and its rule, or None (logged once) when it cannot be read.
    fn readable(&self, id: &str, seen: &[u8]) -> Option<(Stored, schedule::Plan)> {
        match Stored::decode(seen).and_then(|s| s.plan().map(|p| (s, p))) {
            Ok(sp) => Some(sp),
            Err(e) => {
                if self.unreadable.lock().unwrap().insert(id.to_string()) {
                    tracing::error!(queue = self.p.keys.queue(), scheduler = %id, error = %e,
                        "a scheduler's stored record cannot be read; it does not fire until it is set again");
                }
                None
            }
        }
    }
}
