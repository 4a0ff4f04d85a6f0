//! SIGTERM: short jobs finish, long ones are handed back to the next worker.

use std::time::{Duration, Instant};

use baton::{JobOptions, JobState, Queue};
use serde_json::json;

use super::job_waits::{job, wait_file, wait_state};
use super::procfs::{assert_no_zombies, zombies_of};
use super::worker_proc::WorkerProc;
use crate::common::{wait_until, RedisServer};

#[tokio::test]
async fn sigterm_lets_a_short_job_finish() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ex5a").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex5a", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let a = q
        .add(
            "short",
            &json!({"secs": 1, "dir": tmp.path().display().to_string()}),
            JobOptions::default(),
        )
        .await
        .unwrap();
    wait_file(&tmp.path().join("started"), Duration::from_secs(10)).await;
    let t = Instant::now();
    w.signal(libc::SIGTERM);
    let s = w.wait_exit(Duration::from_secs(10)).await;
    println!("short job: worker exited {:?} after SIGTERM", t.elapsed());
    assert!(s.success(), "{s}");
    let info = job(&q, &a.id).await;
    assert_eq!(info.state, JobState::Completed);
    assert_eq!(info.result, Some(json!({"slept": 1})));
    assert_eq!(info.stalled, 0);
}

#[tokio::test]
async fn sigterm_hands_a_long_job_back_to_the_next_worker() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ex5b").unwrap();
    let mut w1 = WorkerProc::start(&redis.url(), "ex5b", &["--shutdown-timeout", "1s"]);
    let tmp = tempfile::tempdir().unwrap();
    let started = tmp.path().join("started");
    let a = q
        .add(
            "sleep",
            &json!({"secs": 300, "dir": tmp.path().display().to_string()}),
            JobOptions::default(),
        )
        .await
        .unwrap();
    wait_file(&started, Duration::from_secs(10)).await;
    let pid1 = w1.pid();
    let t = Instant::now();
    w1.signal(libc::SIGTERM);
    let s = w1.wait_exit(Duration::from_secs(10)).await;
    let exited = Instant::now();
    println!(
        "long job: worker exited {:?} after SIGTERM (shutdown timeout 1s)",
        t.elapsed()
    );
    assert!(s.success(), "{s}\n{}", w1.logs());
    let info = job(&q, &a.id).await;
    assert_eq!(info.state, JobState::Waiting, "handed back");
    assert_eq!(info.attempt, 0, "the attempt is not consumed");
    assert_eq!(info.stalled, 0);
    assert!(zombies_of(pid1).is_empty());

    let mut w2 = WorkerProc::start(&redis.url(), "ex5b", &[]);
    wait_until(Duration::from_secs(5), "second run started", || async {
        std::fs::read_to_string(&started)
            .unwrap_or_default()
            .lines()
            .count()
            == 2
    })
    .await;
    let picked = exited.elapsed();
    println!("long job: picked up by a new worker {picked:?} after the first exited");
    assert!(picked < Duration::from_secs(1), "{picked:?}");
    assert_eq!(
        std::fs::read_to_string(&started).unwrap(),
        "1\n1\n",
        "the second run is attempt 1 again"
    );
    let info = wait_state(&q, &a.id, JobState::Active, Duration::from_secs(2)).await;
    assert_eq!(info.stalled, 0);
    q.cancel(&a.id).await.unwrap();
    let info = wait_state(&q, &a.id, JobState::Cancelled, Duration::from_secs(5)).await;
    assert_eq!(info.stalled, 0);
    assert_no_zombies(w2.pid()).await;
    w2.stop().await;
}
