//! The scheduler scripts: read, upsert, fire, remove (see `src/schedule/`).

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::Value;

use super::{SCHEDULE_FIRE, SCHEDULE_READ, SCHEDULE_REMOVE, SCHEDULE_UPSERT};
use crate::error::{Error, Result};
use crate::keys::Keys;

/// One scheduler as `schedule_read.lua` returns it.
#[derive(Debug, Clone)]
pub(crate) struct ReadEntry {
    pub id: String,
    /// Its next tick (None: ended).
    pub next_ms: Option<u64>,
    /// Its stored value (None: missing, an orphan entry of the sorted set).
    pub value: Option<Vec<u8>>,
}

/// What `schedule_read.lua` returns.
#[derive(Debug, Clone)]
pub(crate) struct ReadReply {
    /// Redis's clock.
    pub now_ms: u64,
    /// In `due` mode, the first next tick beyond the look-ahead.
    pub beyond_ms: Option<u64>,
    pub entries: Vec<ReadEntry>,
}

/// Which schedulers `schedule_read.lua` reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Read<'a> {
    /// Those due within the look-ahead, at most this many.
    Due(Duration, usize),
    /// One.
    One(&'a str),
    /// All.
    All,
}

pub(crate) async fn schedule_read<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    what: Read<'_>,
) -> Result<ReadReply> {
    let mut inv = SCHEDULE_READ.prepare_invoke();
    inv.key(k.schedulers()).key(k.sched());
    match what {
        Read::Due(ahead, max) => inv.arg("due").arg(ahead.as_millis() as u64).arg(max),
        Read::One(id) => inv.arg("one").arg(id),
        Read::All => inv.arg("all"),
    };
    let v: Vec<Value> = inv.invoke_async(c).await?;
    parse_read(v)
}

fn parse_read(v: Vec<Value>) -> Result<ReadReply> {
    let bad = |what: &str, v: &Value| Error::Decode(format!("schedule read: {what} is {v:?}"));
    let int = |what: &str, v: &Value| match v {
        Value::Int(n) => Ok(*n),
        _ => Err(bad(what, v)),
    };
    if v.len() < 2 || !(v.len() - 2).is_multiple_of(3) {
        return Err(Error::Decode(format!(
            "schedule read: {} values, expected 2 + 3 per scheduler",
            v.len()
        )));
    }
    let now_ms = u64::try_from(int("now", &v[0])?).map_err(|_| bad("now", &v[0]))?;
    let beyond_ms = u64::try_from(int("beyond", &v[1])?).ok();
    let mut entries = Vec::with_capacity((v.len() - 2) / 3);
    for e in v[2..].chunks_exact(3) {
        let id = match &e[0] {
            Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| bad("id", &e[0]))?,
            other => return Err(bad("id", other)),
        };
        let next_ms = u64::try_from(int("next tick", &e[1])?).ok();
        let value = match &e[2] {
            Value::BulkString(b) => Some(b.clone()),
            Value::Nil => None,
            other => return Err(bad("stored value", other)),
        };
        entries.push(ReadEntry { id, next_ms, value });
    }
    Ok(ReadReply {
        now_ms,
        beyond_ms,
        entries,
    })
}

/// A tick's job, as `schedule_fire.lua` writes it (the fields of `add.lua`).
#[derive(Debug, Clone)]
pub(crate) struct TickJob<'a> {
    pub id: String,
    /// Name, run options and payload as one stored value ([`crate::job::Spec`]).
    pub spec: Vec<u8>,
    pub priority: u32,
    pub keep: &'a str,
}

/// A compare-and-set move of a scheduler: (value as read, tick) → (value, next tick).
#[derive(Debug, Clone)]
pub(crate) struct Move<'a> {
    pub id: &'a str,
    pub seen: &'a [u8],
    pub tick: u64,
    pub after: &'a [u8],
    pub next: Option<u64>,
}

fn ms_or_none(t: Option<u64>) -> i64 {
    t.and_then(|t| i64::try_from(t).ok()).unwrap_or(-1)
}

/// `schedule_fire.lua`: 1 added, 2 the job existed, 0 stale.
pub(crate) async fn schedule_fire<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    m: &Move<'_>,
    job: &TickJob<'_>,
) -> Result<i64> {
    let mut inv = SCHEDULE_FIRE.prepare_invoke();
    inv.key(k.schedulers())
        .key(k.sched())
        .key(k.wait())
        .key(k.prioritized())
        .key(k.delayed())
        .key(k.meta())
        .key(k.wake())
        .key(k.events());
    inv.arg(k.prefix())
        .arg(m.id)
        .arg(m.seen)
        .arg(m.tick)
        .arg(m.after)
        .arg(ms_or_none(m.next))
        .arg(&job.id)
        .arg(&job.spec[..])
        .arg(job.priority)
        .arg(job.keep);
    Ok(inv.invoke_async(c).await?)
}

/// The last tick's job of a scheduler, which an upsert or remove takes back while it
/// still waits for its tick.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub job_id: String,
    pub tick: u64,
}

/// What `schedule_upsert.lua` takes: the scheduler as read and its two possible new
/// states (stored value, next tick), one for each fate of its pending job.
#[derive(Debug, Clone)]
pub(crate) struct Upsert<'a> {
    pub id: &'a str,
    /// The stored value as read (empty: there was none).
    pub seen: &'a [u8],
    pub pending: Option<&'a Pending>,
    /// If the pending job is taken back.
    pub taken_back: (&'a [u8], Option<u64>),
    /// If it stays (or there is none).
    pub kept: (&'a [u8], Option<u64>),
    /// Announce the change with SPUBLISH (a cluster) instead of PUBLISH.
    pub sharded: bool,
}

/// `schedule_upsert.lua`: 0 changed meanwhile, 1 written, 2 written and the pending
/// job taken back.
pub(crate) async fn schedule_upsert<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    u: &Upsert<'_>,
) -> Result<i64> {
    let (id, seen, pending, taken_back, kept, sharded) =
        (u.id, u.seen, u.pending, u.taken_back, u.kept, u.sharded);
    let mut inv = SCHEDULE_UPSERT.prepare_invoke();
    inv.key(k.schedulers())
        .key(k.sched())
        .key(k.delayed())
        .key(k.meta());
    inv.arg(k.prefix())
        .arg(id)
        .arg(seen)
        .arg(pending.map_or("", |p| p.job_id.as_str()))
        .arg(pending.map_or(0, |p| p.tick))
        .arg(taken_back.0)
        .arg(ms_or_none(taken_back.1))
        .arg(kept.0)
        .arg(ms_or_none(kept.1))
        .arg(k.cancel_channel())
        .arg(if sharded { "SPUBLISH" } else { "PUBLISH" })
        .arg(crate::schedule::CHANGED);
    Ok(inv.invoke_async(c).await?)
}

/// `schedule_remove.lua`: 0 changed meanwhile, 1 removed, 2 removed with its waiting
/// job, -1 no such scheduler.
pub(crate) async fn schedule_remove<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    id: &str,
    seen: &[u8],
    pending: Option<&Pending>,
) -> Result<i64> {
    let mut inv = SCHEDULE_REMOVE.prepare_invoke();
    inv.key(k.schedulers()).key(k.sched()).key(k.delayed());
    inv.arg(k.prefix())
        .arg(id)
        .arg(seen)
        .arg(pending.map_or("", |p| p.job_id.as_str()))
        .arg(pending.map_or(0, |p| p.tick));
    Ok(inv.invoke_async(c).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_reply_parses_and_a_bad_one_is_an_error() {
        let v = vec![
            Value::Int(10),
            Value::Int(-1),
            Value::BulkString(b"a".to_vec()),
            Value::Int(20),
            Value::BulkString(b"x".to_vec()),
            Value::BulkString(b"b".to_vec()),
            Value::Int(-1),
            Value::Nil,
        ];
        let r = parse_read(v).unwrap();
        assert_eq!((r.now_ms, r.beyond_ms, r.entries.len()), (10, None, 2));
        assert_eq!(r.entries[0].next_ms, Some(20));
        assert_eq!(r.entries[1].next_ms, None);
        assert!(r.entries[1].value.is_none());
        assert!(parse_read(vec![Value::Int(1)]).is_err());
        assert!(parse_read(vec![Value::Nil, Value::Int(1)]).is_err());
    }
}
