//! Claims jobs in batches as big as the free slots, and, when there is nothing to
//! claim, blocks on the queue's wake-up list on a connection of its own until a
//! producer (or a retry, recovery or due delayed job) leaves a token, or until the
//! next delayed job is due. Idle workers cost Redis about one command per `idle_block`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::backoff::ReconnectBackoff;
use super::Shared;
use crate::error::Result;
use crate::metrics as m;
use crate::scripts::{self, ClaimReply};

/// Most jobs one claim takes (the script unpacks them into one ZADD).
const MAX_CLAIM: usize = 1000;

/// How long a busy worker waits for more free slots before claiming.
const COALESCE_WAIT: Duration = Duration::from_millis(1);

/// How much longer than the client-side deadline the server-side BLPOP timeout is.
const BLOCK_BACKSTOP: Duration = Duration::from_secs(1);

/// The claim loop.
pub(crate) struct Claimer {
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    /// The connection idle waits block on, and its client id (for CLIENT UNBLOCK).
    blocker: Option<(crate::conn::RedisConn, Option<i64>)>,
    /// The last claim failed after possibly leasing jobs: reconcile before the next.
    unsure: bool,
}

impl Claimer {
    pub fn new(shared: Arc<Shared>, slots: Arc<Semaphore>) -> Claimer {
        Claimer {
            shared,
            slots,
            blocker: None,
            unsure: false,
        }
    }

    /// Claims and starts jobs until `stop` fires.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut backoff = ReconnectBackoff::default();
        // True while the last claim filled every free slot: more work is likely waiting.
        let mut busy = false;
        loop {
            let first = tokio::select! {
                p = self.slots.clone().acquire_owned() => p.expect("slots are never closed"),
                _ = stop.cancelled() => return,
            };
            let mut permits = vec![first];
            self.take_free(&mut permits);
            if busy && permits.len() < self.coalesce_target() {
                // Under load, one claim per freed slot would make each claim (and each
                // ack batch) tiny; wait a moment for a few more slots to free up.
                tokio::time::sleep(COALESCE_WAIT).await;
                self.take_free(&mut permits);
            }
            let asked = permits.len();
            if self.unsure {
                // The last claim failed in a way that may have leased jobs to us anyway.
                match self.reconcile().await {
                    Ok(()) => self.unsure = false,
                    Err(e) => {
                        drop(permits);
                        self.fail(&mut backoff, "reconcile", &e, &stop).await;
                        continue;
                    }
                }
            }
            // Not raced against `stop`: once the script has leased jobs to this worker
            // they must be started (and then drained or handed back by the shutdown),
            // not dropped with the reply.
            let reply = self.tick(permits.len()).await;
            match reply {
                Ok(reply) if !reply.jobs.is_empty() => {
                    backoff.reset();
                    busy = reply.jobs.len() == asked;
                    let now = reply.now_ms;
                    for job in reply.jobs {
                        let permit = permits.pop().expect("claimed no more than the free slots");
                        self.shared.start(job, now, permit);
                    }
                }
                Ok(reply) => {
                    backoff.reset();
                    busy = false;
                    drop(permits);
                    let wait = self.idle_wait(&reply);
                    tokio::select! {
                        r = self.block(wait) => if let Err(e) = r {
                            self.blocker = None;
                            self.fail(&mut backoff, "wait", &e, &stop).await;
                        },
                        _ = stop.cancelled() => return,
                    }
                }
                Err(e) => {
                    drop(permits);
                    // A lost reply (timeout, connection cut) may hide jobs the script
                    // leased to us; a refused connection cannot, but checking is cheap.
                    self.unsure = e.is_transient();
                    self.fail(&mut backoff, "claim", &e, &stop).await;
                }
            }
        }
    }

    /// Hands back the jobs leased to this worker that it does not hold (their claim's
    /// reply was lost), so they run again at once rather than after their lease.
    async fn reconcile(&self) -> Result<()> {
        let s = &self.shared;
        let held = s.inflight.leases();
        let back = s
            .conn
            .run(async |c| scripts::reconcile(c, &s.keys, &s.id, &held).await)
            .await?;
        for id in back {
            tracing::warn!(queue = s.keys.queue(), job_id = %id, "handed back a job whose claim reply was lost");
        }
        Ok(())
    }

    /// Adds every free slot (up to [`MAX_CLAIM`]) to `permits`.
    fn take_free(&self, permits: &mut Vec<tokio::sync::OwnedSemaphorePermit>) {
        while permits.len() < MAX_CLAIM {
            match self.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
    }

    /// How many free slots are worth one claim under load: a quarter of the concurrency.
    fn coalesce_target(&self) -> usize {
        (self.shared.opts.concurrency / 4).max(1)
    }

    async fn fail(
        &self,
        backoff: &mut ReconnectBackoff,
        op: &'static str,
        e: &crate::Error,
        stop: &CancellationToken,
    ) {
        let d = backoff.next_delay();
        tracing::warn!(queue = self.shared.keys.queue(), op, error = %e, failures = backoff.failures(), retry_in = ?d,
            "redis unavailable to the worker; will retry");
        metrics::counter!(m::REDIS_ERRORS, "queue" => self.shared.keys.queue().to_string(), "op" => op).increment(1);
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.cancelled() => {}
        }
    }

    /// One claim of up to `max` jobs (also promotes due delayed jobs).
    pub async fn tick(&self, max: usize) -> Result<ClaimReply> {
        let s = &self.shared;
        s.conn
            .run(async |c| scripts::claim(c, &s.keys, max, &s.id, s.opts.lease).await)
            .await
    }

    /// How long to block: until the next delayed job is due, at most `idle_block`.
    fn idle_wait(&self, reply: &ClaimReply) -> Duration {
        let max = self.shared.opts.idle_block;
        match reply.next_due_ms {
            Some(due) => Duration::from_millis(due.saturating_sub(reply.now_ms))
                .clamp(Duration::from_millis(5), max),
            None => max,
        }
    }

    /// Blocks on the wake-up list for up to `wait`.
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
    async fn block(&mut self, wait: Duration) -> Result<()> {
        let wake = self.shared.keys.wake();
        if self.blocker.is_none() {
            let mut conn = self
                .shared
                .conn
                .connector()
                .connect(self.shared.opts.idle_block + Duration::from_secs(5))
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
        let Some(id) = *client_id else {
            let _: Option<(String, String)> = redis::cmd("BLPOP")
                .arg(self.shared.keys.wake())
                .arg(wait.as_secs_f64())
                .query_async(conn)
                .await?;
            return Ok(());
        };
        let unblock_refused = {
            let mut cmd = redis::cmd("BLPOP");
            cmd.arg(self.shared.keys.wake())
                .arg((wait + BLOCK_BACKSTOP).as_secs_f64());
            let mut blpop = std::pin::pin!(cmd.query_async::<Option<(String, String)>>(conn));
            let mut unblock_refused = false;
            tokio::select! {
                r = &mut blpop => { r?; }
                _ = tokio::time::sleep(wait) => loop {
                    // Unblock, and again if the BLPOP had not reached the server yet.
                    let unblock = self.shared.conn.run(async |c| {
                        Ok(c.query_at::<i64>(redis::cmd("CLIENT").arg("UNBLOCK").arg(id), &wake).await?)
                    });
                    if let Err(e) = unblock.await {
                        if !e.is_connection() {
                            unblock_refused = true;
                        }
                        blpop.await?;
                        break;
                    }
                    if let Ok(r) = tokio::time::timeout(Duration::from_millis(20), &mut blpop).await {
                        r?;
                        break;
                    }
                },
            }
            unblock_refused
        };
        if unblock_refused {
            tracing::warn!(queue = self.shared.keys.queue(), "CLIENT UNBLOCK refused; delayed jobs start with Redis's timeout precision (~100 ms)");
            if let Some((_, id)) = self.blocker.as_mut() {
                *id = None;
            }
        }
        Ok(())
    }
}
