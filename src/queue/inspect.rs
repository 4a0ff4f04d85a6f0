//! Reading a queue back: counts, one job, listings by state, cleaning, live workers,
//! (discovering queues is in `registry`).

use std::collections::BTreeMap;
use std::time::Duration;

use redis::AsyncCommands;

use super::Queue;
use crate::error::{Error, Result};
use crate::job::{
    msgpack_to_json, parse_children, parse_error_entry, parse_keep, parse_log_line, AttemptError,
    ChildInfo, Compact, Counts, JobInfo, JobState, RunOptions,
};
use crate::scripts;

use super::grouped::{grouped_ids, grouped_waiting};

/// Listings starting (or counting) beyond this return nothing rather than overflow.
const MAX_LIST_START: usize = 1 << 40;

/// A job's compact value, its hash, its steps, its log lines, its due time, its error
/// history and its live lease, as one pipeline reads them (the compact value first: a
/// job stops being compact when its hash is written, never the other way round, so
/// one that changes in between is found in one or the other).
type JobParts = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    BTreeMap<String, Vec<u8>>,
    BTreeMap<String, Vec<u8>>,
    Vec<String>,
    Option<f64>,
    Vec<Vec<u8>>,
    Option<Vec<u8>>,
);

/// The seven state sets' sizes (wait, prioritized, delayed, active, completed, failed,
/// cancelled), then meta's `paused`, `concurrency`, `rate`, `events`, `hold` and `groups`,
/// then the sizes of the groups in line and held back, and of the flow parents waiting
/// for their children.
type SizesAndMeta = (
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    u64,
    (
        Option<String>,
        Option<u64>,
        Option<String>,
        Option<u64>,
        Option<u64>,
        Option<String>,
    ),
    u64,
    u64,
    u64,
);

impl Queue {
    /// Counts per state (one round trip; two for a queue that has had groups).
    pub async fn counts(&self) -> Result<Counts> {
        self.bounded(async {
            let k = &self.keys;
            let mut c = self.conn().await?;
            let (
                wait,
                prio,
                delayed,
                active,
                completed,
                failed,
                cancelled,
                (paused, cap, rate, events, hold, groups),
                ready,
                limited,
                waiting_children,
            ): SizesAndMeta = redis::pipe()
                .llen(k.wait())
                .zcard(k.prioritized())
                .zcard(k.delayed())
                // Leases only: the table's keeper (score +inf) is left out.
                .zcount(k.active(), "-inf", "(+inf")
                .zcard(k.completed())
                .zcard(k.failed())
                .zcard(k.cancelled())
                .cmd("HMGET")
                .arg(k.meta())
                .arg("paused")
                .arg("concurrency")
                .arg("rate")
                .arg("events")
                .arg("hold")
                .arg("groups")
                .zcard(k.groups_ready())
                .zcard(k.groups_limited())
                .zcard(k.waiting_children())
                .query_async(&mut c)
                .await?;
            let grouped = if groups.is_some() {
                grouped_waiting(&mut c, k).await?
            } else {
                0
            };
            Ok(Counts {
                waiting: wait + prio + grouped,
                delayed,
                waiting_children,
                active,
                completed,
                failed,
                cancelled,
                paused: paused.as_deref() == Some("1"),
                concurrency: cap.filter(|c| *c > 0),
                rate: rate.as_deref().and_then(crate::job::Rate::parse_stored),
                events: events.filter(|n| *n > 0),
                group_concurrency: groups
                    .as_deref()
                    .and_then(|g| g.split(':').next()?.parse().ok().filter(|c: &u64| *c > 0)),
                group_rate: groups.as_deref().and_then(|g| {
                    crate::job::Rate::parse_stored(g.split_once(':')?.1)
                        .filter(|r| r.max > 0 && r.per_ms > 0)
                }),
                groups_ready: ready,
                groups_limited: limited,
                // Stale holds stay in meta; this host's clock tells them apart.
                held_until_ms: hold.filter(|h| {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    *h > now
                }),
            })
        })
        .await
    }

    /// Ids of jobs in one state, newest first for finished states, next-to-run first for
    /// waiting and delayed.
    pub async fn list(&self, state: JobState, start: usize, count: usize) -> Result<Vec<String>> {
        self.bounded(async {
            if count == 0 {
                return Ok(Vec::new());
            }
            let k = &self.keys;
            let mut c = self.conn().await?;
            // Redis ranges are i64; beyond any real queue's length there is nothing.
            if start > MAX_LIST_START || count > MAX_LIST_START {
                return Ok(Vec::new());
            }
            let end = (start + count - 1) as isize;
            let ids: Vec<String> = match state {
                JobState::Waiting => {
                    // The wait list is claimed from its right end, so read it back to front.
                    let mut ids: Vec<String> = c
                        .lrange(k.wait(), -(end + 1), -(start as isize) - 1)
                        .await?;
                    ids.reverse();
                    if ids.len() < count {
                        let skip = start.saturating_sub(c.llen::<_, usize>(k.wait()).await?);
                        let more: Vec<String> = c
                            .zrange(
                                k.prioritized(),
                                skip as isize,
                                (skip + count - ids.len() - 1) as isize,
                            )
                            .await?;
                        ids.extend(more);
                    }
                    // Then the jobs waiting in their groups' lines (a queue that has had
                    // groups only).
                    if ids.len() < count && c.hexists::<_, _, bool>(k.meta(), "groups").await? {
                        let before: usize = c.llen::<_, usize>(k.wait()).await?
                            + c.zcard::<_, usize>(k.prioritized()).await?;
                        let need = count - ids.len();
                        ids.extend(
                            grouped_ids(&mut c, k, start.saturating_sub(before), need).await?,
                        );
                    }
                    ids
                }
                JobState::Delayed => c.zrange(k.delayed(), start as isize, end).await?,
                JobState::WaitingChildren => {
                    c.zrange(k.waiting_children(), start as isize, end).await?
                }
                // Leases only: the table's keeper (score +inf) is left out.
                JobState::Active => {
                    c.zrangebyscore_limit(
                        k.active(),
                        "-inf",
                        "(+inf",
                        start as isize,
                        count as isize,
                    )
                    .await?
                }
                JobState::Completed => c.zrevrange(k.completed(), start as isize, end).await?,
                JobState::Failed => c.zrevrange(k.failed(), start as isize, end).await?,
                JobState::Cancelled => c.zrevrange(k.cancelled(), start as isize, end).await?,
            };
            Ok(ids)
        })
        .await
    }

    /// Delayed jobs with the time each becomes ready (ms since the epoch, Redis clock),
    /// soonest first.
    pub async fn list_due(&self, start: usize, count: usize) -> Result<Vec<(String, u64)>> {
        self.bounded(async {
            if count == 0 || start > MAX_LIST_START || count > MAX_LIST_START {
                return Ok(Vec::new());
            }
            let end = (start + count - 1) as isize;
            let mut c = self.conn().await?;
            let due: Vec<(String, f64)> = c
                .zrange_withscores(self.keys.delayed(), start as isize, end)
                .await?;
            Ok(due.into_iter().map(|(id, at)| (id, at as u64)).collect())
        })
        .await
    }

    /// Deletes finished jobs of `state` older than `age` (up to `limit`); returns how many.
    pub async fn clean(&self, state: JobState, age: Duration, limit: usize) -> Result<u64> {
        self.bounded(async {
            let set = match state {
                JobState::Completed => self.keys.completed(),
                JobState::Failed => self.keys.failed(),
                JobState::Cancelled => self.keys.cancelled(),
                other => {
                    return Err(Error::Invalid(format!(
                        "clean takes completed, failed or cancelled, not {other}"
                    )))
                }
            };
            scripts::clean(&mut self.conn().await?, &self.keys, set, age, limit).await
        })
        .await
    }

    /// One job with its steps and logs; None if there is no such job.
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>> {
        crate::validate::job_id(id)?;
        self.bounded(async {
            let k = &self.keys;
            let mut c = self.conn().await?;
            let (outcome, compact, mut h, steps, logs, due, errors, lease): JobParts =
                redis::pipe()
                    .hget(k.done(), id)
                    .hget(k.jobs(), id)
                    .hgetall(k.job(id))
                    .hgetall(k.steps(id))
                    .lrange(k.logs(id), 0, -1)
                    .zscore(k.delayed(), id)
                    .lrange(k.errors(id), 0, -1)
                    .hget(k.leases(), id)
                    .query_async(&mut c)
                    .await?;
            // A compact job has no hash: its value stands for it (src/job/compact.rs).
            let compact = Compact::join(outcome, compact);
            if h.is_empty() {
                if let Some(c) = compact.as_deref().and_then(Compact::parse) {
                    h = c
                        .fields()
                        .map(|(f, v)| (f.to_string(), v.to_vec()))
                        .collect();
                }
            }
            if h.is_empty() {
                return Ok(None);
            }
            let s = |f: &str| h.get(f).map(|v| String::from_utf8_lossy(v).into_owned());
            let n = |f: &str| s(f).and_then(|v| v.parse::<u64>().ok());
            // Name, options and payload: one field (or three, for a job from before it).
            let spec = crate::job::Spec::from_fields(|f| h.get(f).map(|v| &v[..]));
            let opts: Option<RunOptions> = spec.and_then(|p| RunOptions::decode(p.opts).ok());
            let state = s("state")
                .and_then(|st| JobState::parse(&st))
                .unwrap_or(JobState::Waiting);
            let tails = parse_keep(self.name(), &s("keep").unwrap_or_default());
            let open = |b: &[u8]| {
                crate::crypto::open(self.keyring.as_deref(), b)
                    .map(|p| p.into_owned())
                    .unwrap_or_else(|e| e.placeholder().into_bytes())
            };
            // A leased job's hash still says waiting: its lease is in the leases hash; a
            // finished job's last lease is its field `lease`.
            let live = lease.as_deref().and_then(scripts::LeaseEntry::parse);
            let state = if live.is_some() {
                JobState::Active
            } else {
                state
            };
            let lease =
                scripts::shown_lease(state, lease.as_deref(), h.get("lease").map(|v| &v[..]));
            Ok(Some(JobInfo {
                id: id.to_string(),
                queue: self.name().to_string(),
                name: spec.map(|p| p.name.to_string()).unwrap_or_default(),
                state,
                attempt: lease
                    .as_ref()
                    .map(|l| l.attempt)
                    .unwrap_or(n("attempt").unwrap_or(0) as u32),
                attempts: opts.as_ref().map(|o| o.attempts).unwrap_or(1),
                stalled: n("stalled").unwrap_or(0) as u32,
                priority: n("pri").unwrap_or(0) as u32,
                data: spec
                    .map(|p| self.reveal(p.data, msgpack_to_json))
                    .unwrap_or(serde_json::Value::Null),
                result: h.get("result").map(|b| self.reveal(b, msgpack_to_json)),
                error: h
                    .get("error")
                    .map(|b| self.reveal(b, |t| String::from_utf8_lossy(t).into_owned())),
                progress: s("progress")
                    .map(|p| serde_json::from_str(&p).unwrap_or(serde_json::Value::String(p))),
                worker: lease.as_ref().map(|l| l.worker.clone()).or(s("worker")),
                cancel_requested: s("cancel").as_deref() == Some("1"),
                created_ms: n("ts").unwrap_or(0),
                started_ms: lease.as_ref().map(|l| l.started_ms).or(n("started")),
                finished_ms: n("finished"),
                due_ms: due.map(|d| d as u64),
                traceparent: opts.as_ref().and_then(|o| o.trace).map(|t| t.to_string()),
                group: tails.group,
                dedup: tails.dedup,
                parent: tails.parent.map(|(p, _)| p),
                children: parse_children(&h, open)
                    .into_iter()
                    .map(ChildInfo::from)
                    .collect(),
                error_attempt: h
                    .contains_key("error")
                    .then(|| match &lease {
                        Some(l) if state != JobState::Active => Some(l.attempt),
                        _ => n("attempt").map(|a| a as u32),
                    })
                    .flatten()
                    .filter(|a| *a > 0),
                errors: errors
                    .iter()
                    .filter_map(|e| parse_error_entry(e))
                    .map(|(attempt, at_ms, e)| AttemptError {
                        attempt,
                        at_ms,
                        error: self.reveal(e, |t| String::from_utf8_lossy(t).into_owned()),
                    })
                    .collect(),
                steps: steps
                    .into_iter()
                    .map(|(k, v)| (k, msgpack_to_json(&v)))
                    .collect(),
                log_attempts: logs.iter().map(|l| parse_log_line(l).0).collect(),
                logs: logs
                    .iter()
                    .map(|l| parse_log_line(l).1.to_string())
                    .collect(),
            }))
        })
        .await
    }

    /// Live workers of this queue (heartbeat not lapsed): id → their last
    /// self-description (JSON: host, pid, concurrency, in_flight).
    pub async fn workers(&self) -> Result<Vec<(String, serde_json::Value)>> {
        self.bounded(async {
            let k = &self.keys;
            let mut c = self.conn().await?;
            let now = redis_now_ms(&mut c).await?;
            let (alive, info): (Vec<String>, BTreeMap<String, String>) = redis::pipe()
                .zrangebyscore(k.workers(), now, "+inf")
                .hgetall(k.worker_info())
                .query_async(&mut c)
                .await?;
            Ok(alive
                .into_iter()
                .map(|id| {
                    let v = info
                        .get(&id)
                        .and_then(|j| serde_json::from_str(j).ok())
                        .unwrap_or(serde_json::Value::Null);
                    (id, v)
                })
                .collect())
        })
        .await
    }
}

/// Redis's clock in ms.
async fn redis_now_ms<C: redis::aio::ConnectionLike + Send>(c: &mut C) -> Result<u64> {
    let (s, us): (u64, u64) = redis::cmd("TIME").query_async(c).await?;
    Ok(s * 1000 + us / 1000)
}
