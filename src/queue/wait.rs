//! Waiting for a job's outcome: [`Queue::wait_finished`] and [`Queue::add_and_wait`].
//!
//! With the events stream on, the wait blocks on it (XREAD BLOCK, on a connection of
//! its own) and wakes on the job's own end: no polling. With it off, it reads the job
//! hash (one HMGET) with a backoff from 10 ms doubling to 250 ms: about 4 reads a
//! second per waiter once settled, each a few thousand Redis instructions, and nothing
//! at all for jobs nobody waits on (the hot path is unchanged). A waiter on the stream
//! also reads the job hash every 10 s of silence, so a trimmed stream (a small cap, a
//! slow reader) or events turned off meanwhile cannot strand it.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::events::JobOutcome;
use super::Queue;
use crate::error::{Error, Result};
use crate::job::Compact;
use crate::job::{msgpack_to_json, JobOptions};

/// The poll interval when the stream is off: the first, and the cap.
const POLL_FIRST: Duration = Duration::from_millis(10);
const POLL_CAP: Duration = Duration::from_millis(250);
/// The longest a wait on the stream goes without reading the job hash.
const RECHECK: Duration = Duration::from_secs(10);

/// The job hash as a wait reads it, and the stream's state.
type Probe = (
    (Option<String>, Option<Vec<u8>>, Option<Vec<u8>>),
    Option<u64>,
    redis::Value,
);

/// The probe's pipeline as read: the newest event, a compact job's outcome and value,
/// the job hash's state, result and error, and the events cap.
type ProbeRead = (
    redis::Value,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    (Option<String>, Option<Vec<u8>>, Option<Vec<u8>>),
    Option<u64>,
);

impl Queue {
    /// Waits up to `timeout` for job `id` to end; returns its result (completed) or its
    /// error (failed, cancelled), or `None` when it had not ended in time (it goes on).
    /// A job that ended already returns at once.
    ///
    /// Fails with [`Error::NotFound`] when there is no such job, or when it is deleted
    /// before the wait sees its end: removed, or kept by none of its retention (with
    /// `keep_completed` none, turn the events stream on, whose `completed` event carries
    /// the result).
    pub async fn wait_finished(&self, id: &str, timeout: Duration) -> Result<Option<JobOutcome>> {
        crate::validate::job_id(id)?;
        self.check_name()?;
        let deadline = Instant::now() + timeout;
        let mut poll = POLL_FIRST;
        let mut follower: Option<super::events::EventFollower> = None;
        loop {
            let (state, stream_on, last) = self.probe(id).await?;
            if let Some(done) = state {
                return Ok(Some(done));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            if !stream_on {
                follower = None;
                tokio::time::sleep(poll.min(left)).await;
                poll = (poll * 2).min(POLL_CAP);
                continue;
            }
            // Follow from the newest event seen with the job not ended: its end comes
            // after it.
            let f = match &mut follower {
                Some(f) => f,
                None => follower.insert(self.follow_events(Some(&last)).await?),
            };
            let until = Instant::now() + left.min(RECHECK);
            while Instant::now() < until {
                let wait = until.saturating_duration_since(Instant::now());
                for e in f.next(wait).await? {
                    if e.job_id != id {
                        continue;
                    }
                    if let Some(done) = e.outcome() {
                        return Ok(Some(done));
                    }
                    if e.event == "removed" {
                        return Err(self.not_found(id));
                    }
                }
            }
        }
    }

    /// Adds a job and waits up to `timeout` for its outcome (see
    /// [`Queue::wait_finished`]): the job id, and the outcome or `None` on timeout. A job
    /// with the given id that exists already is waited on as it is.
    pub async fn add_and_wait<T: Serialize>(
        &self,
        name: &str,
        data: &T,
        opts: JobOptions,
        timeout: Duration,
    ) -> Result<(String, Option<JobOutcome>)> {
        let added = self.add(name, data, opts).await?;
        let out = self.wait_finished(&added.id, timeout).await?;
        Ok((added.id, out))
    }

    fn not_found(&self, id: &str) -> Error {
        Error::NotFound {
            queue: self.name().to_string(),
            id: id.to_string(),
        }
    }

    /// One round trip: the job's state with its result and error, whether the stream
    /// is on, and the newest event's id (read before the state, so no end is missed
    /// between the two).
    async fn probe(&self, id: &str) -> Result<(Option<JobOutcome>, bool, String)> {
        self.bounded(async {
            let k = &self.keys;
            let mut c = self.conn().await?;
            let (last, outcome, compact, (state, result, error), cap): ProbeRead = redis::pipe()
                .cmd("XREVRANGE")
                .arg(k.events())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                // Before the hash: a compact job (src/job/compact.rs) stops being
                // compact only when its hash is written.
                .hget(k.done(), id)
                .hget(k.jobs(), id)
                .cmd("HMGET")
                .arg(k.job(id))
                .arg("state")
                .arg("result")
                .arg("error")
                .hget(k.meta(), "events")
                .query_async(&mut c)
                .await?;
            let probe: Probe = ((state, result, error), cap, last);
            let ((state, result, error), cap, last) = probe;
            // A compact job: its value stands for its hash (src/job/compact.rs).
            let compact = Compact::join(outcome, compact);
            let compact = compact.as_deref().and_then(Compact::parse);
            let (state, result): (Option<String>, Option<Vec<u8>>) = match compact {
                Some(c) if state.is_none() => (
                    c.field("state")
                        .map(|s| String::from_utf8_lossy(s).into_owned()),
                    c.field("result").map(<[u8]>::to_vec),
                ),
                _ => (state, result),
            };
            let Some(state) = state else {
                return Err(self.not_found(id));
            };
            let text = |e: Option<Vec<u8>>| {
                e.map(|b| self.reveal(&b, |t| String::from_utf8_lossy(t).into_owned()))
                    .unwrap_or_default()
            };
            let done = match state.as_str() {
                "completed" => Some(JobOutcome::Completed {
                    result: result
                        .map(|b| self.reveal(&b, msgpack_to_json))
                        .unwrap_or(serde_json::Value::Null),
                }),
                "failed" => Some(JobOutcome::Failed { error: text(error) }),
                "cancelled" => Some(JobOutcome::Cancelled { error: text(error) }),
                _ => None,
            };
            let last = self
                .parse_entries(&last)?
                .pop()
                .map(|e| e.stream_id)
                .unwrap_or_else(|| "0-0".into());
            Ok((done, cap.is_some_and(|n| n > 0), last))
        })
        .await
    }
}
