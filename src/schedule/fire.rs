//! Firing one tick: the one routine the workers' scheduler loops and an upsert (for a
//! first tick that is already close) share.

use redis::aio::ConnectionLike;

use super::plan::Plan;
use super::stored::Stored;
use crate::error::Result;
use crate::keys::Keys;
use crate::scripts::{self, Move, TickJob};

/// What firing a tick did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    /// The tick's job was added; the scheduler moved on to its next tick.
    Added,
    /// A job with the tick's id was there already (nothing changed for it); the
    /// scheduler moved on.
    Existed,
    /// Nothing was written: someone else fired this tick, or the scheduler was
    /// upserted or removed since it was read.
    Stale,
}

/// One tick to fire: scheduler `id`'s `tick` at `now` (Redis clock), given its stored
/// value as read (`seen`, decoded as `stored`, its rule parsed as `plan`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tick<'a> {
    pub id: &'a str,
    pub seen: &'a [u8],
    pub stored: &'a Stored,
    pub plan: &'a Plan,
    pub tick: u64,
    pub now: u64,
}

/// Fires one tick. Returns what happened and the next tick it stored.
pub(crate) async fn fire<C: ConnectionLike + Send>(
    c: &mut C,
    keys: &Keys,
    t: Tick<'_>,
) -> Result<(Fired, Option<u64>)> {
    let Tick {
        id,
        seen,
        stored,
        plan,
        tick,
        now,
    } = t;
    let (after, next) = stored.fired(plan, tick, now);
    let after = after.encode()?;
    let job = TickJob {
        id: super::job_id(id, tick),
        spec: crate::job::Spec::encode(&stored.name, &stored.opts_bytes()?, &stored.data),
        priority: stored.priority,
        keep: &stored.keep,
    };
    let m = Move {
        id,
        seen,
        tick,
        after: &after,
        next,
    };
    let fired = match scripts::schedule_fire(c, keys, &m, &job).await? {
        1 => Fired::Added,
        2 => Fired::Existed,
        _ => Fired::Stale,
    };
    if fired == Fired::Added {
        metrics::counter!(crate::metrics::JOBS_ENQUEUED, "queue" => keys.queue().to_string())
            .increment(1);
    }
    Ok((fired, next))
}
