//! Reading and rewriting jobs as Redis stores them (a job hash, or a compact job's
//! value in its queue's `jobs` hash), for tests that look under the API.

use super::RedisServer;

/// The parts of a job's stored `spec` field, `<name> NUL <opts length>:<opts><data>`
/// (src/job/spec.rs): (name, opts, data). Panics on anything else.
pub fn spec_parts(spec: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let nul = spec.iter().position(|&c| c == 0).expect("a spec has a NUL");
    let colon = nul + spec[nul..].iter().position(|&c| c == b':').unwrap();
    let len: usize = std::str::from_utf8(&spec[nul + 1..colon])
        .unwrap()
        .parse()
        .unwrap();
    let (opts, data) = spec[colon + 1..].split_at(len);
    (&spec[..nul], opts, data)
}

/// The parts of a compact job's value in its queue's `jobs` hash, `<ts> <keep> <spec>`
/// (src/job/compact.rs): (ts, keep, spec). Panics on anything else.
pub fn compact_parts(v: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let a = v
        .iter()
        .position(|&c| c == b' ')
        .expect("a compact value has a space");
    let b = a + 1 + v[a + 1..].iter().position(|&c| c == b' ').unwrap();
    (&v[..a], &v[a + 1..b], &v[b + 1..])
}

/// Job `id` of queue `q` as stored: its hash, or for a compact job (src/job/compact.rs)
/// the fields its value stands for (spec, ts, keep, and state `waiting`).
pub fn stored_job(
    redis: &RedisServer,
    q: &str,
    id: &str,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    use redis::Commands;
    let mut c = redis.conn();
    let h: std::collections::BTreeMap<String, Vec<u8>> =
        c.hgetall(format!("baton:{{{q}}}:job:{id}")).unwrap();
    if !h.is_empty() {
        return h;
    }
    let v: Option<Vec<u8>> = c.hget(format!("baton:{{{q}}}:jobs"), id).unwrap();
    let Some(v) = v else { return h };
    let (ts, keep, spec) = compact_parts(&v);
    [
        ("spec", spec),
        ("ts", ts),
        ("keep", keep),
        ("state", &b"waiting"[..]),
    ]
    .into_iter()
    .map(|(f, v)| (f.to_string(), v.to_vec()))
    .collect()
}

/// Rewrites the stored spec of job `id` of queue `q`: in its hash, or inside its
/// compact value (src/job/compact.rs), wherever it is.
pub fn set_stored_spec(redis: &RedisServer, q: &str, id: &str, spec: &[u8]) {
    use redis::Commands;
    let mut c = redis.conn();
    let jobs = format!("baton:{{{q}}}:jobs");
    let v: Option<Vec<u8>> = c.hget(&jobs, id).unwrap();
    match v {
        Some(v) => {
            let (ts, keep, _) = compact_parts(&v);
            let v = [ts, keep, spec].join(&b' ');
            let _: () = c.hset(&jobs, id, v).unwrap();
        }
        None => {
            let _: () = c
                .hset(format!("baton:{{{q}}}:job:{id}"), "spec", spec)
                .unwrap();
        }
    }
}

/// Gives compact job `id` of queue `q` a hash of its own, as `expand` in
/// lua/compact.lua does (for a test that then rewrites the hash by hand); nothing for
/// a job that has one.
pub fn expand_by_hand(redis: &RedisServer, q: &str, id: &str) {
    use redis::Commands;
    let mut c = redis.conn();
    let jobs = format!("baton:{{{q}}}:jobs");
    let v: Option<Vec<u8>> = c.hget(&jobs, id).unwrap();
    let Some(v) = v else { return };
    let (ts, keep, spec) = compact_parts(&v);
    let _: () = redis::pipe()
        .hset_multiple(
            format!("baton:{{{q}}}:job:{id}"),
            &[
                ("spec", spec),
                ("ts", ts),
                ("keep", keep),
                ("state", b"waiting"),
            ],
        )
        .hdel(&jobs, id)
        .query(&mut c)
        .unwrap();
}
