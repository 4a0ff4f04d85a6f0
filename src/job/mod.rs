//! What a job is: its options as the producer sets them, and its state as read back.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod compact;
mod dedup;
mod flow;
pub(crate) mod id;
mod policy;
mod serde_ms;
mod spec;
mod trace;

pub use compact::{Compact, Done};
pub use dedup::{Dedup, DedupMode};
pub(crate) use flow::{parent_tail, parse_children, parse_keep};
pub use flow::{Child, ChildFailure, ChildInfo, ChildOutcome, JobRef};
pub use policy::{Backoff, Retention};
pub(crate) use spec::Spec;
pub use trace::{BadTraceParent, TraceParent};

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Ready to run (in the wait list or the priority set).
    Waiting,
    /// Waiting for its time (delay or retry backoff).
    Delayed,
    /// A flow's parent waiting for its children to finish ([`crate::FlowJob`]).
    WaitingChildren,
    /// Claimed by a worker that holds its lease.
    Active,
    /// Finished successfully.
    Completed,
    /// Finished unsuccessfully.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl JobState {
    /// Every state, in the order counts are shown.
    pub const ALL: [JobState; 7] = [
        JobState::Waiting,
        JobState::Delayed,
        JobState::WaitingChildren,
        JobState::Active,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The lowercase name used in Redis, JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Delayed => "delayed",
            JobState::WaitingChildren => "waiting-children",
            JobState::Active => "active",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses a lowercase state name.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// True for completed, failed and cancelled.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of one job. The defaults: no delay, no priority, 3 attempts with exponential
/// backoff from 1 s to 10 min with jitter, retention per [`Retention`]'s defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct JobOptions {
    /// Caller-given id; adding an id that exists changes nothing. None = a fresh id made
    /// by the producer before sending (`<12 base-62 characters>.<base-32 counter>`,
    /// unique across processes: `src/job/id.rs`).
    pub job_id: Option<String>,
    /// Run no earlier than this from now.
    pub delay: Duration,
    /// 0 = none (runs before any prioritized job, FIFO); 1 is the highest priority,
    /// larger numbers lower; FIFO within a priority. At most [`MAX_PRIORITY`].
    pub priority: u32,
    /// How many attempts in all (1 = no retry).
    pub attempts: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// Limit on one attempt's run time (None = the worker's default).
    pub timeout: Option<Duration>,
    /// Completed jobs to keep.
    pub keep_completed: Retention,
    /// Failed and cancelled jobs to keep.
    pub keep_failed: Retention,
    /// The trace the job belongs to: its worker span becomes a child of this span. None:
    /// with the `otel` feature, the current `tracing` span's OpenTelemetry context when
    /// there is one ([`TraceParent::current`]); else none.
    pub trace: Option<TraceParent>,
    /// A deduplication key (None = none): see [`Dedup`].
    pub dedup: Option<Dedup>,
    /// The job's group (e.g. a tenant), or None. Jobs of a group wait in their group's
    /// own line; workers serve groups in turns, so one group's backlog cannot starve
    /// the others, and the queue's group limits
    /// ([`Queue::set_group_limits`](crate::Queue::set_group_limits)) apply to each
    /// group. 1 to 128 bytes, no control characters; no priority within a group.
    pub group: Option<String>,
}

/// The largest priority number.
pub const MAX_PRIORITY: u32 = 1_000_000;

impl Default for JobOptions {
    fn default() -> Self {
        JobOptions {
            job_id: None,
            delay: Duration::ZERO,
            priority: 0,
            attempts: 3,
            backoff: Backoff::default(),
            timeout: None,
            keep_completed: Retention::default_completed(),
            keep_failed: Retention::default_failed(),
            trace: None,
            dedup: None,
            group: None,
        }
    }
}

impl JobOptions {
    /// Sets the job id.
    pub fn job_id(mut self, id: impl Into<String>) -> Self {
        self.job_id = Some(id.into());
        self
    }
    /// Sets the delay.
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, p: u32) -> Self {
        self.priority = p;
        self
    }
    /// Sets the number of attempts.
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }
    /// Sets the backoff.
    pub fn backoff(mut self, b: Backoff) -> Self {
        self.backoff = b;
        self
    }
    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }
    /// Sets the retention of completed jobs.
    pub fn keep_completed(mut self, r: Retention) -> Self {
        self.keep_completed = r;
        self
    }
    /// Sets the retention of failed and cancelled jobs.
    pub fn keep_failed(mut self, r: Retention) -> Self {
        self.keep_failed = r;
        self
    }
    /// Sets the trace the job belongs to (e.g. from an incoming `traceparent` header).
    pub fn trace(mut self, t: TraceParent) -> Self {
        self.trace = Some(t);
        self
    }
    /// Sets the deduplication key.
    pub fn dedup(mut self, d: Dedup) -> Self {
        self.dedup = Some(d);
        self
    }
    /// Puts the job in a group (see [`JobOptions::group`](JobOptions#structfield.group)).
    pub fn group(mut self, g: impl Into<String>) -> Self {
        self.group = Some(g.into());
        self
    }
}

/// The part of the options a worker needs, stored with the job (field `opts`).
///
/// Written compact ([`RunOptions::encode`]: a MessagePack array of about 15 bytes), not
/// as a map with field names (71 bytes): Redis keeps a hash whose values are all at most
/// `hash-max-listpack-value` (64 by default) bytes as one small listpack, and a single
/// longer value turns the whole job hash into a hash table, which costs several times
/// the memory and the CPU of every read and write of the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunOptions {
    pub attempts: u32,
    pub backoff: Backoff,
    #[serde(with = "serde_ms::opt_ms", default)]
    pub timeout: Option<Duration>,
    /// The producer's trace context (26 bytes more when present; see
    /// [`TraceParent`] for why it lives here).
    #[serde(skip)]
    pub trace: Option<TraceParent>,
}

/// [`RunOptions`] as stored: attempts, backoff kind (0 fixed, 1 exponential), the fixed
/// delay or the base (ms), the cap (ms), jitter, the timeout (ms); then, only when the
/// job carries a trace context, its stored bytes as a 7th element.
type RunOptionsWire = (u32, u8, u64, u64, bool, Option<u64>);
type RunOptionsTracedWire = (u32, u8, u64, u64, bool, Option<u64>, serde_bytes::ByteBuf);

impl RunOptions {
    /// The stored form: a MessagePack array (see the type's doc).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let ms = |d: Duration| d.as_millis().min(u64::MAX as u128) as u64;
        let (kind, a, b, jitter) = match self.backoff {
            Backoff::Fixed { delay } => (0, ms(delay), 0, false),
            Backoff::Exponential { base, max, jitter } => (1, ms(base), ms(max), jitter),
        };
        let timeout = self.timeout.map(ms);
        match self.trace {
            None => {
                let wire: RunOptionsWire = (self.attempts, kind, a, b, jitter, timeout);
                rmp_serde::to_vec(&wire).expect("a tuple of numbers always encodes")
            }
            Some(t) => {
                let bytes = serde_bytes::ByteBuf::from(t.to_bytes());
                let wire: RunOptionsTracedWire =
                    (self.attempts, kind, a, b, jitter, timeout, bytes);
                rmp_serde::to_vec(&wire).expect("a tuple of numbers and bytes always encodes")
            }
        }
    }

    /// Reads the stored form, or the map with field names that jobs added before
    /// 2026-11-30 carry.
    pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<RunOptions, String> {
        let (attempts, kind, a, b, jitter, timeout, trace) = match bytes.first() {
            // A fixarray of 7: the trace context follows.
            Some(0x97) => {
                let (n, k, a, b, j, t, tp): RunOptionsTracedWire =
                    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
                (n, k, a, b, j, t, TraceParent::from_bytes(&tp))
            }
            Some(0x90..=0x9f | 0xdc | 0xdd) => {
                let (n, k, a, b, j, t): RunOptionsWire =
                    rmp_serde::from_slice(bytes).map_err(|e| e.to_string())?;
                (n, k, a, b, j, t, None)
            }
            _ => return rmp_serde::from_slice(bytes).map_err(|e| e.to_string()),
        };
        let backoff = match kind {
            0 => Backoff::Fixed {
                delay: Duration::from_millis(a),
            },
            1 => Backoff::Exponential {
                base: Duration::from_millis(a),
                max: Duration::from_millis(b),
                jitter,
            },
            k => return Err(format!("unknown backoff kind {k}")),
        };
        Ok(RunOptions {
            attempts,
            backoff,
            timeout: timeout.map(Duration::from_millis),
            trace,
        })
    }
}

/// A job as read back from Redis.
#[derive(Debug, Clone, Serialize)]
pub struct JobInfo {
    /// Job id.
    pub id: String,
    /// Queue name.
    pub queue: String,
    /// Job name.
    pub name: String,
    /// State.
    pub state: JobState,
    /// The attempt now running or last run (1-based; 0 = never started).
    pub attempt: u32,
    /// Attempts allowed.
    pub attempts: u32,
    /// How often its lease expired and it was recovered.
    pub stalled: u32,
    /// Priority (0 = none).
    pub priority: u32,
    /// The payload, decoded from MessagePack into JSON.
    pub data: serde_json::Value,
    /// The handler's result, once completed.
    pub result: Option<serde_json::Value>,
    /// The last error or the reason it failed or was cancelled.
    pub error: Option<String>,
    /// Last progress the handler reported.
    pub progress: Option<serde_json::Value>,
    /// The worker holding or last holding it.
    pub worker: Option<String>,
    /// A cancel was requested while it ran.
    pub cancel_requested: bool,
    /// Enqueue time, ms since the epoch (Redis clock).
    pub created_ms: u64,
    /// Start of the current or last attempt, ms since the epoch.
    pub started_ms: Option<u64>,
    /// Finish time, ms since the epoch.
    pub finished_ms: Option<u64>,
    /// When a delayed job becomes ready (its delay, or its retry backoff), ms since the
    /// epoch; None unless delayed.
    pub due_ms: Option<u64>,
    /// The attempt that wrote `error` (None when there is no error).
    pub error_attempt: Option<u32>,
    /// The W3C `traceparent` of the trace the job joined, when its producer sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The group the job belongs to ([`JobOptions::group`]), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The dedup key the job was added with ([`JobOptions::dedup`]), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dedup: Option<String>,
    /// A flow child's parent ([`crate::FlowJob`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<JobRef>,
    /// A flow parent's children and how each ended (sorted by queue and id).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildInfo>,
    /// The error of each retried or failed attempt, newest first (the last 25; jobs
    /// that ran before baton kept this history have none).
    pub errors: Vec<AttemptError>,
    /// Recorded steps, name → stored result.
    pub steps: BTreeMap<String, serde_json::Value>,
    /// The job's log lines, oldest first.
    pub logs: Vec<String>,
    /// The attempt that wrote each line of `logs`, in the same order; None for lines
    /// stored before baton recorded it.
    pub log_attempts: Vec<Option<u32>>,
}

/// The error one attempt ended with, from the job's error history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptError {
    /// The attempt (1-based; 0 when not known).
    pub attempt: u32,
    /// When it ended, ms since the epoch (Redis clock).
    pub at_ms: u64,
    /// Its error (or why it failed).
    pub error: String,
}

/// An error history entry as stored, `<attempt>:<ms>:<error>`, split; None when the
/// entry is not of that form. The error stays bytes: it may be encrypted.
pub(crate) fn parse_error_entry(stored: &[u8]) -> Option<(u32, u64, &[u8])> {
    let mut parts = stored.splitn(3, |b| *b == b':');
    let attempt = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let at = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    Some((attempt, at, parts.next()?))
}

/// Marks the attempt at the start of a stored log line: `\x1e<attempt>\x1f<line>`.
/// Control characters, because a handler's own text could look like any printable
/// prefix; lines without the mark (written by older versions) read as they are.
const LOG_MARK: (char, char) = ('\u{1e}', '\u{1f}');

/// A log line as stored: the line with the attempt that wrote it.
pub(crate) fn log_line(attempt: u32, line: &str) -> String {
    format!("{}{attempt}{}{line}", LOG_MARK.0, LOG_MARK.1)
}

/// A stored log line read back: the attempt that wrote it (if recorded) and the line.
pub(crate) fn parse_log_line(stored: &str) -> (Option<u32>, &str) {
    stored
        .strip_prefix(LOG_MARK.0)
        .and_then(|rest| rest.split_once(LOG_MARK.1))
        .and_then(|(n, line)| Some((Some(n.parse().ok()?), line)))
        .unwrap_or((None, stored))
}

/// Job counts per state of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Ready to run.
    pub waiting: u64,
    /// Waiting for their time.
    pub delayed: u64,
    /// Flow parents waiting for their children.
    #[serde(rename = "waiting-children")]
    pub waiting_children: u64,
    /// Running.
    pub active: u64,
    /// Completed (as retained).
    pub completed: u64,
    /// Failed (as retained).
    pub failed: u64,
    /// Cancelled (as retained).
    pub cancelled: u64,
    /// The queue is paused.
    pub paused: bool,
    /// The cap on running jobs across all workers ([`Queue::set_concurrency`](crate::Queue::set_concurrency)), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u64>,
    /// The queue's rate limit ([`Queue::set_rate_limit`](crate::Queue::set_rate_limit)), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// The events stream's length cap ([`Queue::set_events`](crate::Queue::set_events)),
    /// if it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
    /// The cap on each group's running jobs
    /// ([`Queue::set_group_limits`](crate::Queue::set_group_limits)), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_concurrency: Option<u64>,
    /// Each group's rate limit, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_rate: Option<Rate>,
    /// Groups in line to be served (they may have ready jobs); left out of JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub groups_ready: u64,
    /// Groups with ready jobs held back for a while (out of rate, or held); left out of
    /// JSON when 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub groups_limited: u64,
    /// The queue is held until then (ms since the epoch, Redis clock): a handler said
    /// "rate limited, retry after D" for a job without a group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_until_ms: Option<u64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// At most `max` jobs of a queue started per `per_ms` milliseconds, over all workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rate {
    /// Jobs started per window.
    pub max: u32,
    /// The window, in milliseconds.
    pub per_ms: u64,
}

impl Rate {
    /// As meta stores it and claim.lua reads it: `N:MS`.
    pub(crate) fn parse_stored(s: &str) -> Option<Rate> {
        let (n, ms) = s.split_once(':')?;
        Some(Rate {
            max: n.parse().ok()?,
            per_ms: ms.parse().ok()?,
        })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per = humantime::format_duration(std::time::Duration::from_millis(self.per_ms));
        write!(f, "{}/{per}", self.max)
    }
}

impl Counts {
    /// The count of one state.
    pub fn get(&self, state: JobState) -> u64 {
        match state {
            JobState::Waiting => self.waiting,
            JobState::Delayed => self.delayed,
            JobState::WaitingChildren => self.waiting_children,
            JobState::Active => self.active,
            JobState::Completed => self.completed,
            JobState::Failed => self.failed,
            JobState::Cancelled => self.cancelled,
        }
    }
}

/// Decodes stored MessagePack into JSON for display.
pub(crate) fn msgpack_to_json(bytes: &[u8]) -> serde_json::Value {
    rmp_serde::from_slice::<serde_json::Value>(bytes).unwrap_or_else(|_| {
        serde_json::Value::String(format!("<{} undecodable bytes>", bytes.len()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_options_round_trip() {
        let o = RunOptions {
            attempts: 5,
            backoff: Backoff::Fixed {
                delay: Duration::from_millis(250),
            },
            timeout: Some(Duration::from_secs(2)),
            trace: None,
        };
        let bytes = rmp_serde::to_vec_named(&o).unwrap();
        assert_eq!(rmp_serde::from_slice::<RunOptions>(&bytes).unwrap(), o);
        // The map with field names (jobs added before the compact form) still reads.
        assert_eq!(RunOptions::decode(&bytes).unwrap(), o);
    }

    #[test]
    fn run_options_are_stored_compact_and_read_back() {
        for o in [
            RunOptions {
                attempts: 3,
                backoff: Backoff::default(),
                timeout: None,
                trace: None,
            },
            RunOptions {
                attempts: 1_000_000,
                backoff: Backoff::Exponential {
                    base: Duration::from_millis(1),
                    max: Duration::from_secs(10 * 366 * 24 * 3600),
                    jitter: false,
                },
                timeout: Some(Duration::from_secs(10 * 366 * 24 * 3600)),
                trace: None,
            },
            RunOptions {
                attempts: 5,
                backoff: Backoff::Fixed {
                    delay: Duration::from_millis(250),
                },
                timeout: Some(Duration::from_secs(2)),
                trace: None,
            },
            RunOptions {
                attempts: 1_000_000,
                backoff: Backoff::Exponential {
                    base: Duration::from_millis(1),
                    max: Duration::from_secs(10 * 366 * 24 * 3600),
                    jitter: true,
                },
                timeout: Some(Duration::from_secs(10 * 366 * 24 * 3600)),
                trace: Some(TraceParent {
                    trace_id: [0xab; 16],
                    span_id: [0xcd; 8],
                    flags: 1,
                }),
            },
        ] {
            let bytes = o.encode();
            // Under hash-max-listpack-value (64) even with a trace context, so the job
            // hash stays a listpack.
            assert!(bytes.len() <= 64, "{} bytes: {o:?}", bytes.len());
            assert!(
                o.trace.is_some() || bytes.len() <= 32,
                "{} bytes: {o:?}",
                bytes.len()
            );
            assert_eq!(RunOptions::decode(&bytes).unwrap(), o);
        }
        assert!(RunOptions::decode(&[0x96, 1, 9, 0, 0, 0xc2, 0xc0]).is_err());
        assert!(RunOptions::decode(b"junk").is_err());
    }

    #[test]
    fn log_lines_carry_their_attempt_and_old_ones_still_read() {
        assert_eq!(parse_log_line(&log_line(3, "hi")), (Some(3), "hi"));
        assert_eq!(parse_log_line("plain"), (None, "plain"));
        assert_eq!(parse_log_line("\u{1e}x\u{1f}y"), (None, "\u{1e}x\u{1f}y"));
    }
}
