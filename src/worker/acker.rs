//! Writes outcomes to Redis in batches: whatever finished while the last write was in
//! flight goes in the next single `finish.lua` call. An outcome that cannot be written
//! is kept and retried with backoff until it lands or its lease is found lost; it is
//! never dropped silently. That holds for Redis away and for every refusal that is about
//! Redis's state rather than the job ([`Error::is_transient`]: `OOM`, `LOADING`, `BUSY`,
//! `TRYAGAIN`, `CLUSTERDOWN`, `MASTERDOWN`, `READONLY`, `NOREPLICAS`, `MISCONF`): a
//! finished job is never failed because Redis would not take a write. Only a refusal of
//! the write itself (say, a value Redis will not store) fails the job instead.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::backoff::ReconnectBackoff;
use super::inflight::InFlight;
use crate::conn::SharedConn;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::metrics::{self as m, QueueMetrics};
use crate::scripts::{self, Kind, Outcome, Written};

/// Most outcomes written by one call.
const MAX_BATCH: usize = 500;

/// An outcome on its way to Redis.
#[derive(Debug)]
pub(crate) struct Pending(pub Outcome);

/// What the acker of one queue uses, besides the outcomes it is handed.
pub(crate) struct AckerParams {
    pub conn: SharedConn,
    pub keys: Keys,
    /// Outcomes are written only for jobs still held here; a written one is let go.
    pub inflight: InFlight,
    /// For the outcome counters and `lock_lost`.
    pub metrics: QueueMetrics,
}

/// The outcome writer.
pub(crate) struct Acker {
    p: AckerParams,
    rx: mpsc::UnboundedReceiver<Pending>,
}

impl Acker {
    pub fn new(p: AckerParams, rx: mpsc::UnboundedReceiver<Pending>) -> Acker {
        Acker { p, rx }
    }

    /// Writes outcomes until `stop` fires, then writes whatever is left and returns.
    pub async fn run(mut self, stop: CancellationToken) {
        loop {
            let first = tokio::select! {
                biased;
                p = self.rx.recv() => match p { Some(p) => p, None => return },
                _ = stop.cancelled() => break,
            };
            // One yield first: the handlers ending in this same turn of the runtime
            // send theirs, so the call carries them too (a finish call costs Redis
            // about 115 000 instructions before its first job). Measured with the
            // claimer's half-concurrency target (medians of five runs of 100 000
            // no-op jobs): Redis CPU a job 8.3 -> 8.0 µs, 98 k -> 103 k jobs/s
            // (BENCHMARKS.md, issue 10, session 12).
            tokio::task::yield_now().await;
            let batch = self.drain(first);
            self.flush(batch).await;
        }
        while let Ok(first) = self.rx.try_recv() {
            let batch = self.drain(first);
            self.flush(batch).await;
        }
    }

    fn drain(&mut self, first: Pending) -> Vec<Outcome> {
        let mut batch = vec![first.0];
        while batch.len() < MAX_BATCH {
            match self.rx.try_recv() {
                Ok(p) => batch.push(p.0),
                Err(_) => break,
            }
        }
        batch
    }

    /// Writes `batch`, retrying with backoff while Redis is unreachable.
    async fn flush(&self, mut batch: Vec<Outcome>) {
        let mut backoff = ReconnectBackoff::default();
        loop {
            // The heartbeat forgets jobs whose lease it found lost: their outcomes go.
            batch.retain(|o| self.p.inflight.holds(&o.id, o.token));
            if batch.is_empty() {
                return;
            }
            match self.tick(&batch).await {
                Ok(()) => return,
                Err(e) if e.is_transient() => {
                    let delay = backoff.next_delay();
                    if e.is_connection() {
                        tracing::error!(queue = self.p.keys.queue(), jobs = batch.len(), error = %e,
                            retry_in = ?delay, "writing outcomes failed; keeping them and retrying");
                    } else {
                        tracing::error!(queue = self.p.keys.queue(), jobs = batch.len(), error = %e,
                            retry_in = ?delay, "redis refused the outcomes for its own state (not the jobs'); keeping them and retrying");
                    }
                    metrics::counter!(m::REDIS_ERRORS, "queue" => self.p.keys.queue().to_string(), "op" => "finish").increment(1);
                    tokio::time::sleep(delay).await;
                }
                // Redis refused the write itself, for good: retrying the same batch would
                // block every later outcome. Write each on its own instead.
                Err(e) => {
                    metrics::counter!(m::REDIS_ERRORS, "queue" => self.p.keys.queue().to_string(), "op" => "finish").increment(1);
                    if batch.len() == 1 {
                        self.refused(batch.pop().expect("one"), e).await;
                        return;
                    }
                    for o in std::mem::take(&mut batch) {
                        Box::pin(self.flush(vec![o])).await;
                    }
                    return;
                }
            }
        }
    }

    /// An outcome Redis refuses to take (say, a result larger than Redis accepts): the
    /// job fails with the reason instead; if even that is refused, it is let go and
    /// its lease runs out, so the sweeper recovers it.
    async fn refused(&self, o: Outcome, e: Error) {
        let q = self.p.keys.queue();
        tracing::error!(queue = q, job_id = %o.id, error = %e, "redis refused this job's outcome; failing the job instead");
        let failed = Outcome {
            kind: Kind::Failed,
            value: format!("its outcome could not be written: {e}").into_bytes(),
            delay: std::time::Duration::ZERO,
            ..o.clone()
        };
        let mut backoff = ReconnectBackoff::default();
        while let Err(e2) = self.tick(std::slice::from_ref(&failed)).await {
            if e2.is_transient() && self.p.inflight.holds(&o.id, o.token) {
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            tracing::error!(queue = q, job_id = %o.id, error = %e2, "failing the job was refused too; leaving it to the sweeper");
            self.p.inflight.remove(&o.id, o.token);
            return;
        }
    }

    /// One write of `batch`, with metrics for what landed.
    pub async fn tick(&self, batch: &[Outcome]) -> Result<()> {
        let keys = &self.p.keys;
        let written = self
            .p
            .conn
            .run(async |c| scripts::finish(c, keys, batch).await)
            .await?;
        let m = &self.p.metrics;
        for (o, w) in batch.iter().zip(written) {
            self.p.inflight.remove(&o.id, o.token);
            let counter = match (w, o.kind) {
                (Written::LockLost, _) => {
                    tracing::warn!(queue = %keys.queue(), job_id = %o.id, "outcome refused: lock lost (another worker took the job over); dropped");
                    &m.lock_lost
                }
                (Written::CancelledInstead, _) | (Written::AsAsked, Kind::Cancelled) => {
                    &m.cancelled
                }
                (Written::AsAsked, Kind::Completed) => &m.completed,
                (Written::AsAsked, Kind::Failed) => &m.failed,
                (Written::AsAsked, Kind::Retry) => &m.retried,
                (Written::AsAsked, Kind::HandBack | Kind::RateLimited) => continue,
            };
            counter.increment(1);
        }
        Ok(())
    }
}
