//! Job schedulers (issue 11.1): one job per tick however many worker processes run,
//! upserts that change the next run without a duplicate, missed ticks collapsing after
//! downtime, start/end/limit, remove, on one server and on a 3-master cluster, and the
//! CLI and HTTP round trips. (Next-run computation across DST is unit-tested in
//! `src/schedule/plan.rs`.)
//!
//! `processes`: worker processes and a ledger, one server and a cluster; `rules`: what
//! upserts, downtime, limit, end and remove do, with workers in this process;
//! `surfaces`: the stored job, refusals, the CLI and the HTTP API.

mod processes;
mod rules;
mod surfaces;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton::{handler_fn, JobContext, JobError, Repeat, Scheduler, Worker};
use serde_json::Value;

/// The tick of a scheduler's job id `sched:<scheduler>:<tick>`.
pub(super) fn tick_of(id: &str, scheduler: &str) -> Option<u64> {
    id.strip_prefix(&format!("sched:{scheduler}:"))?
        .parse()
        .ok()
}

fn recording_worker(redis: &str, queue: &str, seen: Arc<Mutex<Vec<(String, Value)>>>) -> Worker {
    Worker::builder(redis, queue)
        .concurrency(4)
        .shutdown_timeout(Duration::from_secs(2))
        .build(handler_fn(move |data: Value, ctx: JobContext| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((ctx.id().to_string(), data));
                Ok::<_, JobError>(())
            }
        }))
        .unwrap()
}

pub(super) fn ids_of(seen: &Mutex<Vec<(String, Value)>>, scheduler: &str) -> Vec<(u64, Value)> {
    let mut v: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(id, d)| Some((tick_of(id, scheduler)?, d.clone())))
        .collect();
    v.sort_by_key(|(t, _)| *t);
    v
}

pub(super) fn every(secs: u64, data: Value) -> Scheduler<Value> {
    Scheduler::new(Repeat::every(Duration::from_secs(secs)), "job", data)
}
