//! The leases HASH (`baton:{q}:leases`, see `lua/lease.lua`): a claim writes no job
//! hash, so everything that shows or checks a running job reads its lease from there;
//! and a lease from before that table (in the job's own hash, as older workers wrote
//! it) is recovered by the sweeper and fenced off.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{start, wait_until, RedisServer};
use baton::{handler_fn, Cancelled, JobContext, JobError, JobOptions, JobState, Queue, Worker};

fn builder(url: &str, q: &str) -> baton::WorkerBuilder {
    Worker::builder(url, q)
        .concurrency(4)
        .lease(Duration::from_secs(2))
        .stalled_interval(Duration::from_millis(200))
        .abort_grace(Duration::from_millis(500))
        .shutdown_timeout(Duration::from_secs(2))
}

/// A script file as the crate sends it: its `#!lua` line, common.lua, lease.lua,
/// compact.lua, the rest.
fn script(file: &str) -> redis::Script {
    let (shebang, body) = file.split_once('\n').unwrap();
    redis::Script::new(&format!(
        "{shebang}\n{}\n{}\n{}\n{body}",
        include_str!("../../lua/common.lua"),
        include_str!("../../lua/lease.lua"),
        include_str!("../../lua/compact.lua")
    ))
}

#[tokio::test]
async fn a_running_job_shows_its_lease_everywhere() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ls").unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let w = builder(&redis.url(), "ls")
        .build(handler_fn(move |_: u8, _ctx: JobContext| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|go| *go).await;
                Ok::<_, JobError>("done")
            }
        }))
        .unwrap();
    let run = start(w);
    let a = q.add("a", &1u8, JobOptions::default()).await.unwrap();
    let b = q.add("b", &1u8, JobOptions::default()).await.unwrap();
    wait_until(Duration::from_secs(5), "both running", || async {
        q.counts().await.unwrap().active == 2
    })
    .await;

    // The job is not written by the claim (a plain job stays compact, with no hash of
    // its own, src/job/compact.rs): the lease is in the leases hash.
    let mut c = redis.conn();
    let stored = crate::common::stored_job(&redis, "ls", &a.id);
    assert_eq!(
        (stored.get("state").map(|s| &s[..]), stored.get("worker")),
        (Some(&b"waiting"[..]), None)
    );
    let hashed: bool = redis::cmd("EXISTS")
        .arg(format!("baton:{{ls}}:job:{}", a.id))
        .query(&mut c)
        .unwrap();
    assert!(!hashed, "a running plain job has no hash of its own");
    let entry: Option<String> = redis::cmd("HGET")
        .arg("baton:{ls}:leases")
        .arg(&a.id)
        .query(&mut c)
        .unwrap();
    assert!(entry.is_some(), "a lease entry");

    // Inspect, the listing and the admin scripts read it from there.
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Active);
    assert_eq!(j.attempt, 1);
    let worker = j.worker.clone().expect("the worker holding it");
    assert!(entry.unwrap().ends_with(&format!(":{worker}")));
    assert!(j.started_ms.unwrap() >= j.created_ms);
    let sums = q.summaries(std::slice::from_ref(&a.id)).await.unwrap();
    let s = sums[0].as_ref().unwrap();
    assert_eq!((s.state, s.attempt), (JobState::Active, 1));
    assert_eq!(s.started_ms, j.started_ms);
    assert!(
        q.remove(&a.id).await.is_err(),
        "a running job is not removed"
    );
    assert!(matches!(
        q.cancel(&b.id).await.unwrap(),
        Cancelled::Requested
    ));

    // Done: the kept job records its last lease in its own hash.
    tx.send(true).unwrap();
    wait_until(Duration::from_secs(5), "finished", || async {
        q.job(&a.id).await.unwrap().unwrap().state == JobState::Completed
            && q.job(&b.id).await.unwrap().unwrap().state == JobState::Cancelled
    })
    .await;
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!((j.attempt, j.worker.as_deref()), (1, Some(worker.as_str())));
    assert!(j.started_ms.is_some() && j.finished_ms >= j.started_ms);
    let left: u64 = redis::cmd("HLEN")
        .arg("baton:{ls}:leases")
        .query(&mut c)
        .unwrap();
    assert_eq!(left, 1, "only the token sequence is left");
    run.stop().await;
}

#[tokio::test]
async fn a_lease_from_before_the_leases_hash_is_refused_then_recovered_and_fenced() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "old").unwrap();
    let a = q.add("a", &1u8, JobOptions::default()).await.unwrap();
    let jk = format!("baton:{{old}}:job:{}", a.id);
    let mut c = redis.conn();
    // What an older claim.lua did: the lease in the job's hash, no leases entry.
    let _: () = redis::pipe()
        .cmd("RPOP")
        .arg("baton:{old}:wait")
        .ignore()
        .cmd("HSET")
        .arg(&jk)
        .arg(&[
            "state", "active", "token", "3", "attempt", "1", "worker", "old-w",
        ])
        .arg(&["started", "1700000000000"])
        .ignore()
        .cmd("ZADD")
        .arg("baton:{old}:active")
        .arg(0)
        .arg(&a.id)
        .ignore()
        .query(&mut c)
        .unwrap();
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.worker.as_deref()),
        (JobState::Active, Some("old-w"))
    );

    // This version's finish refuses it (lock lost): only the old worker can finish it.
    let finish = script(include_str!("../../lua/finish.lua"));
    let mut fin = finish.prepare_invoke();
    for k in [
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
    ] {
        fin.key(format!("baton:{{old}}:{k}"));
    }
    // One completion (a group of 3: id, token, result), no other outcome.
    fin.arg("baton:{old}:")
        .arg(1)
        .arg(&a.id)
        .arg(3)
        .arg("x")
        .arg(0);
    let out: Vec<i64> = fin.invoke(&mut c).unwrap();
    assert_eq!(out, [0]);

    // The sweeper recovers it from the hash and raises its token there (old workers'
    // scripts check that one); a worker of this version then runs it.
    let ran: Arc<Mutex<Vec<(u32, u32)>>> = Arc::default();
    let r2 = ran.clone();
    let w = builder(&redis.url(), "old")
        .build(handler_fn(move |_: u8, ctx: JobContext| {
            r2.lock().unwrap().push((ctx.attempt(), ctx.stalled()));
            async move { Ok::<_, JobError>("ok") }
        }))
        .unwrap();
    let run = start(w);
    wait_until(
        Duration::from_secs(10),
        "recovered and completed",
        || async { q.job(&a.id).await.unwrap().unwrap().state == JobState::Completed },
    )
    .await;
    assert_eq!(
        *ran.lock().unwrap(),
        [(1, 1)],
        "attempt not consumed, stalled once"
    );
    let token: u64 = redis::cmd("HGET")
        .arg(&jk)
        .arg("token")
        .query(&mut c)
        .unwrap();
    assert!(token > 3, "the old worker's token 3 is fenced off: {token}");
    run.stop().await;
}
