//! Regressions for defects found in review: job ids that looked like another job's
//! keys, claims lost at shutdown, a fresh attempt stopped by a stale renewal,
//! settings that crashed background loops, and a refused outcome.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{start, wait_until, RedisServer};
use baton::{handler_fn, JobContext, JobError, JobOptions, JobState, NewJob, Queue, Worker};

#[tokio::test]
async fn a_job_id_cannot_name_another_jobs_keys() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ids").unwrap();
    for id in ["a:steps", "a:logs", "a", "steps:a"] {
        assert!(
            q.add("n", &id, JobOptions::default().job_id(id))
                .await
                .unwrap()
                .added,
            "{id}"
        );
    }
    q.remove("a").await.unwrap();
    for id in ["a:steps", "a:logs", "steps:a"] {
        assert_eq!(
            q.job(id).await.unwrap().unwrap().state,
            JobState::Waiting,
            "{id} survives removing a"
        );
    }
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let r2 = ran.clone();
    let w = Worker::builder(redis.url(), "ids")
        .build(handler_fn(move |id: String, ctx: JobContext| {
            let r = r2.clone();
            async move {
                ctx.step("state", async { Ok(1u8) }).await?;
                ctx.log("x")
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
                r.lock().unwrap().push(id);
                Ok::<_, JobError>(())
            }
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(10), "three ran", || async {
        q.counts().await.unwrap().completed == 3
    })
    .await;
    let mut ran = ran.lock().unwrap().clone();
    ran.sort();
    assert_eq!(ran, vec!["a:logs", "a:steps", "steps:a"]);
    run.stop().await;
}

#[tokio::test]
async fn shutdown_never_strands_a_claim_in_flight() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "strand").unwrap();
    for round in 0..15 {
        let jobs: Vec<NewJob<u8>> = (0..1000).map(|_| NewJob::new("n", 1u8)).collect();
        q.add_bulk(&jobs).await.unwrap();
        let w = Worker::builder(redis.url(), "strand")
            .concurrency(50)
            .build(handler_fn(|_: u8, _ctx| async { Ok::<_, JobError>(()) }))
            .unwrap();
        let run = start(w);
        // Shut down while it is busy claiming.
        wait_until(Duration::from_secs(10), "processing", || async {
            q.counts().await.unwrap().completed > 0
        })
        .await;
        run.stop().await;
        let c = q.counts().await.unwrap();
        assert_eq!(
            c.active, 0,
            "round {round}: jobs left leased to a stopped worker"
        );
        q.clean(JobState::Completed, Duration::ZERO, 100_000)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn renewal_does_not_stop_a_newer_attempt_of_the_same_job() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "renew").unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let r2 = runs.clone();
    let w = Worker::builder(redis.url(), "renew")
        .lease(Duration::from_millis(300))
        .heartbeat(Duration::from_millis(10))
        .stalled_interval(Duration::from_millis(50))
        .max_stalled(0)
        .build(handler_fn(move |_: u8, ctx: JobContext| {
            let r = r2.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
                if ctx.attempt() < 300 {
                    return Err(JobError::retry_after("again", Duration::ZERO));
                }
                Ok(())
            }
        }))
        .unwrap();
    let run = start(w);
    let a = q
        .add("n", &1u8, JobOptions::default().attempts(300))
        .await
        .unwrap();
    wait_until(Duration::from_secs(20), "finished", || async {
        q.job(&a.id).await.unwrap().unwrap().state.is_finished()
    })
    .await;
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.stalled, j.error.as_deref()),
        (JobState::Completed, 0, Some("again")),
        "{j:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 300);
    run.stop().await;
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let noop = || handler_fn(|_: u8, _ctx| async { Ok::<_, JobError>(()) });
    let url = "redis://127.0.0.1:1";
    for (b, needle) in [
        (Worker::builder(url, "q").lease(Duration::ZERO), "lease"),
        (
            Worker::builder(url, "q").stalled_interval(Duration::ZERO),
            "stalled_interval",
        ),
        (
            Worker::builder(url, "q").idle_block(Duration::from_millis(1)),
            "idle_block",
        ),
        (Worker::builder(url, "q").timeout(Duration::ZERO), "timeout"),
    ] {
        let err = b.build(noop()).unwrap_err().to_string();
        assert!(err.contains(needle), "{err}");
    }
}

#[tokio::test]
async fn a_result_too_large_fails_the_job_and_the_worker_goes_on() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "big").unwrap();
    let w = Worker::builder(redis.url(), "big")
        // A string, not a Vec<u8>: MessagePack writes it in one copy, where 17 M
        // separately encoded integers kept this test's single-threaded runtime busy for
        // seconds in a debug build, long enough for the counts below to time out.
        .build(handler_fn(|big: bool, _ctx| async move {
            Ok::<_, JobError>(if big {
                "x".repeat(17 << 20)
            } else {
                "y".to_string()
            })
        }))
        .unwrap();
    let run = start(w);
    let big = q.add("n", &true, JobOptions::default()).await.unwrap();
    let small = q.add("n", &false, JobOptions::default()).await.unwrap();
    wait_until(Duration::from_secs(20), "both finished", || async {
        let c = q.counts().await.unwrap();
        c.completed == 1 && c.failed == 1
    })
    .await;
    let b = q.job(&big.id).await.unwrap().unwrap();
    assert!(b.error.unwrap().contains("result too large"));
    assert_eq!(
        q.job(&small.id).await.unwrap().unwrap().state,
        JobState::Completed
    );
    run.stop().await;
}
