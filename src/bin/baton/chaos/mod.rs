//! `baton chaos`: a seeded, bounded fault-injection run against a private Redis, then
//! the invariants checked from Redis and from the ledger the jobs write.
//!
//! Real parts only: a `redis-server` with AOF on, `baton worker --exec` processes (this
//! binary) reaching it through a TCP proxy, a producer in this process adding straight
//! to Redis. One fault at a time, picked by the seeded generator, held for a random
//! time and healed; then everything is healed, the workers finish, and [`check`] runs.
//! The same seed picks the same faults in the same order (timings still differ).

mod check;
mod faults;
mod leases;
mod producer;
mod proxy;
mod report;
mod sabotage;
mod server;
mod workers;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::{Error, Queue, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

use faults::{Fault, Target};
use server::{ChaosRedis, Fsync};

/// Options of a chaos run.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// Seed of the fault sequence and the job mix (random when absent; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// How long faults are injected (the check and the settling come after).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    duration: Duration,
    /// Worker processes.
    #[arg(long, default_value_t = 3)]
    workers: usize,
    /// Jobs at once per worker.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Jobs added per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// A Redis Cluster of three masters instead of one server (no proxy faults there:
    /// cluster clients follow the addresses the nodes announce).
    #[arg(long)]
    cluster: bool,
    /// Queues, each worker serving all of them (default 1; 3 on a cluster, so that
    /// they spread over the shards).
    #[arg(long)]
    queues: Option<usize>,
    /// The workers' lease.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    lease: Duration,
    /// Fault kinds to inject, comma-separated (default: every kind).
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<Fault>,
    /// Redis's `appendfsync`: `always` (no acknowledged job may be lost) or `everysec`
    /// (jobs acknowledged within 2 s before a Redis SIGKILL may be; they are counted).
    #[arg(long, value_enum, default_value = "always")]
    fsync: Fsync,
    /// How long the workers get, after the last fault, to finish every job.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "90s")]
    settle: Duration,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Break the result on purpose before the check (`lose`, `stale`, `stuck`), to show
    /// that the check catches it. For baton's own tests.
    #[arg(long, hide = true, value_delimiter = ',')]
    sabotage: Vec<String>,
}

/// Runs it.
pub async fn run(args: ChaosArgs) -> Result<ExitCode> {
    let seed = args.seed.unwrap_or_else(|| rand::rng().random());
    let mut kinds: Vec<Fault> = if args.faults.is_empty() {
        Fault::ALL.to_vec()
    } else {
        args.faults.clone()
    };
    if args.cluster {
        kinds.retain(|k| !k.needs_proxy());
        if kinds.is_empty() {
            return Err(Error::Invalid(
                "no fault kind left: proxy faults need a single Redis".into(),
            ));
        }
    }
    let nq = args
        .queues
        .unwrap_or(if args.cluster { 3 } else { 1 })
        .max(1);
    eprintln!(
        "chaos: seed {seed}, {}, {:?} of faults ({}), {} workers × {}, {} jobs/s, lease {:?}, appendfsync {:?}",
        if args.cluster { "3-master cluster" } else { "one Redis" },
        args.duration,
        kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","),
        args.workers,
        args.concurrency,
        args.rate,
        args.lease,
        args.fsync,
    );
    let dir = tempfile::tempdir().map_err(|e| Error::Invalid(format!("temp dir: {e}")))?;
    let data = dir.path().join("redis");
    let logs = dir.path().join("logs");
    for d in [&data, &logs] {
        std::fs::create_dir_all(d).map_err(|e| Error::Invalid(format!("{d:?}: {e}")))?;
    }
    let mut redis = ChaosRedis::start(&data, args.fsync, args.cluster).await?;
    // Workers reach a single Redis through the proxy; the producer never does.
    let proxy = match redis.is_cluster() {
        true => None,
        false => Some(
            proxy::Proxy::start(
                redis
                    .addr(0)
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0),
            )
            .await
            .map_err(|e| Error::Invalid(format!("proxy: {e}")))?,
        ),
    };
    let conn_args: Vec<String> = match &proxy {
        Some(p) => vec![
            "--redis-url".into(),
            format!("redis://127.0.0.1:{}", p.port()),
        ],
        None => vec![
            "--cluster-nodes".into(),
            (0..redis.len())
                .map(|i| format!("redis://{}", redis.addr(i)))
                .collect::<Vec<_>>()
                .join(","),
        ],
    };
    let names: Vec<String> = (0..nq).map(|i| format!("chaos{i}")).collect();
    let qs = names
        .iter()
        .map(|n| Queue::connect(redis.config(), n))
        .collect::<Result<Vec<_>>>()?;
    let stalled_interval = Duration::from_millis(500);
    let ledger = dir.path().join("ledger");
    let mut workers = workers::Workers::start(
        workers::WorkerSpec {
            conn_args,
            queue: names.join(","),
            concurrency: args.concurrency,
            lease: args.lease,
            stalled_interval,
            ledger: ledger.clone(),
            log_dir: logs.clone(),
        },
        args.workers,
    )?;

    let book: producer::Book = Default::default();
    let stop = CancellationToken::new();
    let pace = producer::Pace {
        rate: args.rate,
        doomed: 0.05,
        cancel: 0.03,
        max_run: Duration::from_millis(800),
    };
    let producing = tokio::spawn(producer::run(
        qs.clone(),
        book.clone(),
        pace,
        seed,
        stop.clone(),
    ));

    // The lease sampler runs only in quiet stretches.
    let quiet: leases::Quiet = Arc::new(Mutex::new(Some(Instant::now())));
    let samples = Arc::new(Mutex::new(leases::LeaseSamples::default()));
    let sampling = CancellationToken::new();
    let sampler = {
        let (quiet, samples, stop) = (quiet.clone(), samples.clone(), sampling.clone());
        let cfg = redis.config();
        let names = names.clone();
        let after = args.lease + stalled_interval + Duration::from_secs(1);
        let slack = stalled_interval + Duration::from_secs(1);
        tokio::spawn(async move {
            let probe = server::Probe::new(cfg);
            while !stop.is_cancelled() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if !leases::quiet_for(&quiet, after) {
                    continue;
                }
                if let Ok(n) = leases::expired(&probe, &names, slack).await {
                    // Only a sample taken wholly in a quiet stretch counts.
                    if leases::quiet_for(&quiet, after) {
                        let mut s = samples.lock().unwrap();
                        s.samples += 1;
                        s.expired += n;
                    }
                }
            }
        })
    };

    let mut rng = StdRng::seed_from_u64(seed);
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut kills = Vec::new();
    let mut fault_errors = Vec::new();
    let mut exits = Vec::new();
    let started = Instant::now();
    let mut n = 0u64;
    let mut plan: Vec<Fault> = Vec::new();
    while started.elapsed() < args.duration {
        // Mostly back to back; one gap in five is a quiet stretch long enough for the
        // lease sampler to look.
        let gap = if rng.random_bool(0.2) {
            args.lease + stalled_interval + Duration::from_millis(rng.random_range(1500..3000))
        } else {
            Duration::from_millis(rng.random_range(300..1500))
        };
        tokio::time::sleep(gap).await;
        for (i, st) in workers.exited() {
            exits.push(format!("worker slot {i} exited by itself: {st}"));
            workers.respawn(i)?;
        }
        n += 1;
        // Every kind once first (in a seeded order), so even a short run has each.
        if plan.is_empty() {
            plan = kinds.clone();
            if n == 1 {
                plan.shuffle(&mut rng);
            } else {
                plan = vec![kinds[rng.random_range(0..kinds.len())]];
            }
        }
        let fault = plan.pop().expect("refilled above");
        *quiet.lock().unwrap() = None;
        let mut target = Target {
            redis: &mut redis,
            workers: &mut workers,
            proxy: proxy.as_ref(),
            queues: &qs,
            book: &book,
            lease: args.lease,
        };
        match faults::apply(fault, &mut target, &mut rng, n).await {
            Ok(Some(at)) => kills.push(at),
            Ok(None) => {}
            Err(e) => {
                fault_errors.push(format!("{}: {e}", fault.name()));
                faults::heal_all(&mut target).await?;
            }
        }
        *quiet.lock().unwrap() = Some(Instant::now());
        *counts.entry(fault.name()).or_default() += 1;
    }
    let duration = started.elapsed();

    // Heal everything, let the producer finish its last add, let the workers finish.
    faults::heal_all(&mut Target {
        redis: &mut redis,
        workers: &mut workers,
        proxy: proxy.as_ref(),
        queues: &qs,
        book: &book,
        lease: args.lease,
    })
    .await?;
    stop.cancel();
    let add_retries = producing.await.unwrap_or(0);
    let settled = check::settle(&qs, args.settle).await;
    sampling.cancel();
    let _ = sampler.await;
    for (i, st) in workers.exited() {
        exits.push(format!("worker slot {i} exited by itself: {st}"));
    }
    workers.stop_all(Duration::from_secs(10)).await;

    sabotage::sabotage(&redis, &qs, &book, &args.sabotage).await?;
    let window = match args.fsync {
        Fsync::Always => Duration::ZERO,
        Fsync::Everysec => Duration::from_secs(2),
    };
    let findings = check::check(&redis, &qs, &book, workers.ledger(), &kills, window).await?;
    let leases = *samples.lock().unwrap();
    let violations = findings.violations() + exits.len() + usize::from(leases.expired > 0);
    let work_dir =
        (violations > 0 && args.sabotage.is_empty()).then(|| dir.keep().display().to_string());
    let report = report::Report {
        seed,
        fsync: format!("{:?}", args.fsync).to_lowercase(),
        duration_s: duration.as_secs_f64(),
        faults: counts,
        fault_errors,
        worker_processes: workers.spawned(),
        unexpected_worker_exits: exits,
        add_retries,
        settle_s: settled.as_secs_f64(),
        leases,
        findings,
        violations,
        work_dir,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        report.print();
    }
    Ok(if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
