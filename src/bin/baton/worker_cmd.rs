//! `baton worker QUEUE[,QUEUE…] --exec -- CMD ARGS…`: a worker that runs a command per
//! job, for one queue or several sharing one concurrency budget.

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
    /// Queue, or queues separated by commas (served in this order: the first with work
    /// gets the free slots, unless --queue-weights is given).
    #[arg(value_delimiter = ',', required = true)]
    queues: Vec<String>,
    /// Share the slots by weight instead of strict order: q1=5,q2=1 (every queue listed
    /// needs a weight).
    #[arg(long, value_delimiter = ',')]
    queue_weights: Vec<String>,
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
    // Before the first claim: a command that cannot run would fail every job it claims.
    baton::exec::resolve_program(&program)
        .map_err(|e| baton::Error::Invalid(format!("{e}; the worker did not start")))?;
    let handler = ExecHandler::new(ExecConfig {
        program,
        args: cmd.collect(),
        kill_grace: a.kill_grace,
    });
    let mut b = Worker::builder(url.clone(), &a.queues[0])
        .concurrency(a.concurrency)
        .lease(a.lease)
        .shutdown_timeout(a.shutdown_timeout)
        // A child gets SIGTERM, then SIGKILL after the kill grace: give it that long.
        .abort_grace(a.kill_grace + Duration::from_secs(1))
        .stalled_interval(a.stalled_interval)
        .max_stalled(a.max_stalled);
    b = if a.queue_weights.is_empty() {
        b.queues(a.queues.iter().cloned())
    } else {
        b.weighted_queues(weights(&a.queues, &a.queue_weights)?)
    };
    if let Some(t) = a.timeout {
        b = b.timeout(t);
    }
    if a.allow_unfit_redis {
        b = b.allow_unfit_redis();
    }
    if let Some(k) = crate::crypto_args::keyring() {
        b = b.encryption(k);
    }
    let worker = b.build(handler)?;
    let stop_ops = CancellationToken::new();
    if let Some(addr) = a.metrics_addr {
        // Bind before the first claim: a worker without /metrics and /healthz gets
        // restarted by its liveness probe in a loop, so a taken address is a start-up
        // error naming it.
        let listener = baton::http::bind(addr).await?;
        baton::metrics::install();
        let (url, stop) = (url.clone(), stop_ops.clone());
        tokio::spawn(async move {
            let limits = baton::http::Limits::default();
            if let Err(e) = baton::http::serve_ops_on(listener, url, limits, stop).await {
                tracing::error!(error = %e, %addr, "metrics server failed");
            }
        });
    }
    let r = worker.run_until_signal().await;
    stop_ops.cancel();
    r.map(|_| ExitCode::SUCCESS)
}

/// `q1=5,q2=1` for the queues given, each queue exactly once.
fn weights(queues: &[String], given: &[String]) -> Result<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for q in queues {
        let w = given
            .iter()
            .filter_map(|g| g.split_once('='))
            .find(|(name, _)| name == q)
            .ok_or_else(|| {
                baton::Error::Invalid(format!("--queue-weights gives no weight for queue {q:?}"))
            })?
            .1;
        let w: u32 = w.parse().ok().filter(|w| *w > 0).ok_or_else(|| {
            baton::Error::Invalid(format!(
                "--queue-weights: {q}={w} is not a whole number above 0"
            ))
        })?;
        out.push((q.clone(), w));
    }
    for g in given {
        let name = g.split_once('=').map(|(n, _)| n).unwrap_or(g);
        if !queues.iter().any(|q| q == name) {
            return Err(baton::Error::Invalid(format!(
                "--queue-weights names {name:?}, which is not one of the queues served ({})",
                queues.join(",")
            )));
        }
    }
    Ok(out)
}
