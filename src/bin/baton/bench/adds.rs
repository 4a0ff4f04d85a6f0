//! The phases that only add: bulk adds, single adds with many callers, and the Redis
//! memory the waiting jobs take.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::{NewJob, Queue, Result};
use serde_json::{json, Value};

use super::probe::{payload, RedisSample};
use super::Ctx;

/// Adds `n` jobs (rounded up to whole batches) with `add_bulk`, one batch at a time.
/// Returns the jobs added.
pub async fn bulk(ctx: &Ctx, q: &Queue, n: usize) -> Result<usize> {
    let size = ctx.args.bulk_size.max(1);
    let mut added = 0;
    while added < n {
        let batch: Vec<NewJob<Value>> = (added..added + size)
            .map(|i| NewJob::new("bench", payload(i, ctx.args.payload_bytes)).with_opts(ctx.opts()))
            .collect();
        q.add_bulk(&batch).await?;
        added += size;
    }
    Ok(added)
}

/// `add_bulk`: `--jobs` jobs in batches of `--bulk-size`, measured.
pub async fn add_bulk(ctx: &Ctx, q: &Queue) -> Result<Value> {
    let r0 = RedisSample::take(&ctx.url).await?;
    let t = Instant::now();
    let n = bulk(ctx, q, ctx.args.jobs).await?;
    let secs = t.elapsed().as_secs_f64();
    let mut v = RedisSample::take(&ctx.url).await?.per_job(&r0, n);
    v["jobs_per_s"] = json!(n as f64 / secs);
    v["seconds"] = json!(secs);
    v["jobs"] = json!(n);
    v["batch"] = json!(ctx.args.bulk_size);
    Ok(v)
}

/// `add_single`: `--jobs`/4 single adds, 50 callers at once, no worker running.
pub async fn add_single(ctx: &Ctx, q: &Queue) -> Result<Value> {
    let n = (ctx.args.jobs / 4).max(1);
    let callers = 50;
    let r0 = RedisSample::take(&ctx.url).await?;
    let t = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..callers {
        let (q, next, opts, bytes) = (q.clone(), next.clone(), ctx.opts(), ctx.args.payload_bytes);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, baton::Error>(());
                }
                q.add("bench", &payload(i, bytes), opts.clone()).await?;
            }
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| baton::Error::Invalid(e.to_string()))??;
    }
    let secs = t.elapsed().as_secs_f64();
    let mut v = RedisSample::take(&ctx.url).await?.per_job(&r0, n);
    v["jobs_per_s"] = json!(n as f64 / secs);
    v["seconds"] = json!(secs);
    v["jobs"] = json!(n);
    v["inflight"] = json!(callers);
    Ok(v)
}

/// `memory`: Redis memory per waiting job, the change in `used_memory` over adding
/// `--jobs` jobs (bulk) to an empty queue, divided by the jobs. They stay waiting.
pub async fn memory(ctx: &Ctx, q: &Queue) -> Result<Value> {
    let r0 = RedisSample::take(&ctx.url).await?;
    let n = bulk(ctx, q, ctx.args.jobs).await?;
    // Let the server flush its AOF buffer and client buffers of the last batch.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r1 = RedisSample::take(&ctx.url).await?;
    let waiting = q.counts().await?.waiting;
    Ok(json!({
        "jobs": n,
        "waiting": waiting,
        "bytes_per_job": (r1.used_memory - r0.used_memory) / n as f64,
        "used_memory_before": r0.used_memory,
        "used_memory_after": r1.used_memory,
    }))
}
