//! Cancel, timeouts, lease loss and graceful shutdown of Rust handlers.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{start, wait_until, RedisServer};
use baton::{
    handler_fn, Cancelled, Error, JobContext, JobError, JobOptions, JobState, Queue, Worker,
};

fn builder(url: &str, q: &str) -> baton::WorkerBuilder {
    Worker::builder(url, q)
        .concurrency(8)
        .lease(Duration::from_secs(2))
        .stalled_interval(Duration::from_millis(200))
        .abort_grace(Duration::from_millis(500))
        .shutdown_timeout(Duration::from_secs(2))
}

/// A handler that reports when it starts and when it sees its cancellation, and
/// returns Ok afterwards (which must not overwrite `cancelled`).
#[tokio::test]
async fn cancel_running_job_reaches_the_handler_and_sticks() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "c").unwrap();
    let started: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let seen: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let (s2, c2) = (started.clone(), seen.clone());
    let w = builder(&redis.url(), "c")
        .build(handler_fn(move |_: u8, ctx: JobContext| {
            let (started, seen) = (s2.clone(), c2.clone());
            async move {
                started
                    .lock()
                    .unwrap()
                    .push((ctx.id().to_string(), Instant::now()));
                ctx.cancelled().await;
                seen.lock()
                    .unwrap()
                    .push((ctx.id().to_string(), Instant::now()));
                Ok::<_, JobError>("finished anyway")
            }
        }))
        .unwrap();
    let run = start(w);

    // Waiting and delayed jobs are cancelled at once.
    q.pause().await.unwrap();
    let waiting = q.add("w", &1u8, JobOptions::default()).await.unwrap();
    let delayed = q
        .add(
            "d",
            &1u8,
            JobOptions::default().delay(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(q.cancel(&waiting.id).await.unwrap(), Cancelled::Now);
    assert_eq!(q.cancel(&delayed.id).await.unwrap(), Cancelled::Now);
    assert_eq!(
        q.job(&delayed.id).await.unwrap().unwrap().state,
        JobState::Cancelled
    );
    q.resume().await.unwrap();

    // Running jobs: measure cancel call → handler sees it.
    let mut latencies = Vec::new();
    for i in 0..40 {
        let a = q.add("r", &1u8, JobOptions::default()).await.unwrap();
        wait_until(Duration::from_secs(5), "job started", || async {
            started.lock().unwrap().len() == i + 1
        })
        .await;
        let t = Instant::now();
        assert_eq!(q.cancel(&a.id).await.unwrap(), Cancelled::Requested);
        wait_until(Duration::from_secs(5), "handler saw the cancel", || async {
            seen.lock().unwrap().len() == i + 1
        })
        .await;
        latencies.push(seen.lock().unwrap()[i].1 - t);
        wait_until(Duration::from_secs(5), "job cancelled", || async {
            q.job(&a.id).await.unwrap().unwrap().state == JobState::Cancelled
        })
        .await;
        let j = q.job(&a.id).await.unwrap().unwrap();
        assert!(
            j.result.is_none(),
            "the handler's late Ok did not overwrite the cancel"
        );
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    eprintln!(
        "cancel → handler latency over {} cancels: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        p(0.5),
        p(0.99),
        p(1.0)
    );
    assert!(
        p(0.99) < Duration::from_secs(1),
        "cancel delivery is push, not heartbeat: p99 {:?}",
        p(0.99)
    );

    // Finished or unknown jobs: clear errors.
    let err = q.cancel(&waiting.id).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidState { ref state, .. } if state == "cancelled"),
        "{err:?}"
    );
    assert!(matches!(
        q.cancel("nope").await.unwrap_err(),
        Error::NotFound { .. }
    ));
    run.stop().await;
}

/// Cancels race completions: whenever the cancel call succeeded, the job ends cancelled.
#[tokio::test]
async fn cancel_racing_completion_never_yields_completed() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "race").unwrap();
    let w = builder(&redis.url(), "race")
        .concurrency(16)
        .build(handler_fn(|us: u64, _ctx| async move {
            tokio::time::sleep(Duration::from_micros(us)).await;
            Ok::<_, JobError>(())
        }))
        .unwrap();
    let run = start(w);
    // Each job sleeps 0-19 ms; each cancel targets a job added a few jobs earlier, so
    // cancels land on waiting, running and just-finished jobs alike.
    let mut ids = Vec::new();
    let mut outcomes = Vec::new();
    for i in 0..300u64 {
        ids.push(
            q.add("j", &(((i * 7) % 20) * 1000), JobOptions::default())
                .await
                .unwrap()
                .id,
        );
        if i >= 3 {
            let id = ids[(i - 3) as usize].clone();
            let r = q.cancel(&id).await;
            outcomes.push((id, r));
        }
    }
    wait_until(Duration::from_secs(20), "all settled", || async {
        let c = q.counts().await.unwrap();
        c.completed + c.cancelled == 300 && c.active == 0 && c.waiting == 0
    })
    .await;
    let (mut cancelled, mut completed) = (0, 0);
    for (id, r) in outcomes {
        let state = q.job(&id).await.unwrap().unwrap().state;
        match r {
            Ok(_) => {
                assert_eq!(
                    state,
                    JobState::Cancelled,
                    "job {id}: cancel succeeded but ended {state}"
                );
                cancelled += 1;
            }
            Err(Error::InvalidState { state: s, .. }) => {
                assert_eq!(s, "completed");
                assert_eq!(state, JobState::Completed);
                completed += 1;
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    eprintln!("race: {cancelled} cancelled, {completed} completed first");
    assert!(
        cancelled > 0 && completed > 0,
        "the race was exercised both ways"
    );
    run.stop().await;
}

#[tokio::test]
async fn timeout_fails_the_attempt_and_retries() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "t").unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let r2 = runs.clone();
    let w = builder(&redis.url(), "t")
        .timeout(Duration::from_secs(60))
        .build(handler_fn(move |_: u8, ctx: JobContext| {
            let r = r2.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                ctx.cancelled().await;
                Err::<(), _>(JobError::retry("stopped"))
            }
        }))
        .unwrap();
    let run = start(w);
    let fixed = baton::Backoff::Fixed {
        delay: Duration::from_millis(10),
    };
    let a = q
        .add(
            "slow",
            &1u8,
            JobOptions::default()
                .timeout(Duration::from_millis(200))
                .attempts(2)
                .backoff(fixed),
        )
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "failed after two timeouts",
        || async { q.job(&a.id).await.unwrap().unwrap().state == JobState::Failed },
    )
    .await;
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(j.attempt, 2);
    assert!(
        j.error
            .as_deref()
            .unwrap()
            .contains("timed out after 200ms"),
        "{:?}",
        j.error
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    run.stop().await;
}

#[tokio::test]
async fn lost_lease_cancels_the_handler() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "lost").unwrap();
    let cancelled_attempts: Arc<Mutex<Vec<u32>>> = Arc::default();
    let c2 = cancelled_attempts.clone();
    let w = builder(&redis.url(), "lost")
        .lease(Duration::from_secs(3))
        .heartbeat(Duration::from_millis(100))
        .max_stalled(5)
        .build(handler_fn(move |_: u8, ctx: JobContext| {
            let c = c2.clone();
            async move {
                if ctx.stalled() == 0 {
                    ctx.cancelled().await;
                    c.lock().unwrap().push(ctx.attempt());
                    return Ok::<_, JobError>("first");
                }
                Ok("second")
            }
        }))
        .unwrap();
    let run = start(w);
    let a = q.add("j", &1u8, JobOptions::default()).await.unwrap();
    wait_until(Duration::from_secs(5), "running", || async {
        q.counts().await.unwrap().active == 1
    })
    .await;
    // Fence the worker off behind its back (as a takeover would): its next renewal
    // finds the token of its lease entry changed. The job's lease then runs out and the
    // sweeper recovers it.
    let mut c = redis.conn();
    let raised: i64 = redis::Script::new(
        "local v = redis.call('HGET', KEYS[1], ARGV[1]) \
         local t, rest = string.match(v, '^(%d+)(:.*)$') \
         redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', tonumber(t) + 1) .. rest) \
         return 1",
    )
    .key("baton:{lost}:leases")
    .arg(&a.id)
    .invoke(&mut c)
    .unwrap();
    assert_eq!(raised, 1);
    wait_until(Duration::from_secs(5), "handler cancelled", || async {
        !cancelled_attempts.lock().unwrap().is_empty()
    })
    .await;
    wait_until(
        Duration::from_secs(10),
        "job completed by the next attempt",
        || async { q.job(&a.id).await.unwrap().unwrap().state == JobState::Completed },
    )
    .await;
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(
        j.result,
        Some(serde_json::json!("second")),
        "the old attempt's result was dropped"
    );
    assert_eq!(j.stalled, 1);
    run.stop().await;
}

#[tokio::test]
async fn shutdown_lets_short_jobs_finish_and_hands_long_ones_back() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "sd").unwrap();
    let w = builder(&redis.url(), "sd")
        .shutdown_timeout(Duration::from_millis(500))
        .build(handler_fn(|ms: u64, ctx: JobContext| async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok::<_, JobError>(ms),
                _ = ctx.cancelled() => Err(JobError::retry("stopped")),
            }
        }))
        .unwrap();
    let run = start(w);
    let short = q
        .add("short", &200u64, JobOptions::default())
        .await
        .unwrap();
    let long = q
        .add("long", &60_000u64, JobOptions::default())
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "both running", || async {
        q.counts().await.unwrap().active == 2
    })
    .await;
    let t = Instant::now();
    run.stop().await;
    let took = t.elapsed();
    eprintln!("shutdown took {took:?} (shutdown timeout 500ms)");
    assert_eq!(
        q.job(&short.id).await.unwrap().unwrap().state,
        JobState::Completed
    );
    let l = q.job(&long.id).await.unwrap().unwrap();
    assert_eq!(
        (l.state, l.attempt, l.stalled),
        (JobState::Waiting, 0, 0),
        "handed back, no attempt, no stall"
    );
    assert_eq!(q.counts().await.unwrap().active, 0, "nothing left active");
    assert!(q.workers().await.unwrap().is_empty());

    // Another worker starts it at once.
    let w2 = builder(&redis.url(), "sd")
        .build(handler_fn(|_: u64, _ctx| async { Ok::<_, JobError>(0u64) }))
        .unwrap();
    let t = Instant::now();
    let run2 = start(w2);
    wait_until(Duration::from_secs(5), "handed-back job done", || async {
        q.job(&long.id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    eprintln!(
        "second worker finished the handed-back job {:?} after start",
        t.elapsed()
    );
    assert_eq!(q.job(&long.id).await.unwrap().unwrap().attempt, 1);
    run2.stop().await;
}

#[tokio::test]
async fn idle_worker_costs_redis_a_few_commands_per_second() {
    let redis = RedisServer::start();
    // Default intervals: heartbeat lease/3, sweep 5 s, idle block 5 s.
    let w = Worker::builder(redis.url(), "idle")
        .build(handler_fn(|_: u8, _ctx| async { Ok::<_, JobError>(()) }))
        .unwrap();
    let run = start(w);
    let q = Queue::connect(redis.url(), "idle").unwrap();
    wait_until(Duration::from_secs(5), "registered", || async {
        !q.workers().await.unwrap().is_empty()
    })
    .await;
    let total = |c: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(c).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let mut c = redis.conn();
    let before = total(&mut c);
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let per_s = (total(&mut c) - before - 1) as f64 / t.elapsed().as_secs_f64();
    // Counted by Redis, including the commands inside scripts.
    eprintln!("idle worker: {per_s:.1} commands/s");
    assert!(per_s < 5.0, "idle worker issues {per_s:.1} commands/s");
    // And it still picks up a new job promptly (it blocks, it does not poll).
    let t = Instant::now();
    q.add("n", &1u8, JobOptions::default()).await.unwrap();
    wait_until(Duration::from_secs(5), "picked up", || async {
        q.counts().await.unwrap().completed == 1
    })
    .await;
    eprintln!("idle pick-up latency {:?}", t.elapsed());
    run.stop().await;
}
