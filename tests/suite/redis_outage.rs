//! Redis that is unfit, gone, hung, or restarted under a running worker.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{baton_bin, start, wait_until, RedisServer};
use baton::{handler_fn, Error, JobError, JobOptions, JobState, Queue, Worker};

#[tokio::test]
async fn unfit_redis_is_refused_with_the_fix() {
    let redis =
        RedisServer::start_with(&["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]);
    let w = Worker::builder(redis.url(), "q")
        .build(handler_fn(|_: u8, _ctx| async { Ok::<_, JobError>(()) }))
        .unwrap();
    let err = w.run().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::UnfitRedis(_)), "{err:?}");
    for needle in [
        "maxmemory-policy",
        "allkeys-lru",
        "CONFIG SET maxmemory-policy noeviction",
        "appendonly",
        "CONFIG SET appendonly yes",
        "redis.conf",
    ] {
        assert!(msg.contains(needle), "message names {needle:?}: {msg}");
    }
    let out = std::process::Command::new(baton_bin())
        .args(["--redis-url", &redis.url(), "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("maxmemory-policy") && stdout.contains("appendonly"),
        "{stdout}"
    );

    // The explicit opt-out runs anyway (and logs a warning).
    let w = Worker::builder(redis.url(), "q")
        .allow_unfit_redis()
        .build(handler_fn(|_: u8, _ctx| async { Ok::<_, JobError>(()) }))
        .unwrap();
    let run = start(w);
    let q = Queue::connect(redis.url(), "q").unwrap();
    q.add("n", &1u8, JobOptions::default()).await.unwrap();
    wait_until(
        Duration::from_secs(10),
        "ran despite unfit redis",
        || async { q.counts().await.unwrap().completed == 1 },
    )
    .await;
    run.stop().await;
}

#[tokio::test]
async fn config_disabled_falls_back_to_info() {
    let fit = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--maxmemory-policy",
        "noeviction",
        "--rename-command",
        "CONFIG",
        "",
    ]);
    let out = std::process::Command::new(baton_bin())
        .args(["--redis-url", &fit.url(), "check", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fit"], true, "{v}");
    assert_eq!(v["source"], "INFO");
    let unfit = RedisServer::start_with(&[
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "volatile-lru",
        "--rename-command",
        "CONFIG",
        "",
    ]);
    let out = std::process::Command::new(baton_bin())
        .args(["--redis-url", &unfit.url(), "check", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let settings: Vec<&str> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["setting"].as_str().unwrap())
        .collect();
    assert_eq!(settings, vec!["maxmemory-policy", "appendonly"], "{v}");
}

#[tokio::test]
async fn producer_fails_fast_when_redis_is_down_or_hung() {
    let mut redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "q").unwrap();
    q.add("n", &1u8, JobOptions::default()).await.unwrap();

    // Hung: the process is frozen, connections accept but nothing answers.
    crate::common::signal(redis.pid(), libc::SIGSTOP);
    let t = Instant::now();
    let err = q.add("n", &2u8, JobOptions::default()).await.unwrap_err();
    let took = t.elapsed();
    assert!(err.is_connection(), "{err:?}");
    assert!(
        took < Duration::from_millis(2600),
        "hung redis: failed after {took:?}"
    );
    crate::common::signal(redis.pid(), libc::SIGCONT);

    // Gone: connection refused.
    redis.stop();
    let q2 = Queue::connect(redis.url(), "q").unwrap();
    let t = Instant::now();
    let err = q2.add("n", &3u8, JobOptions::default()).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    assert!(
        t.elapsed() < Duration::from_millis(2600),
        "dead redis: failed after {:?}",
        t.elapsed()
    );
    let out = std::process::Command::new(baton_bin())
        .args(["--redis-url", &redis.url(), "add", "q", "{}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
}

#[tokio::test]
async fn worker_survives_a_redis_restart_and_keeps_its_outcome() {
    let mut redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "outage").unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let r2 = runs.clone();
    let w = Worker::builder(redis.url(), "outage")
        .concurrency(4)
        .lease(Duration::from_secs(20))
        .stalled_interval(Duration::from_millis(500))
        .build(handler_fn(move |ms: u64, _ctx| {
            let r = r2.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<_, JobError>(ms)
            }
        }))
        .unwrap();
    let run = start(w);
    for _ in 0..5 {
        q.add("quick", &1u64, JobOptions::default()).await.unwrap();
    }
    wait_until(Duration::from_secs(10), "first batch done", || async {
        q.counts().await.unwrap().completed == 5
    })
    .await;
    // A job that is still running when Redis goes away: its outcome must wait and land.
    let slow = q
        .add("slow", &1500u64, JobOptions::default())
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "slow job started", || async {
        runs.load(Ordering::SeqCst) == 6
    })
    .await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(2500)).await; // the outage itself, longer than the job
    redis.start_again();
    wait_until(
        Duration::from_secs(30),
        "slow job's outcome landed",
        || async { matches!(q.job(&slow.id).await, Ok(Some(j)) if j.state == JobState::Completed) },
    )
    .await;
    for _ in 0..5 {
        q.add("after", &1u64, JobOptions::default()).await.unwrap();
    }
    wait_until(
        Duration::from_secs(30),
        "jobs after the restart done",
        || async { matches!(q.counts().await, Ok(c) if c.completed == 11) },
    )
    .await;
    assert_eq!(runs.load(Ordering::SeqCst), 11, "nothing ran twice");
    assert!(!run.is_finished(), "the worker never gave up");
    run.stop().await;
}

#[tokio::test]
async fn works_where_config_and_client_commands_are_disabled() {
    // Some managed services refuse CONFIG and CLIENT; the check reads INFO, and idle
    // waits fall back to the plain BLPOP timeout.
    let redis = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--maxmemory-policy",
        "noeviction",
        "--rename-command",
        "CONFIG",
        "",
        "--rename-command",
        "CLIENT",
        "",
    ]);
    let q = Queue::connect(redis.url(), "managed").unwrap();
    let w = Worker::builder(redis.url(), "managed")
        .build(handler_fn(|_: u8, _ctx| async { Ok::<_, JobError>(()) }))
        .unwrap();
    let run = start(w);
    q.add("now", &1u8, JobOptions::default()).await.unwrap();
    q.add(
        "later",
        &1u8,
        JobOptions::default().delay(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    wait_until(Duration::from_secs(10), "both ran", || async {
        q.counts().await.unwrap().completed == 2
    })
    .await;
    run.stop().await;
}
