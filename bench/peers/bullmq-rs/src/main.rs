//! Peer benchmark: the `bullmq-official` crate (BullMQ's Rust port) against a
//! private redis-server.
//!
//! Usage: REDIS_PORT=<port> [REDIS_HOST=127.0.0.1] [JOBS=20000] [CONCURRENCY=50] \
//!        target/release/bench-bullmq-rs
//!
//! Normally started by ../run.sh, which launches a throw-away redis-server on
//! a free loopback port and passes REDIS_PORT. Prints ONE JSON object on
//! stdout; progress goes to stderr. Same phases as ../bullmq/bench.mjs:
//!   warm-up     tiny queue, loads Lua scripts (not measured)
//!   add_bulk    N jobs via Queue::add_bulk() in sequential batches of 100
//!   process     Worker(concurrency) with a no-op handler drains those N jobs;
//!               completed jobs are removed (remove_on_complete = true)
//!   add_single  N/4 jobs via Queue::add(), 50 adds in flight at any time
//! Redis CPU = delta of (used_cpu_user + used_cpu_sys) from INFO cpu.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bullmq::options::RedisConnectionOptions;
use bullmq::types::RemoveOnFinish;
use bullmq::worker::WorkerEvent;
use bullmq::{BulkJob, Job, Queue, QueueOptions, Worker, WorkerOptions};
use serde_json::{json, Value};

/// Must match the exact pin in Cargo.toml (`bullmq-official = "=1.4.4"`).
const BULLMQ_RS_VERSION: &str = "1.4.4";
const BATCH: usize = 100;
const SINGLE_INFLIGHT: usize = 50;

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

fn env_usize(name: &str, dflt: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => panic!("{name} must be a positive integer, got {v}"),
        },
        _ => dflt,
    }
}

macro_rules! log {
    ($($t:tt)*) => { eprintln!("[bullmq-rs] {}", format!($($t)*)) };
}

struct Cfg {
    url: String,
    jobs: usize,
    concurrency: usize,
    deadline: Duration,
}

fn conn_opts(cfg: &Cfg) -> RedisConnectionOptions {
    RedisConnectionOptions::new().url(cfg.url.clone())
}

async fn redis_cpu_seconds(admin: &mut redis::aio::MultiplexedConnection) -> Result<f64, BoxErr> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(admin).await?;
    let mut user = None;
    let mut sys = None;
    for line in info.lines() {
        if let Some(v) = line.strip_prefix("used_cpu_user:") {
            user = Some(v.trim().parse::<f64>()?);
        } else if let Some(v) = line.strip_prefix("used_cpu_sys:") {
            sys = Some(v.trim().parse::<f64>()?);
        }
    }
    match (user, sys) {
        (Some(u), Some(s)) => Ok(u + s),
        _ => Err(format!("bad INFO cpu: {info}").into()),
    }
}

fn result(jobs: usize, secs: f64, cpu_delta_s: f64) -> Value {
    json!({
        "jobs_per_s": (jobs as f64 / secs).round() as u64,
        "redis_cpu_us_per_job": ((cpu_delta_s * 1e6 / jobs as f64) * 100.0).round() / 100.0,
        "seconds": (secs * 1000.0).round() / 1000.0,
    })
}

async fn add_bulk(queue: &Queue, n: usize) -> Result<(), BoxErr> {
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let batch: Vec<BulkJob> = (start..end).map(|i| BulkJob::new("j", json!({ "i": i }))).collect();
        queue.add_bulk(batch).await?;
        start = end;
    }
    Ok(())
}

async fn add_single(queue: &Queue, n: usize, inflight: usize) -> Result<(), BoxErr> {
    let next = Arc::new(AtomicUsize::new(0));
    let lanes = (0..inflight.min(n)).map(|_| {
        let q = queue.clone();
        let next = next.clone();
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), BoxErr>(());
                }
                q.add("j", json!({ "i": i })).await?;
            }
        }
    });
    for r in futures::future::join_all(lanes).await {
        r?;
    }
    Ok(())
}

/// Start a worker (after `on_start`), wait until `n` jobs completed, close it.
/// Returns the elapsed time between `on_start` and the n-th completion event.
async fn drain(
    cfg: &Cfg,
    queue_name: &str,
    n: usize,
    admin: &mut redis::aio::MultiplexedConnection,
) -> Result<(f64, f64), BoxErr> {
    let opts = WorkerOptions {
        connection: conn_opts(cfg),
        concurrency: cfg.concurrency,
        autorun: false,
        remove_on_complete: Some(RemoveOnFinish::Bool(true)),
        // Seconds the idle blocking fetch waits. Irrelevant while jobs are waiting;
        // 1 instead of the default 5 only makes `close()` return sooner.
        drain_delay: 1,
        ..WorkerOptions::default()
    };
    let worker = Arc::new(
        Worker::with_options(queue_name, |_job: Job, _token| async move { Ok(Value::Null) }, opts)
            .await?,
    );

    let cpu0 = redis_cpu_seconds(admin).await?;
    let t0 = Instant::now();
    worker.run().await?;

    let w = worker.clone();
    let counter = async move {
        let (mut completed, mut failed) = (0usize, 0usize);
        while completed + failed < n {
            match w.next_event().await {
                Some(WorkerEvent::Completed { .. }) => completed += 1,
                Some(WorkerEvent::Failed { job_id, error }) => {
                    log!("job {job_id} failed: {error}");
                    failed += 1
                }
                Some(WorkerEvent::Error(e)) => log!("worker error: {e}"),
                Some(_) => {}
                None => break,
            }
        }
        (completed, failed)
    };
    let (completed, failed) = match tokio::time::timeout(cfg.deadline, counter).await {
        Ok(v) => v,
        Err(_) => return Err(format!("deadline: {queue_name} not drained in {:?}", cfg.deadline).into()),
    };
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = redis_cpu_seconds(admin).await?;
    worker.close(5_000).await?;
    if failed > 0 || completed < n {
        return Err(format!("{queue_name}: completed {completed}, failed {failed}, expected {n}").into());
    }
    Ok((secs, cpu1 - cpu0))
}

async fn run() -> Result<Value, BoxErr> {
    let host = std::env::var("REDIS_HOST").unwrap_or_else(|_| "127.0.0.1".into());
    let port = match std::env::var("REDIS_PORT") {
        Ok(p) if !p.is_empty() => p.parse::<u16>()?,
        // Refuse to default to 6379: never touch the system Redis.
        _ => return Err("REDIS_PORT is required (run via ../run.sh, which starts a private redis-server)".into()),
    };
    let cfg = Cfg {
        url: format!("redis://{host}:{port}"),
        jobs: env_usize("JOBS", 20_000),
        concurrency: env_usize("CONCURRENCY", 50),
        deadline: Duration::from_secs(env_usize("DEADLINE_S", 600) as u64),
    };
    let single_jobs = (cfg.jobs / 4).max(1);
    let warmup = std::env::var("WARMUP").map(|v| v != "0").unwrap_or(true);

    let client = redis::Client::open(cfg.url.as_str())?;
    let mut admin = client.get_multiplexed_async_connection().await?;

    let qopts = || QueueOptions {
        connection: conn_opts(&cfg),
        ..QueueOptions::default()
    };

    if warmup {
        let wq = Queue::with_options("warmup", qopts()).await?;
        add_bulk(&wq, 200).await?;
        add_single(&wq, 200, SINGLE_INFLIGHT).await?;
        drain(&cfg, "warmup", 400, &mut admin).await?;
        wq.obliterate(true, 1000).await?;
        log!("warm-up done");
    }

    let queue = Queue::with_options("bench", qopts()).await?;

    log!("add_bulk: {} jobs in batches of {BATCH}", cfg.jobs);
    let cpu0 = redis_cpu_seconds(&mut admin).await?;
    let t0 = Instant::now();
    add_bulk(&queue, cfg.jobs).await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = redis_cpu_seconds(&mut admin).await?;
    let mut add_bulk_res = result(cfg.jobs, secs, cpu1 - cpu0);
    add_bulk_res["batch"] = json!(BATCH);
    log!("add_bulk {add_bulk_res}");

    let waiting = queue.get_waiting_count().await?;
    if waiting != cfg.jobs as u64 {
        return Err(format!("expected {} waiting, found {waiting}", cfg.jobs).into());
    }

    log!("process: {} jobs, concurrency {}", cfg.jobs, cfg.concurrency);
    let (psecs, pcpu) = drain(&cfg, "bench", cfg.jobs, &mut admin).await?;
    let process_res = result(cfg.jobs, psecs, pcpu);
    log!("process {process_res}");

    let counts = queue.get_job_counts().await?;
    let (w, a, f, d) = (
        queue.get_waiting_count().await?,
        queue.get_active_count().await?,
        queue.get_failed_count().await?,
        queue.get_delayed_count().await?,
    );
    if w + a + f + d != 0 {
        return Err(format!("queue not drained: {counts:?}").into());
    }
    log!("after process: completed jobs retained = {}", queue.get_completed_count().await?);

    log!("add_single: {single_jobs} jobs, {SINGLE_INFLIGHT} in flight");
    let cpu0 = redis_cpu_seconds(&mut admin).await?;
    let t0 = Instant::now();
    add_single(&queue, single_jobs, SINGLE_INFLIGHT).await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = redis_cpu_seconds(&mut admin).await?;
    let mut add_single_res = result(single_jobs, secs, cpu1 - cpu0);
    add_single_res["jobs"] = json!(single_jobs);
    add_single_res["inflight"] = json!(SINGLE_INFLIGHT);
    log!("add_single {add_single_res}");

    queue.obliterate(true, 1000).await?;

    Ok(json!({
        "peer": "bullmq-rs",
        "version": BULLMQ_RS_VERSION,
        "jobs": cfg.jobs,
        "concurrency": cfg.concurrency,
        "add_bulk": add_bulk_res,
        "add_single": add_single_res,
        "process": process_res,
        "retention": "WorkerOptions.remove_on_complete = true: completed jobs deleted on completion",
        "runtime": "crate bullmq-official (lib name `bullmq`), tokio multi-thread runtime",
    }))
}

#[tokio::main]
async fn main() {
    match run().await {
        Ok(v) => {
            println!("{v}");
            std::process::exit(0);
        }
        Err(e) => {
            log!("FAILED: {e}");
            std::process::exit(1);
        }
    }
}
