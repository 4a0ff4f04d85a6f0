//! The phases that watch a worker over time: resident memory across a long run, and
//! what idle queues with a worker each cost Redis.

use std::time::{Duration, Instant};

use baton::Result;
use serde_json::{json, Value};

use super::probe::RedisSample;
use super::process::mib;
use super::procs::WorkerProcs;
use super::{adds, Ctx};

/// Jobs kept waiting at most while the long run feeds its worker.
const BACKLOG: u64 = 20_000;

/// `rss`: one worker process, idle on an empty queue first (its idle RSS), then fed
/// `--rss-jobs` jobs in bulks while it keeps up, its `VmRSS` sampled every half second.
/// "After start" is the first sample once a tenth of the jobs are done; growth is the
/// end against that.
pub async fn rss(ctx: &Ctx) -> Result<Value> {
    let q = ctx.queue("rss")?;
    let total = ctx.args.rss_jobs.max(1);
    let mut procs = WorkerProcs::start(
        &ctx.conn_args,
        &[q.name().to_string()],
        1,
        ctx.args.concurrency,
        false,
    )
    .await?;
    procs.go().await?;
    super::wait_for_workers(&q).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = procs.max_rss_kib()?;
    let cpu0 = procs.cpu_s()?;
    let t = Instant::now();
    let (mut added, mut warm, mut samples) = (0usize, None, Vec::new());
    let mut last_sample = Instant::now();
    loop {
        let c = q.counts().await?;
        let done = added as u64 - c.waiting - c.active;
        if last_sample.elapsed() >= Duration::from_millis(500) {
            let r = procs.max_rss_kib()?;
            if warm.is_none() && done as usize >= total / 10 {
                warm = Some(r);
            }
            if warm.is_some() {
                samples.push(r);
            }
            last_sample = Instant::now();
        }
        if added >= total {
            if c.waiting + c.active == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else if c.waiting < BACKLOG {
            added += adds::bulk(ctx, &q, ctx.args.bulk_size.min(total - added)).await?;
        } else {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = procs.cpu_s()? - cpu0;
    let end = procs.max_rss_kib()?;
    let handled = procs.stop().await?[0]["handled"].as_u64().unwrap_or(0);
    let warm = warm.unwrap_or(end);
    let (lo, hi) = samples
        .iter()
        .fold((end, end), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    Ok(json!({
        "jobs": added,
        "handled": handled,
        "jobs_per_s": added as f64 / secs,
        "worker_cpu_us_per_job": cpu * 1e6 / added as f64,
        "worker_rss_mib": {
            "idle": mib(idle), "after_start": mib(warm), "end": mib(end),
            "min": mib(lo), "max": mib(hi), "samples": samples.len(),
            "growth_pct": (end as f64 - warm as f64) * 100.0 / warm.max(1) as f64,
            "spread_pct": (hi as f64 - lo as f64) * 100.0 / warm.max(1) as f64,
        },
    }))
}

/// `idle_queues`: `--idle-queues` empty queues, a worker each (all in one worker
/// process), left alone; Redis CPU over `--idle-seconds` as a share of one core. The
/// same window with no worker at all first: what Redis costs idle by itself (its
/// cron, the AOF's fsync every second).
pub async fn idle_queues(ctx: &Ctx) -> Result<Value> {
    let secs = Duration::from_secs(ctx.args.idle_seconds);
    let r0 = RedisSample::take(&ctx.url).await?;
    let t = Instant::now();
    tokio::time::sleep(secs).await;
    let alone =
        (RedisSample::take(&ctx.url).await?.cpu_s - r0.cpu_s) * 100.0 / t.elapsed().as_secs_f64();
    let queues: Vec<String> = (0..ctx.args.idle_queues)
        .map(|i| format!("{}-idle{i}", ctx.base))
        .collect();
    let mut procs =
        WorkerProcs::start(&ctx.conn_args, &queues, 1, ctx.args.concurrency, false).await?;
    procs.go().await?;
    for name in &queues {
        super::wait_for_workers(&ctx.queue_named(name)?).await?;
    }
    // Past the start-up (first claims, subscriptions).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r0 = RedisSample::take(&ctx.url).await?;
    let cpu0 = procs.cpu_s()?;
    let t = Instant::now();
    tokio::time::sleep(secs).await;
    let secs = t.elapsed().as_secs_f64();
    let r1 = RedisSample::take(&ctx.url).await?;
    let cpu = procs.cpu_s()? - cpu0;
    let rss = procs.max_rss_kib()?;
    procs.stop().await?;
    let calls = |s: &RedisSample| s.calls.values().sum::<f64>();
    Ok(json!({
        "queues": queues.len(),
        "seconds": secs,
        "redis_cpu_pct_of_core": (r1.cpu_s - r0.cpu_s) * 100.0 / secs,
        "redis_cpu_pct_of_core_no_workers": alone,
        "commands_per_s": (r1.commands - r0.commands) / secs,
        "calls_per_s": (calls(&r1) - calls(&r0)) / secs,
        "worker_cpu_pct_of_core": cpu * 100.0 / secs,
        "worker_rss_mib": mib(rss),
    }))
}
