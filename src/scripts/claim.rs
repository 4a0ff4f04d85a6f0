//! `claim.lua`: lease up to N ready jobs to a worker, and the strict parse of its reply.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::Value;

use super::CLAIM;
use crate::error::{Error, Result};
use crate::keys::Keys;

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
    /// Why the job cannot run, when its stored spec is malformed (the claim hands it
    /// over unchecked): the worker fails it with this reason.
    pub corrupt: Option<String>,
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
        .key(k.wake())
        .key(k.failed())
        .key(k.limiter())
        .key(k.events())
        .key(k.leases());
    inv.arg(k.prefix())
        .arg(max)
        .arg(worker)
        .arg(lease.as_millis() as u64);
    let v: Vec<Value> = inv.invoke_async(c).await?;
    parse_claim(v)
}

/// The reply of `claim.lua`, see its header. Parsed strictly: a value of the wrong type
/// or out of range is a [`Error::Decode`](crate::Error::Decode), never a default (a
/// made-up token would fence the job off from its own worker).
fn parse_claim(v: Vec<Value>) -> Result<ClaimReply> {
    fn bad(what: &str, v: &Value) -> Error {
        Error::Decode(format!("claim reply: {what} is {v:?}"))
    }
    fn int<T: TryFrom<i64>>(what: &str, v: &Value) -> Result<T> {
        match v {
            Value::Int(n) => T::try_from(*n).map_err(|_| bad(what, v)),
            _ => Err(bad(what, v)),
        }
    }
    fn text(what: &str, v: &Value) -> Result<String> {
        match v {
            Value::BulkString(b) => String::from_utf8(b.clone()).map_err(|_| bad(what, v)),
            Value::SimpleString(s) => Ok(s.clone()),
            _ => Err(bad(what, v)),
        }
    }
    if v.len() < 2 || !(v.len() - 2).is_multiple_of(6) {
        return Err(Error::Decode(format!(
            "claim reply: {} values, expected 2 + 6 per job",
            v.len()
        )));
    }
    let next: i64 = int("next due time", &v[0])?;
    if next < -1 {
        return Err(bad("next due time", &v[0]));
    }
    let mut jobs = Vec::with_capacity((v.len() - 2) / 6);
    for c in v[2..].chunks_exact(6) {
        let Value::BulkString(raw) = &c[3] else {
            return Err(bad("job spec", &c[3]));
        };
        // A malformed spec is that job's problem, not the reply's: the job is leased,
        // and the worker fails it with the reason (the rest of the batch runs).
        let spec = crate::job::Spec::decode(raw);
        let corrupt = spec.is_none().then(|| {
            let shown = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
            format!("corrupt job record: field spec is {shown:?}")
        });
        let spec = spec.unwrap_or(crate::job::Spec {
            name: "",
            opts: &[],
            data: &[],
        });
        jobs.push(Claimed {
            id: text("job id", &c[0])?,
            token: int("token", &c[1])?,
            attempt: int("attempt", &c[2])?,
            name: spec.name.to_string(),
            data: spec.data.to_vec(),
            opts: spec.opts.to_vec(),
            ready_ms: int("ready time", &c[4])?,
            stalled: int("stalled count", &c[5])?,
            corrupt,
        });
    }
    Ok(ClaimReply {
        next_due_ms: u64::try_from(next).ok(),
        now_ms: int("now", &v[1])?,
        jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn job(token: Value) -> Vec<Value> {
        vec![
            bulk("id"),
            token,
            Value::Int(1),
            Value::BulkString(crate::job::Spec::encode("name", b"opts", b"data")),
            Value::Int(5),
            Value::Int(0),
        ]
    }

    #[test]
    fn a_well_formed_claim_reply_parses() {
        let mut v = vec![Value::Int(-1), Value::Int(7)];
        v.extend(job(Value::Int(3)));
        let r = parse_claim(v).unwrap();
        assert_eq!((r.next_due_ms, r.now_ms, r.jobs.len()), (None, 7, 1));
        let j = &r.jobs[0];
        assert_eq!((j.id.as_str(), j.token, j.attempt), ("id", 3, 1));
        assert_eq!(
            (j.name.as_str(), &j.data[..], &j.opts[..]),
            ("name", &b"data"[..], &b"opts"[..])
        );
        assert_eq!((j.ready_ms, j.stalled, &j.corrupt), (5, 0, &None));
    }

    #[test]
    fn a_malformed_spec_marks_its_job_not_the_reply() {
        let mut v = vec![Value::Int(-1), Value::Int(7)];
        let mut bad = job(Value::Int(3));
        bad[3] = bulk("name-without-nul");
        v.extend(bad);
        v.extend(job(Value::Int(4)));
        let r = parse_claim(v).unwrap();
        assert_eq!(
            r.jobs[0].corrupt.as_deref(),
            Some("corrupt job record: field spec is \"name-without-nul\"")
        );
        assert_eq!((r.jobs[1].token, &r.jobs[1].corrupt), (4, &None));
    }

    #[test]
    fn a_malformed_claim_reply_is_an_error_not_a_default() {
        let cases: Vec<(&str, Vec<Value>)> = vec![
            ("token not a number", job(bulk("abc"))),
            ("token negative", job(Value::Int(-1))),
            ("token nil", job(Value::Nil)),
            ("a job cut short", job(Value::Int(1))[..5].to_vec()),
            ("attempt too large", {
                let mut j = job(Value::Int(1));
                j[2] = Value::Int(i64::from(u32::MAX) + 1);
                j
            }),
            ("spec nil", {
                let mut j = job(Value::Int(1));
                j[3] = Value::Nil;
                j
            }),
            ("ready time nil", {
                let mut j = job(Value::Int(1));
                j[4] = Value::Nil;
                j
            }),
            ("id not UTF-8", {
                let mut j = job(Value::Int(1));
                j[0] = Value::BulkString(vec![0xff, 0xfe]);
                j
            }),
        ];
        for (what, j) in cases {
            let mut v = vec![Value::Int(-1), Value::Int(7)];
            v.extend(j);
            match parse_claim(v) {
                Err(crate::Error::Decode(_)) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        for (what, v) in [
            ("empty", vec![]),
            ("now missing", vec![Value::Int(-1)]),
            ("now negative", vec![Value::Int(-1), Value::Int(-5)]),
            ("next due not a number", vec![bulk("x"), Value::Int(5)]),
        ] {
            match parse_claim(v) {
                Err(crate::Error::Decode(_)) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
