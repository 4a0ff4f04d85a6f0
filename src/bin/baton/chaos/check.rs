//! The invariants of a chaos run, checked from Redis and the ledger once every fault is
//! healed and the workers had time to finish:
//!
//! - every job whose add was acknowledged exists and is in exactly one state, which is
//!   terminal and the one its record names (none lost, none stuck, none in two places);
//! - it ended as made: a normal job `completed` (or `cancelled` when a cancel was
//!   acknowledged), a doomed one `failed`, a corrupted one `failed` saying so;
//! - every `completed` job's command finished at least once (the ledger has a line for
//!   it), and its stored result came from the attempt holding the current token;
//! - the counts `stats` shows equal the job records in each state.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use baton::{JobState, Queue, Result};
use serde::Serialize;

use super::producer::{Book, Kind};
use super::server::ChaosRedis;

/// A job hash's `lease` and `token` fields.
type StoredLease = (Option<Vec<u8>>, Option<u64>);

/// One HSCAN reply: the next cursor, then field/value pairs.
type HashPage = (u64, Vec<(String, Vec<u8>)>);

/// Every field and value of the hash `key`, read with HSCAN; what was read before an
/// error (a cluster node that does not hold it answers MOVED: nothing).
async fn hash_fields<C: redis::aio::ConnectionLike>(
    conn: &mut C,
    key: &str,
) -> Vec<(String, Vec<u8>)> {
    let (mut out, mut cursor) = (Vec::new(), 0u64);
    loop {
        let page: redis::RedisResult<HashPage> = redis::cmd("HSCAN")
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await;
        let Ok((next, fields)) = page else { return out };
        out.extend(fields);
        cursor = next;
        if cursor == 0 {
            return out;
        }
    }
}

/// What the check found.
#[derive(Debug, Default, Serialize)]
pub struct Findings {
    /// Jobs whose add was acknowledged.
    pub acked: usize,
    /// Jobs that exist although their add was never acknowledged (checked like the rest).
    pub unacked_present: usize,
    /// Final states of the checked jobs.
    pub states: BTreeMap<String, usize>,
    /// Command runs recorded in the ledger.
    pub runs: usize,
    /// Jobs whose command finished more than once (at-least-once: allowed, counted).
    pub rerun_jobs: usize,
    /// Acknowledged jobs that are gone.
    pub lost: Vec<String>,
    /// Of those, acknowledged within the fsync window before a Redis SIGKILL under
    /// `appendfsync everysec` (the documented loss window; not a violation).
    pub lost_in_fsync_window: Vec<String>,
    /// Jobs not in a terminal state after settling.
    pub stuck: Vec<String>,
    /// Jobs in a terminal state other than the one they were made for.
    pub wrong_state: Vec<String>,
    /// Completed jobs whose result came from a stale token, or that never ran.
    pub bad_outcome: Vec<String>,
    /// Jobs whose record and state sets disagree.
    pub inconsistent: Vec<String>,
    /// `stats` versus the job records, when they differ.
    pub stats_mismatch: Option<String>,
}

impl Findings {
    /// Whether any invariant failed.
    pub fn violations(&self) -> usize {
        self.lost.len() - self.lost_in_fsync_window.len()
            + self.stuck.len()
            + self.wrong_state.len()
            + self.bad_outcome.len()
            + self.inconsistent.len()
            + usize::from(self.stats_mismatch.is_some())
    }
}

/// Ledger lines: job id → tokens whose command finished.
fn ledger(path: &Path) -> HashMap<String, Vec<u64>> {
    let mut out: HashMap<String, Vec<u64>> = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let mut it = line.split_whitespace();
        if let (Some(id), Some(tok)) = (it.next(), it.next().and_then(|t| t.parse().ok())) {
            out.entry(id.to_string()).or_default().push(tok);
        }
    }
    out
}

/// Which state sets of the queues hold each id (ids are unique across the run's queues).
async fn memberships(
    redis: &ChaosRedis,
    qs: &[Queue],
) -> Result<HashMap<String, Vec<&'static str>>> {
    let mut out: HashMap<String, Vec<&'static str>> = HashMap::new();
    let mut conn = redis.conn().await?;
    for q in qs {
        memberships_of(&mut conn, q, &mut out).await?;
    }
    Ok(out)
}

async fn memberships_of(
    conn: &mut baton::conn::RedisConn,
    q: &Queue,
    out: &mut HashMap<String, Vec<&'static str>>,
) -> Result<()> {
    let k = baton::keys::Keys::new(q.name());
    let sets: [(&'static str, String, bool); 7] = [
        ("waiting", k.wait(), true),
        ("waiting", k.prioritized(), false),
        ("delayed", k.delayed(), false),
        ("active", k.active(), false),
        ("completed", k.completed(), false),
        ("failed", k.failed(), false),
        ("cancelled", k.cancelled(), false),
    ];
    for (state, key, is_list) in sets {
        let mut c = if is_list {
            redis::cmd("LRANGE")
        } else {
            redis::cmd("ZRANGE")
        };
        let mut ids: Vec<String> = c.arg(&key).arg(0).arg(-1).query_async(conn).await?;
        ids.retain(|id| id != baton::keys::Keys::ACTIVE_KEEPER);
        for id in ids {
            out.entry(id).or_default().push(state);
        }
    }
    Ok(())
}

/// Waits until no job of the queues is waiting, delayed or active, or `limit` passes.
pub async fn settle(qs: &[Queue], limit: Duration) -> Duration {
    let start = Instant::now();
    'wait: while start.elapsed() < limit {
        let mut open = 0;
        for q in qs {
            match q.counts().await {
                Ok(c) => open += c.waiting + c.delayed + c.active,
                Err(_) => open += 1,
            }
        }
        if open == 0 {
            break 'wait;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    start.elapsed()
}

/// Checks every invariant. `kills` are the times Redis was SIGKILLed and `window` the
/// fsync loss window (zero under `appendfsync always`).
pub async fn check(
    redis: &ChaosRedis,
    qs: &[Queue],
    book: &Book,
    ledger_path: &Path,
    kills: &[Instant],
    window: Duration,
) -> Result<Findings> {
    let mut f = Findings::default();
    let runs = ledger(ledger_path);
    f.runs = runs.values().map(Vec::len).sum();
    f.rerun_jobs = runs.values().filter(|v| v.len() > 1).count();
    let member = memberships(redis, qs).await?;
    let book = book.lock().unwrap().clone();
    let mut conn = redis.conn().await?;
    for (id, e) in &book {
        let q = &qs[e.queue];
        let keys = baton::keys::Keys::new(q.name());
        let info = q.job(id).await?;
        let Some(info) = info else {
            if let Some(at) = e.acked {
                f.acked += 1;
                let in_window = kills
                    .iter()
                    .any(|k| *k >= at && k.duration_since(at) <= window);
                if in_window {
                    f.lost_in_fsync_window.push(id.clone());
                }
                f.lost.push(id.clone());
            }
            continue;
        };
        if e.acked.is_some() {
            f.acked += 1;
        } else {
            f.unacked_present += 1;
        }
        let state = info.state.as_str();
        *f.states.entry(state.to_string()).or_default() += 1;
        let sets = member.get(id).cloned().unwrap_or_default();
        if sets.len() != 1 || sets[0] != state {
            f.inconsistent
                .push(format!("{id}: record says {state}, found in {sets:?}"));
        }
        if !info.state.is_finished() {
            f.stuck.push(format!("{id}: {state}"));
            continue;
        }
        let cancelled_ok = e.cancelled || e.maybe_cancelled;
        let allowed: &[JobState] = match (e.kind, e.cancelled) {
            (_, true) => &[JobState::Cancelled],
            (Kind::Ok, _) if e.maybe_corrupt => &[JobState::Completed, JobState::Failed],
            (Kind::Ok, _) => &[JobState::Completed],
            (Kind::Doomed, _) | (Kind::Corrupt, _) => &[JobState::Failed],
        };
        let fine =
            allowed.contains(&info.state) || (cancelled_ok && info.state == JobState::Cancelled);
        if !fine {
            f.wrong_state.push(format!(
                "{id}: {state} (made {:?}, cancel acknowledged: {}), error: {}",
                e.kind,
                e.cancelled,
                info.error.as_deref().unwrap_or("-")
            ));
        }
        if e.kind == Kind::Corrupt && info.state == JobState::Failed {
            let err = info.error.as_deref().unwrap_or("");
            if !err.contains("corrupt") {
                f.wrong_state
                    .push(format!("{id}: corrupt job failed without saying so: {err}"));
            }
        }
        if info.state == JobState::Completed {
            // The token of its last lease: field `lease` ("token:attempt:started:worker",
            // see lua/lease.lua), else `token` (a job finished before that field), else
            // the lease in a compact job's value (baton::job::Compact).
            type Read = (StoredLease, Option<Vec<u8>>, Option<Vec<u8>>);
            let ((lease, token), outcome, compact): Read = redis::pipe()
                .cmd("HMGET")
                .arg(keys.job(id))
                .arg("lease")
                .arg("token")
                .hget(keys.done(), id)
                .hget(keys.jobs(), id)
                .query_async(&mut conn)
                .await?;
            let compact = baton::job::Compact::join(outcome, compact);
            let compact = compact.as_deref().and_then(baton::job::Compact::parse);
            let lease = lease.as_deref().or(compact.and_then(|c| c.field("lease")));
            let token = lease
                .and_then(|l| {
                    std::str::from_utf8(l)
                        .ok()?
                        .split(':')
                        .next()?
                        .parse::<u64>()
                        .ok()
                })
                .or(token);
            let ran = runs.get(id).cloned().unwrap_or_default();
            let result_token = info.result.as_ref().and_then(|r| r["token"].as_u64());
            if ran.is_empty() {
                f.bad_outcome
                    .push(format!("{id}: completed but its command never finished"));
            } else if result_token.is_none() || result_token != token {
                f.bad_outcome.push(format!(
                    "{id}: result from token {result_token:?}, current token {token:?}"
                ));
            } else if !ran.contains(&token.unwrap_or(0)) {
                f.bad_outcome
                    .push(format!("{id}: token {token:?} never finished its command"));
            }
        }
    }
    let mut mismatches = Vec::new();
    for q in qs {
        if let Some(m) = stats_vs_records(redis, q).await? {
            mismatches.push(format!("{}: {m}", q.name()));
        }
    }
    f.stats_mismatch = (!mismatches.is_empty()).then(|| mismatches.join("; "));
    Ok(f)
}

/// `stats` (the state sets' sizes) against the job records' own `state` fields.
async fn stats_vs_records(redis: &ChaosRedis, q: &Queue) -> Result<Option<String>> {
    let counts = q.counts().await?;
    let pattern = format!("{}job:*", baton::keys::Keys::new(q.name()).prefix());
    let mut by_state: BTreeMap<String, u64> = BTreeMap::new();
    // Every node: on a cluster the queue's keys are on one of them.
    for node in 0..redis.len() {
        let mut conn = redis.node_conn(node).await?;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .arg("TYPE")
                .arg("hash")
                .query_async(&mut conn)
                .await?;
            for key in keys {
                let st: Option<String> = redis::cmd("HGET")
                    .arg(&key)
                    .arg("state")
                    .query_async(&mut conn)
                    .await?;
                *by_state
                    .entry(st.unwrap_or_else(|| "none".into()))
                    .or_default() += 1;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        // The compact jobs (baton::job::Compact), on the node that holds their hash
        // (another node of a cluster refuses: MOVED): those with an outcome in `done`
        // are completed, the others say in their value.
        let keys = baton::keys::Keys::new(q.name());
        let completed: std::collections::HashSet<String> = hash_fields(&mut conn, &keys.done())
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        for (id, v) in hash_fields(&mut conn, &keys.jobs()).await {
            if id.is_empty() {
                continue; // the hash's padding, not a job
            }
            let st = if completed.contains(&id) {
                Some("completed".to_string())
            } else {
                baton::job::Compact::parse(&v)
                    .and_then(|c| c.field("state"))
                    .map(|s| String::from_utf8_lossy(s).into_owned())
            };
            *by_state
                .entry(st.unwrap_or_else(|| "none".into()))
                .or_default() += 1;
        }
    }
    let get = |s: &str| by_state.get(s).copied().unwrap_or(0);
    let records = [
        get("waiting"),
        get("delayed"),
        get("active"),
        get("completed"),
        get("failed"),
        get("cancelled"),
    ];
    let stats = [
        counts.waiting,
        counts.delayed,
        counts.active,
        counts.completed,
        counts.failed,
        counts.cancelled,
    ];
    Ok((records != stats || get("none") > 0)
        .then(|| format!("stats {stats:?} vs job records {by_state:?} (waiting, delayed, active, completed, failed, cancelled)")))
}
