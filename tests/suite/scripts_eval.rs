//! Every Lua script run by EVAL on prepared state, checking the keys it leaves behind.
//!
//! The script text is assembled as `src/scripts` does it: the file's `#!lua` line (its
//! Redis 7 script flags) first, then `lua/common.lua`, `lua/lease.lua` and
//! `lua/compact.lua`, then the rest of the file. The KEYS and ARGV orders below follow each file's header, the contract
//! `src/scripts` keeps too.
//!
//! What is proven here: a corrupt job record fails alone (no other job lost, nothing
//! half-written, no duplicates); finished sets are trimmed only by a job that was kept;
//! under `maxmemory` with `noeviction` the scripts that write are refused whole; a junk
//! `wake` key does not make `add` fail.

use crate::common::RedisServer;
use redis::{Connection, RedisResult, Script, Value};

const COMMON: &str = concat!(
    include_str!("../../lua/common.lua"),
    "\n",
    include_str!("../../lua/lease.lua"),
    "\n",
    include_str!("../../lua/compact.lua")
);

macro_rules! lua {
    ($f:literal) => {
        script(include_str!(concat!("../../lua/", $f)))
    };
}

/// The text the crate sends for a script file: shebang line, common.lua, the rest.
fn script(file: &str) -> Script {
    let (shebang, body) = if file.starts_with("#!") {
        file.split_once('\n').unwrap()
    } else {
        ("", file)
    };
    Script::new(&format!("{shebang}\n{COMMON}\n{body}"))
}

/// The retention every job gets unless a test says otherwise: "kc:kca:kf:kfa".
const KEEP: &str = "1000:0:10000:0";

/// finish.lua's KEYS, in its header's order.
const FINISH_KEYS: [&str; 11] = [
    "active",
    "wait",
    "prioritized",
    "delayed",
    "completed",
    "failed",
    "cancelled",
    "meta",
    "wake",
    "events",
    "leases",
];

/// One queue on a private redis-server.
struct T {
    c: Connection,
    p: String,
}

/// A claimed job: id, token, attempt.
type Leased = (String, u64, u64);

impl T {
    fn on(redis: &RedisServer, queue: &str) -> T {
        T {
            c: redis.conn(),
            p: format!("baton:{{{queue}}}:"),
        }
    }

    fn k(&self, s: &str) -> String {
        format!("{}{}", self.p, s)
    }

    fn job(&self, id: &str) -> String {
        self.k(&format!("job:{id}"))
    }

    fn cmd<V: redis::FromRedisValue>(&mut self, args: &[&str]) -> V {
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut self.c).unwrap()
    }

    /// A compact job's value, with its outcome ahead of it once it is completed and
    /// kept (src/job/compact.rs: `Compact::join`), or None.
    fn compact(&mut self, id: &str) -> Option<String> {
        let (jobs, done) = (self.k("jobs"), self.k("done"));
        let v: Option<String> = self.cmd(&["HGET", &jobs, id]);
        let outcome: Option<String> = self.cmd(&["HGET", &done, id]);
        v.map(|v| outcome.unwrap_or_default() + &v)
    }

    /// Gives a compact job its hash, as `expand` in lua/compact.lua does: a test that
    /// writes a job's hash by hand writes what a script would after expanding it.
    fn expand(&mut self, id: &str) {
        if let Some(v) = self.compact(id) {
            let job = baton::job::Compact::parse(v.as_bytes()).expect("a compact value");
            let fields: Vec<(&str, String)> = job
                .fields()
                .map(|(f, v)| (f, String::from_utf8_lossy(v).into_owned()))
                .collect();
            let (jk, jobs) = (self.job(id), self.k("jobs"));
            let _: () = redis::cmd("HSET")
                .arg(&jk)
                .arg(&fields)
                .query(&mut self.c)
                .unwrap();
            let _: () = self.cmd(&["HDEL", &jobs, id]);
            let done = self.k("done");
            let _: () = self.cmd(&["HDEL", &done, id]);
        }
    }

    fn hset(&mut self, id: &str, field: &str, value: &str) {
        self.expand(id);
        let jk = self.job(id);
        let _: () = self.cmd(&["HSET", &jk, field, value]);
    }

    fn hdel(&mut self, id: &str, field: &str) {
        self.expand(id);
        let jk = self.job(id);
        let _: () = self.cmd(&["HDEL", &jk, field]);
    }

    /// A field of the job's hash, or of what a compact job's value stands for
    /// ([`baton::job::Compact::field`]).
    fn hget(&mut self, id: &str, field: &str) -> Option<String> {
        let jk = self.job(id);
        if self.cmd::<i64>(&["EXISTS", &jk]) == 1 {
            return self.cmd(&["HGET", &jk, field]);
        }
        let v = self.compact(id)?;
        let job = baton::job::Compact::parse(v.as_bytes()).expect("a compact value");
        Some(String::from_utf8_lossy(job.field(field)?).into_owned())
    }

    /// The job exists: its hash, or its compact value.
    fn exists(&mut self, id: &str) -> bool {
        let jk = self.job(id);
        self.cmd::<i64>(&["EXISTS", &jk]) == 1 || self.compact(id).is_some()
    }

    /// Members of a ZSET, lowest score first.
    /// A ZSET's members in score order; for `active`, the leases (its keeper, see
    /// `Keys::ACTIVE_KEEPER`, left out).
    fn zset(&mut self, name: &str) -> Vec<String> {
        let k = self.k(name);
        let mut v: Vec<String> = self.cmd(&["ZRANGE", &k, "0", "-1"]);
        v.retain(|m| m != baton::keys::Keys::ACTIVE_KEEPER);
        v
    }

    fn zscore(&mut self, name: &str, id: &str) -> Option<f64> {
        let k = self.k(name);
        self.cmd(&["ZSCORE", &k, id])
    }

    /// Sets the score of an existing member (e.g. a lease deadline or due time of 0: past).
    fn zset_score(&mut self, name: &str, id: &str, score: u64) {
        let k = self.k(name);
        let _: () = self.cmd(&["ZADD", &k, "XX", &score.to_string(), id]);
    }

    /// A LIST, in claim order (the right end, popped first, first).
    fn line(&mut self, name: &str) -> Vec<String> {
        let k = self.k(name);
        let mut v: Vec<String> = self.cmd(&["LRANGE", &k, "0", "-1"]);
        v.reverse();
        v
    }

    /// A finished job written directly: state and a finished-set member with an old score.
    fn finished(&mut self, set: &str, id: &str, at: u64) {
        let jk = self.job(id);
        let _: () = self.cmd(&["HSET", &jk, "name", "n", "state", set, "keep", KEEP]);
        let k = self.k(set);
        let _: () = self.cmd(&["ZADD", &k, &at.to_string(), id]);
    }

    // ---- the scripts, KEYS and ARGV as each file's header says ----

    /// add.lua with (id, delay_ms, priority, keep) per job.
    fn add_jobs(&mut self, jobs: &[(&str, u64, u32, &str)]) -> RedisResult<Vec<i64>> {
        let s = lua!("add.lua");
        let mut inv = s.prepare_invoke();
        for k in ["wait", "prioritized", "delayed", "meta", "wake", "events"] {
            inv.key(self.k(k));
        }
        inv.arg(&self.p).arg(jobs.len());
        for (id, delay, pri, keep) in jobs {
            // spec: "<name> NUL <opts length>:<opts><data>" (src/job/spec.rs).
            inv.arg(*id)
                .arg(format!("name-{id}\x004:optsdata-{id}"))
                .arg(*delay)
                .arg(*pri)
                .arg(*keep)
                .arg("0");
        }
        inv.invoke(&mut self.c)
    }

    fn add(&mut self, ids: &[&str]) {
        let jobs: Vec<_> = ids.iter().map(|id| (*id, 0, 0, KEEP)).collect();
        assert_eq!(self.add_jobs(&jobs).unwrap(), vec![1; ids.len()]);
    }

    fn add_keep(&mut self, id: &str, keep: &str) {
        assert_eq!(self.add_jobs(&[(id, 0, 0, keep)]).unwrap(), vec![1]);
    }

    /// claim.lua: the raw reply.
    fn claim_raw(&mut self, max: usize, worker: &str, lease_ms: u64) -> RedisResult<Vec<Value>> {
        let s = lua!("claim.lua");
        let mut inv = s.prepare_invoke();
        for k in [
            "wait",
            "prioritized",
            "delayed",
            "active",
            "meta",
            "wake",
            "failed",
            "limiter",
            "events",
            "leases",
        ] {
            inv.key(self.k(k));
        }
        inv.arg(&self.p).arg(max).arg(worker).arg(lease_ms);
        inv.invoke(&mut self.c)
    }

    /// claim.lua: the jobs leased (id, token, attempt), checked to be well formed: a
    /// reply of next due, now, first token, then id and record per job (claim.lua).
    fn claim(&mut self, max: usize) -> RedisResult<Vec<Leased>> {
        let v = self.claim_raw(max, "w", 60_000)?;
        assert!(v.len() >= 3 && (v.len() - 3) % 2 == 0, "claim reply {v:?}");
        let first = redis::from_redis_value_ref::<u64>(&v[2]).unwrap();
        Ok(v[3..]
            .chunks_exact(2)
            .enumerate()
            .map(|(i, c)| {
                let id = redis::from_redis_value_ref::<String>(&c[0]).unwrap();
                let rec = redis::from_redis_value_ref::<Vec<u8>>(&c[1]).unwrap();
                // "<ready> <second> <spec>": second "R<attempt>:<stalled>" or a keep.
                let text = String::from_utf8_lossy(&rec);
                let mut parts = text.splitn(3, ' ');
                let ready = parts.next().unwrap();
                assert!(ready.parse::<u64>().is_ok(), "claim record {text:?}");
                let second = parts.next().expect("claim record without a spec");
                assert!(
                    parts.next().is_some(),
                    "claim record without a spec: {text:?}"
                );
                let attempt = match second.strip_prefix('R') {
                    Some(r) => r.split(':').next().unwrap().parse().unwrap(),
                    None => 1,
                };
                (id, first + i as u64, attempt)
            })
            .collect())
    }

    fn claim_ids(&mut self, max: usize) -> Vec<String> {
        self.claim(max)
            .unwrap()
            .into_iter()
            .map(|(id, _, _)| id)
            .collect()
    }

    /// finish.lua with forgettable completions only: (id, token) each, result nil.
    fn finish_forgettable(&mut self, leases: &[(&str, u64)]) -> RedisResult<Vec<i64>> {
        let s = lua!("finish.lua");
        let mut inv = s.prepare_invoke();
        for k in FINISH_KEYS {
            inv.key(self.k(k));
        }
        let n = leases.len();
        inv.arg(&self.p).arg(format!("{n}:{n}"));
        for (id, token) in leases {
            inv.arg(*id).arg(*token).arg("\u{c0}");
        }
        inv.arg(0).invoke(&mut self.c)
    }

    /// finish.lua with (id, token, kind, value, delay_ms) per outcome.
    fn finish(&mut self, outcomes: &[(&str, u64, &str, &str, u64)]) -> RedisResult<Vec<i64>> {
        let s = lua!("finish.lua");
        let mut inv = s.prepare_invoke();
        for k in FINISH_KEYS {
            inv.key(self.k(k));
        }
        // All completions: as groups of 3 (the worker's hot path); any other kind among
        // them: every one as a group of 5 (a completion may be one too), so the reply
        // keeps the order given.
        let all_done = outcomes.iter().all(|o| o.2 == "c");
        if all_done {
            inv.arg(&self.p).arg(outcomes.len());
            for (id, token, _, value, _) in outcomes {
                inv.arg(*id).arg(*token).arg(*value);
            }
            inv.arg(0);
        } else {
            inv.arg(&self.p).arg(0).arg(outcomes.len());
        }
        for (id, token, kind, value, delay) in outcomes.iter().filter(|_| !all_done) {
            inv.arg(*id).arg(*token).arg(*kind).arg(*value).arg(*delay);
        }
        inv.invoke(&mut self.c)
    }

    /// renew.lua for worker `w`.
    fn renew(&mut self, held: &[(&str, u64)]) -> RedisResult<(Vec<String>, Vec<String>)> {
        let s = lua!("renew.lua");
        let mut inv = s.prepare_invoke();
        for k in ["active", "workers", "workers:info", "leases"] {
            inv.key(self.k(k));
        }
        inv.arg(&self.p).arg("w").arg(60_000).arg(60_000).arg("{}");
        for (id, token) in held {
            inv.arg(*id).arg(*token);
        }
        inv.invoke(&mut self.c)
    }

    /// sweep.lua: flat pairs id, outcome.
    fn sweep(&mut self, max_stalled: u32) -> RedisResult<Vec<String>> {
        let s = lua!("sweep.lua");
        let mut inv = s.prepare_invoke();
        for k in [
            "active",
            "wait",
            "prioritized",
            "failed",
            "cancelled",
            "meta",
            "wake",
            "workers",
            "workers:info",
            "events",
            "leases",
        ] {
            inv.key(self.k(k));
        }
        inv.arg(&self.p).arg(max_stalled).arg(1000);
        inv.invoke(&mut self.c)
    }

    fn cancel(&mut self, id: &str) -> RedisResult<(i64, String)> {
        let s = lua!("cancel.lua");
        let mut inv = s.prepare_invoke();
        for k in [
            "wait",
            "prioritized",
            "delayed",
            "active",
            "cancelled",
            "meta",
            "events",
        ] {
            inv.key(self.k(k));
        }
        inv.arg(&self.p)
            .arg(id)
            .arg(self.k("cancel"))
            .arg("by test");
        inv.invoke(&mut self.c)
    }

    fn retry(&mut self, id: &str) -> RedisResult<(i64, String)> {
        let s = lua!("retry.lua");
        let mut inv = s.prepare_invoke();
        for k in [
            "wait",
            "prioritized",
            "failed",
            "cancelled",
            "meta",
            "wake",
            "events",
        ] {
            inv.key(self.k(k));
        }
        inv.arg(&self.p).arg(id);
        inv.invoke(&mut self.c)
    }

    fn remove(&mut self, id: &str) -> RedisResult<(i64, String)> {
        let s = lua!("remove.lua");
        let mut inv = s.prepare_invoke();
        for k in [
            "wait",
            "prioritized",
            "delayed",
            "completed",
            "failed",
            "cancelled",
            "meta",
            "events",
        ] {
            inv.key(self.k(k));
        }
        inv.arg(&self.p).arg(id);
        inv.invoke(&mut self.c)
    }

    /// record.lua: kind 's' step, 'p' progress, 'l' log line.
    fn record(
        &mut self,
        id: &str,
        token: u64,
        kind: &str,
        field: &str,
        value: &str,
    ) -> RedisResult<i64> {
        let s = lua!("record.lua");
        let mut inv = s.prepare_invoke();
        inv.key(self.k("leases"))
            .key(self.job(id))
            .key(self.k(&format!("steps:{id}")))
            .key(self.k(&format!("logs:{id}")))
            .key(self.k("meta"))
            .key(self.k("events"));
        inv.arg(id)
            .arg(token)
            .arg(kind)
            .arg(field)
            .arg(value)
            .arg(2);
        inv.invoke(&mut self.c)
    }

    fn clean(&mut self, set: &str, age_ms: u64) -> RedisResult<i64> {
        let s = lua!("clean.lua");
        let mut inv = s.prepare_invoke();
        inv.key(self.k(set));
        inv.arg(&self.p).arg(age_ms).arg(1000);
        inv.invoke(&mut self.c)
    }

    /// reconcile.lua for worker `w`, which holds `held`.
    fn reconcile(&mut self, held: &[&str]) -> RedisResult<Vec<String>> {
        let s = lua!("reconcile.lua");
        let mut inv = s.prepare_invoke();
        for k in [
            "active",
            "wait",
            "prioritized",
            "meta",
            "wake",
            "cancelled",
            "failed",
            "events",
            "leases",
        ] {
            inv.key(self.k(k));
        }
        inv.arg(&self.p).arg("w");
        for id in held {
            inv.arg(*id);
        }
        inv.invoke(&mut self.c)
    }

    /// Claims every ready job (they must be exactly `ids`, in order) and returns their tokens.
    fn lease(&mut self, ids: &[&str]) -> Vec<u64> {
        let got = self.claim(100).unwrap();
        assert_eq!(
            got.iter().map(|j| j.0.as_str()).collect::<Vec<_>>(),
            ids,
            "leased"
        );
        got.into_iter().map(|j| j.1).collect()
    }

    /// The lease entry of `id` (lua/lease.lua: token:attempt:started:worker).
    fn lease_entry(&mut self, id: &str) -> Option<String> {
        let k = self.k("leases");
        self.cmd(&["HGET", &k, id])
    }

    /// Asserts `id` is leased to worker `w` with `token` for `attempt`: in the lease
    /// table and the leases hash, its own hash still "waiting" with no lease fields.
    fn assert_leased(&mut self, id: &str, token: u64, attempt: u32) {
        let e = self
            .lease_entry(id)
            .unwrap_or_else(|| panic!("{id}: no lease entry"));
        let parts: Vec<&str> = e.splitn(4, ':').collect();
        assert_eq!(parts[0], token.to_string(), "{id}: token in {e}");
        assert_eq!(parts[1], attempt.to_string(), "{id}: attempt in {e}");
        assert!(
            parts[2].parse::<u64>().unwrap() > 1_600_000_000_000,
            "{id}: started in {e}"
        );
        assert_eq!(parts[3], "w", "{id}: worker in {e}");
        assert!(
            self.zscore("active", id).is_some(),
            "{id} in the lease table"
        );
        assert_eq!(self.hget(id, "state").as_deref(), Some("waiting"), "{id}");
        assert_eq!(
            self.hget(id, "worker"),
            None,
            "{id}: no lease field in its hash"
        );
    }

    /// Makes the leases of `ids` expired.
    fn expire(&mut self, ids: &[&str]) {
        for id in ids {
            self.zset_score("active", id, 0);
        }
    }

    /// Asserts a job ended failed because its record is corrupt.
    fn assert_corrupt_failed(&mut self, id: &str, reason: &str) {
        assert_eq!(self.hget(id, "state").as_deref(), Some("failed"), "{id}");
        assert_eq!(self.hget(id, "error").as_deref(), Some(reason), "{id}");
        assert!(self.zscore("failed", id).is_some(), "{id} in failed");
        for set in ["active", "delayed", "prioritized", "completed", "cancelled"] {
            assert!(self.zscore(set, id).is_none(), "{id} not in {set}");
        }
        assert!(
            !self.line("wait").contains(&id.to_string()),
            "{id} not in wait"
        );
    }
}

/// A corruption of job `bad`: the field and its new value (None: field deleted; field
/// "*": the whole hash deleted), and the reason it must fail with (None: skipped).
type Corruption = (&'static str, Option<&'static str>, Option<&'static str>);

fn corrupt(t: &mut T, id: &str, c: Corruption) {
    match c {
        ("*", _, _) => {
            let (jk, jobs) = (t.job(id), t.k("jobs"));
            let _: () = t.cmd(&["DEL", &jk]);
            let _: () = t.cmd(&["HDEL", &jobs, id]);
        }
        // A compact job's whole value (src/job/compact.rs).
        ("=", Some(v), _) => {
            let jobs = t.k("jobs");
            let _: () = t.cmd(&["HSET", &jobs, id, v]);
        }
        (f, Some(v), _) => t.hset(id, f, v),
        (f, None, _) => t.hdel(id, f),
    }
}

/// A long junk value (100 characters): the reason quotes its first 64.
const LONG: &str = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn redis() -> RedisServer {
    RedisServer::start_with(&["--maxmemory-policy", "noeviction"])
}

// ---------------------------------------------------------------- defect 2: claim

/// One lease named twice in one finish call (an ack batch that repeats an outcome) is
/// written once: the second is refused as lock lost, so a retry does not put the job
/// in line twice, and the release leaves nothing behind.
#[test]
fn finish_writes_one_lease_once_per_batch() {
    let redis = RedisServer::start();
    let mut t = T::on(&redis, "twice");
    t.add(&["a", "b"]);
    let leased = t.claim(2).unwrap();
    let tok = |id: &str| leased.iter().find(|l| l.0 == id).unwrap().1;
    let (ta, tb) = (tok("a"), tok("b"));
    let out = t
        .finish(&[
            ("a", ta, "r", "again", 0),
            ("a", ta, "r", "again", 0),
            ("b", tb, "c", "res", 0),
            ("b", tb, "c", "res", 0),
        ])
        .unwrap();
    assert_eq!(out, vec![1, 0, 1, 0]);
    assert_eq!(t.line("wait"), vec!["a".to_string()], "a is in line once");
    assert_eq!(t.zset("completed"), vec!["b".to_string()]);
    assert!(t.zset("active").is_empty());
}

/// The lease table stays a skiplist (its keeper: a member past 64 bytes, score +inf,
/// never swept), however few leases it holds, and with no lease left it is still
/// there; counts and listings leave the keeper out.
#[test]
fn the_lease_table_keeps_a_keeper_that_makes_it_a_skiplist() {
    let redis = RedisServer::start();
    let mut t = T::on(&redis, "keeper");
    t.add(&["a"]);
    let leased = t.claim(1).unwrap();
    let k = t.k("active");
    let enc: String = t.cmd(&["OBJECT", "ENCODING", &k]);
    assert_eq!(enc, "skiplist", "one lease, and no listpack");
    let score: Option<String> = t.cmd(&["ZSCORE", &k, baton::keys::Keys::ACTIVE_KEEPER]);
    assert_eq!(score.as_deref(), Some("inf"));
    assert_eq!(t.zset("active"), ["a"]);
    assert_eq!(
        t.finish(&[("a", leased[0].1, "c", "r", 0)]).unwrap(),
        vec![1]
    );
    let left: Vec<String> = t.cmd(&["ZRANGE", &k, "0", "-1"]);
    assert_eq!(left, [baton::keys::Keys::ACTIVE_KEEPER], "the keeper stays");
    // The library's counts and listing leave it out.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let q = baton::Queue::connect(redis.url(), "keeper").unwrap();
    let (c, l) = rt.block_on(async {
        (
            q.counts().await.unwrap(),
            q.list(baton::JobState::Active, 0, 10).await.unwrap(),
        )
    });
    assert_eq!((c.active, l.len()), (0, 0));
}

/// Jobs kept by none of their retention are deleted with the batch, steps and logs
/// too, and a kept one in the same batch stays.
#[test]
fn finish_deletes_the_unkept_jobs_of_a_batch_with_their_steps_and_logs() {
    let redis = RedisServer::start();
    let mut t = T::on(&redis, "doomed");
    t.add_keep("gone1", "0:0:10000:0");
    t.add_keep("gone2", "0:0:10000:0");
    t.add_keep("kept", KEEP);
    let leased = t.claim(3).unwrap();
    for (id, _, _) in &leased {
        let steps = t.k(&format!("steps:{id}"));
        let logs = t.k(&format!("logs:{id}"));
        let _: () = t.cmd(&["HSET", &steps, "s", "v"]);
        let _: () = t.cmd(&["RPUSH", &logs, "line"]);
        // As record.lua does when it creates either key (mark_side in common.lua):
        // finish names a job's steps, logs and errors keys only when it is marked.
        t.hset(id, "side", "1");
    }
    let outcomes: Vec<_> = leased
        .iter()
        .map(|(id, tok, _)| (id.as_str(), *tok, "c", "res", 0))
        .collect();
    assert_eq!(t.finish(&outcomes).unwrap(), vec![1, 1, 1]);
    for id in ["gone1", "gone2"] {
        assert!(!t.exists(id), "{id}");
        for k in [format!("steps:{id}"), format!("logs:{id}")] {
            let k = t.k(&k);
            assert_eq!(t.cmd::<i64>(&["EXISTS", &k]), 0, "{k}");
        }
    }
    assert!(t.exists("kept"));
    assert_eq!(t.hget("kept", "state").as_deref(), Some("completed"));
    assert_eq!(t.zset("completed"), vec!["kept".to_string()]);
}

#[test]
fn claim_fails_a_corrupt_job_alone_and_leases_the_rest_of_the_batch() {
    let cases: &[Corruption] = &[
        (
            "attempt",
            Some("abc"),
            Some("corrupt job record: field attempt is 'abc'"),
        ),
        // No token case: the claim does not read the job's token (tokens come from the
        // queue's sequence, see lua/lease.lua).
        (
            "stalled",
            Some("-1"),
            Some("corrupt job record: field stalled is '-1'"),
        ),
        (
            "ready",
            Some("soon"),
            Some("corrupt job record: field ready is 'soon'"),
        ),
        (
            "ts",
            Some("x10"),
            Some("corrupt job record: field ts is 'x10'"),
        ),
        ("attempt", Some("nan"), Some("corrupt job record: field attempt is 'nan'")),
        ("attempt", Some("inf"), Some("corrupt job record: field attempt is 'inf'")),
        (
            "ready",
            Some(LONG),
            Some("corrupt job record: field ready is 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"),
        ),
        (
            "spec",
            None,
            Some("corrupt job record: field spec is missing"),
        ),
        // A malformed spec is leased as it is: the worker fails that job
        // (tests/suite/job_spec.rs).
        ("ts", None, Some("corrupt job record: field ts is missing")),
        // A compact job's value that is not one, or whose add time is not a number:
        // expanded as it is, and failed with the reason.
        ("=", Some("junk"), Some("corrupt job record: field ts is missing")),
        (
            "=",
            Some("x10 1000:0:10000:0 n\u{0}0:"),
            Some("corrupt job record: field ts is 'x10'"),
        ),
        // The remove race: an id without its hash is just skipped.
        ("*", None, None),
    ];
    let redis = redis();
    for (i, &c) in cases.iter().enumerate() {
        let mut t = T::on(&redis, &format!("claim{i}"));
        t.add(&["g1", "g2", "g3", "bad", "g4"]);
        corrupt(&mut t, "bad", c);
        let got = t
            .claim(10)
            .unwrap_or_else(|e| panic!("case {c:?}: claim failed: {e}"));
        let ids: Vec<&str> = got.iter().map(|j| j.0.as_str()).collect();
        assert_eq!(ids, ["g1", "g2", "g3", "g4"], "case {c:?}");
        assert_eq!(t.zset("active"), ["g1", "g2", "g3", "g4"], "case {c:?}");
        assert!(t.line("wait").is_empty(), "case {c:?}");
        let mut last = 0;
        for (id, token, attempt) in &got {
            assert!(*token > last, "case {c:?}: {id}: fresh tokens, in order");
            last = *token;
            assert_eq!(*attempt, 1, "case {c:?}: {id}");
            // The lease is in the leases hash; the job's own hash is not written.
            t.assert_leased(id, *token, 1);
        }
        match c.2 {
            Some(reason) => t.assert_corrupt_failed("bad", reason),
            None => {
                assert!(!t.exists("bad"), "case {c:?}: no hash made up");
                assert!(t.zset("failed").is_empty(), "case {c:?}");
            }
        }
    }
}

#[test]
fn a_due_delayed_job_with_a_corrupt_record_fails_alone_without_duplicates() {
    let cases: &[Corruption] = &[
        (
            "pri",
            Some("abc"),
            Some("corrupt job record: field pri is 'abc'"),
        ),
        (
            "pri",
            Some("-3"),
            Some("corrupt job record: field pri is '-3'"),
        ),
        (
            "state",
            None,
            Some("corrupt job record: field state is missing"),
        ),
        ("*", None, None),
    ];
    let redis = redis();
    for (i, &c) in cases.iter().enumerate() {
        let mut t = T::on(&redis, &format!("delayed{i}"));
        let jobs = [
            ("d1", 60_000, 0, KEEP),
            ("bad", 60_000, 0, KEEP),
            ("d2", 60_000, 3, KEEP),
        ];
        assert_eq!(t.add_jobs(&jobs).unwrap(), [1, 1, 1]);
        for id in ["d1", "bad", "d2"] {
            t.zset_score("delayed", id, 1); // due
        }
        corrupt(&mut t, "bad", c);
        for round in 0..3 {
            // max 0: promotion only, nothing leased.
            let v = t
                .claim_raw(0, "w", 60_000)
                .unwrap_or_else(|e| panic!("case {c:?} round {round}: claim failed: {e}"));
            assert_eq!(v.len(), 3, "case {c:?}");
            assert_eq!(
                t.line("wait"),
                ["d1"],
                "case {c:?} round {round}: no duplicates"
            );
            assert_eq!(t.zset("prioritized"), ["d2"], "case {c:?} round {round}");
            assert!(t.zset("delayed").is_empty(), "case {c:?} round {round}");
        }
        assert_eq!(t.hget("d1", "state").as_deref(), Some("waiting"));
        match c.2 {
            Some(reason) => t.assert_corrupt_failed("bad", reason),
            None => assert!(
                !t.exists("bad") && t.zset("failed").is_empty(),
                "case {c:?}"
            ),
        }
        assert_eq!(t.claim_ids(10), ["d1", "d2"], "case {c:?}");
    }
}

// ---------------------------------------------------------------- defect 2: sweep, reconcile, finish, retry

#[test]
fn sweep_fails_a_corrupt_job_alone_and_recovers_the_rest() {
    let cases: &[Corruption] = &[
        (
            "stalled",
            Some("abc"),
            Some("corrupt job record: field stalled is 'abc'"),
        ),
        // No token case: a lease's token is in its entry (lua/lease.lua), not read
        // from the job's hash (sweep_recovers_a_lease_from_before_the_leases_hash).
        (
            "attempt",
            Some("2.5"),
            Some("corrupt job record: field attempt is '2.5'"),
        ),
        (
            "pri",
            Some("high"),
            Some("corrupt job record: field pri is 'high'"),
        ),
        (
            "state",
            None,
            Some("corrupt job record: field state is missing"),
        ),
        ("*", None, None),
    ];
    let redis = redis();
    for (i, &c) in cases.iter().enumerate() {
        let mut t = T::on(&redis, &format!("sweep{i}"));
        t.add(&["a", "bad", "b"]);
        t.lease(&["a", "bad", "b"]);
        t.expire(&["a", "bad", "b"]);
        corrupt(&mut t, "bad", c);
        let out = t
            .sweep(5)
            .unwrap_or_else(|e| panic!("case {c:?}: sweep failed: {e}"));
        assert!(t.zset("active").is_empty(), "case {c:?}");
        assert_eq!(
            t.line("wait"),
            ["b", "a"],
            "case {c:?}: first in line again"
        );
        for id in ["a", "b"] {
            assert_eq!(t.hget(id, "stalled").as_deref(), Some("1"), "case {c:?}");
            // Fenced off by its entry's deletion; the job hash needs no token.
            assert_eq!(t.lease_entry(id), None, "case {c:?}");
            assert_eq!(t.hget(id, "token"), None, "case {c:?}");
            assert_eq!(t.hget(id, "attempt").as_deref(), Some("0"), "case {c:?}");
        }
        match c.2 {
            Some(reason) => {
                t.assert_corrupt_failed("bad", reason);
                assert_eq!(out, ["a", "requeued", "b", "requeued", "bad", "failed"]);
            }
            None => {
                assert!(
                    !t.exists("bad") && t.zset("failed").is_empty(),
                    "case {c:?}"
                );
                assert_eq!(out, ["a", "requeued", "b", "requeued"]);
            }
        }
    }
}

#[test]
fn reconcile_fails_a_corrupt_job_alone_and_hands_back_the_rest() {
    // No token or attempt case: reconcile takes both from the lease entry
    // (lua/lease.lua), and hands a job back with the attempt from before its claim.
    let cases: &[Corruption] = &[(
        "pri",
        Some("1.5"),
        Some("corrupt job record: field pri is '1.5'"),
    )];
    let redis = redis();
    for (i, &c) in cases.iter().enumerate() {
        let mut t = T::on(&redis, &format!("reconcile{i}"));
        t.add(&["a", "bad", "b", "held"]);
        t.lease(&["a", "bad", "b", "held"]);
        corrupt(&mut t, "bad", c);
        let mut back = t
            .reconcile(&["held"])
            .unwrap_or_else(|e| panic!("case {c:?}: reconcile failed: {e}"));
        back.sort();
        assert_eq!(back, ["a", "b", "bad"], "case {c:?}");
        assert_eq!(t.zset("active"), ["held"], "case {c:?}");
        for id in ["a", "b", "bad"] {
            assert_eq!(
                t.lease_entry(id),
                None,
                "case {c:?}: {id}'s lease fenced off"
            );
        }
        assert!(t.lease_entry("held").is_some(), "case {c:?}");
        assert_eq!(t.line("wait"), ["b", "a"], "case {c:?}");
        t.assert_corrupt_failed("bad", c.2.unwrap());
    }
}

#[test]
fn finish_writes_the_whole_batch_when_one_record_is_corrupt() {
    // A retry-now or hand-back needs the job's priority: a corrupt one goes to delayed,
    // due now, and the next claim fails it with the reason. (The attempt comes from
    // the lease entry, lua/lease.lua, not from the job's hash.)
    let cases: &[(&str, Corruption)] = &[
        (
            "r",
            (
                "pri",
                Some("abc"),
                Some("corrupt job record: field pri is 'abc'"),
            ),
        ),
        (
            "h",
            (
                "pri",
                Some("abc"),
                Some("corrupt job record: field pri is 'abc'"),
            ),
        ),
    ];
    let redis = redis();
    for (i, &(kind, c)) in cases.iter().enumerate() {
        let mut t = T::on(&redis, &format!("finish{i}"));
        t.add(&["a", "bad", "b"]);
        let tok = t.lease(&["a", "bad", "b"]);
        corrupt(&mut t, "bad", c);
        let out = t
            .finish(&[
                ("a", tok[0], "c", "ok", 0),
                ("bad", tok[1], kind, "again", 0),
                ("b", tok[2], "h", "", 0),
            ])
            .unwrap_or_else(|e| panic!("case {kind} {c:?}: finish failed: {e}"));
        assert_eq!(out, [1, 1, 1], "case {kind} {c:?}");
        assert!(t.zset("active").is_empty(), "case {kind} {c:?}");
        assert_eq!(t.zset("completed"), ["a"], "case {kind} {c:?}");
        assert_eq!(t.line("wait"), ["b"], "case {kind} {c:?}");
        assert_eq!(t.zset("delayed"), ["bad"], "case {kind} {c:?}");
        assert_eq!(t.claim_ids(10), ["b"], "case {kind} {c:?}");
        t.assert_corrupt_failed("bad", c.2.unwrap());
    }
}

#[test]
fn retry_refuses_a_corrupt_record_and_changes_nothing() {
    let redis = redis();
    let mut t = T::on(&redis, "retry");
    t.add(&["a"]);
    let tok = t.lease(&["a"]);
    assert_eq!(t.finish(&[("a", tok[0], "f", "boom", 0)]).unwrap(), [1]);
    t.hset("a", "pri", "abc");
    let err = t
        .retry("a")
        .expect_err("a corrupt record cannot be retried");
    assert!(
        err.to_string()
            .contains("corrupt job record: field pri is 'abc'"),
        "{err}"
    );
    assert_eq!(t.zset("failed"), ["a"]);
    assert_eq!(t.hget("a", "state").as_deref(), Some("failed"));
    assert_eq!(t.hget("a", "error").as_deref(), Some("boom"));
    assert!(t.line("wait").is_empty() && t.zset("prioritized").is_empty());
}

// ---------------------------------------------------------------- defect 11: junk wake key

#[test]
fn a_junk_wake_key_does_not_fail_add_or_claim() {
    let redis = redis();
    let mut t = T::on(&redis, "wake");
    let wake = t.k("wake");
    let _: () = t.cmd(&["SET", &wake, "junk"]);
    assert_eq!(
        t.add_jobs(&[("a", 0, 0, KEEP)]).unwrap(),
        [1],
        "add reports the add"
    );
    assert_eq!(t.line("wait"), ["a"]);
    assert_eq!(t.cmd::<String>(&["TYPE", &wake]), "list");
    assert_eq!(t.cmd::<i64>(&["LLEN", &wake]), 1);

    t.add(&["b", "c"]);
    let _: () = t.cmd(&["DEL", &wake]);
    let _: () = t.cmd(&["HSET", &wake, "x", "y"]);
    // A claim that leaves jobs behind wakes the next worker.
    assert_eq!(t.claim_ids(1), ["a"]);
    assert_eq!(t.cmd::<String>(&["TYPE", &wake]), "list");
}

#[test]
fn a_claim_that_finds_nothing_clears_a_junk_wake_key_before_the_worker_blocks_on_it() {
    let redis = redis();
    let mut t = T::on(&redis, "idle");
    let wake = t.k("wake");
    for junk in [&["SET", &wake, "junk"][..], &["HSET", &wake, "x", "y"][..]] {
        let _: () = t.cmd(junk);
        assert!(t.claim_ids(5).is_empty());
        // The worker's BLPOP on it now blocks instead of failing with WRONGTYPE.
        assert_eq!(t.cmd::<String>(&["TYPE", &wake]), "none");
    }
    // A wake token is left alone.
    let _: () = t.cmd(&["LPUSH", &wake, "1"]);
    assert!(t.claim_ids(5).is_empty());
    assert_eq!(t.cmd::<i64>(&["LLEN", &wake]), 1);
}

// ---------------------------------------------------------------- defect 6: retention

/// A script that finishes job "j" into `set` under retention `keep`.
struct Finisher {
    what: &'static str,
    set: &'static str,
    run: fn(&mut T, &str),
}

fn finishers() -> Vec<Finisher> {
    vec![
        Finisher {
            what: "finish completed",
            set: "completed",
            run: |t, keep| {
                t.add_keep("j", keep);
                let tok = t.lease(&["j"]);
                assert_eq!(t.finish(&[("j", tok[0], "c", "r", 0)]).unwrap(), [1]);
            },
        },
        Finisher {
            what: "finish failed",
            set: "failed",
            run: |t, keep| {
                t.add_keep("j", keep);
                let tok = t.lease(&["j"]);
                assert_eq!(t.finish(&[("j", tok[0], "f", "e", 0)]).unwrap(), [1]);
            },
        },
        Finisher {
            what: "finish cancelled",
            set: "cancelled",
            run: |t, keep| {
                t.add_keep("j", keep);
                let tok = t.lease(&["j"]);
                assert_eq!(t.finish(&[("j", tok[0], "x", "e", 0)]).unwrap(), [1]);
            },
        },
        Finisher {
            what: "cancel of a waiting job",
            set: "cancelled",
            run: |t, keep| {
                t.add_keep("j", keep);
                assert_eq!(t.cancel("j").unwrap().0, 1);
            },
        },
        Finisher {
            what: "sweep of a job stalled too often",
            set: "failed",
            run: |t, keep| {
                t.add_keep("j", keep);
                t.lease(&["j"]);
                t.expire(&["j"]);
                assert_eq!(t.sweep(0).unwrap(), ["j", "failed"]);
            },
        },
        Finisher {
            what: "sweep of a job whose cancel was recorded",
            set: "cancelled",
            run: |t, keep| {
                t.add_keep("j", keep);
                t.lease(&["j"]);
                assert_eq!(t.cancel("j").unwrap().0, 2);
                t.expire(&["j"]);
                assert_eq!(t.sweep(5).unwrap(), ["j", "cancelled"]);
            },
        },
        Finisher {
            what: "reconcile of a job whose cancel was recorded",
            set: "cancelled",
            run: |t, keep| {
                t.add_keep("j", keep);
                t.lease(&["j"]);
                assert_eq!(t.cancel("j").unwrap().0, 2);
                assert_eq!(t.reconcile(&[]).unwrap(), ["j"]);
            },
        },
        Finisher {
            what: "claim of a corrupt job",
            set: "failed",
            run: |t, keep| {
                t.add_keep("j", keep);
                t.hset("j", "attempt", "abc");
                assert!(t.claim(10).unwrap().is_empty());
            },
        },
    ]
}

fn keep_for(set: &str, count: i64) -> String {
    if set == "completed" {
        format!("{count}:0:10000:0")
    } else {
        format!("1000:0:{count}:0")
    }
}

#[test]
fn a_job_that_is_not_kept_trims_nothing() {
    let redis = redis();
    for (i, f) in finishers().into_iter().enumerate() {
        let mut t = T::on(&redis, &format!("keepnone{i}"));
        for n in 0..5 {
            t.finished(f.set, &format!("old{n}"), n + 1);
        }
        (f.run)(&mut t, &keep_for(f.set, 0));
        assert_eq!(
            t.zset(f.set),
            ["old0", "old1", "old2", "old3", "old4"],
            "{}: the other finished jobs stay",
            f.what
        );
        assert!(!t.exists("j"), "{}: the job itself is deleted", f.what);
        assert!(
            t.zset("active").is_empty() && t.line("wait").is_empty(),
            "{}",
            f.what
        );
    }
}

#[test]
fn a_job_that_is_kept_applies_its_retention() {
    let redis = redis();
    for (i, f) in finishers().into_iter().enumerate() {
        let mut t = T::on(&redis, &format!("keeptwo{i}"));
        for n in 0..5 {
            t.finished(f.set, &format!("old{n}"), n + 1);
        }
        (f.run)(&mut t, &keep_for(f.set, 2));
        assert_eq!(t.zset(f.set), ["old4", "j"], "{}: trimmed to 2", f.what);
        assert!(!t.exists("old0") && !t.exists("old3"), "{}", f.what);
        assert!(t.exists("j"), "{}", f.what);
    }
}

// ---------------------------------------------------------------- defect 1: maxmemory

/// Every key of the server and its DUMP, sorted: equal snapshots mean nothing changed.
fn snapshot(t: &mut T) -> Vec<(String, Vec<u8>)> {
    let mut keys: Vec<String> = t.cmd(&["KEYS", "*"]);
    keys.sort();
    keys.into_iter()
        .map(|k| {
            let d: Vec<u8> = t.cmd(&["DUMP", &k]);
            (k, d)
        })
        .collect()
}

fn assert_oom<V: std::fmt::Debug>(what: &str, r: RedisResult<V>) {
    match r {
        Err(e) => assert_eq!(e.code(), Some("OOM"), "{what}: {e}"),
        Ok(v) => panic!("{what} ran under OOM: {v:?}"),
    }
}

#[test]
fn scripts_that_write_are_refused_whole_at_maxmemory() {
    let redis = redis();
    let mut t = T::on(&redis, "oom");
    t.add(&["a", "b", "c", "d"]);
    let tok = t.lease(&["a", "b", "c", "d"]);
    t.expire(&["a"]);
    t.add(&["w1", "w2"]);
    // A second queue with a due delayed job: a claim there starts by promoting it.
    let mut due = T::on(&redis, "oomdue");
    assert_eq!(due.add_jobs(&[("due", 60_000, 0, KEEP)]).unwrap(), [1]);
    due.zset_score("delayed", "due", 1);
    due.add(&["w"]);
    let _: () = t.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    let before = snapshot(&mut t);

    assert_oom("claim", t.claim_raw(10, "w", 60_000));
    assert_oom(
        "claim with a due delayed job",
        due.claim_raw(10, "w", 60_000),
    );
    assert_oom("sweep", t.sweep(5));
    assert_oom("add", t.add_jobs(&[("x", 0, 0, KEEP)]));
    assert_oom("finish", t.finish(&[("b", tok[1], "c", "r", 0)]));
    assert_oom("cancel", t.cancel("w1"));
    assert_oom("record", t.record("c", tok[2], "l", "", "line"));
    assert_oom("reconcile", t.reconcile(&[]));
    assert_eq!(snapshot(&mut t), before, "nothing changed");

    // The heartbeat may still run (flags=allow-oom): it only rewrites what exists, and a
    // worker that keeps its leases does not see its jobs swept once memory frees.
    let (lost, _) = t.renew(&[("b", tok[1]), ("c", tok[2])]).unwrap();
    assert!(lost.is_empty());
    assert!(t.zscore("active", "b").unwrap() > 1.0);

    let _: () = t.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    assert_eq!(t.claim_ids(10), ["w1", "w2"]);
    assert_eq!(due.claim_ids(10), ["w", "due"]);
    assert_eq!(t.sweep(5).unwrap(), ["a", "requeued"]);
}

// ---------------------------------------------------------------- each script does what its header says

#[test]
fn each_script_does_what_its_header_says() {
    type Case = (&'static str, fn(&mut T));
    let cases: &[Case] = &[
        (
            "add: ready, delayed, prioritized; an existing id changes nothing",
            |t| {
                let jobs = [("a", 0, 0, KEEP), ("d", 60_000, 0, KEEP), ("p", 0, 2, KEEP)];
                assert_eq!(t.add_jobs(&jobs).unwrap(), [1, 1, 1]);
                assert_eq!(t.line("wait"), ["a"]);
                assert_eq!(t.zset("delayed"), ["d"]);
                assert_eq!(t.zset("prioritized"), ["p"]);
                assert_eq!(t.hget("d", "state").as_deref(), Some("delayed"));
                assert_eq!(t.hget("p", "pri").as_deref(), Some("2"));
                assert_eq!(t.hget("a", "keep").as_deref(), Some(KEEP));
                assert_eq!(t.add_jobs(&[("a", 0, 3, KEEP)]).unwrap(), [0]);
                assert_eq!(t.hget("a", "pri"), None);
                assert_eq!(t.line("wait"), ["a"]);
                assert_eq!(t.line("wake").len(), 1);
            },
        ),
        (
            "claim: FIFO, unprioritized first, then by priority; fresh token and attempt",
            |t| {
                let jobs = [
                    ("p2", 0, 2, KEEP),
                    ("a", 0, 0, KEEP),
                    ("p1", 0, 1, KEEP),
                    ("b", 0, 0, KEEP),
                ];
                assert_eq!(t.add_jobs(&jobs).unwrap(), [1, 1, 1, 1]);
                let got = t.claim(3).unwrap();
                let ids: Vec<&str> = got.iter().map(|j| j.0.as_str()).collect();
                assert_eq!(ids, ["a", "b", "p1"]);
                // Tokens: the queue's sequence, never below Redis's clock in ms × 100.
                let now_ms = t.cmd::<Vec<u64>>(&["TIME"])[0] * 1000;
                assert!(got[0].1 >= (now_ms - 60_000) * 100, "token {}", got[0].1);
                assert_eq!(got[1].1, got[0].1 + 1);
                assert_eq!(got[2].1, got[0].1 + 2);
                assert!(got.iter().all(|j| j.2 == 1));
                for j in &got {
                    t.assert_leased(&j.0, j.1, 1);
                }
                assert_eq!(t.zset("prioritized"), ["p2"]);
                assert!(t.zscore("active", "a").is_some());
                assert_eq!(
                    t.line("wake").len(),
                    1,
                    "jobs are left: the next worker is woken"
                );
                // A token is never handed out twice, even with the sequence deleted.
                let leases = t.k("leases");
                let _: () = t.cmd(&["HDEL", &leases, ""]);
                assert!(t.claim(1).unwrap()[0].1 > got[2].1);
            },
        ),
        (
            "claim: a paused queue leases nothing; next due time returned",
            |t| {
                t.add(&["a"]);
                assert_eq!(t.add_jobs(&[("d", 60_000, 0, KEEP)]).unwrap(), [1]);
                let meta = t.k("meta");
                let _: () = t.cmd(&["HSET", &meta, "paused", "1"]);
                let v = t.claim_raw(5, "w", 1000).unwrap();
                assert_eq!(v.len(), 3);
                let due: i64 = redis::from_redis_value_ref(&v[0]).unwrap();
                assert_eq!(Some(due as f64), t.zscore("delayed", "d"));
                assert_eq!(t.line("wait"), ["a"]);
            },
        ),
        (
            "finish: each kind; a wrong token is lock lost; a recorded cancel wins",
            |t| {
                t.add(&["c", "r", "r0", "f", "x", "h", "lost", "cx"]);
                let tk = t.lease(&["c", "r", "r0", "f", "x", "h", "lost", "cx"]);
                assert_eq!(t.cancel("cx").unwrap().0, 2);
                let out = t
                    .finish(&[
                        ("c", tk[0], "c", "res", 0),
                        ("r", tk[1], "r", "err", 60_000),
                        ("r0", tk[2], "r", "err", 0),
                        ("f", tk[3], "f", "boom", 0),
                        ("x", tk[4], "x", "why", 0),
                        ("h", tk[5], "h", "", 0),
                        ("lost", tk[6] + 1, "c", "res", 0),
                        ("cx", tk[7], "c", "res", 0),
                    ])
                    .unwrap();
                assert_eq!(out, [1, 1, 1, 1, 1, 1, 0, 2]);
                assert_eq!(t.zset("completed"), ["c"]);
                assert_eq!(t.hget("c", "result").as_deref(), Some("res"));
                // A kept job records its last lease with the write finish makes anyway.
                assert_eq!(t.hget("c", "state").as_deref(), Some("completed"));
                let last = t.hget("c", "lease").unwrap();
                assert!(last.starts_with(&format!("{}:1:", tk[0])), "{last}");
                assert!(last.ends_with(":w"), "{last}");
                assert_eq!(t.hget("r", "attempt").as_deref(), Some("1"));
                assert_eq!(t.hget("r", "token"), Some(tk[1].to_string()));
                assert_eq!(t.lease_entry("c"), None, "released");
                assert!(t.lease_entry("lost").is_some(), "not released");
                assert_eq!(t.zset("delayed"), ["r"]);
                assert_eq!(t.line("wait"), ["h", "r0"], "hand back is first in line");
                assert_eq!(t.hget("h", "attempt").as_deref(), Some("0"));
                assert_eq!(t.zset("failed"), ["f"]);
                assert_eq!(t.hget("f", "error").as_deref(), Some("boom"));
                let mut cancelled = t.zset("cancelled");
                cancelled.sort();
                assert_eq!(cancelled, ["cx", "x"]);
                assert_eq!(t.zset("active"), ["lost"]);
            },
        ),
        (
            "renew: renews held leases, reports lost ones and recorded cancels",
            |t| {
                t.add(&["a", "b", "c"]);
                let tk = t.lease(&["a", "b", "c"]);
                t.expire(&["a"]);
                assert_eq!(t.cancel("c").unwrap().0, 2);
                let (lost, cancels) = t
                    .renew(&[("a", tk[0]), ("b", tk[1] + 1), ("c", tk[2])])
                    .unwrap();
                assert_eq!(lost, ["b"]);
                assert_eq!(cancels, ["c"]);
                assert!(t.zscore("active", "a").unwrap() > 1.0);
                assert_eq!(t.zset("workers"), ["w"]);
            },
        ),
        (
            "sweep: requeues first in line with stalled+1, fails past max, forgets dead workers",
            |t| {
                t.add(&["a", "b", "live"]);
                t.lease(&["a", "b", "live"]);
                t.hset("b", "stalled", "2");
                t.expire(&["a", "b"]);
                let _ = t.renew(&[]).unwrap();
                t.zset_score("workers", "w", 0);
                t.add(&["new"]);
                assert_eq!(t.sweep(2).unwrap(), ["a", "requeued", "b", "failed"]);
                assert_eq!(t.line("wait"), ["a", "new"]);
                assert_eq!(t.hget("a", "stalled").as_deref(), Some("1"));
                assert_eq!(t.lease_entry("a"), None, "fenced off");
                assert!(t.hget("b", "error").unwrap().contains("stalled 3 times"));
                assert_eq!(t.zset("active"), ["live"]);
                assert!(t.zset("workers").is_empty());
            },
        ),
        ("cancel: waiting, running, finished, missing", |t| {
            t.add(&["run"]);
            t.lease(&["run"]);
            t.add(&["wait", "wait2"]);
            assert_eq!(t.cancel("wait").unwrap(), (1, "waiting".into()));
            assert_eq!(t.zset("cancelled"), ["wait"]);
            assert_eq!(t.cancel("run").unwrap(), (2, "active".into()));
            assert_eq!(t.hget("run", "cancel").as_deref(), Some("1"));
            assert_eq!(t.cancel("wait").unwrap(), (-2, "cancelled".into()));
            assert_eq!(t.cancel("nope").unwrap(), (-1, String::new()));
            assert_eq!(t.line("wait"), ["wait2"]);
        }),
        ("retry: a failed job runs again from attempt 0", |t| {
            t.add(&["a"]);
            let tk = t.lease(&["a"]);
            assert_eq!(t.finish(&[("a", tk[0], "f", "boom", 0)]).unwrap(), [1]);
            assert_eq!(t.retry("a").unwrap(), (1, "failed".into()));
            assert_eq!(t.line("wait"), ["a"]);
            assert_eq!(t.hget("a", "attempt").as_deref(), Some("0"));
            assert_eq!(t.hget("a", "error"), None);
            assert!(t.zset("failed").is_empty());
            assert_eq!(t.retry("a").unwrap(), (-2, "waiting".into()));
            assert_eq!(t.retry("nope").unwrap(), (-1, String::new()));
        }),
        ("remove: deletes a job that is not running", |t| {
            t.add(&["run", "a"]);
            t.claim_ids(1);
            assert_eq!(t.remove("a").unwrap(), (1, "waiting".into()));
            assert!(!t.exists("a") && t.line("wait").is_empty());
            assert_eq!(t.remove("run").unwrap(), (-2, "active".into()));
            assert_eq!(t.remove("a").unwrap(), (-1, String::new()));
        }),
        (
            "record: fenced step, progress, log lines (last N kept)",
            |t| {
                t.add(&["a"]);
                let tk = t.lease(&["a"]);
                assert_eq!(t.record("a", tk[0], "s", "step1", "v").unwrap(), 1);
                assert_eq!(t.record("a", tk[0], "p", "", "50").unwrap(), 1);
                for l in ["l1", "l2", "l3"] {
                    assert_eq!(t.record("a", tk[0], "l", "", l).unwrap(), 1);
                }
                assert_eq!(t.record("a", tk[0] + 1, "p", "", "99").unwrap(), 0);
                assert_eq!(t.hget("a", "progress").as_deref(), Some("50"));
                let steps = t.k("steps:a");
                assert_eq!(
                    t.cmd::<Option<String>>(&["HGET", &steps, "step1"])
                        .as_deref(),
                    Some("v")
                );
                let logs = t.k("logs:a");
                assert_eq!(
                    t.cmd::<Vec<String>>(&["LRANGE", &logs, "0", "-1"]),
                    ["l2", "l3"]
                );
            },
        ),
        ("clean: deletes finished jobs older than the age", |t| {
            t.finished("failed", "old", 1);
            t.add(&["new"]);
            let tk = t.lease(&["new"]);
            assert_eq!(t.finish(&[("new", tk[0], "f", "e", 0)]).unwrap(), [1]);
            assert_eq!(t.clean("failed", 60_000).unwrap(), 1);
            assert_eq!(t.zset("failed"), ["new"]);
            assert!(!t.exists("old"));
        }),
        (
            "finish: forgettable completions are fenced like any (a wrong token, the same \
             lease twice, no lease: lock lost), their values deleted unread",
            |t| {
                t.add_keep("a", "0:0:10000:0");
                t.add_keep("b", "0:0:10000:0");
                t.add_keep("c", "0:0:10000:0");
                let tk = t.lease(&["a", "b", "c"]);
                let out = t
                    .finish_forgettable(&[
                        ("a", tk[0]),
                        ("b", tk[1] + 100),
                        ("a", tk[0]),
                        ("nope", 1),
                        ("c", tk[2]),
                    ])
                    .unwrap();
                assert_eq!(out, [1, 0, 0, 0, 1]);
                assert_eq!(t.lease_entry("a"), None);
                assert!(t.lease_entry("b").is_some(), "b still leased");
                let jobs = t.k("jobs");
                let left: Vec<String> = t.cmd(&["HKEYS", &jobs]);
                assert!(left.contains(&"b".to_string()) && !left.contains(&"a".to_string()));
                assert_eq!(t.zset("active"), ["b"]);
            },
        ),
        (
            "reconcile: hands back this worker's unheld jobs first in line",
            |t| {
                t.add(&["a", "held"]);
                t.lease(&["a", "held"]);
                t.add(&["other"]);
                assert_eq!(t.claim_raw(1, "w2", 60_000).unwrap().len(), 3 + 2);
                t.add(&["new"]);
                assert_eq!(t.reconcile(&["held"]).unwrap(), ["a"]);
                assert_eq!(t.line("wait"), ["a", "new"]);
                assert_eq!(t.hget("a", "attempt").as_deref(), Some("0"));
                assert_eq!(t.lease_entry("a"), None, "fenced off");
                let mut active = t.zset("active");
                active.sort();
                assert_eq!(active, ["held", "other"]);
            },
        ),
    ];
    let redis = redis();
    for (i, (what, case)) in cases.iter().enumerate() {
        eprintln!("case: {what}");
        let mut t = T::on(&redis, &format!("header{i}"));
        case(&mut t);
    }
}
