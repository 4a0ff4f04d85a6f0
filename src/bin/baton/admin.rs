//! The admin commands: check, stats, job, list, cancel, retry, remove, pause, resume,
//! clean, workers (add is in `add.rs`). Each is a few lines over [`baton::Queue`];
//! each prints one JSON object with `--json`, shaped as the HTTP API's answer.

use std::process::ExitCode;
use std::time::Duration;

use baton::conn::SharedConn;
use baton::{Error, JobState, Queue, Result};
use serde_json::json;

/// The queue `name`, refused (as by the library and the HTTP API) when the name breaks
/// the rules of [`baton::validate::queue_name`].
pub(crate) fn queue(conn: &SharedConn, name: &str) -> Result<Queue> {
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

async fn queue_names(url: &SharedConn, one: Option<String>, rescan: bool) -> Result<Vec<String>> {
    match one {
        Some(q) => Ok(vec![q]),
        None if rescan => Queue::rescan(url).await,
        None => Queue::discover(url).await,
    }
}

pub async fn stats(
    url: &SharedConn,
    one: Option<String>,
    as_json: bool,
    rescan: bool,
) -> Result<ExitCode> {
    let single = one.is_some();
    let names = queue_names(url, one, rescan).await?;
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
        let name = match c.concurrency {
            Some(cap) => format!("{name} (at most {cap} running)"),
            None => name,
        };
        let name = match c.rate {
            Some(r) => format!("{name} (at most {r} started)"),
            None => name,
        };
        let name = match c.events {
            Some(cap) => format!("{name} (events on, {cap} kept)"),
            None => name,
        };
        let name = match c.group_concurrency {
            Some(cap) => format!("{name} (per group at most {cap} running)"),
            None => name,
        };
        let name = match c.group_rate {
            Some(r) => format!("{name} (per group at most {r} started)"),
            None => name,
        };
        let name = if c.groups_ready + c.groups_limited > 0 {
            format!(
                "{name} (groups: {} in line, {} held back)",
                c.groups_ready, c.groups_limited
            )
        } else {
            name
        };
        let name = if c.waiting_children > 0 {
            format!("{name} ({} waiting for children)", c.waiting_children)
        } else {
            name
        };
        let name = match c.held_until_ms {
            Some(t) => format!("{name} (held until {})", when(t)),
            None => name,
        };
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
    println!("created   {}", when(j.created_ms));
    for (label, at) in [
        ("due      ", j.due_ms),
        ("started  ", j.started_ms),
        ("finished ", j.finished_ms),
    ] {
        if let Some(at) = at {
            println!("{label} {}", when(at));
        }
    }
    if let Some(p) = &j.progress {
        println!("progress  {p}");
    }
    if let Some(r) = &j.result {
        println!("result    {r}");
    }
    if let Some(e) = &j.error {
        println!("error     {e}{}", of_attempt(j.error_attempt));
    }
    // Each retried or failed attempt, oldest first like the logs.
    for e in j.errors.iter().rev() {
        println!(
            "attempt {} failed at {}: {}",
            e.attempt,
            when(e.at_ms),
            e.error
        );
    }
    if let Some(w) = &j.worker {
        println!("worker    {w}");
    }
    if let Some(g) = &j.group {
        println!("group     {g}");
    }
    if let Some(d) = &j.dedup {
        println!("dedup     {d}");
    }
    if let Some(t) = &j.traceparent {
        println!("trace     {t}");
    }
    if let Some(p) = &j.parent {
        println!("parent    {p}");
    }
    for c in &j.children {
        let how = match (&c.result, &c.error) {
            (Some(r), _) => format!(": {r}"),
            (_, Some(e)) => format!(": {e}"),
            _ => String::new(),
        };
        println!("child     {}/{} {}{how}", c.queue, c.id, c.state);
    }
    for (name, v) in &j.steps {
        println!("step      {name} = {v}");
    }
    for (i, l) in j.logs.iter().enumerate() {
        let attempt = j.log_attempts.get(i).copied().flatten();
        println!("log       {l}{}", of_attempt(attempt));
    }
    Ok(ExitCode::SUCCESS)
}

/// " (attempt N)", or nothing when the attempt is not known.
fn of_attempt(a: Option<u32>) -> String {
    a.map(|a| format!(" (attempt {a})")).unwrap_or_default()
}

/// A Redis-clock time in ms as RFC 3339 (UTC), with how far from now.
fn when(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    let now = std::time::SystemTime::now();
    let rel = match t.duration_since(now) {
        Ok(ahead) => format!("in {}", round(ahead)),
        Err(e) => format!("{} ago", round(e.duration())),
    };
    format!("{} ({rel})", humantime::format_rfc3339_millis(t))
}

fn round(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
}

fn parse_state(s: &str) -> Result<JobState> {
    JobState::parse(s).ok_or_else(|| {
        Error::Invalid(format!(
            "unknown state {s:?}; use waiting, delayed, waiting-children, active, completed, failed or cancelled"
        ))
    })
}

pub async fn list(
    url: &SharedConn,
    q: &str,
    state: &str,
    offset: usize,
    limit: usize,
    as_json: bool,
) -> Result<ExitCode> {
    let queue = queue(url, q)?;
    let state = parse_state(state)?;
    if state == JobState::Delayed {
        // Delayed jobs are listed with the time they become ready.
        let due = queue.list_due(offset, limit).await?;
        if as_json {
            let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
            let jobs: Vec<_> = due
                .iter()
                .map(|(id, at)| json!({"id": id, "due_ms": at}))
                .collect();
            println!(
                "{}",
                json!({"queue": q, "state": state, "offset": offset, "ids": ids, "jobs": jobs})
            );
        } else {
            let w = due.iter().map(|(id, _)| id.len()).max().unwrap_or(0);
            for (id, at) in due {
                println!("{id:<w$}  due {}", when(at));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let ids = queue.list(state, offset, limit).await?;
    if as_json {
        println!(
            "{}",
            json!({"queue": q, "state": state, "offset": offset, "ids": ids})
        );
    } else {
        for id in ids {
            println!("{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `value` as JSON, or `text` for people.
pub(crate) fn say(as_json: bool, value: serde_json::Value, text: impl std::fmt::Display) {
    if as_json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

pub async fn cancel(url: &SharedConn, q: &str, id: &str, as_json: bool) -> Result<ExitCode> {
    let (result, text) = match queue(url, q)?.cancel(id).await? {
        baton::Cancelled::Now => ("cancelled", format!("cancelled {id}")),
        baton::Cancelled::Requested => (
            "cancel_requested",
            format!("cancel requested for running job {id}; its worker is stopping it"),
        ),
    };
    say(as_json, json!({"id": id, "result": result}), text);
    Ok(ExitCode::SUCCESS)
}

pub async fn retry(
    url: &SharedConn,
    q: &str,
    id: Option<String>,
    all_failed: bool,
    as_json: bool,
) -> Result<ExitCode> {
    let queue = queue(url, q)?;
    match (id, all_failed) {
        (Some(id), _) => {
            queue.retry(&id).await?;
            let text = format!("queued {id} again");
            say(as_json, json!({"id": id, "result": "queued"}), text);
        }
        (None, true) => {
            let n = queue.retry_all_failed(100_000).await?;
            let text = format!("queued {n} failed jobs again");
            say(as_json, json!({"queue": q, "retried": n}), text);
        }
        (None, false) => return Err(Error::Invalid("give a job id or --all-failed".into())),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn remove(url: &SharedConn, q: &str, id: &str, as_json: bool) -> Result<ExitCode> {
    queue(url, q)?.remove(id).await?;
    say(
        as_json,
        json!({"id": id, "removed": true}),
        format!("removed {id}"),
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn pause(url: &SharedConn, q: &str, pause: bool, as_json: bool) -> Result<ExitCode> {
    let queue = queue(url, q)?;
    if pause {
        queue.pause().await?;
    } else {
        queue.resume().await?;
    }
    let text = format!("{} {q}", if pause { "paused" } else { "resumed" });
    say(as_json, json!({"queue": q, "paused": pause}), text);
    Ok(ExitCode::SUCCESS)
}

/// What `baton limit` was asked to set (None: leave as is).
pub struct Limits<'a> {
    pub concurrency: Option<u32>,
    pub rate: Option<&'a str>,
    pub group_concurrency: Option<u32>,
    pub group_rate: Option<&'a str>,
}

pub async fn limit(url: &SharedConn, q: &str, l: Limits<'_>, as_json: bool) -> Result<ExitCode> {
    let rate = l.rate.map(baton::validate::rate).transpose()?;
    let group_rate = l.group_rate.map(baton::validate::rate).transpose()?;
    let queue = queue(url, q)?;
    if let Some(c) = l.concurrency {
        queue.set_concurrency(Some(c).filter(|c| *c > 0)).await?;
    }
    if let Some(r) = rate {
        queue.set_rate_limit(r).await?;
    }
    if l.group_concurrency.is_some() || group_rate.is_some() {
        // The one not given stays as it is.
        let now = queue.counts().await?;
        let gc = match l.group_concurrency {
            Some(c) => Some(c).filter(|c| *c > 0),
            None => now.group_concurrency.map(|c| c as u32),
        };
        let gr = match group_rate {
            Some(r) => r,
            None => now
                .group_rate
                .map(|r| (r.max, Duration::from_millis(r.per_ms))),
        };
        queue.set_group_limits(gc, gr).await?;
    }
    let counts = queue.counts().await?;
    let cap = counts
        .concurrency
        .map_or("no concurrency cap".to_string(), |c| {
            format!("at most {c} running at once")
        });
    let per = counts.rate.map_or("no rate limit".to_string(), |r| {
        format!("at most {r} started")
    });
    let mut text = format!("{q}: {cap}, {per}, over all workers");
    if let Some(c) = counts.group_concurrency {
        text.push_str(&format!("; per group at most {c} running at once"));
    }
    if let Some(r) = counts.group_rate {
        text.push_str(&format!("; per group at most {r} started"));
    }
    say(
        as_json,
        json!({"queue": q, "concurrency": counts.concurrency, "rate": counts.rate,
            "group_concurrency": counts.group_concurrency, "group_rate": counts.group_rate}),
        text,
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn clean(
    url: &SharedConn,
    q: &str,
    state: &str,
    older_than: Duration,
    limit: usize,
    as_json: bool,
) -> Result<ExitCode> {
    let n = queue(url, q)?
        .clean(parse_state(state)?, older_than, limit)
        .await?;
    let text = format!("deleted {n} {state} jobs");
    say(
        as_json,
        json!({"queue": q, "state": state, "deleted": n}),
        text,
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn workers(url: &SharedConn, one: Option<String>, as_json: bool) -> Result<ExitCode> {
    let mut all = Vec::new();
    for n in queue_names(url, one, false).await? {
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
