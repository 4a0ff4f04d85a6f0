//! Compact jobs (src/job/compact.rs, lua/compact.lua): a plain job is one field of its
//! queue's `jobs` hash while it waits and runs, and every way to look at it or act on
//! it sees the same job as before: listed, shown, waited on, cancelled, removed,
//! refused where a waiting job is refused; the first write beyond its spec (progress,
//! a retry...) gives it its hash; a kept completion stays compact, its outcome in the
//! queue's `done` hash (or, as a baton of session 9 stored it, ahead of its value); one
//! that nothing keeps leaves nothing behind.

use std::time::Duration;

use baton::{
    handler_fn, Cancelled, Error, JobContext, JobError, JobOptions, JobState, Queue, Retention,
    Worker,
};
use redis::Commands;
use serde_json::{json, Value};

use crate::common::{start, wait_until, RedisServer};

/// Whether job `id` of queue `q` is compact: a field of the jobs hash, no hash of its own.
pub(crate) fn is_compact(redis: &RedisServer, q: &str, id: &str) -> bool {
    let mut c = redis.conn();
    let field: bool = c.hexists(format!("baton:{{{q}}}:jobs"), id).unwrap();
    let hash: bool = c.exists(format!("baton:{{{q}}}:job:{id}")).unwrap();
    assert!(!(field && hash), "{id} is stored twice");
    field
}

#[tokio::test]
async fn a_compact_job_is_listed_shown_and_acted_on_like_any_waiting_job() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "cj").unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            q.add("n", &json!({"i": i}), JobOptions::default())
                .await
                .unwrap()
                .id,
        );
    }
    let delayed = q
        .add(
            "d",
            &json!(0),
            JobOptions::default().delay(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .id;
    assert!(ids.iter().all(|id| is_compact(&redis, "cj", id)));
    assert!(
        !is_compact(&redis, "cj", &delayed),
        "a delayed job has its hash"
    );

    let j = q.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (j.name.as_str(), &j.data, j.state),
        ("n", &json!({"i": 0}), JobState::Waiting)
    );
    assert!(j.created_ms > 0);
    let listed = q.list(JobState::Waiting, 0, 10).await.unwrap();
    let rows = q.summaries(&listed).await.unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        let row = row.expect("each listed job is found");
        assert_eq!((row.name.as_str(), row.state), ("n", JobState::Waiting));
        assert!(row.created_ms >= j.created_ms, "added after the first");
    }
    assert_eq!(q.oldest_waiting_ms().await.unwrap(), Some(j.created_ms));

    // Refused as for any waiting job, and left compact.
    assert!(matches!(
        q.retry(&ids[0]).await,
        Err(Error::InvalidState { .. })
    ));
    assert!(matches!(
        q.promote(&ids[0]).await,
        Err(Error::InvalidState { .. })
    ));
    assert!(is_compact(&redis, "cj", &ids[0]));
    // The same id again is not added again.
    let again = q
        .add("n", &json!(9), JobOptions::default().job_id(ids[0].clone()))
        .await
        .unwrap();
    assert!(!again.added);
    assert_eq!(q.job(&ids[0]).await.unwrap().unwrap().data, json!({"i": 0}));

    assert_eq!(q.cancel(&ids[1]).await.unwrap(), Cancelled::Now);
    assert_eq!(
        q.job(&ids[1]).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    q.remove(&ids[2]).await.unwrap();
    assert!(q.job(&ids[2]).await.unwrap().is_none());
    assert!(!is_compact(&redis, "cj", &ids[2]));
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.cancelled, c.delayed), (2, 1, 1));
}

#[tokio::test]
async fn a_compact_job_gets_its_hash_at_its_first_write_and_is_waited_on() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "cr").unwrap();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let w = Worker::builder(redis.url(), "cr")
        .build(handler_fn(move |d: Value, ctx: JobContext| {
            let mut go = go_rx.clone();
            async move {
                let _ = go.wait_for(|g| *g).await;
                if d == json!("progress") {
                    ctx.progress(&json!({"half": true})).await.unwrap();
                }
                Ok::<_, JobError>(d)
            }
        }))
        .unwrap();
    let quiet = q
        .add("n", &json!("quiet"), JobOptions::default())
        .await
        .unwrap()
        .id;
    let talks = q
        .add("n", &json!("progress"), JobOptions::default())
        .await
        .unwrap()
        .id;
    let run = start(w);
    wait_until(Duration::from_secs(10), "both running", || async {
        q.counts().await.unwrap().active == 2
    })
    .await;
    // Running, still compact: the lease is in the leases hash.
    assert!(is_compact(&redis, "cr", &quiet));
    let value: Vec<u8> = redis.conn().hget("baton:{cr}:jobs", &quiet).unwrap();
    assert_eq!(
        q.job(&quiet).await.unwrap().unwrap().state,
        JobState::Active
    );
    let waiter = {
        let q = q.clone();
        let id = quiet.clone();
        tokio::spawn(async move { q.wait_finished(&id, Duration::from_secs(20)).await })
    };
    go_tx.send(true).unwrap();
    for id in [&quiet, &talks] {
        wait_until(Duration::from_secs(10), "completed", || async {
            q.job(id).await.unwrap().map(|j| j.state) == Some(JobState::Completed)
        })
        .await;
        let j = q.job(id).await.unwrap().unwrap();
        assert_eq!((j.name.as_str(), j.attempt), ("n", 1));
        assert!(j.created_ms > 0 && j.finished_ms.is_some());
    }
    // Kept (the default retention): the quiet one stays compact, its value as it was
    // (the payload not written again) and its outcome in `done`; the one that wrote
    // progress got its hash then.
    assert!(is_compact(&redis, "cr", &quiet));
    assert!(!is_compact(&redis, "cr", &talks));
    let after: Vec<u8> = redis.conn().hget("baton:{cr}:jobs", &quiet).unwrap();
    assert_eq!(after, value);
    let outcome: Vec<u8> = redis.conn().hget("baton:{cr}:done", &quiet).unwrap();
    let outcome = baton::job::Done::parse(&outcome).expect("an outcome");
    assert!(outcome.lease.contains(&b':') && !outcome.finished.is_empty());
    let none: Option<Vec<u8>> = redis.conn().hget("baton:{cr}:done", &talks).unwrap();
    assert_eq!(none, None, "an expanded job keeps no outcome in done");
    let j = q.job(&quiet).await.unwrap().unwrap();
    assert_eq!(j.result, Some(json!("quiet")));
    let j = q.job(&talks).await.unwrap().unwrap();
    assert_eq!(j.progress, Some(json!({"half": true})));
    assert_eq!(j.result, Some(json!("progress")));
    let outcome = waiter.await.unwrap().unwrap();
    assert_eq!(
        outcome,
        Some(baton::JobOutcome::Completed {
            result: json!("quiet")
        })
    );
    // A completed compact job is listed with its outcome, refused a retry, and removed
    // whole (expanded first, then deleted with its finished-set entry).
    let done = q.list(JobState::Completed, 0, 10).await.unwrap();
    let rows = q.summaries(&done).await.unwrap();
    assert!(
        rows.len() == 2 && rows.iter().all(Option::is_some),
        "{rows:?}"
    );
    for r in rows.iter().flatten() {
        assert_eq!(r.state, JobState::Completed);
        assert!(r.finished_ms.is_some() && r.name == "n");
    }
    assert!(matches!(
        q.retry(&quiet).await,
        Err(Error::InvalidState { .. })
    ));
    q.remove(&quiet).await.unwrap();
    assert!(q.job(&quiet).await.unwrap().is_none());
    assert!(!is_compact(&redis, "cr", &quiet));
    let gone: bool = redis.conn().hexists("baton:{cr}:done", &quiet).unwrap();
    assert!(!gone, "its outcome went with it");
    assert_eq!(q.counts().await.unwrap().completed, 1);
    run.stop().await;
}

#[tokio::test]
async fn a_compact_job_that_nothing_keeps_leaves_nothing_behind() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "cn").unwrap();
    let none = JobOptions::default().keep_completed(Retention::none());
    for i in 0..20 {
        q.add("n", &json!(i), none.clone()).await.unwrap();
    }
    let w = Worker::builder(redis.url(), "cn")
        .build(handler_fn(|d: Value, _ctx: JobContext| async move {
            Ok::<_, JobError>(d)
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(10), "all done", || async {
        let mut c = redis.conn();
        let left: u64 = c.hlen("baton:{cn}:jobs").unwrap();
        let c = q.counts().await.unwrap();
        left == 1 && c.waiting == 0 && c.active == 0
    })
    .await;
    run.stop().await;
    // The one field left is the hash's padding (it keeps the hash a hash table).
    let mut c = redis.conn();
    let fields: Vec<String> = c.hkeys("baton:{cn}:jobs").unwrap();
    assert_eq!(fields, [""]);
    let jobs: Vec<String> = c.keys("baton:{cn}:job:*").unwrap();
    assert!(jobs.is_empty(), "{jobs:?}");
}

/// An older worker (from before compact jobs) would drop a compact job's id as
/// removed: while one is registered, jobs get their hashes; once it is gone, a
/// heartbeat of a worker that takes compact jobs opens the gate again.
#[tokio::test]
async fn no_compact_job_is_made_while_an_older_worker_is_registered() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "cg").unwrap();
    let mut c = redis.conn();
    // An older worker's registration: its description has no "compact".
    let _: () = c
        .zadd("baton:{cg}:workers", "old-1", 9_999_999_999_999u64)
        .unwrap();
    let _: () = c
        .hset(
            "baton:{cg}:workers:info",
            "old-1",
            r#"{"host":"h","pid":1}"#,
        )
        .unwrap();
    let first = q
        .add("n", &json!(1), JobOptions::default())
        .await
        .unwrap()
        .id;
    assert!(
        !is_compact(&redis, "cg", &first),
        "an older worker could lose it"
    );
    let gate: Option<String> = c.hget("baton:{cg}:meta", "compact").unwrap();
    assert_eq!(gate.as_deref(), Some("0"));

    // A current worker beside it keeps the gate shut; it runs the job all the same.
    let w = Worker::builder(redis.url(), "cg")
        .heartbeat(Duration::from_millis(100))
        .build(handler_fn(|d: Value, _ctx: JobContext| async move {
            Ok::<_, JobError>(d)
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(10), "the first job ran", || async {
        q.counts().await.unwrap().completed == 1
    })
    .await;
    let gate: Option<String> = c.hget("baton:{cg}:meta", "compact").unwrap();
    assert_eq!(gate.as_deref(), Some("0"));

    // The older worker goes: the next heartbeat opens the gate.
    let _: () = c.zrem("baton:{cg}:workers", "old-1").unwrap();
    let _: () = c.hdel("baton:{cg}:workers:info", "old-1").unwrap();
    wait_until(Duration::from_secs(10), "the gate opens", || async {
        let g: Option<String> = redis.conn().hget("baton:{cg}:meta", "compact").unwrap();
        g.as_deref() == Some("1")
    })
    .await;
    run.stop().await;
    let next = q
        .add("n", &json!(2), JobOptions::default())
        .await
        .unwrap()
        .id;
    assert!(is_compact(&redis, "cg", &next));
}

/// A rollback: `baton uncompact` gives every compact job, waiting or completed, a hash
/// of its own (older workers read only hashes) and shuts the gate for good, so adds
/// make hashes even while a current worker beats; `--reopen` undoes it.
#[tokio::test]
async fn uncompact_expands_every_compact_job_and_shuts_the_gate() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "cu").unwrap();
    let mut ids = Vec::new();
    for i in 0..1200 {
        ids.push(
            q.add("n", &json!(i), JobOptions::default())
                .await
                .unwrap()
                .id,
        );
    }
    let w = Worker::builder(redis.url(), "cu")
        .build(handler_fn(|d: Value, _ctx: JobContext| async move {
            Ok::<_, JobError>(d)
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(20), "200 completed", || async {
        q.counts().await.unwrap().completed >= 200
    })
    .await;
    run.stop().await;
    assert!(ids.iter().any(|id| is_compact(&redis, "cu", id)));
    let before = q.counts().await.unwrap();

    let out = std::process::Command::new(crate::common::baton_bin())
        .args(["--redis-url", &redis.url(), "uncompact", "cu"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("compact jobs of cu expanded"), "{said}");

    assert!(!ids.iter().any(|id| is_compact(&redis, "cu", id)));
    assert_eq!(q.counts().await.unwrap(), before, "nothing lost or moved");
    for id in [&ids[0], &ids[1199]] {
        let j = q.job(id).await.unwrap().unwrap();
        assert_eq!(j.name, "n");
        assert!(matches!(j.state, JobState::Completed | JobState::Waiting));
    }
    let gate = || -> Option<String> { redis.conn().hget("baton:{cu}:meta", "compact").unwrap() };
    assert_eq!(gate().as_deref(), Some("off"));

    // Shut for good: a worker of this version beating beside it does not open it.
    let w = Worker::builder(redis.url(), "cu")
        .heartbeat(Duration::from_millis(50))
        .build(handler_fn(|d: Value, _ctx: JobContext| async move {
            Ok::<_, JobError>(d)
        }))
        .unwrap();
    let run = start(w);
    let beat = || -> Vec<(String, u64)> {
        redis
            .conn()
            .zrange_withscores("baton:{cu}:workers", 0, -1)
            .unwrap()
    };
    wait_until(Duration::from_secs(10), "the worker registered", || async {
        !beat().is_empty()
    })
    .await;
    let first = beat();
    wait_until(Duration::from_secs(10), "a heartbeat", || async {
        beat() != first
    })
    .await;
    assert_eq!(gate().as_deref(), Some("off"));
    let next = q
        .add("n", &json!(0), JobOptions::default())
        .await
        .unwrap()
        .id;
    assert!(!is_compact(&redis, "cu", &next));

    // --reopen: the next heartbeat opens it again.
    let out = std::process::Command::new(crate::common::baton_bin())
        .args(["--redis-url", &redis.url(), "uncompact", "cu", "--reopen"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(Duration::from_secs(10), "the gate opens", || async {
        gate().as_deref() == Some("1")
    })
    .await;
    run.stop().await;
    let last = q
        .add("n", &json!(1), JobOptions::default())
        .await
        .unwrap()
        .id;
    assert!(is_compact(&redis, "cu", &last));
}
