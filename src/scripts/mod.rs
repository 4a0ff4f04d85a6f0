//! The Lua scripts, one function each; the one place that knows each script's KEYS and
//! ARGV order (the script's own header says the same). The job path (add, claim,
//! finish) is here; leases (renew, sweep) in `lease`, the admin scripts in `admin`.
//!
//! Every script is `lua/common.lua` followed by its own file. [`redis::Script`] calls
//! EVALSHA and falls back to EVAL on NOSCRIPT, so a Redis restart (which empties the
//! script cache) costs one extra round trip, not an error.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Script, Value};

use crate::error::Result;
use crate::keys::Keys;

macro_rules! script {
    ($name:ident, $file:literal) => {
        static $name: LazyLock<Script> = LazyLock::new(|| {
            Script::new(concat!(
                include_str!("../../lua/common.lua"),
                "\n",
                include_str!(concat!("../../lua/", $file))
            ))
        });
    };
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

/// A job as `add.lua` takes it.
#[derive(Debug, Clone)]
pub(crate) struct NewJobArgs {
    pub id: String,
    pub name: String,
    pub data: Vec<u8>,
    pub opts: Vec<u8>,
    pub delay: Duration,
    pub priority: u32,
    pub keep_completed: (i64, u64),
    pub keep_failed: (i64, u64),
}

/// `add.lua`: per job, true if added, false if the id existed.
pub(crate) async fn add<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    jobs: &[NewJobArgs],
) -> Result<Vec<bool>> {
    let mut inv = ADD.prepare_invoke();
    inv.key(k.wait())
        .key(k.prioritized())
        .key(k.delayed())
        .key(k.meta())
        .key(k.wake());
    inv.arg(k.prefix()).arg(jobs.len());
    for j in jobs {
        inv.arg(&j.id)
            .arg(&j.name)
            .arg(&j.data[..])
            .arg(&j.opts[..])
            .arg(j.delay.as_millis() as u64)
            .arg(j.priority);
        let (kc, kf) = (j.keep_completed, j.keep_failed);
        inv.arg(format!("{}:{}:{}:{}", kc.0, kc.1, kf.0, kf.1));
    }
    let out: Vec<i64> = inv.invoke_async(c).await?;
    Ok(out.into_iter().map(|v| v == 1).collect())
}

/// A job leased by `claim.lua`.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub id: String,
    pub token: u64,
    pub attempt: u32,
    pub name: String,
    pub data: Vec<u8>,
    pub opts: Vec<u8>,
    pub ready_ms: u64,
    pub stalled: u32,
}

/// What `claim.lua` returns.
#[derive(Debug, Clone)]
pub(crate) struct ClaimReply {
    /// When the earliest delayed job is due (Redis clock, ms).
    pub next_due_ms: Option<u64>,
    /// Redis's clock at the claim.
    pub now_ms: u64,
    pub jobs: Vec<Claimed>,
}

/// `claim.lua`: promote due delayed jobs and lease up to `max` jobs.
pub(crate) async fn claim<C: ConnectionLike + Send>(
    c: &mut C,
    k: &Keys,
    max: usize,
    worker: &str,
    lease: Duration,
) -> Result<ClaimReply> {
    let mut inv = CLAIM.prepare_invoke();
    inv.key(k.wait())
        .key(k.prioritized())
        .key(k.delayed())
        .key(k.active())
        .key(k.meta())
        .key(k.wake());
    inv.arg(k.prefix())
        .arg(max)
        .arg(worker)
        .arg(lease.as_millis() as u64);
    let v: Vec<Value> = inv.invoke_async(c).await?;
    let int = |v: &Value| -> i64 { redis::from_redis_value_ref::<i64>(v).unwrap_or(-1) };
    let bytes =
        |v: &Value| -> Vec<u8> { redis::from_redis_value_ref::<Vec<u8>>(v).unwrap_or_default() };
    let next = int(&v[0]);
    let mut jobs = Vec::with_capacity((v.len() - 2) / 8);
    for c in v[2..].chunks_exact(8) {
        jobs.push(Claimed {
            id: String::from_utf8_lossy(&bytes(&c[0])).into_owned(),
            token: int(&c[1]) as u64,
            attempt: int(&c[2]) as u32,
            name: String::from_utf8_lossy(&bytes(&c[3])).into_owned(),
            data: bytes(&c[4]),
            opts: bytes(&c[5]),
            ready_ms: int(&c[6]).max(0) as u64,
            stalled: int(&c[7]).max(0) as u32,
        });
    }
    Ok(ClaimReply {
        next_due_ms: (next >= 0).then_some(next as u64),
        now_ms: int(&v[1]) as u64,
        jobs,
    })
}

/// How an attempt ended, as `finish.lua` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Completed,
    Retry,
    Failed,
    Cancelled,
    HandBack,
}

impl Kind {
    fn code(self) -> &'static str {
        match self {
            Kind::Completed => "c",
            Kind::Retry => "r",
            Kind::Failed => "f",
            Kind::Cancelled => "x",
            Kind::HandBack => "h",
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
        .key(k.wake());
    inv.arg(k.prefix()).arg(outcomes.len());
    for o in outcomes {
        inv.arg(&o.id)
            .arg(o.token)
            .arg(o.kind.code())
            .arg(&o.value[..])
            .arg(o.delay.as_millis() as u64);
    }
    let out: Vec<i64> = inv.invoke_async(c).await?;
    Ok(out
        .into_iter()
        .map(|v| match v {
            1 => Written::AsAsked,
            2 => Written::CancelledInstead,
            _ => Written::LockLost,
        })
        .collect())
}

mod admin;
mod lease;

pub(crate) use admin::{cancel, clean, record, remove, retry, Record};
pub(crate) use lease::{reconcile, renew, sweep, Swept};
