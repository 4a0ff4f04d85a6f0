//! Reading and rewriting jobs as Redis stores them (a job hash, or a compact job's
//! value in its queue's `jobs` hash with, once completed and kept, its outcome in
//! `done`), for tests that look under the API.

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

/// Job `id` of queue `q` as stored: its hash, or for a compact job the fields its value
/// stands for ([`baton::job::Compact::fields`]).
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
    let outcome: Option<Vec<u8>> = c.hget(format!("baton:{{{q}}}:done"), id).unwrap();
    let Some(v) = baton::job::Compact::join(outcome, v) else {
        return h;
    };
    let job = baton::job::Compact::parse(&v).expect("a compact value");
    job.fields()
        .map(|(f, v)| (f.to_string(), v.to_vec()))
        .collect()
}

/// Rewrites the stored spec of job `id` of queue `q`: in its hash, or inside its
/// compact value ([`baton::job::Compact`]), wherever it is.
pub fn set_stored_spec(redis: &RedisServer, q: &str, id: &str, spec: &[u8]) {
    use redis::Commands;
    let mut c = redis.conn();
    let jobs = format!("baton:{{{q}}}:jobs");
    let v: Option<Vec<u8>> = c.hget(&jobs, id).unwrap();
    match v {
        Some(v) => {
            let job = baton::job::Compact::parse(&v).expect("a compact value");
            let v = baton::job::Compact { spec, ..job }.encode();
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
    if !c
        .hexists::<_, _, bool>(format!("baton:{{{q}}}:jobs"), id)
        .unwrap()
    {
        return;
    }
    let fields = stored_job(redis, q, id);
    let fields: Vec<(String, Vec<u8>)> = fields.into_iter().collect();
    let _: () = redis::pipe()
        .hset_multiple(format!("baton:{{{q}}}:job:{id}"), &fields)
        .hdel(format!("baton:{{{q}}}:jobs"), id)
        .hdel(format!("baton:{{{q}}}:done"), id)
        .query(&mut c)
        .unwrap();
}
