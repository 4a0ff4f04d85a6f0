//! Single adds that ride together: [`Queue::add`] calls to one queue over one shared
//! connection that arrive while an add to that queue is on its way are sent as one
//! `add.lua` call once it returns, each caller still getting its own answer.
//!
//! Why: a script call has a fixed cost in Redis (reading the request, running the
//! script's preamble, propagating it to the AOF as a `MULTI`/`EXEC`, writing the reply),
//! and one round trip each. Fifty services' requests adding one job each cost Redis
//! about three times what one call of fifty costs (see BENCHMARKS.md). Nothing waits to
//! fill a batch: an add that finds no batch on its way is sent at once, so a lone
//! producer's latency is one round trip as before; only adds that would have queued
//! behind another on the connection anyway are merged (the batch grows with the load,
//! as Nagle's algorithm does, without its timer).
//!
//! What stays the same for each caller: its job is added atomically on its own (the
//! script takes each job of a batch in turn, exactly as if they came one by one in the
//! batch's order; an id or dedup key used twice in one batch behaves as it would in
//! two calls), and an add whose reply does not come back fails with
//! [`Error::MaybeAdded`] naming that caller's id only. Adds of a [`Queue::durable`]
//! handle are not merged (each waits for its replicas itself).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::Queue;
use crate::error::{Error, Result};
use crate::scripts::{AddOutcome, NewJobArgs};

/// Most jobs sent in one merged call.
const MAX_JOBS: usize = 1000;
/// Most payload bytes sent in one merged call (one job may exceed it alone).
const MAX_BYTES: usize = 8 << 20;

/// The adds waiting to be sent, per queue name, on one shared connection. A queue has
/// an entry exactly while a sender task runs for it.
#[derive(Default)]
pub(crate) struct AddLanes {
    lanes: Mutex<HashMap<String, Vec<Waiting>>>,
}

impl AddLanes {
    /// The lanes, locked. Nothing panics while holding them, but a poisoned lock is
    /// still usable: the map is never left half-changed.
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Vec<Waiting>>> {
        self.lanes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One caller's add, and where its answer goes.
struct Waiting {
    args: NewJobArgs,
    reply: oneshot::Sender<Result<AddOutcome>>,
}

impl Queue {
    /// Adds one job, merged with other adds to this queue that are waiting to be sent
    /// (see the module comment).
    pub(super) async fn add_merged(&self, args: NewJobArgs) -> Result<AddOutcome> {
        let id = args.id.clone();
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut lanes = self.conn.add_lanes().lock();
            match lanes.get_mut(self.name()) {
                Some(waiting) => {
                    waiting.push(Waiting { args, reply });
                    false
                }
                None => {
                    lanes.insert(self.name().to_string(), vec![Waiting { args, reply }]);
                    true
                }
            }
        };
        if start {
            tokio::spawn(send_lane(self.clone()));
        }
        // The sender answers every caller: each call it makes is bounded, and at most the
        // call on its way is ahead of this one. The bound here is a safety net.
        let limit = 2 * crate::conn::PRODUCER_TIMEOUT;
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::MaybeAdded {
                ids: vec![id],
                detail: "the sender of merged adds stopped before answering".into(),
            }),
            Err(_) => Err(Error::MaybeAdded {
                ids: vec![id],
                detail: format!("no reply within {limit:?}"),
            }),
        }
    }
}

/// Takes the lane's waiting adds out, up to the batch limits; None (and the lane is
/// gone) when nothing waits.
fn take_batch(q: &Queue) -> Option<Vec<Waiting>> {
    let mut lanes = q.conn.add_lanes().lock();
    let waiting = lanes.get_mut(q.name())?;
    if waiting.is_empty() {
        lanes.remove(q.name());
        return None;
    }
    let (mut n, mut bytes) = (0, 0);
    while n < waiting.len() && n < MAX_JOBS && (n == 0 || bytes < MAX_BYTES) {
        bytes += waiting[n].args.spec.len();
        n += 1;
    }
    Some(waiting.drain(..n).collect())
}

/// Removes the lane if the sender ends any other way than by emptying it (a panic):
/// later adds then start a new sender, and the callers still waiting are answered by
/// their dropped reply channels. Once [`take_batch`] has removed the lane itself, the
/// guard must not touch it (a new sender may own the queue's entry by then).
struct LaneGuard<'a> {
    q: &'a Queue,
    emptied: bool,
}

impl Drop for LaneGuard<'_> {
    fn drop(&mut self) {
        if self.emptied {
            return;
        }
        self.q.conn.add_lanes().lock().remove(self.q.name());
    }
}

/// The sender of one queue's lane: sends what waits, one call at a time, until nothing
/// does.
async fn send_lane(q: Queue) {
    let mut guard = LaneGuard {
        q: &q,
        emptied: false,
    };
    loop {
        let Some(batch) = take_batch(&q) else {
            guard.emptied = true;
            return;
        };
        let (args, replies): (Vec<NewJobArgs>, Vec<_>) =
            batch.into_iter().map(|w| (w.args, w.reply)).unzip();
        match q.send_add(&args).await {
            Ok(out) => {
                let mut out = out.into_iter();
                for reply in replies {
                    let _ = reply.send(Ok(out.next().unwrap_or(AddOutcome::Exists)));
                }
            }
            Err(e) => {
                for (a, reply) in args.iter().zip(replies) {
                    let _ = reply.send(Err(for_one(&e, &a.id)));
                }
            }
        }
    }
}

/// A merged call's error as one caller's: "maybe added" names only its own job.
fn for_one(e: &Error, id: &str) -> Error {
    match e {
        Error::MaybeAdded { detail, .. } => Error::MaybeAdded {
            ids: vec![id.to_string()],
            detail: detail.clone(),
        },
        e => e.clone(),
    }
}
