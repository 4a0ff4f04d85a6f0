//! `baton bench-worker` (hidden): the worker process `baton bench` starts, so that a
//! worker's CPU time and resident memory can be read per process from `/proc`, clean of
//! the producer's. A no-op handler; one `Worker` per queue given.
//!
//! It talks to its parent over its standard streams: it builds and starts its workers and
//! prints `ready` (a `go` line changes nothing since the workers run from the start: the
//! parent pauses the queue when it must control the start), and when its stdin closes it shuts them down
//! gracefully and prints one JSON line: jobs handled and, with `--record-latency`, the
//! add → start latency of those jobs (the payload's `t`, microseconds since the epoch,
//! against the clock when the handler starts).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use baton::{handler_fn, JobError, Result, Worker};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::probe::now_us;

/// `baton bench-worker`.
#[derive(Debug, clap::Args)]
pub struct BenchWorkerArgs {
    /// Queues, comma-separated: one worker each.
    #[arg(long, value_delimiter = ',', required = true)]
    queue: Vec<String>,
    /// Jobs run at once, per worker.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Record add → start latency from the payload's `t`.
    #[arg(long)]
    record_latency: bool,
}

/// Handled jobs and, when recorded, their latencies in µs.
#[derive(Default)]
struct Tally {
    handled: AtomicU64,
    latency_us: Mutex<Vec<u64>>,
}

/// Runs until stdin closes; see the module doc for the protocol.
pub async fn run(url: &baton::conn::RedisConfig, a: BenchWorkerArgs) -> Result<ExitCode> {
    let tally = Arc::new(Tally::default());
    let mut workers = Vec::new();
    for q in &a.queue {
        let b = Worker::builder(url.clone(), q).concurrency(a.concurrency);
        let t = tally.clone();
        let w = if a.record_latency {
            b.build(handler_fn(move |p: serde_json::Value, _ctx| {
                let t = t.clone();
                async move {
                    let lat = now_us().saturating_sub(p["t"].as_u64().unwrap_or(0));
                    t.latency_us.lock().unwrap().push(lat);
                    t.handled.fetch_add(1, Ordering::Relaxed);
                    Ok::<_, JobError>(())
                }
            }))?
        } else {
            b.build(handler_fn(move |_: serde::de::IgnoredAny, _ctx| {
                t.handled.fetch_add(1, Ordering::Relaxed);
                async { Ok::<_, JobError>(()) }
            }))?
        };
        workers.push(w);
    }
    // The workers start before `ready`: their start-up (configuration check,
    // registration, subscription) is not part of what the parent times, as the peers'
    // workers are connected before their clocks start. A parent that wants nothing
    // claimed before its clock starts pauses the queue first (the process phase does).
    let mut stops = Vec::new();
    let mut running = Vec::new();
    for w in workers {
        stops.push(w.shutdown_handle());
        running.push(tokio::spawn(w.run()));
    }
    let mut out = tokio::io::stdout();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    say(&mut out, "ready").await?;
    while lines.next_line().await.map_err(stdin)?.is_some() {}
    for s in &stops {
        s.shutdown();
    }
    for r in running {
        r.await
            .map_err(|e| baton::Error::Invalid(e.to_string()))??;
    }
    let mut l = tally.latency_us.lock().unwrap().clone();
    l.sort_unstable();
    let pct = |p: f64| {
        l.get(((l.len().max(1) - 1) as f64 * p) as usize)
            .map_or(0.0, |v| *v as f64 / 1000.0)
    };
    let report = json!({
        "handled": tally.handled.load(Ordering::Relaxed),
        "latency_ms": {"count": l.len(), "p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0)},
    });
    say(&mut out, &report.to_string()).await?;
    Ok(ExitCode::SUCCESS)
}

fn stdin(e: std::io::Error) -> baton::Error {
    baton::Error::Invalid(format!("stdin: {e}"))
}

async fn say(out: &mut tokio::io::Stdout, line: &str) -> Result<()> {
    let io = |e: std::io::Error| baton::Error::Invalid(format!("stdout: {e}"));
    out.write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(io)?;
    out.flush().await.map_err(io)
}
