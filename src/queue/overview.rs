//! What a dashboard reads at a glance, each with a bounded number of Redis commands
//! whatever the queue's size: finished jobs per time window (ZCOUNT on the finished
//! sets by their finish-time scores), the oldest waiting job, one-line summaries of a
//! page of jobs; and [`Queue::promote`], running a delayed job now.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Queue;
use crate::error::{Error, Result};
use crate::job::{Compact, JobState};
use crate::scripts;

/// Jobs that finished within a window (see [`Queue::finished_since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Finished {
    /// Completed within the window.
    pub completed: u64,
    /// Failed within the window.
    pub failed: u64,
}

/// One line about a job, for listings (see [`Queue::summaries`]).
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    /// Job id.
    pub id: String,
    /// Job name.
    pub name: String,
    /// State.
    pub state: JobState,
    /// The attempt now running or last run (0 = never started).
    pub attempt: u32,
    /// Enqueue time, ms since the epoch (Redis clock).
    pub created_ms: u64,
    /// Start of the current or last attempt.
    pub started_ms: Option<u64>,
    /// Finish time.
    pub finished_ms: Option<u64>,
    /// The first line of the last error (decrypted when the handle holds the key, else
    /// `"encrypted (key K)"`), at most 200 characters.
    pub error: Option<String>,
}

/// Longest error summary, in characters.
const ERROR_SUMMARY: usize = 200;

impl Queue {
    /// Completed and failed jobs whose finish time is at or after `since_ms` (ms since
    /// the epoch, Redis clock): two ZCOUNTs over the finished sets' scores. Counts only
    /// what retention has kept (`keep_completed` / `keep_failed`), so a queue that keeps
    /// few finished jobs shows fewer here than really finished.
    pub async fn finished_since(&self, since_ms: u64) -> Result<Finished> {
        self.bounded(async {
            let k = &self.keys;
            let mut c = self.conn().await?;
            let (completed, failed): (u64, u64) = redis::pipe()
                .zcount(k.completed(), since_ms, "+inf")
                .zcount(k.failed(), since_ms, "+inf")
                .query_async(&mut c)
                .await?;
            Ok(Finished { completed, failed })
        })
        .await
    }

    /// When the job that has waited longest became ready (ms since the epoch, Redis
    /// clock), or None when nothing waits: the next job of the wait list and the first
    /// of the priority set, whichever is older. Two round trips, whatever the length.
    pub async fn oldest_waiting_ms(&self) -> Result<Option<u64>> {
        self.bounded(async {
            let k = &self.keys;
            let mut c = self.conn().await?;
            let (next, first): (Option<String>, Vec<String>) = redis::pipe()
                .lindex(k.wait(), -1)
                .zrange(k.prioritized(), 0, 0)
                .query_async(&mut c)
                .await?;
            let ids: Vec<String> = next.into_iter().chain(first).collect();
            if ids.is_empty() {
                return Ok(None);
            }
            // The compact values first (src/job/compact.rs: a compact job's time is its
            // add time, and it stops being compact only when its hash is written).
            let mut p = redis::pipe();
            p.cmd("HMGET").arg(k.jobs()).arg(&ids);
            for id in &ids {
                p.cmd("HMGET").arg(k.job(id)).arg("ready").arg("ts");
            }
            let mut rows: Vec<Vec<Option<Vec<u8>>>> = p.query_async(&mut c).await?;
            let compact = rows.remove(0);
            let num = |v: &[u8]| std::str::from_utf8(v).ok()?.parse::<u64>().ok();
            Ok(rows
                .into_iter()
                .zip(compact)
                .filter_map(|(f, v)| {
                    let hashed = f.iter().flatten().next().and_then(|t| num(t));
                    hashed.or_else(|| num(Compact::parse(v.as_deref()?)?.ts))
                })
                .min())
        })
        .await
    }

    /// A one-line summary of each of `ids` (None for an id whose job is gone), in one
    /// round trip: for a page of a listing ([`Queue::list`]).
    pub async fn summaries(&self, ids: &[String]) -> Result<Vec<Option<JobSummary>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.bounded(async {
            const FIELDS: [&str; 7] = [
                "state", "attempt", "ts", "started", "finished", "error", "lease",
            ];
            let mut c = self.conn().await?;
            let mut p = redis::pipe();
            // The compact values first (src/job/compact.rs): a job stops being compact
            // only when its hash is written, so one that changes meanwhile is found.
            p.cmd("HMGET").arg(self.keys.done()).arg(ids);
            p.cmd("HMGET").arg(self.keys.jobs()).arg(ids);
            for id in ids {
                p.cmd("HMGET").arg(self.keys.job(id)).arg(&FIELDS[..]);
            }
            // A leased job's hash still says waiting: its lease is in the leases hash.
            p.cmd("HMGET").arg(self.keys.leases()).arg(ids);
            let mut rows: Vec<Vec<Option<Vec<u8>>>> = p.query_async(&mut c).await?;
            // The names apart: they head the field that also holds the payload.
            let names = scripts::job_names(&mut c, &self.keys, ids).await?;
            let leases = rows.pop().unwrap_or_default();
            let outcomes = rows.remove(0);
            let compact = rows.remove(0);
            let compact = outcomes
                .into_iter()
                .zip(compact)
                .map(|(o, v)| Compact::join(o, v));
            Ok(ids
                .iter()
                .zip(rows)
                .zip(compact)
                .zip(leases)
                .zip(names)
                .map(|((((id, f), v), lease), name)| {
                    let mut f: BTreeMap<&str, Vec<u8>> = FIELDS
                        .iter()
                        .zip(f)
                        .filter_map(|(name, v)| Some((*name, v?)))
                        .collect();
                    if f.is_empty() {
                        if let Some(c) = v.as_deref().and_then(Compact::parse) {
                            f.extend(
                                c.fields()
                                    .filter(|(n, _)| FIELDS.contains(n))
                                    .map(|(n, v)| (n, v.to_vec())),
                            );
                        }
                    }
                    f.get("state")?;
                    let text = |v: &Vec<u8>| String::from_utf8_lossy(v).into_owned();
                    let num = |name: &str| f.get(name).and_then(|v| text(v).parse::<u64>().ok());
                    // A leased job's hash still says waiting: its lease is in the
                    // leases hash; a finished job's last lease is its field `lease`.
                    let state = match lease {
                        Some(_) => JobState::Active,
                        None => f
                            .get("state")
                            .and_then(|s| JobState::parse(&text(s)))
                            .unwrap_or(JobState::Waiting),
                    };
                    let lease = crate::scripts::shown_lease(
                        state,
                        lease.as_deref(),
                        f.get("lease").map(|v| &v[..]),
                    );
                    let error = f.get("error").map(|e| {
                        let full: String =
                            self.reveal(e, |t| String::from_utf8_lossy(t).into_owned());
                        let line = full.lines().next().unwrap_or("");
                        line.chars().take(ERROR_SUMMARY).collect()
                    });
                    Some(JobSummary {
                        id: id.clone(),
                        name: name.unwrap_or_default(),
                        state,
                        attempt: lease
                            .as_ref()
                            .map(|l| l.attempt)
                            .unwrap_or(num("attempt").unwrap_or(0) as u32),
                        created_ms: num("ts").unwrap_or(0),
                        started_ms: lease.as_ref().map(|l| l.started_ms).or(num("started")),
                        finished_ms: num("finished"),
                        error,
                    })
                })
                .collect())
        })
        .await
    }

    /// Runs a delayed job now: it becomes ready at once, ahead of what is left of its
    /// delay or retry backoff, and an idle worker is woken. Not delayed:
    /// [`Error::InvalidState`]; unknown: [`Error::NotFound`].
    pub async fn promote(&self, id: &str) -> Result<()> {
        crate::validate::job_id(id)?;
        self.bounded(async {
            let (code, state) = scripts::promote(&mut self.conn().await?, &self.keys, id).await?;
            Error::from_code(code, state, self.name(), id, "run now").map(|_| ())
        })
        .await
    }
}
