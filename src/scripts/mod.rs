//! The Lua scripts, one function each; the one place that knows each script's KEYS and
//! ARGV order (the script's own header says the same). The job path (add, claim,
//! finish) is here, the claim's strict reply parse in `claim`; leases (renew, sweep)
//! in `lease`, the admin scripts in `admin`, the job schedulers' in `schedule`.
//!
//! Every script is the helpers of `lua/common.lua`, `lua/lease.lua` and
//! `lua/compact.lua` that it uses (`prelude`), followed by its own file.
//! [`redis::Script`] calls EVALSHA and falls back to EVAL on NOSCRIPT, so a Redis
//! restart (which empties the script cache) costs one extra round trip, not an error.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use crate::error::{Error, Result};
use crate::keys::Keys;

macro_rules! script {
    ($name:ident, $file:literal) => {
        static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(&assemble(include_str!(concat!("../../lua/", $file)))));
    };
}

/// `lua/common.lua`, then `lua/lease.lua` (the lease helpers) and `lua/compact.lua`
/// (compact jobs), kept apart so each file stays readable.
const COMMON: &str = concat!(
    include_str!("../../lua/common.lua"),
    "\n",
    include_str!("../../lua/lease.lua"),
    "\n",
    include_str!("../../lua/compact.lua")
);

/// A script's text: the file's first line, its `#!lua` shebang with its Redis 7 script
/// flags (Redis reads flags from the very first line only), then the helpers of
/// [`COMMON`] the rest of the file uses ([`prelude::needed`]), then the rest of the
/// file. A script without `no-writes` or
/// `allow-oom` is refused whole (OOM) when Redis is over maxmemory, before its first
/// command; without `allow-cross-slot-keys` Redis also checks that every key it touches
/// is in one slot.
/// Flags need Redis 7.0 or later.
fn assemble(file: &str) -> String {
    let (shebang, body) = file
        .split_once('\n')
        .filter(|(first, _)| first.starts_with("#!lua"))
        .expect("every lua/*.lua file starts with its #!lua line");
    format!("{shebang}\n{}\n{body}", prelude::needed(COMMON, body))
}

script!(ADD, "add.lua");
script!(CLAIM, "claim.lua");
script!(FINISH, "finish.lua");
script!(RENEW, "renew.lua");
script!(SWEEP, "sweep.lua");
script!(CANCEL, "cancel.lua");
script!(RETRY, "retry.lua");
script!(REMOVE, "remove.lua");
script!(RECORD, "record.lua");
script!(CLEAN, "clean.lua");
script!(RECONCILE, "reconcile.lua");
script!(REENCRYPT, "reencrypt.lua");
script!(SCHEDULE_READ, "schedule_read.lua");
script!(SCHEDULE_FIRE, "schedule_fire.lua");
script!(SCHEDULE_UPSERT, "schedule_upsert.lua");
script!(SCHEDULE_REMOVE, "schedule_remove.lua");
script!(PROMOTE, "promote.lua");
script!(FLOW, "flow.lua");
script!(GROUP_LIMITS, "group_limits.lua");
script!(JOB_NAMES, "job_names.lua");
script!(UNCOMPACT, "uncompact.lua");

/// A job as `add.lua` takes it.
#[derive(Debug, Clone)]
pub(crate) struct NewJobArgs {
    pub id: String,
    /// Name, run options and payload as one stored value ([`crate::job::Spec`]).
    pub spec: Vec<u8>,
    pub delay: Duration,
    pub priority: u32,
    pub keep_completed: (i64, u64),
    pub keep_failed: (i64, u64),
    /// The id was just made here (unique: `src/job/id.rs`) and this is its first send: `add.lua`
    /// skips looking it up. False for a caller's id, which may exist.
    pub fresh: bool,
    /// The dedup key as the script takes it (`Dedup::script_arg`), if any.
    pub dedup: Option<String>,
    /// The job's group: sent as the tail of its retention, "kc:kca:kf:kfa|g<group>".
    pub group: Option<String>,
}

/// What `add.lua` did with one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AddOutcome {
    /// Added.
    Added,
    /// A job with the id exists; nothing changed.
    Exists,
    /// The job of this id stands under the dedup key; nothing added (a debounced one
    /// took the new payload).
    Deduplicated(String),
}

/// `add.lua`: what it did with each job.
pub(crate) async fn add<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    jobs: &[NewJobArgs],
) -> Result<Vec<AddOutcome>> {
    let mut inv = ADD.prepare_invoke();
    inv.key(k.wait())
        .key(k.prioritized())
        .key(k.delayed())
        .key(k.meta())
        .key(k.wake())
        .key(k.events());
    inv.arg(k.prefix()).arg(jobs.len());
    for j in jobs {
        inv.arg(&j.id)
            .arg(&j.spec[..])
            .arg(j.delay.as_millis() as u64)
            .arg(j.priority);
        let (kc, kf) = (j.keep_completed, j.keep_failed);
        match &j.group {
            Some(g) => inv.arg(format!("{}:{}:{}:{}|g{g}", kc.0, kc.1, kf.0, kf.1)),
            None => inv.arg(format!("{}:{}:{}:{}", kc.0, kc.1, kf.0, kf.1)),
        };
        let fresh = if j.fresh { "1" } else { "0" };
        match &j.dedup {
            None => inv.arg(fresh),
            Some(d) => inv.arg(format!("{fresh}{d}")),
        };
    }
    let out: Vec<Value> = inv.invoke_async(c).await?;
    out.into_iter()
        .map(|v| match v {
            Value::Int(1) => Ok(AddOutcome::Added),
            Value::Int(0) => Ok(AddOutcome::Exists),
            Value::BulkString(b) => String::from_utf8(b)
                .map(AddOutcome::Deduplicated)
                .map_err(|_| Error::Decode("add reply: the standing id is not UTF-8".into())),
            v => Err(Error::Decode(format!("add reply: {v:?}"))),
        })
        .collect()
}

/// How an attempt ended, as `finish.lua` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Completed,
    Retry,
    Failed,
    Cancelled,
    HandBack,
    /// Rate limited: delayed, the attempt not consumed, its group or queue held.
    RateLimited,
}

impl Kind {
    fn code(self) -> &'static str {
        match self {
            Kind::Completed => "c",
            Kind::Retry => "r",
            Kind::Failed => "f",
            Kind::Cancelled => "x",
            Kind::HandBack => "h",
            Kind::RateLimited => "l",
        }
    }
}

/// One outcome for `finish.lua`.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub id: String,
    pub token: u64,
    pub kind: Kind,
    /// Result (MessagePack) for completed; error text otherwise.
    pub value: Vec<u8>,
    pub delay: Duration,
    /// The claim showed the job compact and kept by none ([`Claimed::forget`]): a
    /// completion of it is sent as forgettable. Ignored for any other kind.
    pub forget: bool,
}

impl Outcome {
    /// Where `finish.lua` takes it: 0 a forgettable completion, 1 another completion
    /// (both groups of 3, in that order), 2 any other outcome (groups of 5).
    fn section(&self) -> usize {
        match self.kind {
            Kind::Completed if self.forget => 0,
            Kind::Completed => 1,
            _ => 2,
        }
    }
}

/// What `finish.lua` did with one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    AsAsked,
    CancelledInstead,
    LockLost,
}

/// `finish.lua`: write many outcomes in one call.
pub(crate) async fn finish<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    outcomes: &[Outcome],
) -> Result<Vec<Written>> {
    let mut inv = FINISH.prepare_invoke();
    inv.key(k.active())
        .key(k.wait())
        .key(k.prioritized())
        .key(k.delayed())
        .key(k.completed());
    inv.key(k.failed())
        .key(k.cancelled())
        .key(k.meta())
        .key(k.wake())
        .key(k.events())
        .key(k.leases());
    // Completions first, as groups of 3 (id, token, result), the forgettable ones
    // ahead ("c:f"), then the rest as groups of 5; the reply follows that order,
    // mapped back to `outcomes`' below.
    let count = |s: usize| outcomes.iter().filter(|o| o.section() == s).count();
    let (forget, completions) = (count(0), count(0) + count(1));
    inv.arg(k.prefix()).arg(format!("{completions}:{forget}"));
    for section in [0, 1] {
        for o in outcomes.iter().filter(|o| o.section() == section) {
            inv.arg(&o.id).arg(o.token).arg(&o.value[..]);
        }
    }
    inv.arg(outcomes.len() - completions);
    for o in outcomes.iter().filter(|o| o.section() == 2) {
        inv.arg(&o.id)
            .arg(o.token)
            .arg(o.kind.code())
            .arg(&o.value[..])
            .arg(o.delay.as_millis() as u64);
    }
    let out: Vec<i64> = inv.invoke_async(c).await?;
    in_given_order(outcomes, &out)
}

/// `finish.lua`'s answers (by [`Outcome::section`], each section in the order given)
/// in the order of `outcomes`.
fn in_given_order(outcomes: &[Outcome], out: &[i64]) -> Result<Vec<Written>> {
    if out.len() != outcomes.len() {
        return Err(Error::Decode(format!(
            "finish.lua answered {} outcomes of {}",
            out.len(),
            outcomes.len()
        )));
    }
    // Where each section's answers start, then the next answer of each.
    let mut next = [0usize; 3];
    for o in outcomes {
        for later in &mut next[o.section() + 1..] {
            *later += 1;
        }
    }
    Ok(outcomes
        .iter()
        .map(|o| {
            let at = &mut next[o.section()];
            *at += 1;
            match out[*at - 1] {
                1 => Written::AsAsked,
                2 => Written::CancelledInstead,
                _ => Written::LockLost,
            }
        })
        .collect())
}

mod admin;
mod claim;
mod flow;
mod lease;
mod prelude;
mod schedule;

pub(crate) use admin::{
    cancel, clean, group_limits, job_names, promote, record, reencrypt, remove, retry, uncompact,
    Record, Rewrite,
};
pub(crate) use claim::{claim, ClaimReply, Claimed};
pub(crate) use flow::{add_flow, FlowNode, FlowReply};
pub(crate) use lease::{reconcile, renew, shown_lease, sweep, LeaseEntry, Swept};
pub(crate) use schedule::{
    schedule_fire, schedule_read, schedule_remove, schedule_upsert, Move, Pending, Read, ReadEntry,
    TickJob, Upsert,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_answers_come_back_in_the_order_given() {
        let o = |id: &str, kind, forget| Outcome {
            id: id.into(),
            token: 1,
            kind,
            value: Vec::new(),
            delay: Duration::ZERO,
            forget,
        };
        let given = [
            o("f", Kind::Failed, true),
            o("c1", Kind::Completed, false),
            o("r", Kind::Retry, false),
            o("c2", Kind::Completed, false),
            o("c3", Kind::Completed, true),
        ];
        // Sent as c3 (forgettable), c1, c2 (groups of 3), then f, r (groups of 5).
        let got = in_given_order(&given, &[1, 0, 2, 1, 0]).unwrap();
        assert_eq!(
            got,
            [
                Written::AsAsked,
                Written::LockLost,
                Written::LockLost,
                Written::CancelledInstead,
                Written::AsAsked,
            ]
        );
        assert!(in_given_order(&given, &[1, 1, 1]).is_err());
    }

    #[test]
    fn every_script_starts_with_its_flags_then_common() {
        for s in [
            &ADD,
            &CLAIM,
            &FINISH,
            &RENEW,
            &SWEEP,
            &CANCEL,
            &RETRY,
            &REMOVE,
            &RECORD,
            &CLEAN,
            &RECONCILE,
            &REENCRYPT,
            &SCHEDULE_READ,
            &SCHEDULE_FIRE,
            &SCHEDULE_UPSERT,
            &SCHEDULE_REMOVE,
            &PROMOTE,
            &JOB_NAMES,
        ] {
            LazyLock::force(s);
        }
        let text = assemble(include_str!("../../lua/renew.lua"));
        assert!(
            text.starts_with("#!lua flags=allow-oom\n-- common.lua"),
            "{text}"
        );
        assert!(text.contains("-- renew.lua"));
    }
}
