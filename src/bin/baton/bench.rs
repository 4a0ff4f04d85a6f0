//! `baton bench`: enqueue and processing throughput, enqueue→start latency, and Redis
//! CPU per job (the change in INFO cpu, which counts script-internal commands once).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baton::{handler_fn, JobError, JobOptions, NewJob, Queue, Result, Retention, Worker};
use serde_json::json;

use crate::private_redis::{redis_cpu_seconds, PrivateRedis};

/// `baton bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Jobs per phase.
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Worker concurrency.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Queue to use (default: a new random name). Several bench processes given queues
    /// on different cluster shards measure the aggregate rate of a cluster.
    #[arg(long)]
    queue: Option<String>,
    /// Only the bulk add and process phases (for several bench processes at once).
    #[arg(long)]
    process_only: bool,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

fn opts() -> JobOptions {
    // Completed jobs are not kept: the same setting the peer benchmarks use.
    JobOptions::default().keep_completed(Retention::none())
}

pub async fn run(given: Option<baton::conn::RedisConfig>, a: BenchArgs) -> Result<ExitCode> {
    let private = if given.is_none() {
        Some(PrivateRedis::start().await?)
    } else {
        None
    };
    let url =
        given.unwrap_or_else(|| baton::conn::RedisConfig::url(private.as_ref().unwrap().url()));
    let queue = a
        .queue
        .clone()
        .unwrap_or_else(|| format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let q = Queue::connect(url.clone(), &queue)?;
    let n = a.jobs;

    // Phase 1: add in bulks of 100.
    let cpu0 = redis_cpu_seconds(&url).await?;
    let t = Instant::now();
    let batch: Vec<NewJob<serde_json::Value>> = (0..100)
        .map(|i| NewJob::new("bench", json!({"i": i})).with_opts(opts()))
        .collect();
    for _ in 0..n.div_ceil(100) {
        q.add_bulk(&batch).await?;
    }
    let bulk_s = t.elapsed().as_secs_f64();
    let bulk_cpu = redis_cpu_seconds(&url).await? - cpu0;
    let bulk_n = n.div_ceil(100) * 100;

    // Phase 2: process them with a no-op handler.
    let cpu0 = redis_cpu_seconds(&url).await?;
    let proc_s = drain(&url, &queue, a.concurrency, &q).await?.as_secs_f64();
    let proc_cpu = redis_cpu_seconds(&url).await? - cpu0;

    let us = |cpu: f64, jobs: usize| cpu * 1e6 / jobs as f64;
    if a.process_only {
        let report = json!({
            "peer": "baton",
            "queue": queue,
            "jobs": bulk_n,
            "concurrency": a.concurrency,
            "add_bulk": {"jobs_per_s": bulk_n as f64 / bulk_s, "redis_cpu_us_per_job": us(bulk_cpu, bulk_n)},
            "process": {"jobs_per_s": bulk_n as f64 / proc_s, "seconds": proc_s, "redis_cpu_us_per_job": us(proc_cpu, bulk_n)},
        });
        println!("{report}");
        drop(private);
        return Ok(ExitCode::SUCCESS);
    }

    // Phase 3: single adds, 50 in flight, no worker running (as the peer benchmarks).
    let single_n = (n / 4).max(100);
    let cpu0 = redis_cpu_seconds(&url).await?;
    let t = Instant::now();
    add_singles(&q, single_n, 50, || json!({"i": 1})).await?;
    let single_s = t.elapsed().as_secs_f64();
    let single_cpu = redis_cpu_seconds(&url).await? - cpu0;
    drain(&url, &queue, a.concurrency, &q).await?;

    // Phase 4: latency. One producer adds jobs one after another (each add awaited)
    // while a worker keeps up; the handler measures the time from add to start.
    let paced_n = single_n.min(2000);
    let lat: Arc<Mutex<Vec<u64>>> = Arc::default();
    let l2 = lat.clone();
    let worker = Worker::builder(url.clone(), &queue)
        .concurrency(a.concurrency)
        .build(handler_fn(move |p: serde_json::Value, _ctx| {
            let l = l2.clone();
            async move {
                let sent = p["t"].as_u64().unwrap_or(0);
                l.lock().unwrap().push(now_us().saturating_sub(sent));
                Ok::<_, JobError>(())
            }
        }))?;
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());
    let cpu0 = redis_cpu_seconds(&url).await?;
    let t = Instant::now();
    add_singles(&q, paced_n, 1, || json!({"t": now_us()})).await?;
    while lat.lock().unwrap().len() < paced_n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mixed_s = t.elapsed().as_secs_f64();
    let mixed_cpu = redis_cpu_seconds(&url).await? - cpu0;
    stop.shutdown();
    running
        .await
        .map_err(|e| baton::Error::Invalid(e.to_string()))??;
    let mut l = lat.lock().unwrap().clone();
    l.sort();
    let pct = |p: f64| l[((l.len() - 1) as f64 * p) as usize];

    let report = json!({
        "peer": "baton",
        "version": env!("CARGO_PKG_VERSION"),
        "jobs": n,
        "concurrency": a.concurrency,
        "add_bulk": {"jobs_per_s": bulk_n as f64 / bulk_s, "redis_cpu_us_per_job": us(bulk_cpu, bulk_n)},
        "process": {"jobs_per_s": bulk_n as f64 / proc_s, "redis_cpu_us_per_job": us(proc_cpu, bulk_n)},
        "add_single": {"jobs_per_s": single_n as f64 / single_s, "redis_cpu_us_per_job": us(single_cpu, single_n), "jobs": single_n, "inflight": 50},
        "add_single_and_process": {
            "jobs_per_s": paced_n as f64 / mixed_s,
            "redis_cpu_us_per_job": us(mixed_cpu, paced_n),
            "jobs": paced_n,
            "producers": 1,
            "latency_ms": {"p50": pct(0.5) as f64 / 1000.0, "p99": pct(0.99) as f64 / 1000.0, "max": pct(1.0) as f64 / 1000.0}
        },
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "baton bench: {n} jobs, concurrency {}, redis {url}",
            a.concurrency
        );
        println!(
            "{:<28} {:>12} {:>22}",
            "PHASE", "JOBS/S", "REDIS CPU µs/JOB"
        );
        for (name, k) in [
            ("add (bulk 100, atomic)", "add_bulk"),
            ("process (no-op)", "process"),
            ("add (single, 50 in flight)", "add_single"),
            ("add one by one + process", "add_single_and_process"),
        ] {
            println!(
                "{:<28} {:>12.0} {:>22.2}",
                name,
                report[k]["jobs_per_s"].as_f64().unwrap(),
                report[k]["redis_cpu_us_per_job"].as_f64().unwrap()
            );
        }
        println!(
            "enqueue → start latency (one producer, worker keeping up): p50 {:.2} ms, p99 {:.2} ms",
            pct(0.5) as f64 / 1000.0,
            pct(0.99) as f64 / 1000.0
        );
    }
    drop(private);
    Ok(ExitCode::SUCCESS)
}

/// Adds `n` jobs one call each, `inflight` calls at a time.
async fn add_singles(
    q: &Queue,
    n: usize,
    inflight: usize,
    payload: fn() -> serde_json::Value,
) -> Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..inflight {
        let (q, next) = (q.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n as u64 {
                q.add("bench", &payload(), opts()).await?;
            }
            Ok::<_, baton::Error>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| baton::Error::Invalid(e.to_string()))??;
    }
    Ok(())
}

/// Runs a no-op worker until the queue is empty; returns how long that took (from
/// the worker's start to the last job finished, before its shutdown).
async fn drain(
    url: &baton::conn::RedisConfig,
    queue: &str,
    concurrency: usize,
    q: &Queue,
) -> Result<Duration> {
    let worker = Worker::builder(url.clone(), queue)
        .concurrency(concurrency)
        .build(handler_fn(|_: serde_json::Value, _ctx| async {
            Ok::<_, JobError>(())
        }))?;
    let stop = worker.shutdown_handle();
    let t = Instant::now();
    let running = tokio::spawn(worker.run());
    loop {
        let c = q.counts().await?;
        if c.waiting + c.active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t.elapsed();
    stop.shutdown();
    running
        .await
        .map_err(|e| baton::Error::Invalid(e.to_string()))??;
    Ok(took)
}
