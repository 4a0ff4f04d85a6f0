//! The admin scripts: cancel, retry, promote, remove, clean, reencrypt, and a running
//! attempt's fenced writes about itself (steps, progress, log lines).

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::{
    CANCEL, CLEAN, GROUP_LIMITS, JOB_NAMES, PROMOTE, RECORD, REENCRYPT, REMOVE, RETRY, UNCOMPACT,
};
use crate::error::Result;
use crate::keys::Keys;

/// `cancel.lua`: (code, state before).
///
/// `sharded`: announce with SPUBLISH (a cluster, whose workers listen with SSUBSCRIBE on
/// the queue's shard) instead of PUBLISH.
pub(crate) async fn cancel<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    id: &str,
    reason: &str,
    sharded: bool,
) -> Result<(i64, String)> {
    let mut inv = CANCEL.prepare_invoke();
    inv.key(k.wait())
        .key(k.prioritized())
        .key(k.delayed())
        .key(k.active())
        .key(k.cancelled())
        .key(k.meta())
        .key(k.events());
    inv.arg(k.prefix())
        .arg(id)
        .arg(k.cancel_channel())
        .arg(reason)
        .arg(if sharded { "SPUBLISH" } else { "PUBLISH" });
    Ok(inv.invoke_async(c).await?)
}

/// `job_names.lua`: the names of jobs `ids` (None for no job), without their payloads.
pub(crate) async fn job_names<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    ids: &[String],
) -> Result<Vec<Option<String>>> {
    let mut inv = JOB_NAMES.prepare_invoke();
    for id in ids {
        inv.key(k.job(id));
    }
    inv.arg(k.prefix());
    Ok(inv.invoke_async(c).await?)
}

/// `group_limits.lua`: sets the per-group limits (`spec` as meta stores it) and puts
/// back in line the groups with ready jobs; returns how many.
pub(crate) async fn group_limits<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    spec: &str,
) -> Result<u64> {
    let mut inv = GROUP_LIMITS.prepare_invoke();
    inv.key(k.meta()).key(k.groups_active()).key(k.wake());
    inv.arg(k.prefix()).arg(spec);
    Ok(inv.invoke_async(c).await?)
}

/// `retry.lua`: (code, state before).
pub(crate) async fn retry<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    id: &str,
) -> Result<(i64, String)> {
    let mut inv = RETRY.prepare_invoke();
    inv.key(k.wait())
        .key(k.prioritized())
        .key(k.failed())
        .key(k.cancelled())
        .key(k.meta())
        .key(k.wake())
        .key(k.events());
    inv.arg(k.prefix()).arg(id);
    Ok(inv.invoke_async(c).await?)
}

/// `promote.lua`: (code, state before).
pub(crate) async fn promote<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    id: &str,
) -> Result<(i64, String)> {
    let mut inv = PROMOTE.prepare_invoke();
    inv.key(k.wait())
        .key(k.prioritized())
        .key(k.delayed())
        .key(k.meta())
        .key(k.wake())
        .key(k.events());
    inv.arg(k.prefix()).arg(id);
    Ok(inv.invoke_async(c).await?)
}

/// `remove.lua`: (code, state before).
pub(crate) async fn remove<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    id: &str,
) -> Result<(i64, String)> {
    let mut inv = REMOVE.prepare_invoke();
    inv.key(k.wait())
        .key(k.prioritized())
        .key(k.delayed())
        .key(k.completed())
        .key(k.failed())
        .key(k.cancelled())
        .key(k.meta())
        .key(k.events());
    inv.arg(k.prefix()).arg(id);
    Ok(inv.invoke_async(c).await?)
}

/// What a running attempt records about itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Record<'a> {
    Step(&'a str),
    Progress,
    Log { keep: usize },
}

/// `record.lua`: a fenced write by the lease holder; false when the lock is lost.
pub(crate) async fn record<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    id: &str,
    token: u64,
    what: Record<'_>,
    value: &[u8],
) -> Result<bool> {
    let mut inv = RECORD.prepare_invoke();
    inv.key(k.leases())
        .key(k.job(id))
        .key(k.steps(id))
        .key(k.logs(id))
        .key(k.meta())
        .key(k.events());
    let (kind, field, keep) = match what {
        Record::Step(name) => ("s", name, 0),
        Record::Progress => ("p", "", 0),
        Record::Log { keep } => ("l", "", keep),
    };
    inv.arg(id)
        .arg(token)
        .arg(kind)
        .arg(field)
        .arg(value)
        .arg(keep);
    let n: i64 = inv.invoke_async(c).await?;
    Ok(n == 1)
}

/// `clean.lua`: delete up to `limit` jobs older than `age` from a finished set.
pub(crate) async fn clean<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    set: String,
    age: Duration,
    limit: usize,
) -> Result<u64> {
    let mut inv = CLEAN.prepare_invoke();
    inv.key(set);
    inv.arg(k.prefix()).arg(age.as_millis() as u64).arg(limit);
    Ok(inv.invoke_async(c).await?)
}

/// One compare-and-set rewrite of a hash field for `reencrypt.lua` (a job hash's
/// field, or a compact job's value: field = its id in the `jobs` hash).
#[derive(Debug, Clone)]
pub(crate) struct Rewrite {
    pub field: String,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
    /// Sealed values the field holds (a kept compact completion: payload and result).
    pub values: u64,
}

/// `reencrypt.lua`: per hash key (of one queue) its rewrites; returns (rewritten,
/// changed meanwhile).
pub(crate) async fn reencrypt<C: ConnectionLike + Send>(
    c: &mut C,
    jobs: &[(String, Vec<Rewrite>)],
) -> Result<(u64, u64)> {
    let mut inv = REENCRYPT.prepare_invoke();
    for (key, _) in jobs {
        inv.key(key);
    }
    for (_, rewrites) in jobs {
        inv.arg(rewrites.len());
        for r in rewrites {
            inv.arg(&r.field)
                .arg(&r.old[..])
                .arg(&r.new[..])
                .arg(r.values);
        }
    }
    Ok(inv.invoke_async(c).await?)
}

/// `uncompact.lua`: shuts the compact-job gate and expands one HSCAN page (`count`
/// fields from `cursor`) of the queue's compact jobs; returns (next cursor, expanded).
pub(crate) async fn uncompact<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    cursor: u64,
    count: usize,
) -> Result<(u64, u64)> {
    let mut inv = UNCOMPACT.prepare_invoke();
    inv.key(k.meta()).key(k.jobs());
    inv.arg(k.prefix()).arg(cursor).arg(count);
    let (next, n): (String, u64) = inv.invoke_async(c).await?;
    let next = next
        .parse()
        .map_err(|_| crate::Error::Invalid(format!("uncompact.lua: bad cursor {next}")))?;
    Ok((next, n))
}
