//! `baton schedule set|list|remove`: job schedulers from the command line. A scheduler
//! is described as the HTTP API describes it ([`SchedulerRequest`]: `cron` with `tz`,
//! or `every`; the job template with the options of `baton add`), checked by the same
//! code.

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use baton::conn::SharedConn;
use baton::validate::SchedulerRequest;
use baton::{Error, Result, SchedulerInfo};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::add::JobFlags;
use crate::admin::{queue, say};

/// `baton schedule …`.
#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Create or replace a job scheduler: one job per tick, whatever the number of
    /// workers.
    Set(Box<SetArgs>),
    /// The schedulers of a queue, each with its next run.
    List {
        /// Queue.
        queue: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Remove a scheduler; its job for a tick not yet come is deleted too.
    Remove {
        /// Queue.
        queue: String,
        /// Scheduler id.
        id: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// `baton schedule set`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("repeat").required(true).args(["cron", "every"])))]
pub struct SetArgs {
    /// Queue.
    queue: String,
    /// Scheduler id (setting an existing one replaces it).
    id: String,
    /// Cron expression: 5 fields, or 6 with seconds first (`*/10 * * * * *`).
    #[arg(long)]
    cron: Option<String>,
    /// The cron expression's IANA time zone (e.g. Europe/Berlin; default UTC).
    #[arg(long, requires = "cron")]
    tz: Option<String>,
    /// A fixed interval instead (e.g. 30s, 5m; at least 1s).
    #[arg(long)]
    every: Option<String>,
    /// Each job's payload as JSON.
    #[arg(long, value_name = "JSON", default_value = "null")]
    data: String,
    /// No tick before this (RFC 3339, e.g. 2026-12-01T08:00:00Z).
    #[arg(long)]
    start: Option<String>,
    /// No tick after this (RFC 3339).
    #[arg(long)]
    end: Option<String>,
    /// At most this many jobs in all.
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    flags: JobFlags,
}

pub async fn run(url: &SharedConn, cmd: ScheduleCmd) -> Result<ExitCode> {
    match cmd {
        ScheduleCmd::Set(a) => set(url, *a).await,
        ScheduleCmd::List { queue: q, json } => list(url, &q, json).await,
        ScheduleCmd::Remove { queue: q, id, json } => {
            let removed = queue(url, &q)?.remove_scheduler(&id).await?;
            let text = if removed {
                format!("removed scheduler {id} of {q}")
            } else {
                format!("no scheduler {id} in {q}; nothing changed")
            };
            say(
                json,
                json!({"queue": q, "id": id, "removed": removed}),
                text,
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn set(url: &SharedConn, a: SetArgs) -> Result<ExitCode> {
    let data: serde_json::Value = serde_json::from_str(&a.data)
        .map_err(|e| Error::Invalid(format!("--data is not valid JSON: {e}")))?;
    let req = SchedulerRequest {
        cron: a.cron,
        tz: a.tz,
        every: a.every,
        start: a.start,
        end: a.end,
        limit: a.limit,
        job: baton::validate::JobRequest {
            data,
            ..a.flags.request()
        },
    };
    let s = req.scheduler(&a.id)?;
    let q = queue(url, &a.queue)?.max_payload(a.flags.max_payload);
    let info = q.upsert_scheduler(&a.id, &s).await?;
    say(
        a.flags.json,
        with_queue(&a.queue, &info),
        format!(
            "scheduler {} of {}: {}, next run {}",
            info.id,
            a.queue,
            rule(&info),
            when(info.next_run_ms)
        ),
    );
    Ok(ExitCode::SUCCESS)
}

async fn list(url: &SharedConn, q: &str, as_json: bool) -> Result<ExitCode> {
    let all = queue(url, q)?.schedulers().await?;
    if as_json {
        println!("{}", json!({"queue": q, "schedulers": all}));
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        println!("no schedulers in {q}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:<32} {:<26} {:>6}  NAME",
        "ID", "RULE", "NEXT RUN", "RUNS"
    );
    for s in &all {
        let runs = match s.limit {
            Some(l) => format!("{}/{l}", s.runs),
            None => s.runs.to_string(),
        };
        println!(
            "{:<24} {:<32} {:<26} {:>6}  {}",
            s.id,
            rule(s),
            when(s.next_run_ms),
            runs,
            s.name
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn with_queue(q: &str, info: &SchedulerInfo) -> serde_json::Value {
    let mut v = serde_json::to_value(info).unwrap_or_default();
    v["queue"] = json!(q);
    v
}

/// The rule in words: `cron */5 * * * * (Europe/Berlin)` or `every 30s`.
fn rule(s: &SchedulerInfo) -> String {
    match (&s.cron, s.every_ms) {
        (Some(c), _) => format!("cron {c} ({})", s.tz.as_deref().unwrap_or("UTC")),
        (None, Some(ms)) => format!(
            "every {}",
            humantime::format_duration(Duration::from_millis(ms))
        ),
        (None, None) => "?".into(),
    }
}

/// A time (ms since the epoch) as RFC 3339 UTC, or `ended`.
fn when(ms: Option<u64>) -> String {
    match ms {
        Some(ms) => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        None => "ended".into(),
    }
}
