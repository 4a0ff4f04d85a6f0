//! The events stream: a bounded Redis Stream per queue (`baton:{q}:events`) of what
//! happened to its jobs, and reading it back, once ([`Queue::events`]) or following it
//! ([`Queue::follow_events`]).
//!
//! Off by default: the scripts write it only while the queue's meta field `events`
//! holds its length cap ([`Queue::set_events`]). Each script reads that field once per
//! call, in a read it makes anyway where it can, so off costs (close to) nothing per
//! job; on, each event is one XADD with an approximate MAXLEN trim (see BENCHMARKS.md,
//! "Feature cost").
//!
//! Events, and the fields beside `event` and the job id:
//! - `added` (`name`; `delayed`: ms when it becomes ready; `scheduler`: its id when a
//!   scheduler added it), `active` (`attempt`, `worker`), `progress` (`progress`),
//! - `completed` (`result`, `attempt`), `failed` (`error`, `attempt`), `retried`
//!   (`error`, `attempt`, `delay_ms`; or `by: request` for [`Queue::retry`]),
//! - `stalled` (`stalled`: the count), `cancelled` (`error`), `removed` (`state`),
//!   `promoted`.
//!
//! Order: the stream is one sequence per queue in the order the scripts ran, so one
//! job's events are always in the order of its life, whichever workers ran it.
//!
//! A blocking read (XREAD BLOCK) runs on a connection of its own whose reply limit is
//! longer than the block, never on the shared multiplexed one (whose 2 s reply limit it
//! would trip, and which it would hold up for every other caller).

use std::collections::BTreeMap;
use std::time::Duration;

use redis::{AsyncCommands, Value};
use serde::Serialize;

use super::Queue;
use crate::error::{Error, Result};
use crate::job::msgpack_to_json;

/// The longest one blocking read waits; [`EventFollower::next`] waits longer in steps.
const MAX_BLOCK: Duration = Duration::from_secs(10);

/// Events read per call at most.
pub const EVENTS_PAGE: usize = 1000;

/// One event of a queue's events stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Its stream id (`ms-seq`): read on from it with [`Queue::events`].
    pub stream_id: String,
    /// What happened: `added`, `active`, `progress`, `completed`, `failed`, `retried`,
    /// `stalled`, `cancelled`, `removed`, `promoted`.
    pub event: String,
    /// The job.
    pub job_id: String,
    /// The other fields: `result` (JSON, decoded and decrypted as [`Queue::job`] does),
    /// `error`, `progress` (JSON), numbers as numbers, the rest as text.
    #[serde(flatten)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

impl Event {
    /// The job's result (completed) or error (failed, cancelled), if this event ends it.
    pub fn outcome(&self) -> Option<JobOutcome> {
        let error = || {
            self.fields
                .get("error")
                .and_then(|e| e.as_str())
                .unwrap_or_default()
                .to_string()
        };
        match self.event.as_str() {
            "completed" => Some(JobOutcome::Completed {
                result: self
                    .fields
                    .get("result")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null),
            }),
            "failed" => Some(JobOutcome::Failed { error: error() }),
            "cancelled" => Some(JobOutcome::Cancelled { error: error() }),
            _ => None,
        }
    }
}

/// How a job ended, as [`Queue::wait_finished`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobOutcome {
    /// Completed with this result.
    Completed {
        /// The handler's result.
        result: serde_json::Value,
    },
    /// Failed (no attempts left) with this error.
    Failed {
        /// The last attempt's error.
        error: String,
    },
    /// Cancelled, for this reason.
    Cancelled {
        /// Why.
        error: String,
    },
}

/// Fields that are numbers.
const NUMBERS: [&str; 5] = ["attempt", "delayed", "delay_ms", "stalled", "ts"];

impl Queue {
    /// Turns the events stream on, capped at about `max_len` events (Redis trims
    /// approximately: a little more may be kept), or off (`None` or 0; what the stream
    /// holds stays readable, and is deleted with [`Queue::delete_events`]).
    pub async fn set_events(&self, max_len: Option<u64>) -> Result<()> {
        self.bounded(async {
            let mut c = self.conn().await?;
            let _: () = match max_len.filter(|n| *n > 0) {
                Some(n) => c.hset(self.keys.meta(), "events", n).await?,
                None => c.hdel(self.keys.meta(), "events").await?,
            };
            Ok(())
        })
        .await
    }

    /// The events stream's cap, if it is on (see [`Queue::set_events`]).
    pub async fn events_cap(&self) -> Result<Option<u64>> {
        self.bounded(async {
            let v: Option<u64> = self.conn().await?.hget(self.keys.meta(), "events").await?;
            Ok(v.filter(|n| *n > 0))
        })
        .await
    }

    /// Deletes what the events stream holds (it goes on being written while on).
    pub async fn delete_events(&self) -> Result<()> {
        self.bounded(async {
            let _: () = self.conn().await?.del(self.keys.events()).await?;
            Ok(())
        })
        .await
    }

    /// Up to `count` events after stream id `after` (exclusive; `None` or `"0"`: from
    /// the oldest kept), oldest first. Never blocks; see [`Queue::follow_events`].
    pub async fn events(&self, after: Option<&str>, count: usize) -> Result<Vec<Event>> {
        let start = start_of(after)?;
        let count = count.clamp(1, EVENTS_PAGE);
        self.bounded(async {
            let mut c = self.conn().await?;
            let v: Value = redis::cmd("XRANGE")
                .arg(self.keys.events())
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(count)
                .query_async(&mut c)
                .await?;
            self.parse_entries(&v)
        })
        .await
    }

    /// The id of the newest event kept (`"0-0"` when none): follow from it to see only
    /// what happens from now on.
    pub async fn last_event_id(&self) -> Result<String> {
        self.bounded(async {
            let mut c = self.conn().await?;
            let v: Value = redis::cmd("XREVRANGE")
                .arg(self.keys.events())
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut c)
                .await?;
            Ok(self
                .parse_entries(&v)?
                .pop()
                .map(|e| e.stream_id)
                .unwrap_or_else(|| "0-0".into()))
        })
        .await
    }

    /// Follows the events stream from after `after` (`None`: from now, the newest
    /// event kept when this is called; `"0"`: from the oldest kept), over a connection
    /// of its own made on first read.
    pub async fn follow_events(&self, after: Option<&str>) -> Result<EventFollower> {
        let cursor = match after {
            None => self.last_event_id().await?,
            Some(a) => {
                start_of(Some(a))?;
                normal_id(a)
            }
        };
        Ok(EventFollower {
            queue: self.clone(),
            cursor,
            conn: None,
        })
    }

    /// The stream entries of an XRANGE / XREAD reply as events.
    pub(super) fn parse_entries(&self, v: &Value) -> Result<Vec<Event>> {
        let bad = || Error::Decode(format!("events stream entry: {v:?}"));
        let Value::Array(entries) = v else {
            return match v {
                Value::Nil => Ok(Vec::new()),
                _ => Err(bad()),
            };
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let Value::Array(pair) = e else {
                return Err(bad());
            };
            let [id, Value::Array(kv)] = &pair[..] else {
                return Err(bad());
            };
            let stream_id: String = redis::from_redis_value_ref(id).map_err(|_| bad())?;
            let mut ev = Event {
                stream_id,
                event: String::new(),
                job_id: String::new(),
                fields: BTreeMap::new(),
            };
            for f in kv.chunks_exact(2) {
                let name: String = redis::from_redis_value_ref(&f[0]).map_err(|_| bad())?;
                let raw: Vec<u8> = redis::from_redis_value_ref(&f[1]).map_err(|_| bad())?;
                let text = || String::from_utf8_lossy(&raw).into_owned();
                match name.as_str() {
                    "event" => ev.event = text(),
                    "id" => ev.job_id = text(),
                    "result" => {
                        let v = self.reveal(&raw, msgpack_to_json);
                        ev.fields.insert(name, v);
                    }
                    "error" => {
                        let v = self.reveal(&raw, |t| String::from_utf8_lossy(t).into_owned());
                        ev.fields.insert(name, serde_json::Value::String(v));
                    }
                    "progress" => {
                        let t = text();
                        let v = serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t));
                        ev.fields.insert(name, v);
                    }
                    n if NUMBERS.contains(&n) => {
                        let t = text();
                        let v = t
                            .parse::<u64>()
                            .map(serde_json::Value::from)
                            .unwrap_or(serde_json::Value::String(t));
                        ev.fields.insert(name, v);
                    }
                    _ => {
                        ev.fields.insert(name, serde_json::Value::String(text()));
                    }
                }
            }
            out.push(ev);
        }
        Ok(out)
    }
}

/// A stream id as XRANGE's exclusive start, checked: `ms` or `ms-seq`.
fn start_of(after: Option<&str>) -> Result<String> {
    match after {
        None | Some("0") | Some("0-0") | Some("") => Ok("-".into()),
        Some(a) => {
            let ok = match a.split_once('-') {
                Some((ms, seq)) => ms.parse::<u64>().is_ok() && seq.parse::<u64>().is_ok(),
                None => a.parse::<u64>().is_ok(),
            };
            if !ok {
                return Err(Error::Invalid(format!(
                    "event id '{a}' is not a stream id (ms-seq, e.g. 1700000000000-0)"
                )));
            }
            Ok(format!("({}", normal_id(a)))
        }
    }
}

/// `ms` as `ms-<max>`: "after ms" means after every event of that millisecond.
fn normal_id(a: &str) -> String {
    if a.contains('-') || a == "0" {
        a.to_string()
    } else {
        format!("{a}-{}", u64::MAX)
    }
}

/// Reads a queue's events as they come ([`Queue::follow_events`]), over a connection of
/// its own (a blocking read must not hold up the shared one).
pub struct EventFollower {
    queue: Queue,
    /// The id of the last event returned, or where it started.
    cursor: String,
    conn: Option<crate::conn::RedisConn>,
}

impl std::fmt::Debug for EventFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFollower")
            .field("queue", &self.queue.name())
            .field("cursor", &self.cursor)
            .finish()
    }
}

impl EventFollower {
    /// The id of the last event returned: resume from it with
    /// [`Queue::follow_events`] or [`Queue::events`].
    pub fn cursor(&self) -> &str {
        &self.cursor
    }

    /// The next events (up to [`EVENTS_PAGE`]), waiting up to `wait` for one; empty
    /// when none came in time.
    pub async fn next(&mut self, wait: Duration) -> Result<Vec<Event>> {
        self.queue.check_name()?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let block = left.min(MAX_BLOCK);
            let got = self.read(block).await;
            if let Err(e) = &got {
                if e.is_connection() || e.is_failover() || matches!(e, Error::Unavailable { .. }) {
                    self.conn = None;
                }
            }
            let got = got?;
            if let Some(last) = got.last() {
                self.cursor = last.stream_id.clone();
                return Ok(got);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(got);
            }
        }
    }

    /// One XREAD, blocking up to `block` (at least 1 ms: 0 would mean forever).
    async fn read(&mut self, block: Duration) -> Result<Vec<Event>> {
        let limit = block + Duration::from_secs(5);
        if self.conn.is_none() {
            let c = self.queue.conn.connector().connect(limit).await?;
            self.conn = Some(c);
        }
        let c = self.conn.as_mut().expect("made above");
        let key = self.queue.keys.events();
        let reply = tokio::time::timeout(
            limit,
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(EVENTS_PAGE)
                .arg("BLOCK")
                .arg(block.as_millis().max(1) as u64)
                .arg("STREAMS")
                .arg(&key)
                .arg(&self.cursor)
                .query_async::<Value>(c),
        )
        .await
        .map_err(|_| Error::Unavailable {
            timeout: limit,
            detail: "no reply from redis to a blocking read of the events stream".into(),
        })??;
        // Nil on timeout; else [[key, entries]] (RESP2) or {key: entries} (RESP3).
        let entries = match &reply {
            Value::Nil => return Ok(Vec::new()),
            Value::Array(streams) => match streams.first() {
                Some(Value::Array(kv)) if kv.len() == 2 => kv[1].clone(),
                _ => Value::Nil,
            },
            Value::Map(m) => m.first().map(|(_, v)| v.clone()).unwrap_or(Value::Nil),
            _ => Value::Nil,
        };
        self.queue.parse_entries(&entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_checked() {
        assert_eq!(start_of(None).unwrap(), "-");
        assert_eq!(start_of(Some("0")).unwrap(), "-");
        assert_eq!(start_of(Some("17-3")).unwrap(), "(17-3");
        assert_eq!(start_of(Some("17")).unwrap(), format!("(17-{}", u64::MAX));
        for bad in ["x", "1-x", "-1", "1-2-3", "$"] {
            assert!(
                matches!(start_of(Some(bad)), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
    }
}
