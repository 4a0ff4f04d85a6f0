//! `baton worker QUEUE --exec -- CMD ARGS…`: a worker that runs a command per job.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use baton::exec::{ExecConfig, ExecHandler};
use baton::{Result, Worker};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// `baton worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Queue.
    queue: String,
    /// Run the command after `--` per job (payload JSON on stdin).
    #[arg(long, required = true)]
    exec: bool,
    /// Jobs run at once.
    #[arg(long, default_value_t = 10)]
    concurrency: usize,
    /// Lease length.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    lease: Duration,
    /// Default per-attempt timeout.
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Time in-flight jobs get to finish after SIGTERM/SIGINT.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    shutdown_timeout: Duration,
    /// Time between SIGTERM and SIGKILL to a job's process group.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    kill_grace: Duration,
    /// How often to look for expired leases.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    stalled_interval: Duration,
    /// Recoveries a job may have before it fails.
    #[arg(long, default_value_t = 1)]
    max_stalled: u32,
    /// Serve /metrics, /healthz and /readyz here.
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Run even if Redis lacks noeviction or AOF (development only).
    #[arg(long)]
    allow_unfit_redis: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub async fn run(url: &baton::conn::RedisConfig, a: WorkerArgs) -> Result<ExitCode> {
    baton::exec::start_reaper();
    let mut cmd = a.command.into_iter();
    let program = cmd.next().expect("clap requires the command");
    let handler = ExecHandler::new(ExecConfig {
        program,
        args: cmd.collect(),
        kill_grace: a.kill_grace,
    });
    let mut b = Worker::builder(url.clone(), &a.queue)
        .concurrency(a.concurrency)
        .lease(a.lease)
        .heartbeat(a.lease / 3)
        .shutdown_timeout(a.shutdown_timeout)
        // A child gets SIGTERM, then SIGKILL after the kill grace: give it that long.
        .abort_grace(a.kill_grace + Duration::from_secs(1))
        .stalled_interval(a.stalled_interval)
        .max_stalled(a.max_stalled);
    if let Some(t) = a.timeout {
        b = b.timeout(t);
    }
    if a.allow_unfit_redis {
        b = b.allow_unfit_redis();
    }
    let worker = b.build(handler)?;
    let stop_ops = CancellationToken::new();
    if let Some(addr) = a.metrics_addr {
        baton::metrics::install();
        let (url, stop) = (url.clone(), stop_ops.clone());
        tokio::spawn(async move {
            if let Err(e) = baton::http::serve_ops(addr, url, stop).await {
                tracing::error!(error = %e, %addr, "metrics server failed");
            }
        });
    }
    let r = worker.run_until_signal().await;
    stop_ops.cancel();
    r.map(|_| ExitCode::SUCCESS)
}
