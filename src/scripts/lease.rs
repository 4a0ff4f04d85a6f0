//! The lease scripts: the heartbeat's renewal, the sweeper's recovery, and the
//! claimer's reconciliation after a lost claim reply.

use std::time::Duration;

use redis::aio::ConnectionLike;

use super::{RECONCILE, RENEW, SWEEP};
use crate::error::Result;
use crate::keys::Keys;

/// A live lease as the leases HASH holds it (`token:attempt:started:worker`, see
/// `lua/lease.lua`): claims write no job hash, so whatever shows a running job's
/// worker, token or start reads them from here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LeaseEntry {
    /// The fencing token.
    pub token: u64,
    /// The attempt this lease runs (counted at the claim).
    pub attempt: u32,
    /// When it was claimed (Redis clock, ms).
    pub started_ms: u64,
    /// The worker holding it.
    pub worker: String,
}

impl LeaseEntry {
    /// Parses an entry; None for anything malformed.
    pub(crate) fn parse(v: &[u8]) -> Option<Self> {
        let v = std::str::from_utf8(v).ok()?;
        let mut it = v.splitn(4, ':');
        Some(Self {
            token: it.next()?.parse().ok()?,
            attempt: it.next()?.parse().ok()?,
            started_ms: it.next()?.parse().ok()?,
            worker: it.next()?.to_string(),
        })
    }
}

/// The lease to show for a job in `state`: its live one (the leases hash entry,
/// `live`), else for a finished job the last one, recorded in its hash as field
/// `lease` (`recorded`). Other jobs show the fields of their hash.
pub(crate) fn shown_lease(
    state: crate::JobState,
    live: Option<&[u8]>,
    recorded: Option<&[u8]>,
) -> Option<LeaseEntry> {
    use crate::JobState::{Cancelled, Completed, Failed};
    live.and_then(LeaseEntry::parse).or_else(|| {
        matches!(state, Completed | Failed | Cancelled)
            .then(|| recorded.and_then(LeaseEntry::parse))
            .flatten()
    })
}

/// What `renew.lua` found.
#[derive(Debug, Clone, Default)]
pub(crate) struct RenewReply {
    pub lost: Vec<String>,
    pub cancel_requested: Vec<String>,
}

/// `renew.lua`: renew the leases of `held` (id, token) and register the worker.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn renew<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    worker: &str,
    lease: Duration,
    worker_ttl: Duration,
    description: &str,
    held: &[(String, u64)],
) -> Result<RenewReply> {
    let mut inv = RENEW.prepare_invoke();
    inv.key(k.active())
        .key(k.workers())
        .key(k.worker_info())
        .key(k.leases());
    inv.arg(k.prefix())
        .arg(worker)
        .arg(lease.as_millis() as u64)
        .arg(worker_ttl.as_millis() as u64)
        .arg(description);
    for (id, token) in held {
        inv.arg(id).arg(*token);
    }
    let (lost, cancel_requested): (Vec<String>, Vec<String>) = inv.invoke_async(c).await?;
    Ok(RenewReply {
        lost,
        cancel_requested,
    })
}

/// What the sweeper did with one expired lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Swept {
    Requeued,
    Failed,
    Cancelled,
}

/// `sweep.lua`: recover up to `limit` jobs whose lease expired.
pub(crate) async fn sweep<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    max_stalled: u32,
    limit: usize,
) -> Result<Vec<(String, Swept)>> {
    let mut inv = SWEEP.prepare_invoke();
    inv.key(k.active())
        .key(k.wait())
        .key(k.prioritized())
        .key(k.failed())
        .key(k.cancelled());
    inv.key(k.meta())
        .key(k.wake())
        .key(k.workers())
        .key(k.worker_info())
        .key(k.events())
        .key(k.leases());
    inv.arg(k.prefix()).arg(max_stalled).arg(limit);
    let flat: Vec<String> = inv.invoke_async(c).await?;
    Ok(flat
        .chunks_exact(2)
        .map(|p| {
            let what = match p[1].as_str() {
                "failed" => Swept::Failed,
                "cancelled" => Swept::Cancelled,
                _ => Swept::Requeued,
            };
            (p[0].clone(), what)
        })
        .collect())
}

/// `reconcile.lua`: hand back the jobs leased to `worker` that it does not hold.
pub(crate) async fn reconcile<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    worker: &str,
    held: &[(String, u64)],
) -> Result<Vec<String>> {
    let mut inv = RECONCILE.prepare_invoke();
    inv.key(k.active())
        .key(k.wait())
        .key(k.prioritized())
        .key(k.meta())
        .key(k.wake())
        .key(k.cancelled())
        .key(k.failed())
        .key(k.events())
        .key(k.leases());
    inv.arg(k.prefix()).arg(worker);
    for (id, _) in held {
        inv.arg(id);
    }
    Ok(inv.invoke_async(c).await?)
}

#[cfg(test)]
mod tests {
    use super::LeaseEntry;

    #[test]
    fn lease_entries_parse_strictly() {
        let e = LeaseEntry::parse(b"176400000000012:3:1764000000000:host:1:abc").unwrap();
        assert_eq!(e.token, 176_400_000_000_012);
        assert_eq!(e.attempt, 3);
        assert_eq!(e.started_ms, 1_764_000_000_000);
        assert_eq!(e.worker, "host:1:abc");
        assert_eq!(LeaseEntry::parse(b"x:1:2:w"), None);
        assert_eq!(LeaseEntry::parse(b"1:2:3"), None);
        assert_eq!(LeaseEntry::parse(b"1.5:2:3:w"), None);
    }
}
