//! The dedup scenarios, each against any Redis deployment (a `RedisConfig`): run on one
//! Redis by `library` and on a Redis Cluster by `cluster`.

use std::sync::Arc;
use std::time::Duration;

use baton::conn::RedisConfig;
use baton::{
    handler_fn, Dedup, JobContext, JobError, JobOptions, JobState, NewJob, Queue, Retention, Worker,
};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::common::{start, wait_until, Running};

const LIMIT: Duration = Duration::from_secs(60);

/// The job id the queue's dedup key `key` names, read from Redis.
pub(crate) async fn holder(q: &Queue, key: &str) -> Option<String> {
    let mut c = q.shared_conn().get().await.unwrap();
    redis::cmd("GET")
        .arg(format!("{}dedup:{key}", q.keys().prefix()))
        .query_async(&mut c)
        .await
        .unwrap()
}

/// Sets the dedup key `key` to name `id` (a stale key left by hand).
async fn set_holder(q: &Queue, key: &str, id: &str) {
    let mut c = q.shared_conn().get().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{}dedup:{key}", q.keys().prefix()))
        .arg(id)
        .query_async(&mut c)
        .await
        .unwrap();
}

async fn state(q: &Queue, id: &str) -> Option<JobState> {
    q.job(id).await.unwrap().map(|j| j.state)
}

async fn wait_state(q: &Queue, id: &str, want: JobState) {
    wait_until(LIMIT, &format!("job {id} {want}"), || async {
        state(q, id).await == Some(want)
    })
    .await;
}

/// Waits until job `id` has finished: in a finished state, or deleted already by its
/// retention (a `last(1)` job may be trimmed by its own batch).
async fn wait_finished(q: &Queue, id: &str) {
    wait_until(LIMIT, &format!("job {id} finished"), || async {
        state(q, id).await.is_none_or(|s| s.is_finished())
    })
    .await;
}

fn simple(key: &str) -> JobOptions {
    JobOptions::default().dedup(Dedup::simple(key))
}

/// A worker on `q`: payload "fail" fails the job at once, "block" waits for `gate`,
/// anything else completes.
fn worker(cfg: &RedisConfig, q: &str, gate: Arc<Notify>) -> Running {
    let w = Worker::builder(cfg.clone(), q)
        .concurrency(4)
        .build(handler_fn(move |v: Value, _ctx: JobContext| {
            let gate = gate.clone();
            async move {
                match v.as_str() {
                    Some("fail") => Err(JobError::fatal("asked to fail")),
                    Some("block") => {
                        gate.notified().await;
                        Ok(v)
                    }
                    _ => Ok(v),
                }
            }
        }))
        .unwrap();
    start(w)
}

/// Simple mode: ignored while the job stands (waiting, also within one bulk add);
/// released on cancel, remove, complete, fail and when retention deletes the job; then
/// an add with the key is a new job.
pub(crate) async fn simple_mode(cfg: RedisConfig, name: &str) {
    let q = Queue::connect(cfg.clone(), name).unwrap();
    let a = q.add("j", &json!(1), simple("k")).await.unwrap();
    assert!(a.added && !a.deduplicated, "{a:?}");
    let b = q.add("j", &json!(2), simple("k")).await.unwrap();
    assert!(!b.added && b.deduplicated && b.id == a.id, "{b:?}");
    assert_eq!(q.counts().await.unwrap().waiting, 1);
    assert_eq!(q.job(&a.id).await.unwrap().unwrap().data, json!(1));
    assert_eq!(holder(&q, "k").await.as_deref(), Some(a.id.as_str()));

    // One atomic bulk: the second job finds the first standing.
    let bulk = q
        .add_bulk(&[
            NewJob::new("j", json!(1)).with_opts(simple("bulk")),
            NewJob::new("j", json!(2)).with_opts(simple("bulk")),
            NewJob::new("j", json!(3)).with_opts(simple("other")),
        ])
        .await
        .unwrap();
    assert!(bulk[0].added && bulk[2].added, "{bulk:?}");
    assert!(bulk[1].deduplicated && bulk[1].id == bulk[0].id, "{bulk:?}");

    // Cancel (waiting) releases.
    q.cancel(&a.id).await.unwrap();
    assert_eq!(holder(&q, "k").await, None, "released on cancel");
    let c = q.add("j", &json!(3), simple("k")).await.unwrap();
    assert!(c.added && c.id != a.id, "{c:?}");

    // Remove releases.
    q.remove(&c.id).await.unwrap();
    assert_eq!(holder(&q, "k").await, None, "released on remove");
    let d = q
        .add(
            "j",
            &json!("ok"),
            simple("k").keep_completed(Retention::last(1)),
        )
        .await
        .unwrap();
    assert!(d.added, "{d:?}");

    // Complete releases; then retention trims the job (another completes, count 1).
    let gate = Arc::new(Notify::new());
    let w = worker(&cfg, name, gate.clone());
    wait_finished(&q, &d.id).await;
    assert_eq!(holder(&q, "k").await, None, "released on complete");
    let e = q.add("j", &json!("fail"), simple("k")).await.unwrap();
    assert!(e.added && e.id != d.id, "{e:?}");
    wait_state(&q, &e.id, JobState::Failed).await;
    assert_eq!(holder(&q, "k").await, None, "released on fail");
    let f = q
        .add(
            "j",
            &json!("ok"),
            simple("k").keep_completed(Retention::last(1)),
        )
        .await
        .unwrap();
    assert!(f.added, "{f:?}");
    wait_until(LIMIT, "first job trimmed by retention", || async {
        q.job(&d.id).await.unwrap().is_none()
    })
    .await;
    wait_finished(&q, &f.id).await;
    assert_eq!(holder(&q, "k").await, None);
    // A job its retention deletes at once.
    let g = q
        .add(
            "j",
            &json!("ok"),
            simple("k").keep_completed(Retention::none()),
        )
        .await
        .unwrap();
    assert!(g.added, "{g:?}");
    wait_until(LIMIT, "job kept by none deleted", || async {
        q.job(&g.id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(
        holder(&q, "k").await,
        None,
        "released when deleted at finish"
    );

    // Cancel of a running job releases when it ends cancelled.
    let h = q.add("j", &json!("block"), simple("k")).await.unwrap();
    wait_state(&q, &h.id, JobState::Active).await;
    let again = q.add("j", &json!(0), simple("k")).await.unwrap();
    assert!(
        again.deduplicated && again.id == h.id,
        "active stands: {again:?}"
    );
    q.cancel(&h.id).await.unwrap();
    gate.notify_one();
    wait_state(&q, &h.id, JobState::Cancelled).await;
    assert_eq!(
        holder(&q, "k").await,
        None,
        "released on cancel of a running job"
    );
    w.stop().await;
}

/// A key naming a job that is gone or finished is stale: the add proceeds.
pub(crate) async fn stale_keys(cfg: RedisConfig, name: &str) {
    let q = Queue::connect(cfg, name).unwrap();
    set_holder(&q, "k", "no-such-job").await;
    let a = q.add("j", &json!(1), simple("k")).await.unwrap();
    assert!(a.added && !a.deduplicated, "{a:?}");
    assert_eq!(holder(&q, "k").await.as_deref(), Some(a.id.as_str()));
    // A finished job the key still names (as if a path forgot to release it).
    q.cancel(&a.id).await.unwrap();
    set_holder(&q, "k", &a.id).await;
    let b = q.add("j", &json!(2), simple("k")).await.unwrap();
    assert!(b.added && b.id != a.id, "{b:?}");
}

/// Ttl mode: ignored while the key lives, also after the job finished; the key expires
/// by itself; removing the job frees it at once.
pub(crate) async fn ttl_mode(cfg: RedisConfig, name: &str) {
    let q = Queue::connect(cfg.clone(), name).unwrap();
    let ttl =
        |k: &str, d: u64| JobOptions::default().dedup(Dedup::ttl(k, Duration::from_millis(d)));
    let a = q.add("j", &json!("ok"), ttl("t", 3000)).await.unwrap();
    assert!(a.added, "{a:?}");
    let gate = Arc::new(Notify::new());
    let w = worker(&cfg, name, gate);
    wait_state(&q, &a.id, JobState::Completed).await;
    let b = q.add("j", &json!("ok"), ttl("t", 3000)).await.unwrap();
    // The add may come after expiry on a very slow machine; then it is a new job.
    if holder(&q, "t").await.as_deref() == Some(a.id.as_str()) || b.deduplicated {
        assert!(b.deduplicated && b.id == a.id, "{b:?}");
    }
    wait_until(LIMIT, "ttl key expired", || async {
        holder(&q, "t").await.is_none()
    })
    .await;
    let c = q.add("j", &json!("ok"), ttl("t", 60_000)).await.unwrap();
    assert!(c.added && !c.deduplicated, "{c:?}");
    w.stop().await;
    // Remove frees a ttl key.
    let q2 = Queue::connect(cfg, &format!("{name}-rm")).unwrap();
    let d = q2.add("j", &json!(1), ttl("r", 60_000)).await.unwrap();
    assert!(
        q2.add("j", &json!(1), ttl("r", 60_000))
            .await
            .unwrap()
            .deduplicated
    );
    q2.remove(&d.id).await.unwrap();
    assert_eq!(holder(&q2, "r").await, None, "released on remove");
    assert!(
        q2.add("j", &json!(1), ttl("r", 60_000))
            .await
            .unwrap()
            .added
    );
}

/// Debounce: replaces the payload of the waiting or delayed job and restarts its delay;
/// once the job runs, an add is a new job that takes the key, and the old job's end
/// leaves the key alone.
pub(crate) async fn debounce_mode(cfg: RedisConfig, name: &str) {
    let q = Queue::connect(cfg.clone(), name).unwrap();
    let deb =
        |ms: u64| JobOptions::default().dedup(Dedup::debounce("d", Duration::from_millis(ms)));
    let a = q.add("j", &json!(1), deb(60_000)).await.unwrap();
    assert!(a.added, "{a:?}");
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Delayed);
    let due1 = j.due_ms.unwrap();
    let b = q.add("j", &json!(2), deb(120_000)).await.unwrap();
    assert!(b.deduplicated && b.id == a.id, "{b:?}");
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!((j.state, j.data.clone()), (JobState::Delayed, json!(2)));
    assert!(j.due_ms.unwrap() >= due1 + 60_000, "delay restarted: {j:?}");
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.delayed), (0, 1), "{c:?}");

    // One bulk: a job made ready by this very batch, then debounced, is delayed only
    // (not also pushed to the wait list at the batch's end).
    let mixed = q
        .add_bulk(&[
            NewJob::new("j", json!(1)).with_opts(JobOptions::default().dedup(Dedup::simple("mix"))),
            NewJob::new("j", json!(2)).with_opts(
                JobOptions::default().dedup(Dedup::debounce("mix", Duration::from_secs(60))),
            ),
        ])
        .await
        .unwrap();
    assert!(mixed[0].added && mixed[1].deduplicated, "{mixed:?}");
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.delayed), (0, 2), "{c:?}");
    q.remove(&mixed[0].id).await.unwrap();

    // A job already due (waiting) goes back to delayed with the new payload.
    q.promote(&a.id).await.unwrap();
    assert_eq!(state(&q, &a.id).await, Some(JobState::Waiting));
    let b = q.add("j", &json!(3), deb(60_000)).await.unwrap();
    assert!(b.deduplicated && b.id == a.id, "{b:?}");
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!((j.state, j.data.clone()), (JobState::Delayed, json!(3)));
    let c = q.counts().await.unwrap();
    assert_eq!(
        (c.waiting, c.delayed),
        (0, 1),
        "out of the wait list: {c:?}"
    );

    // Running: an add is a new job, which takes the key.
    let b = q.add("j", &json!("block"), deb(60_000)).await.unwrap();
    assert!(b.deduplicated);
    q.promote(&a.id).await.unwrap();
    let gate = Arc::new(Notify::new());
    let w = worker(&cfg, name, gate.clone());
    wait_state(&q, &a.id, JobState::Active).await;
    let n = q.add("j", &json!(4), deb(60_000)).await.unwrap();
    assert!(n.added && n.id != a.id, "{n:?}");
    assert_eq!(holder(&q, "d").await.as_deref(), Some(n.id.as_str()));
    gate.notify_one();
    wait_state(&q, &a.id, JobState::Completed).await;
    assert_eq!(
        holder(&q, "d").await.as_deref(),
        Some(n.id.as_str()),
        "the old job's end leaves the new job's key"
    );
    // The new job runs when due; it releases the key.
    q.promote(&n.id).await.unwrap();
    wait_state(&q, &n.id, JobState::Completed).await;
    assert_eq!(holder(&q, "d").await, None);
    w.stop().await;
}

/// Many producers (each its own connection) add with one key at once: exactly one job.
pub(crate) async fn concurrent_adds(cfg: RedisConfig, name: &str) {
    for (key, opts) in [
        ("s", JobOptions::default().dedup(Dedup::simple("s"))),
        (
            "d",
            JobOptions::default().dedup(Dedup::debounce("d", Duration::from_secs(60))),
        ),
    ] {
        let qn = format!("{name}-{key}");
        let tasks: Vec<_> = (0..32u32)
            .map(|i| {
                let (cfg, qn, opts) = (cfg.clone(), qn.clone(), opts.clone());
                tokio::spawn(async move {
                    let q = Queue::connect(cfg, &qn).unwrap();
                    q.add("j", &json!(i), opts).await.unwrap()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        let added: Vec<_> = out.iter().filter(|a| a.added).collect();
        assert_eq!(added.len(), 1, "{key}: exactly one added: {out:?}");
        assert!(
            out.iter().all(|a| a.id == added[0].id),
            "{key}: one id: {out:?}"
        );
        assert_eq!(out.iter().filter(|a| a.deduplicated).count(), 31);
        let q = Queue::connect(cfg.clone(), &qn).unwrap();
        let c = q.counts().await.unwrap();
        assert_eq!(c.waiting + c.delayed, 1, "{key}: {c:?}");
        let data = q.job(&added[0].id).await.unwrap().unwrap().data;
        assert!(data.as_u64().is_some_and(|v| v < 32), "{data}");
    }
}
