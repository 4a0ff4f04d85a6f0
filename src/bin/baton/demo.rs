//! `baton demo`: the whole thing end to end on a private Redis: a mixed workload
//! (successes, a retry that then succeeds, a permanent failure, a cancellation, a
//! delayed job, a job with steps), a worker with a progress bar, a summary, /metrics.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use baton::{
    handler_fn, Backoff, JobContext, JobError, JobOptions, JobState, NewJob, Queue, Result, Worker,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::private_redis::PrivateRedis;

/// `baton demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// How many plain successful jobs to add.
    #[arg(long, default_value_t = 20)]
    jobs: u32,
    /// Keep the worker and /metrics up this long after the work is done (e.g. 60s).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    linger: Duration,
    /// With --redis-url / REDIS_URL: leave the demo's queue in that Redis (by default
    /// its keys are deleted at the end).
    #[arg(long)]
    keep: bool,
}

/// What the demo's jobs ask for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Task {
    Resize { image: u32 },
    FlakyUpload,
    BrokenReport,
    LongExport,
    Reminder,
    Deploy { service: String },
}

async fn handle(task: Task, ctx: JobContext) -> std::result::Result<String, JobError> {
    match task {
        Task::Resize { image } => {
            tokio::time::sleep(Duration::from_millis(40 + (image as u64 * 13) % 120)).await;
            Ok(format!("image {image} resized"))
        }
        Task::FlakyUpload if ctx.attempt() == 1 => Err(JobError::retry(
            "upload timed out (first try fails on purpose)",
        )),
        Task::FlakyUpload => Ok("uploaded on attempt 2".into()),
        Task::BrokenReport => Err(JobError::retry(
            "report template missing (fails every time)",
        )),
        Task::LongExport => {
            ctx.log("export started; this one gets cancelled")
                .await
                .ok();
            ctx.cancelled().await;
            Ok("stopped".into())
        }
        Task::Reminder => Ok("reminder sent (it was delayed 1.5 s)".into()),
        Task::Deploy { service } => {
            let built: String = ctx
                .step("build", async { Ok(format!("{service}:v42")) })
                .await?;
            ctx.progress(&serde_json::json!({"done": 1, "of": 3}))
                .await
                .ok();
            let pushed: String = ctx
                .step("push", async { Ok(format!("registry/{built}")) })
                .await?;
            ctx.progress(&serde_json::json!({"done": 2, "of": 3}))
                .await
                .ok();
            ctx.step("rollout", async { Ok(format!("rolled out {pushed}")) })
                .await
        }
    }
}

pub async fn run(given: Option<baton::conn::RedisConfig>, a: DemoArgs) -> Result<ExitCode> {
    let private = match given {
        Some(_) => None,
        None => Some(PrivateRedis::start().await?),
    };
    let url =
        given.unwrap_or_else(|| baton::conn::RedisConfig::url(private.as_ref().unwrap().url()));
    let tty = std::io::stdout().is_terminal();
    let queue = format!("demo-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
    if private.is_some() {
        println!("baton demo: redis at {url} (private, AOF on, noeviction; removed at exit)");
    } else {
        // Someone else's Redis: say what is written there, and that it goes again.
        println!(
            "baton demo: using your redis at {url}: queue {queue} is made there, and its \
             keys are deleted at the end{}",
            if a.keep { " (not with --keep)" } else { "" }
        );
    }

    baton::metrics::install();
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| baton::Error::Invalid(e.to_string()))?;
    let metrics_addr: SocketAddr = listener
        .local_addr()
        .map_err(|e| baton::Error::Invalid(e.to_string()))?;
    drop(listener);
    let stop_ops = CancellationToken::new();
    {
        let (url, stop) = (url.clone(), stop_ops.clone());
        tokio::spawn(async move {
            // The whole `baton serve` app on loopback, without a token: the dashboard
            // at `/`, the API and /metrics.
            let cfg = baton::http::ServeConfig {
                redis: url,
                listen: metrics_addr,
                token: None,
            };
            let opts = baton::http::ServeOptions::default();
            if let Err(e) = baton::http::serve_with(cfg, opts, stop).await {
                tracing::warn!(error = %e, "metrics and dashboard server failed");
            }
        });
    }

    let is_private = private.is_some();
    let outcome = exercise(&url, &queue, &a, metrics_addr, tty, is_private).await;
    stop_ops.cancel();
    // The queue's keys go whatever happened, unless asked to stay.
    let deleted = if is_private || a.keep {
        None
    } else {
        Some(delete_queue(&url, &queue).await)
    };
    drop(private);
    outcome?;
    match deleted {
        None if is_private => println!("cleaned up: worker stopped, private redis removed"),
        None => println!("cleaned up: worker stopped; queue {queue} left in {url} (--keep)"),
        Some(Ok(n)) => {
            println!("cleaned up: worker stopped; deleted queue {queue}'s {n} keys from {url}")
        }
        Some(Err(e)) => {
            return Err(baton::Error::Invalid(format!(
                "the demo ran, but deleting queue {queue}'s keys from {url} failed: {e}"
            )))
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The workload, the worker and the summary on queue `queue`.
async fn exercise(
    url: &baton::conn::RedisConfig,
    queue: &str,
    a: &DemoArgs,
    metrics_addr: SocketAddr,
    tty: bool,
    is_private: bool,
) -> Result<()> {
    let q = Queue::connect(url.clone(), queue)?;
    let quick = Backoff::Fixed {
        delay: Duration::from_millis(300),
    };
    let mut jobs: Vec<NewJob<Task>> = (0..a.jobs)
        .map(|i| NewJob::new("resize", Task::Resize { image: i }))
        .collect();
    jobs.push(
        NewJob::new("upload", Task::FlakyUpload)
            .with_opts(JobOptions::default().attempts(3).backoff(quick)),
    );
    jobs.push(
        NewJob::new("report", Task::BrokenReport)
            .with_opts(JobOptions::default().attempts(2).backoff(quick)),
    );
    jobs.push(NewJob::new("export", Task::LongExport));
    jobs.push(
        NewJob::new("reminder", Task::Reminder)
            .with_opts(JobOptions::default().delay(Duration::from_millis(1500))),
    );
    jobs.push(NewJob::new(
        "deploy",
        Task::Deploy {
            service: "api".into(),
        },
    ));
    let added = q.add_bulk(&jobs).await?;
    let total = added.len() as u64;
    let export_id = added[a.jobs as usize + 2].id.clone();
    println!("added {total} jobs to queue {queue} in one atomic call; metrics at http://{metrics_addr}/metrics\n");

    let worker = Worker::builder(url.clone(), queue)
        .concurrency(8)
        .lease(Duration::from_secs(10))
        .stalled_interval(Duration::from_secs(1))
        .shutdown_timeout(Duration::from_secs(5))
        .build(handler_fn(handle))?;
    let stop = worker.shutdown_handle();
    let running = tokio::spawn(worker.run());

    let started = Instant::now();
    let mut cancel_sent = false;
    let mut last_print = Instant::now() - Duration::from_secs(10);
    loop {
        let c = q.counts().await?;
        let done = c.completed + c.failed + c.cancelled;
        if !cancel_sent
            && q.job(&export_id)
                .await?
                .map(|j| j.state == JobState::Active)
                .unwrap_or(false)
        {
            q.cancel(&export_id).await?;
            cancel_sent = true;
        }
        if tty || last_print.elapsed() >= Duration::from_millis(500) || done == total {
            let width = 30;
            let filled = (done * width / total.max(1)) as usize;
            let bar = format!(
                "[{}{}]",
                "#".repeat(filled),
                ".".repeat(width as usize - filled)
            );
            let line = format!(
                "{bar} {done}/{total}  waiting {} delayed {} active {} | completed {} failed {} cancelled {}",
                c.waiting, c.delayed, c.active, c.completed, c.failed, c.cancelled
            );
            if tty {
                print!("\r{line}\x1b[K");
                let _ = std::io::stdout().flush();
            } else {
                println!("{line}");
            }
            last_print = Instant::now();
        }
        if done == total {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(baton::Error::Invalid(
                "demo did not finish within 60 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "\n\nall {total} jobs finished in {:.1?}\n",
        started.elapsed()
    );

    println!(
        "{:<10} {:<34} {:<10} {:>7}  RESULT / ERROR",
        "JOB", "ID", "STATE", "ATTEMPT"
    );
    let shown = [0usize, 1].into_iter().chain(a.jobs as usize..added.len());
    for i in shown {
        if i >= added.len() {
            continue;
        }
        let Some(j) = q.job(&added[i].id).await? else {
            continue;
        };
        let detail = match (&j.result, &j.error) {
            (Some(r), _) if j.state == JobState::Completed => r.to_string(),
            (_, Some(e)) => e.clone(),
            _ => String::new(),
        };
        println!(
            "{:<10} {:<34} {:<10} {:>7}  {}",
            j.name,
            j.id,
            j.state.as_str(),
            format!("{}/{}", j.attempt, j.attempts),
            detail
        );
        if !j.steps.is_empty() {
            println!(
                "{:<10} {:<34} steps: {}",
                "",
                "",
                j.steps.keys().cloned().collect::<Vec<_>>().join(" → ")
            );
        }
    }
    let c = q.counts().await?;
    println!(
        "\ncounts: completed {}, failed {}, cancelled {}, waiting {}, active {}",
        c.completed, c.failed, c.cancelled, c.waiting, c.active
    );
    if is_private && a.linger.is_zero() {
        println!("the dashboard and metrics were served at http://{metrics_addr}/; run `baton demo --linger 60s` to browse them");
    } else if a.linger.is_zero() && !a.keep {
        println!(
            "the queue is deleted next; run with --keep (or --linger 60s) to inspect its jobs"
        );
    } else {
        println!("inspect one:  baton --redis-url {url} job {queue} <ID>");
        println!("dashboard:    http://{metrics_addr}/");
        println!("metrics:      http://{metrics_addr}/metrics");
    }
    if !a.linger.is_zero() {
        println!(
            "\nworker, dashboard and metrics stay up for {:?} (Ctrl-C to stop)",
            a.linger
        );
        tokio::select! {
            _ = tokio::time::sleep(a.linger) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    stop.shutdown();
    running
        .await
        .map_err(|e| baton::Error::Invalid(e.to_string()))??;
    Ok(())
}

/// Deletes every key of `queue` (they share its hash tag, so one node holds them all);
/// returns how many.
async fn delete_queue(url: &baton::conn::RedisConfig, queue: &str) -> Result<u64> {
    let connector = baton::conn::Connector::new(url.clone())?;
    // Routed by key: every key of the queue is in one slot, so one UNLINK takes a page.
    let mut c = connector.connect(Duration::from_secs(10)).await?;
    let mut scan =
        baton::conn::MasterScan::new(&connector, &format!("baton:{{{queue}}}:*"), 1000).await?;
    let mut deleted = 0;
    while let Some(keys) = scan.next_page().await? {
        if !keys.is_empty() {
            let n: u64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut c).await?;
            deleted += n;
        }
    }
    // Out of the queue registry too; when the demo's was the only queue, the registry
    // and its "scanned" mark go as well (nothing of the user's is forgotten: an empty
    // registry is scanned for again).
    use baton::keys::Keys;
    let _: i64 = redis::cmd("SREM")
        .arg(Keys::QUEUES)
        .arg(queue)
        .query_async(&mut c)
        .await?;
    let left: u64 = redis::cmd("SCARD")
        .arg(Keys::QUEUES)
        .query_async(&mut c)
        .await?;
    if left == 0 {
        let _: i64 = redis::cmd("DEL")
            .arg(Keys::QUEUES_SCANNED)
            .query_async(&mut c)
            .await?;
    }
    Ok(deleted)
}
