//! Adding jobs: [`Queue::add`] and [`Queue::add_bulk`], and the checks and encoding every
//! new job goes through before anything is sent.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::Queue;
use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::job::{DedupMode, JobOptions, RunOptions, MAX_PRIORITY};
use crate::metrics as m;
use crate::scripts::{self, AddOutcome, NewJobArgs};

/// What [`Queue::add`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Added {
    /// The job id (given or generated).
    pub id: String,
    /// False when a job with this id already existed, or when the add was deduplicated;
    /// then nothing was added.
    pub added: bool,
    /// True when the job's dedup key ([`Dedup`](crate::Dedup)) stands: `id` is then the
    /// job that stands, and nothing was added (in debounce mode that job took the new
    /// payload and its delay restarted).
    pub deduplicated: bool,
}

impl Added {
    fn of(id: String, outcome: AddOutcome) -> Added {
        match outcome {
            AddOutcome::Added => Added {
                id,
                added: true,
                deduplicated: false,
            },
            AddOutcome::Exists => Added {
                id,
                added: false,
                deduplicated: false,
            },
            AddOutcome::Deduplicated(id) => Added {
                id,
                added: false,
                deduplicated: true,
            },
        }
    }
}

/// One job for [`Queue::add_bulk`].
#[derive(Debug, Clone)]
pub struct NewJob<T> {
    /// Job name (what kind of work; free text).
    pub name: String,
    /// The payload.
    pub data: T,
    /// Options.
    pub opts: JobOptions,
}

impl<T> NewJob<T> {
    /// A job with default options.
    pub fn new(name: impl Into<String>, data: T) -> Self {
        NewJob {
            name: name.into(),
            data,
            opts: JobOptions::default(),
        }
    }
    /// With options.
    pub fn with_opts(mut self, opts: JobOptions) -> Self {
        self.opts = opts;
        self
    }
}

/// The largest batch [`Queue::add_bulk`] sends as one script call.
const MAX_BULK: usize = 10_000;

impl Queue {
    /// Adds one job. With a `job_id` that exists, nothing changes and `added` is false.
    /// With a [`Dedup`](crate::Dedup) key that stands, nothing is added (a debounce
    /// replaces the payload of the job that stands) and the answer names that job.
    ///
    /// Refused before anything is sent ([`Error::Invalid`], [`Error::PayloadTooLarge`]):
    /// a bad queue name, job id or job name, out-of-range options, a payload over the
    /// limit. When the reply does not come back, [`Error::MaybeAdded`] names the id to
    /// add again.
    ///
    /// Adds to one queue that callers make at the same time over one connection (any
    /// handle made from it) ride in one script call: an add waits for at most the call
    /// already on its way, never for a timer, and each job is still added on its own
    /// as if it came alone (see `src/queue/coalesce.rs`). Not for a
    /// [`Queue::durable`] handle.
    pub async fn add<T: Serialize>(&self, name: &str, data: &T, opts: JobOptions) -> Result<Added> {
        self.check_name()?;
        let args = encode(name, data, &opts, self.max_payload, self.keyring.as_deref())?;
        let id = args.id.clone();
        let out = if self.durable.is_none() {
            self.add_merged(args).await?
        } else {
            let out = self.send_add(std::slice::from_ref(&args)).await?;
            out.into_iter().next().unwrap_or(AddOutcome::Exists)
        };
        let added = Added::of(id, out);
        if added.added {
            metrics::counter!(m::JOBS_ENQUEUED, "queue" => self.name().to_string()).increment(1);
        }
        Ok(added)
    }

    /// Adds many jobs atomically: one script call, all jobs or none. Larger than
    /// 10 000 jobs is refused; split it (each split is then atomic on its own).
    pub async fn add_bulk<T: Serialize>(&self, jobs: &[NewJob<T>]) -> Result<Vec<Added>> {
        if jobs.len() > MAX_BULK {
            return Err(Error::Invalid(format!(
                "add_bulk takes at most {MAX_BULK} jobs, got {}",
                jobs.len()
            )));
        }
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        self.check_name()?;
        let args = jobs
            .iter()
            .map(|j| {
                encode(
                    &j.name,
                    &j.data,
                    &j.opts,
                    self.max_payload,
                    self.keyring.as_deref(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let out = self.send_add(&args).await?;
        let added: Vec<Added> = args
            .into_iter()
            .zip(out)
            .map(|(a, o)| Added::of(a.id, o))
            .collect();
        let n = added.iter().filter(|a| a.added).count();
        metrics::counter!(m::JOBS_ENQUEUED, "queue" => self.name().to_string()).increment(n as u64);
        Ok(added)
    }

    /// Sends one `add.lua` call. An error after the call was sent that leaves its fate
    /// unknown (no reply in time, the connection broke) becomes [`Error::MaybeAdded`].
    pub(super) async fn send_add(&self, args: &[NewJobArgs]) -> Result<Vec<AddOutcome>> {
        // Once per process and queue: the registry lists the queue from now on. Its own
        // time budget, outside the add's (on a Cluster the registry is on another node,
        // maybe one more connection to make); a failure does not stop the add and is
        // tried again at the next one.
        super::registry::ensure_or_warn(&self.conn, self.name()).await;
        let sent = AtomicBool::new(false);
        let r = self
            .bounded(async {
                let mut c = self.conn().await?;
                sent.store(true, Ordering::SeqCst);
                let added = scripts::add(&mut c, &self.keys, args).await?;
                self.wait_replicated(&mut c, args).await?;
                Ok(added)
            })
            .await;
        match r {
            // A refused connection or a failed connect sent nothing; a reply that says
            // why it refused is an answer. Only silence or a broken link leaves it open.
            Err(e)
                if sent.load(Ordering::SeqCst)
                    && e.is_connection()
                    && !matches!(&e, Error::Connect { .. })
                    && !matches!(&e, Error::Redis(r) if r.is_connection_refusal()) =>
            {
                Err(Error::MaybeAdded {
                    ids: args.iter().map(|a| a.id.clone()).collect(),
                    detail: e.to_string(),
                })
            }
            r => r,
        }
    }
}

/// A `Vec` that refuses to grow past `limit` bytes (the encoder then stops).
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("payload over the limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The payload as MessagePack, refused as soon as it grows past `limit` bytes.
fn encode_payload<T: Serialize>(data: &T, id: &str, limit: usize) -> Result<Vec<u8>> {
    let mut w = Capped {
        buf: Vec::new(),
        limit,
        over: false,
    };
    match rmp_serde::encode::write_named(&mut w, data) {
        Ok(()) => Ok(w.buf),
        Err(_) if w.over => Err(Error::PayloadTooLarge {
            id: id.to_string(),
            limit,
        }),
        Err(e) => Err(Error::Encode(e.to_string())),
    }
}

/// One job as `add.lua` takes it; the payload encrypted when a keyring is given (the
/// limit applies to the plaintext, what the caller controls).
/// The current span's trace, when the `otel` feature is on and an OpenTelemetry layer
/// gives the span one.
fn current_trace() -> Option<crate::job::TraceParent> {
    #[cfg(feature = "otel")]
    {
        crate::job::TraceParent::current()
    }
    #[cfg(not(feature = "otel"))]
    {
        None
    }
}

pub(super) fn encode<T: Serialize>(
    name: &str,
    data: &T,
    o: &JobOptions,
    limit: usize,
    keyring: Option<&Keyring>,
) -> Result<NewJobArgs> {
    let (id, delay) = check(name, o)?;
    let payload = encode_payload(data, &id, limit)?;
    Ok(build(name, o, id, delay, payload, keyring))
}

/// Checks a new job's name and options; returns its id (made here when the caller gave
/// none) and its delay (a debounce window is one).
pub(super) fn check(name: &str, o: &JobOptions) -> Result<(String, std::time::Duration)> {
    crate::validate::job_name(name)?;
    if o.priority > MAX_PRIORITY {
        return Err(Error::Invalid(format!(
            "priority {} is above the maximum {MAX_PRIORITY}",
            o.priority
        )));
    }
    if let Some(t) = o.timeout.filter(|t| t.as_millis() == 0) {
        return Err(Error::Invalid(format!(
            "timeout must be at least 1ms (it is kept in whole milliseconds), got {t:?}"
        )));
    }
    if o.attempts == 0 {
        return Err(Error::Invalid("attempts must be at least 1".into()));
    }
    if let Some(id) = &o.job_id {
        crate::validate::job_id(id)?;
    }
    // Debounce: the window is the job's delay (restarted by every add with the key).
    let mut delay = o.delay;
    if let Some(d) = &o.dedup {
        d.check()?;
        if let DedupMode::Debounce(w) = d.mode {
            if !o.delay.is_zero() {
                return Err(Error::Invalid(
                    "a debounced job runs its window after the last add: give debounce or delay, not both".into(),
                ));
            }
            delay = w;
        }
    }
    if let Some(g) = &o.group {
        crate::validate::group_name(g)?;
        if o.priority > 0 {
            return Err(Error::Invalid(format!(
                "a job of a group cannot have a priority (group {g:?}, priority {}): \
                 groups are served in turns, first in, first out within a group",
                o.priority
            )));
        }
        if o.dedup
            .as_ref()
            .is_some_and(|d| matches!(d.mode, DedupMode::Debounce(_)))
        {
            return Err(Error::Invalid(format!(
                "a job of a group cannot be debounced (group {g:?}): give group or debounce, not both"
            )));
        }
    }
    // The id is made here, before anything is sent, so a caller whose add timed out
    // can add again with it.
    let id = o.job_id.clone().unwrap_or_else(crate::job::id::generate);
    Ok((id, delay))
}

/// A checked job ([`check`]) with its MessagePack payload, as `add.lua` takes it (the
/// payload sealed when a keyring is given).
pub(super) fn build(
    name: &str,
    o: &JobOptions,
    id: String,
    delay: std::time::Duration,
    payload: Vec<u8>,
    keyring: Option<&Keyring>,
) -> NewJobArgs {
    let data = crate::crypto::seal(keyring, payload);
    let run = RunOptions {
        attempts: o.attempts,
        backoff: o.backoff,
        timeout: o.timeout,
        trace: o.trace.or_else(current_trace),
    };
    let opts = run.encode();
    NewJobArgs {
        id,
        spec: crate::job::Spec::encode(name, &opts, &data),
        delay,
        priority: o.priority,
        keep_completed: o.keep_completed.script_args(),
        keep_failed: o.keep_failed.script_args(),
        fresh: o.job_id.is_none(),
        dedup: o.dedup.as_ref().map(|d| d.script_arg()),
        group: o.group.clone(),
    }
}
