//! Job schedulers, the producer's side: [`Queue::upsert_scheduler`],
//! [`Queue::schedulers`], [`Queue::scheduler`], [`Queue::remove_scheduler`]. What they
//! are and how a tick fires once is told in [`crate::schedule`].

use serde::Serialize;

use super::Queue;
use crate::error::{Error, Result};
use crate::job::{msgpack_to_json, RunOptions};
use crate::schedule::{
    self, epoch_ms, Fired, Plan, Repeat, Scheduler, SchedulerInfo, Stored, Tick,
};
use crate::scripts::{self, Pending, Read, ReadEntry, Upsert};

/// Compare-and-set rounds an upsert or remove tries before it gives up: each round
/// lost means a worker fired a tick between the read and the write, so more than a few
/// in a row does not happen in practice.
const MAX_ROUNDS: usize = 20;

impl Queue {
    /// Creates the scheduler `id` of this queue, or replaces its definition, and
    /// returns it with its next run.
    ///
    /// Each tick adds one job `sched:<id>:<tick ms>` from the template (`name`, `data`,
    /// `opts`; the data encrypted as [`Queue::add`] does when this handle holds a
    /// keyring), started at its tick by any worker of the queue. Replacing a scheduler
    /// changes its next run without a duplicate: a job added for a tick that has not
    /// come yet is taken back and the new definition decides that tick; the count of
    /// runs (for `limit`) carries over.
    ///
    /// Refused ([`Error::Invalid`]) before anything is sent: a bad id (a job id's
    /// rules, at most [`schedule::MAX_SCHEDULER_ID`] bytes), cron expression, time zone
    /// or interval (under [`schedule::MIN_EVERY`]), a `job_id`, `delay` or `dedup` in the
    /// options, an end before the start, a limit of 0, a scheduler that would never
    /// run, and what [`Queue::add`] refuses of a job.
    pub async fn upsert_scheduler<T: Serialize>(
        &self,
        id: &str,
        s: &Scheduler<T>,
    ) -> Result<SchedulerInfo> {
        self.check_name()?;
        schedule::validate_id(id)?;
        let base = self.stored_template(s)?;
        let plan = base.plan()?;
        super::registry::ensure_or_warn(&self.conn, self.name()).await;
        self.bounded(async {
            let mut c = self.conn().await?;
            let sharded = c.is_cluster();
            for _ in 0..MAX_ROUNDS {
                let r = scripts::schedule_read(&mut c, &self.keys, Read::One(id)).await?;
                let now = r.now_ms;
                if base.first_run(&plan, now).is_none() {
                    return Err(Error::Invalid(format!(
                        "scheduler {id} would never run: no tick between now and its end"
                    )));
                }
                let seen = r
                    .entries
                    .first()
                    .and_then(|e| e.value.clone())
                    .unwrap_or_default();
                // A stored value that does not decode is replaced, counts and all.
                let old = Stored::decode(&seen).ok();
                let mut kept = base.clone();
                kept.created_ms = old.as_ref().map_or(now, |o| o.created_ms);
                kept.updated_ms = now;
                kept.runs = old.as_ref().map_or(0, |o| o.runs);
                kept.last_tick = old.as_ref().and_then(|o| o.last_tick);
                let pending = kept.last_tick.filter(|t| *t > now).map(|t| Pending {
                    job_id: schedule::job_id(id, t),
                    tick: t,
                });
                let mut back = kept.clone();
                if pending.is_some() {
                    back.runs = back.runs.saturating_sub(1);
                    back.last_tick = None;
                }
                let (kept_next, back_next) = (kept.first_run(&plan, now), back.first_run(&plan, now));
                let (kept_bytes, back_bytes) = (kept.encode()?, back.encode()?);
                let u = Upsert {
                    id,
                    seen: &seen,
                    pending: pending.as_ref(),
                    taken_back: (&back_bytes, back_next),
                    kept: (&kept_bytes, kept_next),
                    sharded,
                };
                let code = scripts::schedule_upsert(&mut c, &self.keys, &u).await?;
                let (stored, bytes, next) = match code {
                    0 => continue,
                    2 => (back, back_bytes, back_next),
                    _ => (kept, kept_bytes, kept_next),
                };
                // A first tick close at hand is fired now: a worker's loop, reading
                // every POLL, might see it only after it is due. Not while the last
                // tick's job still waits (one waiting job per scheduler).
                let ahead = schedule::LOOKAHEAD.as_millis() as u64;
                let idle = stored.last_tick.is_none_or(|l| l <= now);
                if let Some(tick) = next.filter(|t| *t <= now + ahead && idle) {
                    let t = Tick {
                        id,
                        seen: &bytes,
                        stored: &stored,
                        plan: &plan,
                        tick,
                        now,
                    };
                    let (fired, _) = schedule::fire(&mut c, &self.keys, t).await?;
                    if fired == Fired::Stale {
                        tracing::debug!(queue = self.name(), scheduler = id, "first tick fired by a worker meanwhile");
                    }
                }
                let r = scripts::schedule_read(&mut c, &self.keys, Read::One(id)).await?;
                return match r.entries.first() {
                    Some(e) => self.scheduler_info(e, r.now_ms),
                    None => Err(Error::Decode(format!(
                        "scheduler {id} was removed while it was being set"
                    ))),
                };
            }
            Err(Error::Unavailable {
                timeout: crate::conn::PRODUCER_TIMEOUT,
                detail: format!(
                    "scheduler {id} changed under every one of {MAX_ROUNDS} attempts to set it; try again"
                ),
            })
        })
        .await
    }

    /// Every scheduler of this queue, by id, each with its next run (ended ones too,
    /// with none). A stored record that cannot be read is left out and logged.
    pub async fn schedulers(&self) -> Result<Vec<SchedulerInfo>> {
        self.bounded(async {
            let mut c = self.conn().await?;
            let r = scripts::schedule_read(&mut c, &self.keys, Read::All).await?;
            // One unreadable record does not hide the others; it is named in the log
            // (and `scheduler(id)` reports it).
            Ok(r.entries
                .iter()
                .filter_map(|e| {
                    self.scheduler_info(e, r.now_ms)
                        .inspect_err(|err| tracing::warn!(queue = self.name(), scheduler = %e.id, error = %err, "skipping an unreadable scheduler"))
                        .ok()
                })
                .collect())
        })
        .await
    }

    /// One scheduler, if it exists.
    pub async fn scheduler(&self, id: &str) -> Result<Option<SchedulerInfo>> {
        schedule::validate_id(id)?;
        self.bounded(async {
            let mut c = self.conn().await?;
            let r = scripts::schedule_read(&mut c, &self.keys, Read::One(id)).await?;
            r.entries
                .first()
                .map(|e| self.scheduler_info(e, r.now_ms))
                .transpose()
        })
        .await
    }

    /// Removes a scheduler: no tick of it runs any more, not even one whose job was
    /// added already but has not come (that job is deleted); a job that is due, running
    /// or finished is left alone. False when there was no such scheduler.
    pub async fn remove_scheduler(&self, id: &str) -> Result<bool> {
        schedule::validate_id(id)?;
        self.bounded(async {
            let mut c = self.conn().await?;
            for _ in 0..MAX_ROUNDS {
                let r = scripts::schedule_read(&mut c, &self.keys, Read::One(id)).await?;
                let Some(seen) = r.entries.first().and_then(|e| e.value.clone()) else {
                    return Ok(false);
                };
                let pending = Stored::decode(&seen)
                    .ok()
                    .and_then(|s| s.last_tick)
                    .filter(|t| *t > r.now_ms)
                    .map(|t| Pending {
                        job_id: schedule::job_id(id, t),
                        tick: t,
                    });
                match scripts::schedule_remove(&mut c, &self.keys, id, &seen, pending.as_ref())
                    .await?
                {
                    0 => continue,
                    -1 => return Ok(false),
                    _ => return Ok(true),
                }
            }
            Err(Error::Unavailable {
                timeout: crate::conn::PRODUCER_TIMEOUT,
                detail: format!(
                    "scheduler {id} changed under every one of {MAX_ROUNDS} attempts to remove it; try again"
                ),
            })
        })
        .await
    }

    /// The stored form of `s` before its state (runs, last tick, times) is known:
    /// every check of the definition and of its job template.
    fn stored_template<T: Serialize>(&self, s: &Scheduler<T>) -> Result<Stored> {
        if s.opts.job_id.is_some() {
            return Err(Error::Invalid(
                "a scheduler's jobs get their ids from it (sched:<id>:<tick>): leave job_id out"
                    .into(),
            ));
        }
        if !s.opts.delay.is_zero() {
            return Err(Error::Invalid(
                "a scheduler's jobs run at their tick: leave delay out".into(),
            ));
        }
        if s.opts.dedup.is_some() {
            return Err(Error::Invalid(
                "a scheduler makes one job per tick (its id is the tick's): leave dedup out".into(),
            ));
        }
        if s.limit == Some(0) {
            return Err(Error::Invalid(
                "a scheduler's limit must be at least 1".into(),
            ));
        }
        let (start_ms, end_ms) = (s.start.map(epoch_ms), s.end.map(epoch_ms));
        if let (Some(a), Some(b)) = (start_ms, end_ms) {
            if b < a {
                return Err(Error::Invalid(
                    "a scheduler's end is before its start".into(),
                ));
            }
        }
        let job = super::add::encode(
            &s.name,
            &s.data,
            &s.opts,
            self.max_payload,
            self.keyring.as_deref(),
        )?;
        let (cron, tz, every_ms) = match &s.repeat {
            Repeat::Cron { expr, tz } => (Some(expr.clone()), tz.clone(), None),
            Repeat::Every(d) => (None, None, Some(d.as_millis() as u64)),
        };
        // The sealed payload, out of the spec the add path built (the scheduler stores
        // its parts and builds each tick's spec: src/schedule/fire.rs).
        let data = crate::job::Spec::decode(&job.spec)
            .map(|p| p.data.to_vec())
            .ok_or_else(|| Error::Decode("a job spec built here did not read back".into()))?;
        let stored = Stored {
            cron,
            tz,
            every_ms,
            name: s.name.clone(),
            data,
            run: RunOptions {
                attempts: s.opts.attempts,
                backoff: s.opts.backoff,
                timeout: s.opts.timeout,
                trace: None,
            },
            priority: job.priority,
            // A grouped template's jobs carry the group as add.lua's do.
            keep: {
                let (kc, kf) = (job.keep_completed, job.keep_failed);
                match &job.group {
                    Some(g) => format!("{}:{}:{}:{}|g{g}", kc.0, kc.1, kf.0, kf.1),
                    None => format!("{}:{}:{}:{}", kc.0, kc.1, kf.0, kf.1),
                }
            },
            start_ms,
            end_ms,
            limit: s.limit,
            runs: 0,
            last_tick: None,
            created_ms: 0,
            updated_ms: 0,
        };
        let _: Plan = stored.plan()?;
        Ok(stored)
    }

    /// A read scheduler as shown: its next run is the waiting job's tick while one
    /// waits, else the next tick to fire.
    fn scheduler_info(&self, e: &ReadEntry, now: u64) -> Result<SchedulerInfo> {
        let bytes = e.value.as_deref().unwrap_or_default();
        let s = Stored::decode(bytes).map_err(|err| {
            Error::Decode(format!(
                "scheduler {} of queue {}: {err}",
                e.id,
                self.name()
            ))
        })?;
        let next_run_ms = match s.last_tick {
            Some(t) if t > now => Some(t),
            _ => e.next_ms,
        };
        Ok(SchedulerInfo {
            id: e.id.clone(),
            cron: s.cron,
            tz: s.tz,
            every_ms: s.every_ms,
            name: s.name,
            data: self.reveal(&s.data, msgpack_to_json),
            priority: s.priority,
            attempts: s.run.attempts,
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            limit: s.limit,
            runs: s.runs,
            last_run_ms: s.last_tick,
            next_run_ms,
            created_ms: s.created_ms,
            updated_ms: s.updated_ms,
        })
    }
}
