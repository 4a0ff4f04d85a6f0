//! Producer and worker basics against a real redis-server.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{start, wait_until, RedisServer};
use baton::{
    handler_fn, Backoff, JobContext, JobError, JobOptions, JobState, NewJob, Queue, Worker,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Email {
    to: String,
}

fn fast(w: baton::WorkerBuilder) -> baton::WorkerBuilder {
    w.lease(Duration::from_secs(2))
        .stalled_interval(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(2))
}

#[tokio::test]
async fn add_process_complete() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "emails").unwrap();
    let a = q
        .add("send", &Email { to: "a@x".into() }, JobOptions::default())
        .await
        .unwrap();
    assert!(a.added);
    assert_eq!(q.counts().await.unwrap().waiting, 1);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let worker = fast(Worker::builder(redis.url(), "emails").concurrency(4))
        .build(handler_fn(move |e: Email, ctx: JobContext| {
            let seen = seen2.clone();
            async move {
                seen.lock().unwrap().push((e.to.clone(), ctx.attempt()));
                Ok::<_, JobError>(format!("sent to {}", e.to))
            }
        }))
        .unwrap();
    let run = start(worker);
    wait_until(Duration::from_secs(10), "job completed", || async {
        q.counts().await.unwrap().completed == 1
    })
    .await;
    let job = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.result, Some(serde_json::json!("sent to a@x")));
    assert_eq!(job.attempt, 1);
    assert_eq!(*seen.lock().unwrap(), vec![("a@x".to_string(), 1)]);
    run.stop().await;
    assert!(
        q.workers().await.unwrap().is_empty(),
        "worker deregistered at shutdown"
    );
}

#[tokio::test]
async fn idempotent_add_and_atomic_bulk() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "q").unwrap();
    let first = q
        .add("n", &1, JobOptions::default().job_id("fixed"))
        .await
        .unwrap();
    let again = q
        .add("n", &2, JobOptions::default().job_id("fixed"))
        .await
        .unwrap();
    assert!(first.added && !again.added);
    assert_eq!(
        q.job("fixed").await.unwrap().unwrap().data,
        serde_json::json!(1),
        "second add changed nothing"
    );
    let jobs: Vec<NewJob<u32>> = (0..100).map(|i| NewJob::new("n", i)).collect();
    let added = q.add_bulk(&jobs).await.unwrap();
    assert_eq!(added.len(), 100);
    assert_eq!(q.counts().await.unwrap().waiting, 101);
    // A bulk with an invalid job is refused before anything is written.
    let bad = vec![
        NewJob::new("n", 1),
        NewJob::new("n", 2).with_opts(JobOptions::default().attempts(0)),
    ];
    assert!(q.add_bulk(&bad).await.is_err());
    assert_eq!(q.counts().await.unwrap().waiting, 101);
}

#[tokio::test]
async fn priority_order_is_fifo_within_a_priority() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "p").unwrap();
    for (i, p) in [(0u32, 5u32), (1, 1), (2, 5), (3, 1), (4, 0)] {
        q.add("n", &i, JobOptions::default().priority(p))
            .await
            .unwrap();
    }
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let o2 = order.clone();
    let worker = fast(Worker::builder(redis.url(), "p").concurrency(1))
        .build(handler_fn(move |i: u32, _ctx| {
            let o = o2.clone();
            async move {
                o.lock().unwrap().push(i);
                Ok::<_, JobError>(())
            }
        }))
        .unwrap();
    let run = start(worker);
    wait_until(Duration::from_secs(10), "all done", || async {
        q.counts().await.unwrap().completed == 5
    })
    .await;
    assert_eq!(*order.lock().unwrap(), vec![4, 1, 3, 0, 2]);
    run.stop().await;
}

#[tokio::test]
async fn retries_with_backoff_then_fails_and_fatal_and_bad_payload_do_not_retry() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "r").unwrap();
    let fixed = Backoff::Fixed {
        delay: Duration::from_millis(50),
    };
    let flaky = q
        .add(
            "flaky",
            &"flaky",
            JobOptions::default().attempts(3).backoff(fixed),
        )
        .await
        .unwrap();
    let doomed = q
        .add(
            "doomed",
            &"doomed",
            JobOptions::default().attempts(2).backoff(fixed),
        )
        .await
        .unwrap();
    let fatal = q
        .add("fatal", &"fatal", JobOptions::default().attempts(5))
        .await
        .unwrap();
    let panics = q
        .add("panic", &"panic", JobOptions::default().attempts(1))
        .await
        .unwrap();
    let bad = q
        .add("bad", &12345u64, JobOptions::default().attempts(5))
        .await
        .unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let r2 = runs.clone();
    let worker = fast(Worker::builder(redis.url(), "r").concurrency(4))
        .build(handler_fn(move |kind: String, ctx: JobContext| {
            let runs = r2.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                match kind.as_str() {
                    "flaky" if ctx.attempt() < 3 => {
                        Err(JobError::retry(format!("try {}", ctx.attempt())))
                    }
                    "flaky" => Ok("ok"),
                    "doomed" => Err(JobError::retry("always")),
                    "fatal" => Err(JobError::fatal("no point")),
                    "panic" => panic!("boom at {}", ctx.id()),
                    _ => Ok("?"),
                }
            }
        }))
        .unwrap();
    let run = start(worker);
    wait_until(Duration::from_secs(15), "all finished", || async {
        let c = q.counts().await.unwrap();
        c.completed == 1 && c.failed == 4
    })
    .await;
    let f = q.job(&flaky.id).await.unwrap().unwrap();
    assert_eq!((f.state, f.attempt), (JobState::Completed, 3));
    let d = q.job(&doomed.id).await.unwrap().unwrap();
    assert_eq!(
        (d.state, d.attempt, d.error.as_deref()),
        (JobState::Failed, 2, Some("always"))
    );
    let fa = q.job(&fatal.id).await.unwrap().unwrap();
    assert_eq!((fa.state, fa.attempt), (JobState::Failed, 1));
    let p = q.job(&panics.id).await.unwrap().unwrap();
    assert!(
        p.error.unwrap().contains("handler panicked: boom at"),
        "panic message recorded"
    );
    let b = q.job(&bad.id).await.unwrap().unwrap();
    assert_eq!(b.attempt, 1, "undecodable payload is not retried");
    assert!(b
        .error
        .unwrap()
        .contains("payload could not be decoded as alloc::string::String"));
    // 3 + 2 + 1 + 1 handler runs (the bad payload never reaches the closure).
    assert_eq!(runs.load(Ordering::SeqCst), 7);
    // Retry a failed job by hand: it runs again.
    q.retry(&fa.id).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "retried job failed again",
        || async {
            q.job(&fa.id).await.unwrap().unwrap().state == JobState::Failed
                && runs.load(Ordering::SeqCst) == 8
        },
    )
    .await;
    run.stop().await;
}

#[tokio::test]
async fn delayed_and_backoff_jobs_run_soon_after_due() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "d").unwrap();
    // job id → start instants of its attempts
    let started: Arc<std::sync::Mutex<std::collections::HashMap<String, Vec<std::time::Instant>>>> =
        Arc::default();
    let s2 = started.clone();
    let worker = fast(Worker::builder(redis.url(), "d").concurrency(4))
        .build(handler_fn(move |fail_first: bool, ctx: JobContext| {
            let s = s2.clone();
            async move {
                s.lock()
                    .unwrap()
                    .entry(ctx.id().to_string())
                    .or_default()
                    .push(std::time::Instant::now());
                if fail_first && ctx.attempt() == 1 {
                    return Err(JobError::retry_after("again", Duration::from_millis(400)));
                }
                Ok::<_, JobError>(())
            }
        }))
        .unwrap();
    let run = start(worker);
    // Let the worker go idle (blocked) first.
    wait_until(Duration::from_secs(5), "worker registered", || async {
        !q.workers().await.unwrap().is_empty()
    })
    .await;
    let mut lateness = Vec::new();
    for delay_ms in [300u64, 500, 700, 900, 1100] {
        let t0 = std::time::Instant::now();
        let a = q
            .add(
                "later",
                &false,
                JobOptions::default().delay(Duration::from_millis(delay_ms)),
            )
            .await
            .unwrap();
        assert_eq!(
            q.job(&a.id).await.unwrap().unwrap().state,
            JobState::Delayed
        );
        wait_until(Duration::from_secs(5), "delayed job started", || async {
            started.lock().unwrap().contains_key(&a.id)
        })
        .await;
        let ran_after = started.lock().unwrap()[&a.id][0] - t0;
        assert!(
            ran_after >= Duration::from_millis(delay_ms - 10),
            "ran too early: {ran_after:?} for {delay_ms} ms"
        );
        lateness.push(ran_after - Duration::from_millis(delay_ms));
    }
    // A retry with backoff is a delayed job too.
    let b = q
        .add("backoff", &true, JobOptions::default().attempts(2))
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "retried", || async {
        started
            .lock()
            .unwrap()
            .get(&b.id)
            .map(|v| v.len() == 2)
            .unwrap_or(false)
    })
    .await;
    let runs = started.lock().unwrap()[&b.id].clone();
    lateness.push((runs[1] - runs[0]).saturating_sub(Duration::from_millis(400)));
    lateness.sort();
    eprintln!("lateness after due: {lateness:?}");
    assert!(
        lateness[lateness.len() / 2] <= Duration::from_millis(100),
        "median lateness {:?}",
        lateness[lateness.len() / 2]
    );
    assert!(
        lateness[lateness.len() - 1] <= Duration::from_millis(500),
        "worst lateness {:?}",
        lateness[lateness.len() - 1]
    );
    run.stop().await;
}

#[tokio::test]
async fn retention_pause_resume_remove() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "keep").unwrap();
    q.pause().await.unwrap();
    for i in 0..10u32 {
        q.add(
            "n",
            &i,
            JobOptions::default().keep_completed(baton::Retention::last(3)),
        )
        .await
        .unwrap();
    }
    let gone = q
        .add(
            "n",
            &99u32,
            JobOptions::default().keep_completed(baton::Retention::none()),
        )
        .await
        .unwrap();
    let removed = q.add("n", &100u32, JobOptions::default()).await.unwrap();
    q.remove(&removed.id).await.unwrap();
    assert!(q.job(&removed.id).await.unwrap().is_none());
    let worker = fast(Worker::builder(redis.url(), "keep").concurrency(3))
        .build(handler_fn(|_: u32, _ctx| async { Ok::<_, JobError>(()) }))
        .unwrap();
    let run = start(worker);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        q.counts().await.unwrap().waiting,
        11,
        "paused queue is not claimed"
    );
    q.resume().await.unwrap();
    wait_until(Duration::from_secs(10), "all ran", || async {
        let c = q.counts().await.unwrap();
        c.waiting == 0 && c.active == 0
    })
    .await;
    let c = q.counts().await.unwrap();
    assert_eq!(c.completed, 3, "last 3 kept");
    assert!(
        q.job(&gone.id).await.unwrap().is_none(),
        "keep none deletes on completion"
    );
    let mut conn = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("baton:{keep}:job:*")
        .query(&mut conn)
        .unwrap();
    // Kept plain jobs are compact (fields of the jobs hash, besides its padding "").
    let mut compact: Vec<String> = redis::cmd("HKEYS")
        .arg("baton:{keep}:jobs")
        .query(&mut conn)
        .unwrap();
    compact.retain(|f| !f.is_empty());
    assert_eq!(
        keys.len() + compact.len(),
        3,
        "no job leaks: {keys:?} {compact:?}"
    );
    run.stop().await;
}
