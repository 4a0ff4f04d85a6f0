//! Job schedulers: a job added on a cron expression (seconds field allowed, in an IANA
//! time zone, DST handled by croner over chrono-tz) or on a fixed interval, from a
//! template, between an optional start and end, at most `limit` times.
//!
//! Set with [`Queue::upsert_scheduler`](crate::Queue::upsert_scheduler), listed with
//! [`Queue::schedulers`](crate::Queue::schedulers), removed with
//! [`Queue::remove_scheduler`](crate::Queue::remove_scheduler). Every worker runs a
//! scheduler loop per queue that adds each tick's job shortly before it is due.
//!
//! How "exactly one job per tick" holds, whatever the number of workers and producers:
//! - a scheduler is one MessagePack value in the queue's `schedulers` hash plus its
//!   next tick in the `sched` sorted set; next ticks are computed in Rust (`plan`);
//! - a tick is fired by `schedule_fire.lua`, a compare-and-set on both the stored value
//!   and the next tick, so of racing workers one adds the job and the rest change
//!   nothing; the job's id is `sched:<id>:<tick ms>` (an existing id changes nothing),
//!   and it waits in the delayed set until its tick, so the ordinary delayed machinery
//!   starts it on time;
//! - the next tick is the first occurrence after max(now, tick): ticks missed while no
//!   worker ran collapse into one late run;
//! - at most one fired tick waits for its time per scheduler: an upsert or a remove
//!   takes that job back (`lua/schedule_upsert.lua`, `lua/schedule_remove.lua`), so an
//!   upsert changes the next run without a duplicate and a remove stops it at once.

mod fire;
mod plan;
mod stored;

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::job::JobOptions;

pub(crate) use fire::{fire, Fired, Tick};
pub(crate) use plan::Plan;
pub use plan::MIN_EVERY;
pub(crate) use stored::Stored;

/// How far ahead of its tick a job is added: the worker's scheduler loop fires a tick
/// once it is due within this, so the job is waiting in the delayed set when its time
/// comes (and starts within milliseconds, like any delayed job).
pub const LOOKAHEAD: Duration = Duration::from_secs(2);

/// The longest a worker's scheduler loop sleeps before reading the schedulers again.
/// Between reads it sleeps until the next tick less [`LOOKAHEAD`]; an upsert wakes
/// every worker's loop at once (a message on the queue's cancel channel), so this only
/// bounds how late a loop that missed that message sees a change. An idle poll of a
/// queue without schedulers costs Redis two commands (one read-only script, one ZRANGE).
pub const POLL: Duration = Duration::from_secs(5);

/// The message an upsert publishes on the queue's cancel channel to wake the workers'
/// scheduler loops: it holds a NUL, which no job id can (see [`crate::validate::job_id`]),
/// so a cancel listener never takes it for a job.
pub(crate) const CHANGED: &str = "\0schedulers";

/// When a scheduler ticks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Repeat {
    /// A cron expression: 5 fields (minute to weekday), or 6 with seconds first
    /// (`*/10 * * * * *`), or a nickname (`@daily`); in the time zone `tz` (an IANA
    /// name such as `Europe/Berlin`; UTC when none). A local time that a DST change
    /// skips or repeats runs once.
    Cron {
        /// The expression.
        expr: String,
        /// IANA time zone name (None: UTC).
        tz: Option<String>,
    },
    /// A fixed interval of at least [`MIN_EVERY`], in whole milliseconds, ticking on
    /// its multiples from the start (or from the Unix epoch when there is no start: an
    /// `every(60 s)` ticks on whole minutes).
    Every(Duration),
}

impl Repeat {
    /// A cron expression in UTC.
    pub fn cron(expr: impl Into<String>) -> Repeat {
        Repeat::Cron {
            expr: expr.into(),
            tz: None,
        }
    }
    /// A cron expression in the IANA time zone `tz`.
    pub fn cron_in(expr: impl Into<String>, tz: impl Into<String>) -> Repeat {
        Repeat::Cron {
            expr: expr.into(),
            tz: Some(tz.into()),
        }
    }
    /// A fixed interval.
    pub fn every(d: Duration) -> Repeat {
        Repeat::Every(d)
    }
}

/// A scheduler as [`Queue::upsert_scheduler`](crate::Queue::upsert_scheduler) takes it:
/// the rule, the job template (name, payload, options) and optional bounds.
#[derive(Debug, Clone)]
pub struct Scheduler<T> {
    /// When it ticks.
    pub repeat: Repeat,
    /// The name of each job.
    pub name: String,
    /// The payload of each job.
    pub data: T,
    /// The options of each job. `job_id` and `delay` must be left out: each tick's job
    /// gets the id `sched:<scheduler id>:<tick ms>` and runs at its tick.
    pub opts: JobOptions,
    /// No tick before this.
    pub start: Option<SystemTime>,
    /// No tick after this.
    pub end: Option<SystemTime>,
    /// At most this many jobs in all (counted over upserts: remove it and set it again
    /// to count afresh).
    pub limit: Option<u64>,
}

impl<T> Scheduler<T> {
    /// A scheduler adding jobs `name` with `data` and default options on `repeat`.
    pub fn new(repeat: Repeat, name: impl Into<String>, data: T) -> Scheduler<T> {
        Scheduler {
            repeat,
            name: name.into(),
            data,
            opts: JobOptions::default(),
            start: None,
            end: None,
            limit: None,
        }
    }
    /// With these job options.
    pub fn opts(mut self, opts: JobOptions) -> Self {
        self.opts = opts;
        self
    }
    /// No tick before `t`.
    pub fn start(mut self, t: SystemTime) -> Self {
        self.start = Some(t);
        self
    }
    /// No tick after `t`.
    pub fn end(mut self, t: SystemTime) -> Self {
        self.end = Some(t);
        self
    }
    /// At most `n` jobs in all.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
}

/// A scheduler as read back ([`Queue::schedulers`](crate::Queue::schedulers)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchedulerInfo {
    /// Its id.
    pub id: String,
    /// The cron expression, for a cron scheduler.
    pub cron: Option<String>,
    /// The time zone of the cron expression (None: UTC).
    pub tz: Option<String>,
    /// The interval in ms, for an interval scheduler.
    pub every_ms: Option<u64>,
    /// The job name.
    pub name: String,
    /// The payload, decoded into JSON (or `"encrypted (key K)"` without the key).
    pub data: serde_json::Value,
    /// Each job's priority (0 = none).
    pub priority: u32,
    /// Each job's attempts.
    pub attempts: u32,
    /// No tick before this (ms since the epoch).
    pub start_ms: Option<u64>,
    /// No tick after this (ms since the epoch).
    pub end_ms: Option<u64>,
    /// At most this many jobs in all.
    pub limit: Option<u64>,
    /// Jobs added so far.
    pub runs: u64,
    /// The last tick fired (ms since the epoch); its job is `sched:<id>:<tick>`.
    pub last_run_ms: Option<u64>,
    /// The next time a job of this scheduler runs (ms since the epoch, Redis clock);
    /// None once it has ended (limit reached, or past its end).
    pub next_run_ms: Option<u64>,
    /// When it was first set (ms since the epoch).
    pub created_ms: u64,
    /// When it was last set.
    pub updated_ms: u64,
}

/// The id of the job a scheduler adds for `tick`.
pub fn job_id(scheduler: &str, tick_ms: u64) -> String {
    format!("sched:{scheduler}:{tick_ms}")
}

/// The longest scheduler id: a job id less room for `sched:`, `:` and a tick.
pub const MAX_SCHEDULER_ID: usize = crate::validate::MAX_ID_BYTES - 32;

/// Checks a scheduler id: a job id's rules, and short enough to make job ids from.
pub fn validate_id(id: &str) -> crate::Result<()> {
    crate::validate::job_id(id).map_err(|e| {
        crate::Error::Invalid(
            e.to_string()
                .replace("invalid argument: job id", "scheduler id"),
        )
    })?;
    if id.len() > MAX_SCHEDULER_ID {
        return Err(crate::Error::Invalid(format!(
            "scheduler id must be at most {MAX_SCHEDULER_ID} bytes, got {}",
            id.len()
        )));
    }
    Ok(())
}

/// Milliseconds since the epoch of `t` (0 before it).
pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
