//! `baton`: the command line, thin over the library.

mod add;
mod admin;
mod bench;
mod chaos;
mod crypto_args;
mod demo;
mod events;
mod flow_cmd;
mod private_redis;
mod redis_args;
mod reencrypt;
mod schedule;
mod uncompact;
mod watch;
mod worker_cmd;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// A durable job queue on Redis.
#[derive(Debug, Parser)]
#[command(name = "baton", version, about)]
struct Cli {
    #[command(flatten)]
    redis: redis_args::RedisArgs,
    #[command(flatten)]
    crypto: crypto_args::CryptoArgs,
    /// Log format: text or json (anything else is refused, not read as text).
    #[arg(
        long,
        global = true,
        env = "BATON_LOG_FORMAT",
        default_value = "text",
        value_parser = ["text", "json"]
    )]
    log_format: String,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Check that Redis is fit for a durable queue (version, noeviction, AOF).
    Check {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Enqueue a job; prints its id.
    Add(add::AddArgs),
    /// Enqueue jobs from a file of JSON lines (one job a line; `-` for stdin).
    AddBulk(add::AddBulkArgs),
    /// Enqueue a flow from a JSON file (`-` for stdin): a parent job that starts once
    /// its children (nested, on any queue of its Redis Cluster slot) are done.
    AddFlow(flow_cmd::AddFlowArgs),
    /// Counts per state, for one queue or all.
    Stats {
        /// Queue (all queues when absent).
        queue: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Scan the keyspace for queues (and add them to the queue registry) instead
        /// of reading the registry: queues made by a baton older than the registry.
        #[arg(long)]
        rescan: bool,
    },
    /// Show one job.
    Job {
        /// Queue.
        queue: String,
        /// Job id.
        id: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List job ids in a state (waiting, delayed, waiting-children, active, completed, failed,
    /// cancelled).
    List {
        /// Queue.
        queue: String,
        /// State.
        state: String,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Skip this many first (for paging).
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a waiting, delayed or running job.
    Cancel {
        /// Queue.
        queue: String,
        /// Job id.
        id: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Re-run a failed or cancelled job (or every failed job with --all-failed).
    Retry {
        /// Queue.
        queue: String,
        /// Job id.
        id: Option<String>,
        /// Retry every failed job of the queue.
        #[arg(long, conflicts_with = "id")]
        all_failed: bool,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete a job that is not running.
    Remove {
        /// Queue.
        queue: String,
        /// Job id.
        id: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Stop workers from claiming jobs of a queue.
    Pause {
        /// Queue.
        queue: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A queue's events stream: print its events as JSON lines (--follow to keep
    /// printing), or turn it on (--enable --max-len N) or off (--disable).
    Events(events::EventsArgs),
    /// Flow control over all workers: a cap on running jobs, a rate of starts.
    #[command(group(clap::ArgGroup::new("limits").required(true).multiple(true).args(["concurrency", "rate", "group_concurrency", "group_rate"])))]
    Limit {
        /// Queue.
        queue: String,
        /// At most this many of the queue's jobs run at once, over every worker (0: no cap).
        #[arg(long)]
        concurrency: Option<u32>,
        /// At most N jobs started per duration, over every worker: `100/1s`, or `none`.
        #[arg(long)]
        rate: Option<String>,
        /// Per group (a job's `group`): at most this many running at once (0: no cap).
        #[arg(long)]
        group_concurrency: Option<u32>,
        /// Per group: at most N jobs started per duration: `5/1s`, or `none`.
        #[arg(long)]
        group_rate: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Job schedulers: a job per cron tick or per interval, one per tick over all
    /// workers.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
    /// Let workers claim jobs of a queue again.
    Resume {
        /// Queue.
        queue: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete finished jobs of a state older than an age.
    Clean {
        /// Queue.
        queue: String,
        /// completed, failed or cancelled.
        state: String,
        /// Only jobs finished longer ago than this (e.g. 1h); default all.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
        older_than: Duration,
        /// At most this many.
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Live workers and their in-flight counts.
    Workers {
        /// Queue (all queues when absent).
        queue: Option<String>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// A live view of counts and rates.
    Watch {
        /// Queue (all queues when absent).
        queue: Option<String>,
        /// Refresh interval.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
        interval: Duration,
        /// Stop after this many refreshes (0 = until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        iterations: u64,
    },
    /// Rewrite every job of a queue under the first encryption key (key rotation).
    Reencrypt(reencrypt::ReencryptArgs),
    /// Give every compact job of a queue a hash of its own and make no more (before
    /// older workers run on it again: docs/leases.md); `--reopen` undoes it.
    Uncompact(uncompact::UncompactArgs),
    /// Run a worker that runs a command per job.
    Worker(worker_cmd::WorkerArgs),
    /// Run the HTTP API and the web dashboard (at `/`).
    Serve {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Change nothing: the API refuses every write (403), the dashboard hides its
        /// actions and refuses their forms.
        #[arg(long)]
        read_only: bool,
        /// The dashboard shows read-only viewers (a read-only token, --read-only) no
        /// payload, result, error text, steps or logs.
        #[arg(long)]
        hide_payloads_from_readers: bool,
        /// Scan the keyspace for queues at start and add them to the queue registry
        /// (queues made by a baton older than the registry since the last scan).
        #[arg(long)]
        rescan: bool,
    },
    /// The whole thing end to end on a private Redis it starts itself.
    Demo(demo::DemoArgs),
    /// Measure enqueue and processing throughput and Redis CPU per job.
    Bench(bench::BenchArgs),
    /// The worker process `baton bench` starts (no-op handler; internal).
    #[command(hide = true)]
    BenchWorker(bench::worker::BenchWorkerArgs),
    /// Run workers and a producer under random faults on a private Redis, then check
    /// that no job was lost, stuck or wrongly failed (exit 1 if one was).
    Chaos(chaos::ChaosArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Interactive commands keep the terminal for their own output.
    let level = match cli.cmd {
        // The chaos run breaks Redis on purpose: the client library's reconnect warnings
        // are expected there; its report says what went wrong.
        Cmd::Chaos(_) => "error",
        Cmd::Demo(_) | Cmd::Bench(_) | Cmd::BenchWorker(_) | Cmd::Watch { .. } => "warn",
        _ => "info",
    };
    baton::telemetry::init_logging(cli.log_format == "json", level);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    };
    baton::telemetry::shutdown();
    code
}

async fn run(cli: Cli) -> baton::Result<ExitCode> {
    let given = cli.redis.given().then(|| cli.redis.config()).transpose()?;
    let cfg = cli.redis.config()?;
    cli.crypto.load()?;
    let conn = baton::conn::SharedConn::producer(cfg.clone())?;
    let url = &conn;
    match cli.cmd {
        Cmd::Check { json } => admin::check(url, json).await,
        Cmd::Add(a) => add::add(url, a).await,
        Cmd::AddBulk(a) => add::add_bulk(url, a).await,
        Cmd::AddFlow(a) => flow_cmd::add_flow(url, a).await,
        Cmd::Stats {
            queue,
            json,
            rescan,
        } => admin::stats(url, queue, json, rescan).await,
        Cmd::Job { queue, id, json } => admin::job(url, &queue, &id, json).await,
        Cmd::List {
            queue,
            state,
            limit,
            offset,
            json,
        } => admin::list(url, &queue, &state, offset, limit, json).await,
        Cmd::Cancel { queue, id, json } => admin::cancel(url, &queue, &id, json).await,
        Cmd::Retry {
            queue,
            id,
            all_failed,
            json,
        } => admin::retry(url, &queue, id, all_failed, json).await,
        Cmd::Remove { queue, id, json } => admin::remove(url, &queue, &id, json).await,
        Cmd::Pause { queue, json } => admin::pause(url, &queue, true, json).await,
        Cmd::Resume { queue, json } => admin::pause(url, &queue, false, json).await,
        Cmd::Limit {
            queue,
            concurrency,
            rate,
            group_concurrency,
            group_rate,
            json,
        } => {
            let limits = admin::Limits {
                concurrency,
                rate: rate.as_deref(),
                group_concurrency,
                group_rate: group_rate.as_deref(),
            };
            admin::limit(url, &queue, limits, json).await
        }
        Cmd::Schedule(s) => schedule::run(url, s).await,
        Cmd::Events(e) => events::run(url, e).await,
        Cmd::Clean {
            queue,
            state,
            older_than,
            limit,
            json,
        } => admin::clean(url, &queue, &state, older_than, limit, json).await,
        Cmd::Workers { queue, json } => admin::workers(url, queue, json).await,
        Cmd::Watch {
            queue,
            interval,
            iterations,
        } => watch::run(url, queue, interval, iterations).await,
        Cmd::Worker(w) => worker_cmd::run(&cfg, w).await,
        Cmd::Reencrypt(r) => reencrypt::run(url, r).await,
        Cmd::Uncompact(a) => uncompact::run(url, &a).await,
        Cmd::Serve {
            listen,
            read_only,
            hide_payloads_from_readers,
            rescan,
        } => {
            let token = std::env::var("BATON_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
            let stop = tokio_util::sync::CancellationToken::new();
            let s2 = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                s2.cancel();
            });
            let term = stop.clone();
            tokio::spawn(async move {
                if let Ok(mut t) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    t.recv().await;
                    term.cancel();
                }
            });
            // Read-only tokens, comma-separated so that one can be rotated in before the
            // old one is dropped.
            let read_tokens = std::env::var("BATON_API_READ_TOKEN")
                .unwrap_or_default()
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect();
            baton::http::serve_with(
                baton::http::ServeConfig {
                    redis: cfg,
                    listen,
                    token,
                },
                baton::http::ServeOptions {
                    read_tokens,
                    encryption: crypto_args::keyring(),
                    read_only,
                    hide_payloads_from_readers,
                    rescan,
                    ..Default::default()
                },
                stop,
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Demo(d) => demo::run(given, d).await,
        Cmd::Bench(b) => bench::run(given, b).await,
        Cmd::BenchWorker(w) => bench::worker::run(&cfg, w).await,
        Cmd::Chaos(c) => chaos::run(c).await,
    }
}
