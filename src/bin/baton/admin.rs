//! The admin commands: check, add, stats, job, list, cancel, retry, remove, pause,
//! resume, clean, workers. Each is a few lines over [`baton::Queue`].

use std::process::ExitCode;
use std::time::Duration;

use baton::conn::SharedConn;
use baton::{Error, JobOptions, JobState, Queue, Result};
use clap::Args;
use serde_json::json;

/// `baton add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Queue.
    queue: String,
    /// Payload as JSON.
    json: String,
    /// Job name.
    #[arg(long, default_value = "job")]
    name: String,
    /// Run no earlier than this from now (e.g. 5s, 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    delay: Option<Duration>,
    /// Priority: 1 is the highest; none runs before prioritized jobs.
    #[arg(long)]
    priority: Option<u32>,
    /// Attempts in all.
    #[arg(long)]
    attempts: Option<u32>,
    /// Job id (adding an existing id changes nothing).
    #[arg(long)]
    job_id: Option<String>,
    /// Per-attempt timeout (e.g. 30s; at least 1ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    /// Largest payload accepted, in bytes encoded as MessagePack (default 4 MiB).
    #[arg(long, default_value_t = baton::queue::DEFAULT_MAX_PAYLOAD)]
    max_payload: usize,
}

/// The queue `name`, refused (as by the library and the HTTP API) when the name breaks
/// the rules of [`baton::validate::queue_name`].
fn queue(conn: &SharedConn, name: &str) -> Result<Queue> {
    baton::validate::queue_name(name)?;
    Ok(crate::crypto_args::with_keys(Queue::with_conn(
        conn.clone(),
        name,
    )))
}

pub async fn check(url: &SharedConn, json: bool) -> Result<ExitCode> {
    let report = baton::config::check_all(url.connector()).await?;
    if json {
        println!(
            "{}",
            json!({"fit": report.is_fit(), "version": report.version, "source": report.source, "problems": report.problems})
        );
    } else if report.is_fit() {
        println!(
            "ok: redis {} is fit for a durable queue (noeviction, AOF on; read via {})",
            report.version, report.source
        );
    } else {
        println!(
            "redis {} is NOT fit for a durable queue (read via {}):\n{}",
            report.version,
            report.source,
            report.message()
        );
    }
    Ok(if report.is_fit() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn add(url: &SharedConn, a: AddArgs) -> Result<ExitCode> {
    let queue = queue(url, &a.queue)?.max_payload(a.max_payload);
    let data: serde_json::Value = serde_json::from_str(&a.json)
        .map_err(|e| Error::Invalid(format!("payload is not valid JSON: {e}")))?;
    let mut opts = JobOptions::default();
    if let Some(d) = a.delay {
        opts = opts.delay(d);
    }
    if let Some(p) = a.priority {
        opts = opts.priority(p);
    }
    if let Some(n) = a.attempts {
        opts = opts.attempts(n);
    }
    if let Some(id) = a.job_id {
        opts = opts.job_id(id);
    }
    if let Some(t) = a.timeout {
        opts = opts.timeout(t);
    }
    let added = queue.add(&a.name, &data, opts).await?;
    println!("{}", added.id);
    if !added.added {
        eprintln!("note: job {} already existed; nothing changed", added.id);
    }
    Ok(ExitCode::SUCCESS)
}

async fn queue_names(url: &SharedConn, one: Option<String>) -> Result<Vec<String>> {
    match one {
        Some(q) => Ok(vec![q]),
        None => Queue::discover(url).await,
    }
}

pub async fn stats(url: &SharedConn, one: Option<String>, as_json: bool) -> Result<ExitCode> {
    let single = one.is_some();
    let names = queue_names(url, one).await?;
    let mut rows = Vec::new();
    for n in &names {
        rows.push((n.clone(), queue(url, n)?.counts().await?));
    }
    if as_json {
        let obj = |(n, c): &(String, baton::Counts)| {
            let mut v = serde_json::to_value(c).unwrap();
            v["queue"] = json!(n);
            v
        };
        if single {
            println!("{}", obj(&rows[0]));
        } else {
            println!(
                "{}",
                json!({"queues": rows.iter().map(obj).collect::<Vec<_>>()})
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>10} {:>9} {:>10}",
        "QUEUE", "WAITING", "DELAYED", "ACTIVE", "COMPLETED", "FAILED", "CANCELLED"
    );
    for (n, c) in rows {
        let name = if c.paused { format!("{n} (paused)") } else { n };
        println!(
            "{:<24} {:>9} {:>9} {:>9} {:>10} {:>9} {:>10}",
            name, c.waiting, c.delayed, c.active, c.completed, c.failed, c.cancelled
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn job(url: &SharedConn, q: &str, id: &str, as_json: bool) -> Result<ExitCode> {
    let Some(j) = queue(url, q)?.job(id).await? else {
        return Err(Error::NotFound {
            queue: q.into(),
            id: id.into(),
        });
    };
    if as_json {
        println!("{}", serde_json::to_string(&j).unwrap());
        return Ok(ExitCode::SUCCESS);
    }
    println!("job       {} (queue {}, name {})", j.id, j.queue, j.name);
    println!(
        "state     {}{}",
        j.state,
        if j.cancel_requested {
            " (cancel requested)"
        } else {
            ""
        }
    );
    println!(
        "attempt   {} of {} (stalled {} times)",
        j.attempt, j.attempts, j.stalled
    );
    println!("data      {}", j.data);
    if let Some(p) = &j.progress {
        println!("progress  {p}");
    }
    if let Some(r) = &j.result {
        println!("result    {r}");
    }
    if let Some(e) = &j.error {
        println!("error     {e}");
    }
    if let Some(w) = &j.worker {
        println!("worker    {w}");
    }
    for (name, v) in &j.steps {
        println!("step      {name} = {v}");
    }
    for l in &j.logs {
        println!("log       {l}");
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_state(s: &str) -> Result<JobState> {
    JobState::parse(s).ok_or_else(|| {
        Error::Invalid(format!(
            "unknown state {s:?}; use waiting, delayed, active, completed, failed or cancelled"
        ))
    })
}

pub async fn list(
    url: &SharedConn,
    q: &str,
    state: &str,
    limit: usize,
    as_json: bool,
) -> Result<ExitCode> {
    let ids = queue(url, q)?.list(parse_state(state)?, 0, limit).await?;
    if as_json {
        println!("{}", json!({"queue": q, "state": state, "ids": ids}));
    } else {
        for id in ids {
            println!("{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn cancel(url: &SharedConn, q: &str, id: &str) -> Result<ExitCode> {
    match queue(url, q)?.cancel(id).await? {
        baton::Cancelled::Now => println!("cancelled {id}"),
        baton::Cancelled::Requested => {
            println!("cancel requested for running job {id}; its worker is stopping it")
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn retry(
    url: &SharedConn,
    q: &str,
    id: Option<String>,
    all_failed: bool,
) -> Result<ExitCode> {
    let queue = queue(url, q)?;
    match (id, all_failed) {
        (Some(id), _) => {
            queue.retry(&id).await?;
            println!("queued {id} again");
        }
        (None, true) => println!(
            "queued {} failed jobs again",
            queue.retry_all_failed(100_000).await?
        ),
        (None, false) => return Err(Error::Invalid("give a job id or --all-failed".into())),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(url: &SharedConn, q: &str, id: &str) -> Result<ExitCode> {
    queue(url, q)?.remove(id).await?;
    println!("removed {id}");
    Ok(ExitCode::SUCCESS)
}

pub async fn pause(url: &SharedConn, q: &str, pause: bool) -> Result<ExitCode> {
    let queue = queue(url, q)?;
    if pause {
        queue.pause().await?;
        println!("paused {q}");
    } else {
        queue.resume().await?;
        println!("resumed {q}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn clean(
    url: &SharedConn,
    q: &str,
    state: &str,
    older_than: Duration,
    limit: usize,
) -> Result<ExitCode> {
    let n = queue(url, q)?
        .clean(parse_state(state)?, older_than, limit)
        .await?;
    println!("deleted {n} {state} jobs");
    Ok(ExitCode::SUCCESS)
}

pub async fn workers(url: &SharedConn, one: Option<String>, as_json: bool) -> Result<ExitCode> {
    let mut all = Vec::new();
    for n in queue_names(url, one).await? {
        for (id, info) in queue(url, &n)?.workers().await? {
            all.push(json!({"queue": n, "id": id, "info": info}));
        }
    }
    if as_json {
        println!("{}", json!({"workers": all}));
    } else {
        // Each column as wide as its widest cell: queue names and worker ids (host name,
        // pid, suffix) have no fixed length.
        let rows: Vec<[String; 4]> = all
            .iter()
            .map(|w| {
                [
                    w["queue"].as_str().unwrap_or("").to_string(),
                    w["id"].as_str().unwrap_or("").to_string(),
                    w["info"]["in_flight"].to_string(),
                    w["info"]["concurrency"].to_string(),
                ]
            })
            .collect();
        let head = ["QUEUE", "WORKER", "IN-FLIGHT", "CONCURRENCY"].map(String::from);
        let width = |i: usize| {
            rows.iter()
                .map(|r| r[i].len())
                .fold(head[i].len(), usize::max)
        };
        let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
        for r in std::iter::once(&head).chain(&rows) {
            println!("{:<w0$}  {:<w1$}  {:>w2$}  {:>w3$}", r[0], r[1], r[2], r[3]);
        }
    }
    Ok(ExitCode::SUCCESS)
}
