//! `baton bench`: the phases of issue 10 — bulk and single adds, processing by separate
//! worker processes, add → start latency at an offered rate, Redis memory per waiting
//! job, worker CPU per job and resident memory over a long run, idle queues, many
//! workers — each with the Redis CPU it cost (the change in `INFO cpu`, which counts
//! commands inside scripts once) and the commands Redis ran per job.
//!
//! Workers run as separate processes (`baton bench-worker`, see [`worker`]) so their
//! CPU time and memory can be read per process from `/proc`, clean of the producer's.
//! `bench/compare.sh` runs the same phases for the peers (`bench/peers/`).

mod adds;
mod long;
mod probe;
mod process;
mod procs;
pub mod worker;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use baton::conn::{RedisConfig, SharedConn};
use baton::{Error, JobOptions, Queue, Result, Retention};
use serde_json::{json, Value};

use crate::private_redis::PrivateRedis;

/// Every phase, in the order they run.
const PHASES: [&str; 8] = [
    "add_bulk",
    "process",
    "add_single",
    "latency",
    "memory",
    "rss",
    "idle_queues",
    "many_workers",
];

/// `baton bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Jobs per phase (add_bulk, process, memory, each of many_workers; add_single
    /// adds a quarter of it).
    #[arg(long, default_value_t = 20_000)]
    jobs: usize,
    /// Jobs each worker runs at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Phases to run, comma-separated (default: all): add_bulk, process, add_single,
    /// latency, memory, rss, idle_queues, many_workers.
    #[arg(long, value_delimiter = ',')]
    phases: Vec<String>,
    /// Payload of about this many bytes of JSON (0: `{"i": n}`).
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
    /// Completed jobs: `none` (deleted on completion, as the peers are set up by
    /// default) or `default` (baton's default retention, the last 1000 kept).
    #[arg(long, default_value = "none", value_parser = ["none", "default"])]
    retention: String,
    /// Worker processes for the process phase.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Jobs per `add_bulk` call.
    #[arg(long, default_value_t = 1000)]
    bulk_size: usize,
    /// Jobs a second offered by the latency phase's producer.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Jobs the latency phase offers.
    #[arg(long, default_value_t = 5000)]
    latency_jobs: usize,
    /// Jobs the long run of the rss phase processes.
    #[arg(long, default_value_t = 100_000)]
    rss_jobs: usize,
    /// Idle queues (a worker each) for the idle_queues phase.
    #[arg(long, default_value_t = 100)]
    idle_queues: usize,
    /// Seconds the idle_queues phase watches Redis.
    #[arg(long, default_value_t = 10)]
    idle_seconds: u64,
    /// Worker processes of the many_workers phase (against one).
    #[arg(long, default_value_t = 10)]
    many_workers: usize,
    /// Jobs each drain of the many_workers phase runs (default: 5 × --jobs). A drain
    /// of 20 000 lasts about a quarter of a second at baton's rate, where the 20 ms
    /// poll that sees it end is worth up to 8 % of the rate alone.
    #[arg(long)]
    many_jobs: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Queue to use (default: a new random name). Several bench processes given queues
    /// on different cluster shards measure the aggregate rate of a cluster.
    #[arg(long)]
    queue: Option<String>,
    /// Only the add_bulk and process phases (for several bench processes at once).
    #[arg(long)]
    process_only: bool,
}

/// What every phase needs.
pub struct Ctx {
    args: BenchArgs,
    url: RedisConfig,
    conn: SharedConn,
    /// Connection options for the worker processes.
    conn_args: Vec<String>,
    /// The queue name; other phases' queues are named after it.
    base: String,
}

impl Ctx {
    /// Job options of every job the bench adds (the retention asked for).
    fn opts(&self) -> JobOptions {
        match self.args.retention.as_str() {
            "default" => JobOptions::default(),
            _ => JobOptions::default().keep_completed(Retention::none()),
        }
    }

    /// A phase's own queue, named after the bench's.
    fn queue(&self, suffix: &str) -> Result<Queue> {
        self.queue_named(&format!("{}-{suffix}", self.base))
    }

    fn queue_named(&self, name: &str) -> Result<Queue> {
        baton::validate::queue_name(name)?;
        Ok(Queue::with_conn(self.conn.clone(), name))
    }
}

/// Waits (at most 30 s) until a worker has registered on `q`.
async fn wait_for_workers(q: &Queue) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while q.workers().await?.is_empty() {
        if Instant::now() > deadline {
            return Err(Error::Invalid(format!(
                "no worker registered on {} within 30 s",
                q.name()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The connection options of this command line, for the worker processes: those given
/// (before or after `bench`), or the private server's URL.
fn conn_args(private: Option<&PrivateRedis>) -> Vec<String> {
    if let Some(p) = private {
        return vec!["--redis-url".into(), p.url()];
    }
    const TAKES_VALUE: [&str; 9] = [
        "--redis-url",
        "--redis-ca-cert",
        "--redis-client-cert",
        "--redis-client-key",
        "--redis-password-file",
        "--sentinels",
        "--sentinel-master",
        "--sentinel-password-file",
        "--cluster-nodes",
    ];
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let name = argv[i].split('=').next().unwrap_or("");
        if TAKES_VALUE.contains(&name) {
            out.push(argv[i].clone());
            if !argv[i].contains('=') {
                if let Some(v) = argv.get(i + 1) {
                    out.push(v.clone());
                    i += 1;
                }
            }
        }
        i += 1;
    }
    out
}

pub async fn run(given: Option<RedisConfig>, a: BenchArgs) -> Result<ExitCode> {
    let mut phases: Vec<String> = if a.process_only {
        vec!["add_bulk".into(), "process".into()]
    } else if a.phases.is_empty() {
        PHASES.iter().map(|p| p.to_string()).collect()
    } else {
        a.phases.clone()
    };
    if let Some(bad) = phases.iter().find(|p| !PHASES.contains(&p.as_str())) {
        return Err(Error::Invalid(format!(
            "unknown bench phase {bad:?}; the phases are {}",
            PHASES.join(", ")
        )));
    }
    phases.sort_by_key(|p| PHASES.iter().position(|x| x == p));
    phases.dedup();
    let private = match given {
        None => Some(PrivateRedis::start().await?),
        Some(_) => None,
    };
    let url = given.unwrap_or_else(|| RedisConfig::url(private.as_ref().unwrap().url()));
    let base = a
        .queue
        .clone()
        .unwrap_or_else(|| format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let ctx = Ctx {
        conn: SharedConn::producer(url.clone())?,
        conn_args: conn_args(private.as_ref()),
        url,
        base: base.clone(),
        args: a,
    };
    let main = ctx.queue_named(&base)?;
    let a = &ctx.args;
    let mut report = json!({
        "peer": "baton",
        "version": env!("CARGO_PKG_VERSION"),
        "queue": base,
        "jobs": a.jobs,
        "concurrency": a.concurrency,
        "payload_bytes": a.payload_bytes,
        "retention": a.retention,
        "workers": a.workers,
        "phases": phases,
    });
    for p in &phases {
        let v = match p.as_str() {
            "add_bulk" => adds::add_bulk(&ctx, &main).await?,
            "process" => process::process(&ctx, &main, a.workers, a.jobs).await?,
            "add_single" => adds::add_single(&ctx, &ctx.queue("single")?).await?,
            "latency" => process::latency(&ctx).await?,
            "memory" => adds::memory(&ctx, &ctx.queue("mem")?).await?,
            "rss" => long::rss(&ctx).await?,
            "idle_queues" => long::idle_queues(&ctx).await?,
            _ => process::many_workers(&ctx).await?,
        };
        if !a.json {
            eprintln!("{p}: {v}");
        }
        report[p.as_str()] = v;
    }
    if a.json {
        println!("{report}");
    } else {
        print_human(&report, &phases);
    }
    drop(private);
    Ok(ExitCode::SUCCESS)
}

/// The headline figures, one line a phase.
fn print_human(r: &Value, phases: &[String]) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "baton bench: {} jobs, concurrency {}, payload {} B, retention {}, {} worker process(es)",
        r["jobs"], r["concurrency"], r["payload_bytes"], r["retention"], r["workers"]
    );
    for p in phases {
        let v = &r[p.as_str()];
        let line = match p.as_str() {
            "add_bulk" | "add_single" => format!(
                "{:.0} jobs/s, Redis CPU {:.1} µs/job",
                f(&v["jobs_per_s"]),
                f(&v["redis_cpu_us_per_job"])
            ),
            "process" => format!(
                "{:.0} jobs/s, Redis CPU {:.1} µs/job, worker CPU {:.1} µs/job, {:.1} commands/job, worker RSS peak {:.1} MiB",
                f(&v["jobs_per_s"]),
                f(&v["redis_cpu_us_per_job"]),
                f(&v["worker_cpu_us_per_job"]),
                f(&v["commands_per_job"]),
                f(&v["worker_rss_mib"]["peak"])
            ),
            "latency" => format!(
                "{:.0} jobs/s offered: add → start p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                f(&v["offered_per_s"]),
                f(&v["latency_ms"]["p50"]),
                f(&v["latency_ms"]["p99"]),
                f(&v["latency_ms"]["max"])
            ),
            "memory" => format!("{:.0} bytes of Redis memory per waiting job", f(&v["bytes_per_job"])),
            "rss" => format!(
                "worker RSS idle {:.1} MiB, after start {:.1}, end {:.1} ({:+.1} %) over {} jobs",
                f(&v["worker_rss_mib"]["idle"]),
                f(&v["worker_rss_mib"]["after_start"]),
                f(&v["worker_rss_mib"]["end"]),
                f(&v["worker_rss_mib"]["growth_pct"]),
                v["jobs"]
            ),
            "idle_queues" => format!(
                "{} idle queues: Redis {:.2} % of a core, {:.0} commands/s",
                v["queues"],
                f(&v["redis_cpu_pct_of_core"]),
                f(&v["commands_per_s"])
            ),
            _ => format!(
                "{} workers / 1: rate {:.2}×, commands per job {:.2}×",
                v["workers"],
                f(&v["rate_ratio"]),
                f(&v["commands_per_job_ratio"])
            ),
        };
        println!("{p:<13} {line}");
    }
}
