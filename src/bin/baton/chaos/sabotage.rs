//! `--sabotage`: breaks acknowledged jobs on purpose after a clean run, the way a
//! defect would, so a test can prove the check (check.rs) notices.

use baton::{Queue, Result};

use super::producer::{Book, Kind};
use super::server::ChaosRedis;

/// Breaks the outcome on purpose (see `--sabotage`): `lose` deletes an acknowledged
/// job, `stale` rewrites a completed job's token, `stuck` puts a finished job back in
/// the wait list without telling its record.
pub async fn sabotage(
    redis: &ChaosRedis,
    qs: &[Queue],
    book: &Book,
    what: &[String],
) -> Result<()> {
    let ids: Vec<(String, usize)> = book
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, e)| e.acked.is_some() && e.kind == Kind::Ok && !e.cancelled)
        .map(|(id, e)| (id.clone(), e.queue))
        .collect();
    let mut c = redis.conn().await?;
    for (w, (id, qi)) in what.iter().zip(ids.iter()) {
        let k = baton::keys::Keys::new(qs[*qi].name());
        let cmd = match w.as_str() {
            "lose" => {
                // The job's hash, or its compact value (baton::job::Compact) and outcome.
                let mut c = redis::cmd("EVAL");
                c.arg(
                    "redis.call('DEL', KEYS[1]) redis.call('HDEL', KEYS[3], ARGV[1]) \
                     return redis.call('HDEL', KEYS[2], ARGV[1])",
                )
                .arg(3)
                .arg(k.job(id))
                .arg(k.jobs())
                .arg(k.done())
                .arg(id);
                c
            }
            "stale" if compact_lease_raised(&mut c, &k, id).await? => continue,
            "stale" => {
                // The recorded lease's token raised by one (lua/lease.lua).
                let mut c = redis::cmd("EVAL");
                c.arg(
                    "local v = redis.call('HGET', KEYS[1], 'lease') \
                     local t, rest = string.match(v or '', '^(%d+)(:.*)$') \
                     if not t then return redis.call('HINCRBY', KEYS[1], 'token', 1) end \
                     return redis.call('HSET', KEYS[1], 'lease', \
                       string.format('%d', tonumber(t) + 1) .. rest)",
                )
                .arg(1)
                .arg(k.job(id));
                c
            }
            "stuck" => {
                let mut c = redis::cmd("LPUSH");
                c.arg(k.wait()).arg(id);
                c
            }
            other => return Err(baton::Error::Invalid(format!("unknown sabotage {other}"))),
        };
        let _: redis::Value = cmd.query_async(&mut c).await?;
    }
    Ok(())
}

/// The "stale" sabotage on a kept compact completion (baton::job::Compact): the lease
/// in its outcome (its field of `done`) raised by one token. False when the job is
/// not one.
async fn compact_lease_raised(
    c: &mut baton::conn::RedisConn,
    k: &baton::keys::Keys,
    id: &str,
) -> Result<bool> {
    let v: Option<Vec<u8>> = redis::cmd("HGET")
        .arg(k.done())
        .arg(id)
        .query_async(c)
        .await?;
    let Some(done) = v.as_deref().and_then(baton::job::Done::parse) else {
        return Ok(false);
    };
    let lease = String::from_utf8_lossy(done.lease);
    let Some((token, rest)) = lease.split_once(':') else {
        return Ok(false);
    };
    let Ok(token) = token.parse::<u64>() else {
        return Ok(false);
    };
    let raised = format!("{}:{rest}", token + 1);
    let v = baton::job::Done {
        lease: raised.as_bytes(),
        ..done
    }
    .encode();
    let _: () = redis::cmd("HSET")
        .arg(k.done())
        .arg(id)
        .arg(v)
        .query_async(c)
        .await?;
    Ok(true)
}
