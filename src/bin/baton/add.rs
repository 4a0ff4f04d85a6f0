//! `baton add` and `baton add-bulk`: new jobs from the command line. A job is described
//! as the HTTP API describes it ([`JobRequest`]: the same option names, durations as
//! text such as `30s`), and checked by the same code, so the two cannot drift apart.

use std::io::Read;
use std::process::ExitCode;

use baton::conn::SharedConn;
use baton::validate::JobRequest;
use baton::{Error, NewJob, Result};
use clap::Args;
use serde_json::json;

/// The options of a new job, as flags; each line of `add-bulk` may override them.
#[derive(Debug, Args)]
pub struct JobFlags {
    /// Job name (default `job`; for `schedule set`, the scheduler id).
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Run no earlier than this from now (e.g. 5s, 10m).
    #[arg(long)]
    delay: Option<String>,
    /// Priority: 1 is the highest; none runs before prioritized jobs.
    #[arg(long)]
    priority: Option<u32>,
    /// The job's group (e.g. a tenant): groups are served in turns, under the queue's
    /// group limits (`baton limit --group-concurrency/--group-rate`).
    #[arg(long)]
    group: Option<String>,
    /// Attempts in all (1 = no retry).
    #[arg(long)]
    attempts: Option<u32>,
    /// Between attempts: fixed:5s or exponential:BASE[:MAX][:no-jitter] (default
    /// exponential:1s:10m).
    #[arg(long)]
    backoff: Option<String>,
    /// Per-attempt timeout (e.g. 30s; at least 1ms).
    #[arg(long)]
    timeout: Option<String>,
    /// Completed jobs to keep: all, none, a count (1000), an age (1d) or both (1000,1d).
    #[arg(long)]
    keep_completed: Option<String>,
    /// Failed and cancelled jobs to keep: as --keep-completed.
    #[arg(long)]
    keep_failed: Option<String>,
    /// Deduplication key: while a job added with it is not finished, adds with it add
    /// nothing and print the id of the job that stands.
    #[arg(long, value_name = "KEY")]
    dedup: Option<String>,
    /// With --dedup: ignore adds with the key for this long (e.g. 30s), whatever the job
    /// does.
    #[arg(long, requires = "dedup", conflicts_with = "debounce")]
    dedup_ttl: Option<String>,
    /// With --dedup: run the job this long after the last add with the key, with the last
    /// payload (e.g. 5s; not with --delay).
    #[arg(long, requires = "dedup")]
    debounce: Option<String>,
    /// Largest payload accepted, in bytes encoded as MessagePack (default 4 MiB).
    #[arg(long, default_value_t = baton::queue::DEFAULT_MAX_PAYLOAD)]
    pub(crate) max_payload: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

impl JobFlags {
    /// The job name given, else `job`.
    fn name(&self) -> String {
        self.name.clone().unwrap_or_else(|| "job".into())
    }

    /// The flags as a [`JobRequest`] (the name only if given).
    pub(crate) fn request(&self) -> JobRequest {
        JobRequest {
            name: self.name.clone(),
            delay: self.delay.clone(),
            priority: self.priority,
            group: self.group.clone(),
            attempts: self.attempts,
            backoff: self.backoff.clone(),
            timeout: self.timeout.clone(),
            keep_completed: self.keep_completed.clone(),
            keep_failed: self.keep_failed.clone(),
            dedup: self.dedup.clone(),
            dedup_ttl: self.dedup_ttl.clone(),
            debounce: self.debounce.clone(),
            ..JobRequest::default()
        }
    }
}

/// `baton add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// Queue.
    queue: String,
    /// Payload as JSON; `-` reads it from stdin.
    #[arg(value_name = "JSON")]
    payload: String,
    /// Job id (adding an existing id changes nothing).
    #[arg(long)]
    job_id: Option<String>,
    /// The W3C trace context the job joins (00-<trace id>-<span id>-<flags>); read from
    /// `TRACEPARENT` when the flag is absent, as OpenTelemetry's environment carrier
    /// asks, so a traced script's `baton add` joins its trace.
    #[arg(long, env = "TRACEPARENT")]
    traceparent: Option<String>,
    /// Wait this long (e.g. 30s) for the job to end and print its result (or error);
    /// exit 0 completed, 3 failed, 4 cancelled, 124 still not ended.
    #[arg(long, value_parser = humantime::parse_duration)]
    wait: Option<std::time::Duration>,
    #[command(flatten)]
    flags: JobFlags,
}

/// `baton add --wait` exit code: the job failed.
pub const EXIT_FAILED: u8 = 3;
/// `baton add --wait` exit code: the job was cancelled.
pub const EXIT_CANCELLED: u8 = 4;
/// `baton add --wait` exit code: the job had not ended in time (as `timeout(1)`).
pub const EXIT_TIMED_OUT: u8 = 124;

/// `baton add-bulk`.
#[derive(Debug, Args)]
pub struct AddBulkArgs {
    /// Queue.
    queue: String,
    /// A file of JSON lines, one job a line (`-` for stdin): each an object with the
    /// fields of the HTTP API's add body (`name`, `data`, `job_id`, `delay`, `priority`,
    /// `attempts`, `backoff`, `timeout`, `keep_completed`, `keep_failed`, `dedup`,
    /// `dedup_ttl`, `debounce`, `traceparent`); what a line
    /// leaves out comes from the flags. Empty lines are skipped.
    file: String,
    /// Jobs per atomic add (at most 10000).
    #[arg(long, default_value_t = 1000)]
    chunk: usize,
    /// The W3C trace context of every line that names none (also from `TRACEPARENT`).
    #[arg(long, env = "TRACEPARENT")]
    traceparent: Option<String>,
    #[command(flatten)]
    flags: JobFlags,
}

pub(crate) fn read_input(path: &str) -> Result<String> {
    let mut text = String::new();
    if path == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::Invalid(format!("cannot read stdin: {e}")))?;
    } else {
        text = std::fs::read_to_string(path)
            .map_err(|e| Error::Invalid(format!("cannot read {path}: {e}")))?;
    }
    Ok(text)
}

pub async fn add(url: &SharedConn, a: AddArgs) -> Result<ExitCode> {
    let queue = crate::admin::queue(url, &a.queue)?.max_payload(a.flags.max_payload);
    let text = if a.payload == "-" {
        read_input("-")?
    } else {
        a.payload.clone()
    };
    let data: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::Invalid(format!("payload is not valid JSON: {e}")))?;
    let req = JobRequest {
        job_id: a.job_id.clone(),
        traceparent: a.traceparent.clone(),
        ..a.flags.request()
    };
    let added = queue.add(&a.flags.name(), &data, req.options()?).await?;
    if let Some(wait) = a.wait {
        return waited(&queue, &added.id, wait, a.flags.json).await;
    }
    if a.flags.json {
        println!(
            "{}",
            json!({"id": added.id, "added": added.added, "deduplicated": added.deduplicated})
        );
    } else {
        println!("{}", added.id);
        if added.deduplicated {
            eprintln!(
                "note: job {} stands under this dedup key; nothing added",
                added.id
            );
        } else if !added.added {
            eprintln!("note: job {} already existed; nothing changed", added.id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Waits for the job, prints its outcome and turns it into the exit code.
pub(crate) async fn waited(
    queue: &baton::Queue,
    id: &str,
    wait: std::time::Duration,
    as_json: bool,
) -> Result<ExitCode> {
    use baton::JobOutcome;
    let out = queue.wait_finished(id, wait).await?;
    let (code, state) = match &out {
        Some(JobOutcome::Completed { .. }) => (0, "completed"),
        Some(JobOutcome::Failed { .. }) => (EXIT_FAILED, "failed"),
        Some(JobOutcome::Cancelled { .. }) => (EXIT_CANCELLED, "cancelled"),
        None => (EXIT_TIMED_OUT, "timed_out"),
    };
    if as_json {
        let mut v = match &out {
            Some(o) => serde_json::to_value(o).expect("outcome serializes"),
            None => json!({"state": state}),
        };
        v["id"] = json!(id);
        println!("{v}");
    } else {
        match &out {
            Some(JobOutcome::Completed { result }) => println!("{result}"),
            Some(JobOutcome::Failed { error: e } | JobOutcome::Cancelled { error: e }) => {
                eprintln!("job {id} {state}: {e}")
            }
            None => eprintln!(
                "job {id} has not ended after {}",
                humantime::format_duration(wait)
            ),
        }
    }
    Ok(ExitCode::from(code))
}

pub async fn add_bulk(url: &SharedConn, a: AddBulkArgs) -> Result<ExitCode> {
    if a.chunk == 0 || a.chunk > 10_000 {
        return Err(Error::Invalid(format!(
            "--chunk must be 1 to 10000, got {}",
            a.chunk
        )));
    }
    let queue = crate::admin::queue(url, &a.queue)?.max_payload(a.flags.max_payload);
    let defaults = JobRequest {
        traceparent: a.traceparent.clone(),
        ..a.flags.request()
    };
    // Every line is read and checked before anything is sent: a typo on line 9000
    // does not leave 8999 jobs added.
    let mut jobs = Vec::new();
    for (n, line) in read_input(&a.file)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = |e: String| Error::Invalid(format!("{} line {}: {e}", a.file, n + 1));
        let req: JobRequest = serde_json::from_str(line).map_err(|e| at(e.to_string()))?;
        let req = req.or(&defaults);
        let opts = req.options().map_err(|e| at(e.to_string()))?;
        let name = req.name.unwrap_or_else(|| a.flags.name());
        jobs.push(NewJob::new(name, req.data).with_opts(opts));
    }
    let (mut ids, mut added, mut dedup) = (Vec::with_capacity(jobs.len()), 0, 0);
    for chunk in jobs.chunks(a.chunk) {
        for r in queue.add_bulk(chunk).await? {
            added += usize::from(r.added);
            dedup += usize::from(r.deduplicated);
            ids.push(r.id);
        }
    }
    let existing = ids.len() - added - dedup;
    if a.flags.json {
        println!(
            "{}",
            json!({"queue": a.queue, "added": added, "existing": existing,
                   "deduplicated": dedup, "ids": ids})
        );
    } else if dedup > 0 {
        println!(
            "added {added} jobs to {} ({existing} existed already, {dedup} deduplicated: \
             nothing added for them)",
            a.queue
        );
    } else {
        println!(
            "added {added} jobs to {} ({existing} existed already; nothing changed for them)",
            a.queue
        );
    }
    Ok(ExitCode::SUCCESS)
}
