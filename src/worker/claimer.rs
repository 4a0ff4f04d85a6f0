//! Claims jobs in batches as big as the free slots, from the worker's queues in their
//! order (strict: the first queue with work wins) or by weight (each claim round visits
//! the queues in a random order drawn by weight, as Sidekiq and asynq do). When no
//! queue has work, every queue's lane blocks on its own wake-up list until one is woken
//! (a producer, retry, recovery or due delayed job leaves a token) or the next delayed
//! job is due. An idle worker costs Redis about one command per queue per `idle_block`.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::lane::Lane;

/// Most jobs one claim takes (the script unpacks them into one ZADD).
const MAX_CLAIM: usize = 1000;

/// How a worker with several queues shares its slots between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueOrder {
    /// The first queue (in the order given) with work gets the slots; later queues only
    /// get what it leaves. Sidekiq's strict ordering.
    #[default]
    Strict,
    /// Each claim round visits the queues in a random order drawn by weight, so under
    /// load a queue of weight 5 gets about five times the slots of a queue of weight 1,
    /// and no queue starves.
    Weighted,
}

/// What the claim loop uses, and nothing else.
pub(crate) struct ClaimerParams {
    /// The queues, in the order given (at least one).
    pub lanes: Vec<Lane>,
    /// The worker's concurrency budget: one permit per running job.
    pub slots: Arc<Semaphore>,
    pub order: QueueOrder,
    /// The size of the budget (`slots` when all are free).
    pub concurrency: usize,
    /// Longest idle block before looking again.
    pub idle_block: Duration,
}

/// The claim loop over one or more lanes (queues).
pub(crate) struct Claimer {
    p: ClaimerParams,
}

impl Claimer {
    pub fn new(p: ClaimerParams) -> Claimer {
        Claimer { p }
    }

    /// Claims and starts jobs until `stop` fires.
    pub async fn run(mut self, stop: CancellationToken) {
        // True while the last claim filled every free slot: more work is likely waiting.
        let mut busy = false;
        loop {
            let first = tokio::select! {
                p = self.p.slots.clone().acquire_owned() => p.expect("slots are never closed"),
                _ = stop.cancelled() => return,
            };
            let mut permits = vec![first];
            self.take_free(&mut permits);
            if busy && permits.len() < self.coalesce_target() {
                // Under load, one claim per freed slot would make each claim (and each
                // ack batch) tiny: let the jobs that end in this same turn of the
                // runtime free their slots first. A yield, not a sleep: tokio's timer
                // has 1 ms ticks, so the 1 ms sleep this was cost 1-2 ms of a cycle of
                // about 2.3 ms (50 jobs at 22 k/s); the yield measured 25-32 k jobs/s
                // against 19-22 k (`baton bench --phases process`, BENCHMARKS.md).
                tokio::task::yield_now().await;
                self.take_free(&mut permits);
            }
            // Not raced against `stop`: once a script has leased jobs to this worker
            // they must be started (and then drained or handed back by the shutdown),
            // not dropped with the reply.
            let round = self.round(&mut permits).await;
            busy = round.filled;
            drop(permits);
            if round.started > 0 {
                continue;
            }
            // Nothing to run: block the lanes that answered until one is woken; lanes
            // backing off are tried again when their backoff ends.
            let now = tokio::time::Instant::now();
            let mut wait = round.wait;
            if let Some(t) = self.p.lanes.iter().filter_map(|l| l.retry_at()).min() {
                wait = wait.min(
                    t.saturating_duration_since(now)
                        .max(Duration::from_millis(5)),
                );
            }
            let woken = CancellationToken::new();
            let waits = self.p.lanes.iter_mut().filter(|l| l.ready(now)).map(|l| {
                let woken = &woken;
                async move {
                    let r = l.block(wait, woken).await;
                    if let Err(e) = &r {
                        l.drop_blocker();
                        l.failed("wait", e);
                        // The others stop blocking: this lane's backoff bounds the wait.
                        woken.cancel();
                    }
                }
            });
            let blocked = async {
                let waits: Vec<_> = waits.collect();
                if waits.is_empty() {
                    tokio::time::sleep(wait).await;
                } else {
                    futures::future::join_all(waits).await;
                }
            };
            tokio::select! {
                _ = blocked => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// One claim round: the lanes in order, each asked for the slots still free.
    async fn round(&mut self, permits: &mut Vec<OwnedSemaphorePermit>) -> Round {
        let mut r = Round {
            started: 0,
            filled: false,
            wait: self.p.idle_block,
        };
        let now = tokio::time::Instant::now();
        for i in self.visit_order() {
            if permits.is_empty() {
                break;
            }
            let lane = &mut self.p.lanes[i];
            if !lane.ready(now) {
                continue;
            }
            if lane.unsure {
                // The last claim failed in a way that may have leased jobs to us anyway.
                match lane.reconcile().await {
                    Ok(()) => lane.unsure = false,
                    Err(e) => {
                        lane.failed("reconcile", &e);
                        continue;
                    }
                }
            }
            let asked = permits.len();
            let sent = tokio::time::Instant::now();
            match lane.tick(asked).await {
                Ok(reply) => {
                    lane.succeeded();
                    r.filled |= reply.jobs.len() == asked;
                    r.started += reply.jobs.len();
                    r.wait = r.wait.min(lane.idle_wait(&reply));
                    let now = reply.now_ms;
                    for job in reply.jobs {
                        let permit = permits.pop().expect("claimed no more than the free slots");
                        lane.start(job, now, sent, permit);
                    }
                }
                Err(e) => {
                    // A lost reply (timeout, connection cut) may hide jobs the script
                    // leased to us; a refused connection cannot, but checking is cheap.
                    // A reply that did not parse came after the script leased jobs, too.
                    lane.unsure = e.is_transient() || matches!(e, crate::Error::Decode(_));
                    lane.failed("claim", &e);
                }
            }
        }
        r
    }

    /// The order to visit the lanes in this round.
    fn visit_order(&self) -> Vec<usize> {
        let n = self.p.lanes.len();
        if n == 1 || self.p.order == QueueOrder::Strict {
            return (0..n).collect();
        }
        // Weighted random order without replacement.
        let mut left: Vec<usize> = (0..n).collect();
        let mut out = Vec::with_capacity(n);
        let mut rng = rand::rng();
        while !left.is_empty() {
            let total: u32 = left.iter().map(|&i| self.p.lanes[i].weight()).sum();
            let mut pick = rng.random_range(0..total);
            let at = left
                .iter()
                .position(|&i| {
                    let w = self.p.lanes[i].weight();
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .expect("pick is below the total");
            out.push(left.remove(at));
        }
        out
    }

    /// Adds every free slot (up to [`MAX_CLAIM`]) to `permits`.
    fn take_free(&self, permits: &mut Vec<OwnedSemaphorePermit>) {
        while permits.len() < MAX_CLAIM {
            match self.p.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
    }

    /// How many free slots are worth one claim under load: half the concurrency. (A
    /// quarter made claims of about 27 jobs at concurrency 50. Half, with the acker's
    /// yield, medians of five runs of 100 000 no-op jobs: scripts called a job 0.087 ->
    /// 0.069, Redis CPU a job 9.3 -> 8.0 µs, 86 k -> 103 k jobs/s; three quarters did
    /// no better. BENCHMARKS.md, issue 10, session 12.) Only one yield is spent
    /// waiting for it, so it bounds nothing.
    fn coalesce_target(&self) -> usize {
        (self.p.concurrency / 2).max(1)
    }
}

/// What one claim round did.
struct Round {
    started: usize,
    /// Some lane gave every slot asked of it.
    filled: bool,
    /// How long an idle block may last (the earliest delayed job of any lane).
    wait: Duration,
}
