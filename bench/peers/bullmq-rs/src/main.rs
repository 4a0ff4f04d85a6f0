//! Peer benchmark: the `bullmq-official` crate (BullMQ's Rust port) against a private
//! redis-server, the phases of `baton bench` (issue 10).
//!
//! Usage: REDIS_PORT=<port> [REDIS_HOST=127.0.0.1] [JOBS=20000] [CONCURRENCY=50]
//!        [PHASES=add_bulk,process,add_single,latency,memory] [PAYLOAD_BYTES=0]
//!        [RETENTION=none|default] [WORKERS=1] [BULK=1000] [RATE=1000]
//!        [LATENCY_JOBS=5000] target/release/bench-bullmq-rs
//!
//! Normally started by ../run.sh, which launches a throw-away redis-server on a free
//! loopback port and passes REDIS_PORT. Prints ONE JSON object on stdout; progress goes
//! to stderr. The same phases as ../bullmq/bench.mjs (see its header and ../README.md);
//! `bench-bullmq-rs worker` is the worker process the phases start (ready / go / stdin
//! closed → report), so that a worker's CPU and RSS can be read from /proc.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bullmq::options::RedisConnectionOptions;
use bullmq::types::RemoveOnFinish;
use bullmq::{BulkJob, Job, Queue, QueueOptions, Worker, WorkerOptions};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Must match the exact pin in Cargo.toml (`bullmq-official = "=1.4.4"`).
const BULLMQ_RS_VERSION: &str = "1.4.4";
const SINGLE_INFLIGHT: usize = 50;
const ALL_PHASES: [&str; 5] = ["add_bulk", "process", "add_single", "latency", "memory"];
/// How often the drain is checked (the same in every peer).
const POLL: Duration = Duration::from_millis(20);

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

fn env_usize(name: &str, dflt: usize, min: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => match v.parse::<usize>() {
            Ok(n) if n >= min => n,
            _ => panic!("{name} must be an integer ≥ {min}, got {v}"),
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
    batch: usize,
    workers: usize,
    payload_bytes: usize,
    retention_none: bool,
    rate: usize,
    latency_jobs: usize,
    deadline: Duration,
}

impl Cfg {
    fn from_env() -> Result<Cfg, BoxErr> {
        let host = std::env::var("REDIS_HOST").unwrap_or_else(|_| "127.0.0.1".into());
        let port = match std::env::var("REDIS_PORT") {
            Ok(p) if !p.is_empty() => p.parse::<u16>()?,
            // Refuse to default to 6379: never touch the system Redis.
            _ => return Err(
                "REDIS_PORT is required (run via ../run.sh, which starts a private redis-server)"
                    .into(),
            ),
        };
        let retention = std::env::var("RETENTION").unwrap_or_else(|_| "none".into());
        if retention != "none" && retention != "default" {
            return Err(format!("RETENTION must be none or default, got {retention}").into());
        }
        Ok(Cfg {
            url: format!("redis://{host}:{port}"),
            jobs: env_usize("JOBS", 20_000, 1),
            concurrency: env_usize("CONCURRENCY", 50, 1),
            batch: env_usize("BULK", 1000, 1),
            workers: env_usize("WORKERS", 1, 1),
            payload_bytes: env_usize("PAYLOAD_BYTES", 0, 0),
            retention_none: retention == "none",
            rate: env_usize("RATE", 1000, 1),
            latency_jobs: env_usize("LATENCY_JOBS", 5000, 1),
            deadline: Duration::from_secs(env_usize("DEADLINE_S", 600, 1) as u64),
        })
    }
}

fn conn_opts(cfg: &Cfg) -> RedisConnectionOptions {
    RedisConnectionOptions::new().url(cfg.url.clone())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// A payload of about `bytes` bytes of JSON, the same as baton bench's.
fn payload(i: usize, bytes: usize) -> Value {
    let bare = format!("{{\"i\":{i},\"pad\":\"\"}}").len();
    if bytes == 0 {
        json!({ "i": i })
    } else {
        json!({ "i": i, "pad": "x".repeat(bytes.saturating_sub(bare)) })
    }
}

fn worker_opts(cfg: &Cfg) -> WorkerOptions {
    WorkerOptions {
        connection: conn_opts(cfg),
        concurrency: cfg.concurrency,
        autorun: false,
        // RETENTION=default leaves BullMQ's default: every completed job kept.
        remove_on_complete: cfg.retention_none.then_some(RemoveOnFinish::Bool(true)),
        // Seconds the idle blocking fetch waits; 1 instead of 5 only makes close() sooner.
        drain_delay: 1,
        ..WorkerOptions::default()
    }
}

// ------------------------------------------------------------ worker process ---

/// The worker process: prints `ready` (built, connected), runs on `go`, and when stdin
/// closes closes the worker and prints {"handled", "latency_ms"}.
async fn worker_main(cfg: Cfg) -> Result<(), BoxErr> {
    let queue = std::env::var("QUEUE")?;
    let record = std::env::var("RECORD_LATENCY").as_deref() == Ok("1");
    let handled = Arc::new(AtomicU64::new(0));
    let lat = Arc::new(Mutex::new(Vec::<u64>::new()));
    let (h, l) = (handled.clone(), lat.clone());
    let worker = Arc::new(
        Worker::with_options(
            &queue,
            move |job: Job, _token| {
                if record {
                    let t = job.data()["t"].as_u64().unwrap_or(0);
                    l.lock().unwrap().push(now_us().saturating_sub(t));
                }
                h.fetch_add(1, Ordering::Relaxed);
                async move { Ok(Value::Null) }
            },
            worker_opts(&cfg),
        )
        .await?,
    );
    // Its event channel is unbounded: drain it, or it grows with every job.
    let w = worker.clone();
    tokio::spawn(async move { while w.next_event().await.is_some() {} });
    let mut out = tokio::io::stdout();
    out.write_all(b"ready\n").await?;
    out.flush().await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    if lines.next_line().await?.as_deref().map(str::trim) != Some("go") {
        return Ok(());
    }
    worker.run().await?;
    while lines.next_line().await?.is_some() {}
    worker.close(30_000).await?;
    let mut l = lat.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len().max(1) - 1) as f64 * p) as usize)
            .map_or(0.0, |v| *v as f64 / 1000.0)
    };
    let report = json!({
        "handled": handled.load(Ordering::Relaxed),
        "latency_ms": {"count": l.len(), "p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
    });
    out.write_all(format!("{report}\n").as_bytes()).await?;
    out.flush().await?;
    Ok(())
}

struct WorkerProcs {
    children: Vec<Child>,
    stdin: Vec<ChildStdin>,
    stdout: Vec<Lines<BufReader<ChildStdout>>>,
}

impl WorkerProcs {
    async fn start(queue: &str, n: usize, record_latency: bool) -> Result<WorkerProcs, BoxErr> {
        let exe = std::env::current_exe()?;
        let mut me = WorkerProcs {
            children: vec![],
            stdin: vec![],
            stdout: vec![],
        };
        for _ in 0..n {
            let mut child = Command::new(&exe)
                .arg("worker")
                .env("QUEUE", queue)
                .env("RECORD_LATENCY", if record_latency { "1" } else { "0" })
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            me.stdin.push(child.stdin.take().unwrap());
            me.stdout
                .push(BufReader::new(child.stdout.take().unwrap()).lines());
            me.children.push(child);
        }
        for out in &mut me.stdout {
            let l = out.next_line().await?;
            if l.as_deref() != Some("ready") {
                return Err(format!("worker process did not get ready (said {l:?})").into());
            }
        }
        Ok(me)
    }
    async fn go(&mut self) -> Result<(), BoxErr> {
        for s in &mut self.stdin {
            s.write_all(b"go\n").await?;
            s.flush().await?;
        }
        Ok(())
    }
    fn cpu_s(&self) -> Result<f64, BoxErr> {
        let mut total = 0.0;
        for pid in self.children.iter().filter_map(|c| c.id()) {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
            let f: Vec<&str> = stat
                .rsplit_once(") ")
                .map(|(_, r)| r)
                .unwrap_or("")
                .split_whitespace()
                .collect();
            total += (f[11].parse::<f64>()? + f[12].parse::<f64>()?) / 100.0;
        }
        Ok(total)
    }
    fn max_rss_kib(&self) -> Result<u64, BoxErr> {
        let mut m = 0;
        for pid in self.children.iter().filter_map(|c| c.id()) {
            let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
            let kib = s
                .lines()
                .find_map(|l| {
                    l.strip_prefix("VmRSS:")?
                        .trim()
                        .strip_suffix("kB")?
                        .trim()
                        .parse()
                        .ok()
                })
                .ok_or("no VmRSS")?;
            m = m.max(kib);
        }
        Ok(m)
    }
    async fn stop(mut self) -> Result<Vec<Value>, BoxErr> {
        self.stdin.clear();
        let mut reports = vec![];
        for out in &mut self.stdout {
            let line = out.next_line().await?.unwrap_or_default();
            reports.push(serde_json::from_str(&line)?);
        }
        for c in &mut self.children {
            let st = c.wait().await?;
            if !st.success() {
                return Err(format!("worker process exited {st}").into());
            }
        }
        Ok(reports)
    }
}

// ------------------------------------------------------------------ probes ---

#[derive(Default)]
struct Sample {
    cpu: f64,
    mem: f64,
    commands: f64,
    calls: std::collections::BTreeMap<String, f64>,
}

async fn sample(admin: &mut redis::aio::MultiplexedConnection) -> Result<Sample, BoxErr> {
    let info: String = redis::cmd("INFO")
        .arg("everything")
        .query_async(admin)
        .await?;
    let mut s = Sample::default();
    for line in info.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let num = |v: &str| v.trim().parse::<f64>().unwrap_or(0.0);
        match k {
            "used_cpu_user" | "used_cpu_sys" => s.cpu += num(v),
            "used_memory" => s.mem = num(v),
            "total_commands_processed" => s.commands = num(v),
            _ => {
                if let Some(c) = k.strip_prefix("cmdstat_") {
                    let calls = v
                        .split(',')
                        .find_map(|f| f.strip_prefix("calls="))
                        .map(num)
                        .unwrap_or(0.0);
                    s.calls.insert(c.to_string(), calls);
                }
            }
        }
    }
    Ok(s)
}

fn per_job(a: &Sample, b: &Sample, jobs: usize) -> Value {
    let n = jobs as f64;
    let mut calls: Vec<(String, f64)> = b
        .calls
        .iter()
        .map(|(k, v)| (k.clone(), (v - a.calls.get(k).copied().unwrap_or(0.0)) / n))
        .filter(|(_, v)| *v > 0.0)
        .collect();
    calls.sort_by(|x, y| y.1.total_cmp(&x.1));
    let total: f64 = calls.iter().map(|c| c.1).sum();
    calls.truncate(8);
    json!({
        "redis_cpu_us_per_job": ((b.cpu - a.cpu) * 1e6 / n * 100.0).round() / 100.0,
        "commands_per_job": (b.commands - a.commands) / n,
        "calls_per_job": total,
        "top_calls_per_job": calls.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
    })
}

// ------------------------------------------------------------------ phases ---

async fn add_bulk(cfg: &Cfg, queue: &Queue, n: usize) -> Result<(), BoxErr> {
    let mut start = 0;
    while start < n {
        let end = (start + cfg.batch).min(n);
        let batch: Vec<BulkJob> = (start..end)
            .map(|i| BulkJob::new("j", payload(i, cfg.payload_bytes)))
            .collect();
        queue.add_bulk(batch).await?;
        start = end;
    }
    Ok(())
}

async fn add_single(cfg: &Cfg, queue: &Queue, n: usize) -> Result<(), BoxErr> {
    let next = Arc::new(AtomicUsize::new(0));
    let lanes = (0..SINGLE_INFLIGHT.min(n)).map(|_| {
        let (q, next, bytes) = (queue.clone(), next.clone(), cfg.payload_bytes);
        async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), BoxErr>(());
                }
                q.add("j", payload(i, bytes)).await?;
            }
        }
    });
    for r in futures::future::join_all(lanes).await {
        r?;
    }
    Ok(())
}

async fn wait_drained(cfg: &Cfg, queue: &Queue) -> Result<(), BoxErr> {
    let deadline = Instant::now() + cfg.deadline;
    loop {
        if queue.get_waiting_count().await? + queue.get_active_count().await? == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("deadline: queue not drained".into());
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn process(
    cfg: &Cfg,
    queue: &Queue,
    name: &str,
    admin: &mut redis::aio::MultiplexedConnection,
) -> Result<Value, BoxErr> {
    let waiting = queue.get_waiting_count().await? as usize;
    if waiting < cfg.jobs {
        add_bulk(cfg, queue, cfg.jobs - waiting).await?;
    }
    let n = queue.get_waiting_count().await? as usize;
    let mut w = WorkerProcs::start(name, cfg.workers, false).await?;
    let ready = w.max_rss_kib()?;
    let r0 = sample(admin).await?;
    let cpu0 = w.cpu_s()?;
    let t0 = Instant::now();
    w.go().await?;
    let mut peak = ready;
    let deadline = Instant::now() + cfg.deadline;
    loop {
        tokio::time::sleep(POLL).await;
        peak = peak.max(w.max_rss_kib()?);
        if queue.get_waiting_count().await? + queue.get_active_count().await? == 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err("deadline: queue not drained".into());
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = w.cpu_s()? - cpu0;
    let r1 = sample(admin).await?;
    let end = w.max_rss_kib()?;
    let handled: u64 = w
        .stop()
        .await?
        .iter()
        .map(|r| r["handled"].as_u64().unwrap_or(0))
        .sum();
    if queue.get_failed_count().await? > 0 {
        return Err("jobs failed".into());
    }
    let retained = queue.get_completed_count().await?;
    log!("after process: completed jobs retained = {retained}");
    let mib = |k: u64| k as f64 / 1024.0;
    let mut v = per_job(&r0, &r1, n);
    v["jobs_per_s"] = json!((n as f64 / secs).round());
    v["seconds"] = json!(secs);
    v["jobs"] = json!(n);
    v["handled"] = json!(handled);
    v["workers"] = json!(cfg.workers);
    v["concurrency"] = json!(cfg.concurrency);
    v["completed_retained"] = json!(retained);
    v["worker_cpu_us_per_job"] = json!(cpu * 1e6 / n as f64);
    v["worker_rss_mib"] = json!({"ready": mib(ready), "peak": mib(peak), "end": mib(end)});
    Ok(v)
}

async fn latency(
    cfg: &Cfg,
    queue: &Queue,
    name: &str,
    admin: &mut redis::aio::MultiplexedConnection,
) -> Result<Value, BoxErr> {
    let n = cfg.latency_jobs;
    let mut w = WorkerProcs::start(name, 1, true).await?;
    w.go().await?;
    tokio::time::sleep(Duration::from_secs(1)).await; // let the worker start fetching
    let r0 = sample(admin).await?;
    let cpu0 = w.cpu_s()?;
    let t0 = Instant::now();
    let start = tokio::time::Instant::now();
    for i in 0..n {
        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / cfg.rate as f64)).await;
        let mut p = payload(i, cfg.payload_bytes);
        p["t"] = json!(now_us());
        queue.add("j", p).await?;
    }
    let add_secs = t0.elapsed().as_secs_f64();
    wait_drained(cfg, queue).await?;
    let cpu = w.cpu_s()? - cpu0;
    let r1 = sample(admin).await?;
    let rep = w.stop().await?.remove(0);
    let mut v = per_job(&r0, &r1, n);
    v["jobs"] = json!(n);
    v["offered_per_s"] = json!(cfg.rate);
    v["achieved_per_s"] = json!(n as f64 / add_secs);
    v["worker_cpu_us_per_job"] = json!(cpu * 1e6 / n as f64);
    v["latency_ms"] = rep["latency_ms"].clone();
    Ok(v)
}

async fn run(cfg: Cfg) -> Result<Value, BoxErr> {
    let phases: Vec<String> = std::env::var("PHASES")
        .unwrap_or_else(|_| ALL_PHASES.join(","))
        .split(',')
        .filter(|p| ALL_PHASES.contains(p))
        .map(String::from)
        .collect();
    let warmup = std::env::var("WARMUP").map(|v| v != "0").unwrap_or(true);
    let client = redis::Client::open(cfg.url.as_str())?;
    let mut admin = client.get_multiplexed_async_connection().await?;
    let qopts = || QueueOptions {
        connection: conn_opts(&cfg),
        ..QueueOptions::default()
    };

    if warmup {
        let wq = Queue::with_options("warmup", qopts()).await?;
        add_bulk(&cfg, &wq, 200).await?;
        add_single(&cfg, &wq, 200).await?;
        let w = Arc::new(
            Worker::with_options(
                "warmup",
                |_job: Job, _t| async move { Ok(Value::Null) },
                worker_opts(&cfg),
            )
            .await?,
        );
        let w2 = w.clone();
        tokio::spawn(async move { while w2.next_event().await.is_some() {} });
        w.run().await?;
        wait_drained(&cfg, &wq).await?;
        w.close(5_000).await?;
        wq.obliterate(true, 1000).await?;
        log!("warm-up done");
    }

    let queue = Queue::with_options("bench", qopts()).await?;
    let mut out = json!({
        "peer": "bullmq-rs",
        "version": BULLMQ_RS_VERSION,
        "jobs": cfg.jobs,
        "concurrency": cfg.concurrency,
        "payload_bytes": cfg.payload_bytes,
        "retention": if cfg.retention_none { "none" } else { "default" },
        "workers": cfg.workers,
        "phases": phases,
    });
    for phase in &phases {
        log!("{phase}: {} jobs", cfg.jobs);
        let v = match phase.as_str() {
            "add_bulk" => {
                let r0 = sample(&mut admin).await?;
                let t0 = Instant::now();
                add_bulk(&cfg, &queue, cfg.jobs).await?;
                let secs = t0.elapsed().as_secs_f64();
                let mut v = per_job(&r0, &sample(&mut admin).await?, cfg.jobs);
                v["jobs_per_s"] = json!((cfg.jobs as f64 / secs).round());
                v["seconds"] = json!(secs);
                v["jobs"] = json!(cfg.jobs);
                v["batch"] = json!(cfg.batch);
                v
            }
            "process" => process(&cfg, &queue, "bench", &mut admin).await?,
            "add_single" => {
                let sq = Queue::with_options("bench-single", qopts()).await?;
                let n = (cfg.jobs / 4).max(1);
                let r0 = sample(&mut admin).await?;
                let t0 = Instant::now();
                add_single(&cfg, &sq, n).await?;
                let secs = t0.elapsed().as_secs_f64();
                let mut v = per_job(&r0, &sample(&mut admin).await?, n);
                v["jobs_per_s"] = json!((n as f64 / secs).round());
                v["seconds"] = json!(secs);
                v["jobs"] = json!(n);
                v["inflight"] = json!(SINGLE_INFLIGHT);
                v
            }
            "latency" => {
                let lq = Queue::with_options("bench-lat", qopts()).await?;
                latency(&cfg, &lq, "bench-lat", &mut admin).await?
            }
            _ => {
                let mq = Queue::with_options("bench-mem", qopts()).await?;
                let r0 = sample(&mut admin).await?;
                add_bulk(&cfg, &mq, cfg.jobs).await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
                let r1 = sample(&mut admin).await?;
                json!({
                    "jobs": cfg.jobs,
                    "waiting": mq.get_waiting_count().await?,
                    "bytes_per_job": (r1.mem - r0.mem) / cfg.jobs as f64,
                    "used_memory_before": r0.mem,
                    "used_memory_after": r1.mem,
                })
            }
        };
        log!("{phase} {v}");
        out[phase.as_str()] = v;
    }
    out["retention_detail"] = json!(if cfg.retention_none {
        "WorkerOptions.remove_on_complete = true: completed jobs deleted on completion"
    } else {
        "BullMQ's default: every completed job kept"
    });
    out["runtime"] = json!("crate bullmq-official (lib name `bullmq`), tokio multi-thread runtime");
    Ok(out)
}

#[tokio::main]
async fn main() {
    let cfg = match Cfg::from_env() {
        Ok(c) => c,
        Err(e) => {
            log!("FAILED: {e}");
            std::process::exit(2);
        }
    };
    let r = if std::env::args().nth(1).as_deref() == Some("worker") {
        worker_main(cfg).await.map(|_| None)
    } else {
        run(cfg).await.map(Some)
    };
    match r {
        Ok(Some(v)) => println!("{v}"),
        Ok(None) => {}
        Err(e) => {
            log!("FAILED: {e}");
            std::process::exit(1);
        }
    }
}
