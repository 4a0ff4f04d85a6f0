//! The phases that process: draining waiting jobs with worker processes (one or
//! several), the many-workers comparison, and add → start latency at an offered rate.

use std::time::{Duration, Instant};

use baton::{Queue, Result};
use serde_json::{json, Value};

use super::probe::{now_us, payload, RedisSample};
use super::procs::WorkerProcs;
use super::{adds, Ctx};

/// How often the bench looks whether the queue is drained (the same in the peers').
const POLL: Duration = Duration::from_millis(20);

/// Drains `--jobs` waiting jobs (adding any missing first, not measured) with
/// `workers` worker processes of `--concurrency` each. The clock runs from the resume
/// of the queue, paused while the processes started and their workers registered,
/// until the queue has nothing waiting or running.
pub async fn process(ctx: &Ctx, q: &Queue, workers: usize, jobs: usize) -> Result<Value> {
    let waiting = q.counts().await?.waiting as usize;
    if waiting < jobs {
        adds::bulk(ctx, q, jobs - waiting).await?;
    }
    let n = q.counts().await?.waiting as usize;
    // Paused while the worker processes start and register, resumed when the clock
    // starts: the run times claiming and running, not process and worker start-up.
    q.pause().await?;
    let mut procs = WorkerProcs::start(
        &ctx.conn_args,
        &[q.name().to_string()],
        workers,
        ctx.args.concurrency,
        false,
    )
    .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while q.workers().await?.len() < workers {
        if Instant::now() > deadline {
            q.resume().await?;
            return Err(baton::Error::Invalid(format!(
                "bench: {workers} worker processes did not all register within 30 s"
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    let rss_ready = procs.max_rss_kib()?;
    let r0 = RedisSample::take(&ctx.url).await?;
    let cpu0 = procs.cpu_s()?;
    let t = Instant::now();
    q.resume().await?;
    procs.go().await?;
    let mut rss_peak = rss_ready;
    loop {
        tokio::time::sleep(POLL).await;
        rss_peak = rss_peak.max(procs.max_rss_kib()?);
        let c = q.counts().await?;
        if c.waiting + c.active == 0 {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let cpu = procs.cpu_s()? - cpu0;
    let r1 = RedisSample::take(&ctx.url).await?;
    let rss_end = procs.max_rss_kib()?;
    let handled: u64 = procs
        .stop()
        .await?
        .iter()
        .map(|r| r["handled"].as_u64().unwrap_or(0))
        .sum();
    let mut v = r1.per_job(&r0, n);
    v["jobs_per_s"] = json!(n as f64 / secs);
    v["seconds"] = json!(secs);
    v["jobs"] = json!(n);
    v["handled"] = json!(handled);
    v["workers"] = json!(workers);
    v["concurrency"] = json!(ctx.args.concurrency);
    v["worker_cpu_us_per_job"] = json!(cpu * 1e6 / n as f64);
    v["worker_rss_mib"] = json!({
        "ready": mib(rss_ready), "peak": mib(rss_peak), "end": mib(rss_end)
    });
    Ok(v)
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// `many_workers`: the same drain (`--many-jobs`) by one worker process, then by
/// `--many-workers` processes, each of `--concurrency`, on fresh queues; commands per job show claim
/// storms (more commands per job with more workers).
pub async fn many_workers(ctx: &Ctx) -> Result<Value> {
    let jobs = ctx.args.many_jobs.unwrap_or(ctx.args.jobs * 5);
    let one = process(ctx, &ctx.queue("mw1")?, 1, jobs).await?;
    let many = process(ctx, &ctx.queue("mwn")?, ctx.args.many_workers, jobs).await?;
    let ratio = |k: &str| many[k].as_f64().unwrap_or(0.0) / one[k].as_f64().unwrap_or(1.0);
    Ok(json!({
        "workers": ctx.args.many_workers,
        "rate_ratio": ratio("jobs_per_s"),
        "commands_per_job_ratio": ratio("commands_per_job"),
        "calls_per_job_ratio": ratio("calls_per_job"),
        "one": one,
        "many": many,
    }))
}

/// `latency`: one producer offers `--rate` jobs a second (single adds on a fixed
/// schedule, each awaited) to one worker process keeping up; its handler records
/// add → start from the payload's add time.
pub async fn latency(ctx: &Ctx) -> Result<Value> {
    let q = ctx.queue("lat")?;
    let n = ctx.args.latency_jobs.max(1);
    let rate = ctx.args.rate.max(1) as f64;
    let mut procs = WorkerProcs::start(
        &ctx.conn_args,
        &[q.name().to_string()],
        1,
        ctx.args.concurrency,
        true,
    )
    .await?;
    procs.go().await?;
    // Let the worker start (config check, subscribe) before offering jobs.
    super::wait_for_workers(&q).await?;
    let r0 = RedisSample::take(&ctx.url).await?;
    let cpu0 = procs.cpu_s()?;
    let t = Instant::now();
    let start = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
        let mut p = payload(i, ctx.args.payload_bytes);
        p["t"] = json!(now_us());
        q.add("bench", &p, ctx.opts()).await?;
    }
    let add_secs = t.elapsed().as_secs_f64();
    loop {
        let c = q.counts().await?;
        if c.waiting + c.active == 0 {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let cpu = procs.cpu_s()? - cpu0;
    let r1 = RedisSample::take(&ctx.url).await?;
    let report = procs.stop().await?.remove(0);
    let mut v = r1.per_job(&r0, n);
    v["jobs"] = json!(n);
    v["offered_per_s"] = json!(rate);
    v["achieved_per_s"] = json!(n as f64 / add_secs);
    v["worker_cpu_us_per_job"] = json!(cpu * 1e6 / n as f64);
    v["latency_ms"] = report["latency_ms"].clone();
    Ok(v)
}
