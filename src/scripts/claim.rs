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
    /// The claim showed it compact and kept by none, with no group, flow or dedup key
    /// (its keep is `0:<age>:<failed>:<age>`): its completion may be sent as
    /// forgettable (`finish.lua` deletes its value unread).
    pub forget: bool,
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
    if v.len() < 3 || !(v.len() - 3).is_multiple_of(2) {
        return Err(Error::Decode(format!(
            "claim reply: {} values, expected 3 + 2 per job",
            v.len()
        )));
    }
    let next: i64 = int("next due time", &v[0])?;
    if next < -1 {
        return Err(bad("next due time", &v[0]));
    }
    let first: u64 = int("first token", &v[2])?;
    let mut jobs = Vec::with_capacity((v.len() - 3) / 2);
    for (i, c) in v[3..].chunks_exact(2).enumerate() {
        let Value::BulkString(rec) = &c[1] else {
            return Err(bad("job record", &c[1]));
        };
        let r = Record::parse(rec).ok_or_else(|| bad("job record", &c[1]))?;
        // A malformed spec is that job's problem, not the reply's: the job is leased,
        // and the worker fails it with the reason (the rest of the batch runs).
        let spec = crate::job::Spec::decode(r.spec);
        let corrupt = spec.is_none().then(|| {
            let shown = String::from_utf8_lossy(&r.spec[..r.spec.len().min(64)]).into_owned();
            format!("corrupt job record: field spec is {shown:?}")
        });
        let spec = spec.unwrap_or(crate::job::Spec {
            name: "",
            opts: &[],
            data: &[],
        });
        let token = first
            .checked_add(i as u64)
            .filter(|_| first > 0)
            .ok_or_else(|| bad("first token", &v[2]))?;
        jobs.push(Claimed {
            id: text("job id", &c[0])?,
            token,
            attempt: r.attempt,
            name: spec.name.to_string(),
            data: spec.data.to_vec(),
            opts: spec.opts.to_vec(),
            ready_ms: r.ready_ms,
            stalled: r.stalled,
            forget: r.forget,
            corrupt,
        });
    }
    Ok(ClaimReply {
        next_due_ms: u64::try_from(next).ok(),
        now_ms: int("now", &v[1])?,
        jobs,
    })
}

/// One job's record in the claim reply: `<ready_ms> <second> <spec>`, the second part
/// either `R<attempt>:<stalled>` (a job with a hash) or a compact job's keep (its
/// first attempt, never stalled).
struct Record<'a> {
    ready_ms: u64,
    attempt: u32,
    stalled: u32,
    forget: bool,
    spec: &'a [u8],
}

impl<'a> Record<'a> {
    fn parse(b: &'a [u8]) -> Option<Record<'a>> {
        let sp = b.iter().position(|&c| c == b' ')?;
        let ready_ms = number(&b[..sp])?;
        let rest = &b[sp + 1..];
        let sp2 = rest.iter().position(|&c| c == b' ')?;
        let (second, spec) = (&rest[..sp2], &rest[sp2 + 1..]);
        let (attempt, stalled, forget) = match second.strip_prefix(b"R") {
            Some(r) => {
                let colon = r.iter().position(|&c| c == b':')?;
                (number(&r[..colon])?, number(&r[colon + 1..])?, false)
            }
            None => (1, 0, kept_by_none(second)),
        };
        Some(Record {
            ready_ms,
            attempt,
            stalled,
            forget,
            spec,
        })
    }
}

/// Whether a compact job's keep (`lua/common.lua` keep_of: `kc:kca:kf:kfa`, then
/// tails) says "no completed job kept" and has no tail: exactly `0:` then three
/// fields of digits, the third of them perhaps negative. Anything else is not (the
/// safe side: its completion goes the full way).
fn kept_by_none(keep: &[u8]) -> bool {
    let Some(rest) = keep.strip_prefix(b"0:") else {
        return false;
    };
    let f: Vec<&[u8]> = rest.split(|&c| c == b':').collect();
    let digits = |b: &[u8]| !b.is_empty() && b.iter().all(u8::is_ascii_digit);
    f.len() == 3 && digits(f[0]) && digits(f[1].strip_prefix(b"-").unwrap_or(f[1])) && digits(f[2])
}

/// A whole number in decimal digits only (no sign, no space), in range for `T`.
fn number<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &[u8]) -> Value {
        Value::BulkString(s.to_vec())
    }

    /// A record: `head` (ready time and second part, with their spaces) then a spec.
    fn record(head: &str) -> Value {
        let mut b = head.as_bytes().to_vec();
        b.extend(crate::job::Spec::encode("name", b"opts", b"da ta"));
        Value::BulkString(b)
    }

    fn reply(first: i64, jobs: Vec<Value>) -> Vec<Value> {
        let mut v = vec![Value::Int(-1), Value::Int(7), Value::Int(first)];
        v.extend(jobs);
        v
    }

    #[test]
    fn a_well_formed_claim_reply_parses() {
        let r = parse_claim(reply(
            3,
            vec![
                bulk(b"a"),
                record("5 0:0:10:20 "),
                bulk(b"b"),
                record("6 R4:2 "),
            ],
        ))
        .unwrap();
        assert_eq!((r.next_due_ms, r.now_ms, r.jobs.len()), (None, 7, 2));
        let (a, b) = (&r.jobs[0], &r.jobs[1]);
        assert_eq!(
            (a.id.as_str(), a.token, a.attempt, a.stalled),
            ("a", 3, 1, 0)
        );
        assert_eq!(
            (b.id.as_str(), b.token, b.attempt, b.stalled),
            ("b", 4, 4, 2)
        );
        assert_eq!((a.ready_ms, b.ready_ms), (5, 6));
        for j in [a, b] {
            assert_eq!(
                (j.name.as_str(), &j.data[..], &j.opts[..], &j.corrupt),
                ("name", &b"da ta"[..], &b"opts"[..], &None)
            );
        }
        let empty = parse_claim(reply(0, vec![])).unwrap();
        assert!(empty.jobs.is_empty());
    }

    #[test]
    fn only_a_keep_of_no_completed_job_and_no_tail_is_forgettable() {
        for (keep, forget) in [
            ("0:0:10000:604800000", true),
            ("0:5:-1:0", true),
            ("1000:0:10000:0", false),
            ("-1:0:0:0", false),
            ("00:0:0:0", false),
            ("0:0:0:0|gteam", false),
            ("0:0:0:0|sk", false),
            ("0:0:0", false),
            ("0:0:0:", false),
            ("0:x:0:0", false),
        ] {
            let rec = format!("5 {keep} ");
            let r = parse_claim(reply(3, vec![bulk(b"a"), record(&rec)])).unwrap();
            assert_eq!(r.jobs[0].forget, forget, "{keep}");
        }
        let r = parse_claim(reply(3, vec![bulk(b"a"), record("5 R1:0 ")])).unwrap();
        assert!(!r.jobs[0].forget, "a job with a hash is never forgettable");
    }

    #[test]
    fn a_malformed_spec_marks_its_job_not_the_reply() {
        let r = parse_claim(reply(
            3,
            vec![
                bulk(b"a"),
                bulk(b"5 0:0:0:0 name-without-nul"),
                bulk(b"b"),
                record("6 0:0:0:0 "),
            ],
        ))
        .unwrap();
        assert_eq!(
            r.jobs[0].corrupt.as_deref(),
            Some("corrupt job record: field spec is \"name-without-nul\"")
        );
        assert_eq!((r.jobs[1].token, &r.jobs[1].corrupt), (4, &None));
    }

    #[test]
    fn a_malformed_claim_reply_is_an_error_not_a_default() {
        let one = |first: i64, rec: Value| reply(first, vec![bulk(b"id"), rec]);
        let cases: Vec<(&str, Vec<Value>)> = vec![
            ("first token zero with a job", one(0, record("5 0:0:0:0 "))),
            ("first token negative", one(-1, record("5 0:0:0:0 "))),
            ("first token not a number", {
                let mut v = one(1, record("5 0:0:0:0 "));
                v[2] = bulk(b"abc");
                v
            }),
            ("record nil", one(1, Value::Nil)),
            ("ready time not digits", one(1, record("-5 0:0:0:0 "))),
            ("ready time missing", one(1, bulk(b"nospace"))),
            ("second part missing", one(1, bulk(b"5 R1:0"))),
            ("attempt too large", one(1, record("5 R4294967296:0 "))),
            ("stalled not a number", one(1, record("5 R1:x "))),
            ("a job cut short", {
                let mut v = one(1, record("5 0:0:0:0 "));
                v.pop();
                v
            }),
            (
                "id not UTF-8",
                reply(1, vec![bulk(&[0xff, 0xfe]), record("5 0:0:0:0 ")]),
            ),
        ];
        for (what, v) in cases {
            match parse_claim(v) {
                Err(crate::Error::Decode(_)) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
        for (what, v) in [
            ("empty", vec![]),
            ("token missing", vec![Value::Int(-1), Value::Int(5)]),
            (
                "now negative",
                vec![Value::Int(-1), Value::Int(-5), Value::Int(0)],
            ),
            (
                "next due not a number",
                vec![bulk(b"x"), Value::Int(5), Value::Int(0)],
            ),
        ] {
            match parse_claim(v) {
                Err(crate::Error::Decode(_)) => {}
                other => panic!("{what}: {other:?}"),
            }
        }
    }
}
