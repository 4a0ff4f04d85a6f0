//! One queue as the claim loop sees it: claims from it, reconciles after a lost claim
//! reply, and blocks on its wake-up list on a connection of its own.
//!
//! A worker serving several queues has one lane per queue; the [`Claimer`]
//! (super::claimer::Claimer) decides which lane gets free slots first.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::ReconnectBackoff;
use super::inflight::InFlight;
use super::processor::Processor;
use crate::conn::{RedisConn, SharedConn};
use crate::error::Result;
use crate::keys::Keys;
use crate::metrics as m;
use crate::scripts::{self, ClaimReply, Claimed};

/// How much longer than the client-side deadline the server-side BLPOP timeout is.
const BLOCK_BACKSTOP: Duration = Duration::from_secs(1);

/// What one queue of the claim loop uses, and nothing else.
pub(crate) struct LaneParams {
    /// For claims, reconciles and `CLIENT UNBLOCK`; its connector makes the blocking
    /// connection.
    pub conn: SharedConn,
    pub keys: Keys,
    /// Whom claimed jobs are leased to.
    pub worker_id: String,
    /// How long a claim leases a job for.
    pub lease: Duration,
    /// Longest idle block before looking again.
    pub idle_block: Duration,
    /// The jobs held here (a reconcile hands back the leased ones not among them).
    pub inflight: InFlight,
    /// Share of free slots under weighted order (ignored in strict order).
    pub weight: u32,
    /// Starts the jobs this lane claims.
    pub processor: Arc<Processor>,
}

/// One queue of the claim loop.
pub(crate) struct Lane {
    p: LaneParams,
    /// The connection idle waits block on, and its client id (for CLIENT UNBLOCK).
    blocker: Option<(RedisConn, Option<i64>)>,
    /// Under Sentinel: fires when a new master is announced (the blocker is dropped).
    master_changes: Option<tokio::sync::watch::Receiver<u64>>,
    /// The last claim failed after possibly leasing jobs: reconcile before the next.
    pub unsure: bool,
    /// Backoff after failed calls: a failing queue (its shard down) is skipped until
    /// `retry_at`, so it neither spins nor holds up the worker's other queues.
    backoff: ReconnectBackoff,
    retry_at: Option<Instant>,
}

impl Lane {
    pub fn new(mut p: LaneParams) -> Lane {
        p.weight = p.weight.max(1);
        Lane {
            master_changes: p.conn.connector().master_changes(),
            p,
            blocker: None,
            unsure: false,
            backoff: ReconnectBackoff::default(),
            retry_at: None,
        }
    }

    /// False while this lane waits out its backoff.
    pub fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| t <= now)
    }

    /// When this lane may be tried again (None: now).
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// A call of this lane succeeded.
    pub fn succeeded(&mut self) {
        self.backoff.reset();
        self.retry_at = None;
    }

    /// A call of this lane failed: logs, counts, and backs the lane off.
    pub fn failed(&mut self, op: &'static str, e: &crate::Error) {
        let d = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + d);
        self.report(op, e, self.backoff.failures(), d);
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        self.p.keys.queue()
    }

    /// This lane's share of free slots under weighted order.
    pub fn weight(&self) -> u32 {
        self.p.weight
    }

    /// One claim of up to `max` jobs (also promotes due delayed jobs).
    pub async fn tick(&self, max: usize) -> Result<ClaimReply> {
        let s = &self.p;
        s.conn
            .run(async |c| scripts::claim(c, &s.keys, max, &s.worker_id, s.lease).await)
            .await
    }

    /// Starts a job this lane claimed (see [`Processor::start`]).
    pub fn start(
        &self,
        job: Claimed,
        claim_now_ms: u64,
        sent: Instant,
        permit: OwnedSemaphorePermit,
    ) {
        self.p.processor.start(job, claim_now_ms, sent, permit);
    }

    /// Hands back the jobs leased to this worker that it does not hold (their claim's
    /// reply was lost), so they run again at once rather than after their lease.
    pub async fn reconcile(&self) -> Result<()> {
        let s = &self.p;
        let held = s.inflight.leases();
        let back = s
            .conn
            .run(async |c| scripts::reconcile(c, &s.keys, &s.worker_id, &held).await)
            .await?;
        for id in back {
            tracing::warn!(queue = s.keys.queue(), job_id = %id, "handed back a job whose claim reply was lost");
        }
        Ok(())
    }

    /// Logs and counts a failed call of this lane.
    fn report(&self, op: &'static str, e: &crate::Error, failures: u32, retry_in: Duration) {
        if e.is_connection() || e.is_transient() {
            tracing::warn!(queue = self.queue(), op, error = %e, failures, retry_in = ?retry_in,
                "redis unavailable to the worker; will retry");
        } else if matches!(e, crate::Error::Decode(_)) {
            tracing::error!(queue = self.queue(), op, error = %e, failures, retry_in = ?retry_in,
                "a script's reply did not parse; will reconcile and retry");
        } else if e.to_string().contains("ERR") {
            tracing::error!(queue = self.queue(), op, error = %e, failures, retry_in = ?retry_in,
                "a script failed (a script error, not an outage); will retry");
        } else {
            tracing::error!(queue = self.queue(), op, error = %e, failures, retry_in = ?retry_in,
                "redis refused the worker's call; will retry");
        }
        metrics::counter!(m::REDIS_ERRORS, "queue" => self.queue().to_string(), "op" => op)
            .increment(1);
    }

    /// How long to block: until the next delayed job is due, at most `idle_block`.
    pub fn idle_wait(&self, reply: &ClaimReply) -> Duration {
        let max = self.p.idle_block;
        match reply.next_due_ms {
            Some(due) => Duration::from_millis(due.saturating_sub(reply.now_ms))
                .clamp(Duration::from_millis(5), max),
            None => max,
        }
    }

    /// Forgets the blocking connection (after an error on it).
    pub fn drop_blocker(&mut self) {
        self.blocker = None;
    }

    /// Blocks on the wake-up list for up to `wait`, or until `woken` fires (another
    /// lane of this worker was woken). Fires `woken` when this lane is.
    ///
    /// Redis checks blocking timeouts only as often as its `hz` (10 a second by
    /// default), so a BLPOP timeout alone would start a delayed job up to ~100 ms
    /// late. The deadline is kept here instead: when it passes first, the block is
    /// ended with `CLIENT UNBLOCK` (the server-side timeout is only a backstop).
    ///
    /// The blocking connection is never the shared one (a block there would stall every
    /// other command to that server). On a cluster it is a cluster connection of its
    /// own, so BLPOP goes to the node owning the queue's slot and follows `MOVED`;
    /// `CLIENT ID` and `CLIENT UNBLOCK` are sent to the same slot's master.
    pub async fn block(&mut self, wait: Duration, woken: &CancellationToken) -> Result<()> {
        if woken.is_cancelled() {
            return Ok(());
        }
        let wake = self.p.keys.wake();
        if let Some(rx) = &mut self.master_changes {
            if rx.has_changed().unwrap_or(false) {
                rx.mark_unchanged();
                self.blocker = None;
            }
        }
        if self.blocker.is_none() {
            let mut conn = self
                .p
                .conn
                .connector()
                .connect(self.p.idle_block + Duration::from_secs(5))
                .await?;
            // A Redis that refuses CLIENT (some managed services) gets the plain BLPOP
            // timeout, with Redis's own precision.
            let id: Option<i64> = conn
                .query_at(redis::cmd("CLIENT").arg("ID"), &wake)
                .await
                .ok();
            self.blocker = Some((conn, id));
        }
        let (conn, client_id) = self.blocker.as_mut().expect("just set");
        let master_changed = master_changed(&mut self.master_changes);
        let Some(id) = *client_id else {
            let got: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(&wake)
                .arg(wait.as_secs_f64())
                .query_async(conn)
                .await?;
            if got.is_some() {
                woken.cancel();
            }
            return Ok(());
        };
        let (unblock_refused, stale) = 'block: {
            let mut cmd = redis::cmd("BLPOP");
            cmd.arg(&wake).arg((wait + BLOCK_BACKSTOP).as_secs_f64());
            let mut blpop = std::pin::pin!(cmd.query_async::<Option<(String, String)>>(conn));
            let mut unblock_refused = false;
            let ended_early = tokio::select! {
                r = &mut blpop => {
                    if r?.is_some() {
                        woken.cancel();
                    }
                    Some(false)
                }
                _ = tokio::time::sleep(wait) => Some(true),
                _ = woken.cancelled() => Some(true),
                _ = master_changed => None,
            };
            let Some(ended_early) = ended_early else {
                // The block is on the old master: dropped with its connection below.
                break 'block (false, true);
            };
            if ended_early {
                loop {
                    // Unblock, and again if the BLPOP had not reached the server yet.
                    let unblock = self.p.conn.run(async |c| {
                        Ok(
                            c.query_at::<i64>(redis::cmd("CLIENT").arg("UNBLOCK").arg(id), &wake)
                                .await?,
                        )
                    });
                    if let Err(e) = unblock.await {
                        if !e.is_connection() {
                            unblock_refused = true;
                        }
                        if blpop.await?.is_some() {
                            woken.cancel();
                        }
                        break;
                    }
                    if let Ok(r) = tokio::time::timeout(Duration::from_millis(20), &mut blpop).await
                    {
                        if r?.is_some() {
                            // A producer's token arrived just before the unblock.
                            woken.cancel();
                        }
                        break;
                    }
                }
            }
            (unblock_refused, false)
        };
        if stale {
            self.blocker = None;
            return Ok(());
        }
        if unblock_refused {
            tracing::warn!(
                queue = self.queue(),
                "CLIENT UNBLOCK refused; delayed jobs start with Redis's timeout precision (~100 ms)"
            );
            if let Some((_, id)) = self.blocker.as_mut() {
                *id = None;
            }
        }
        Ok(())
    }
}

/// Resolves when the sentinels announce a new master (never without Sentinel).
async fn master_changed(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending::<()>().await,
    }
}
