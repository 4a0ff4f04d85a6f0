//! Cancelling a running command kills its whole process group and reaps it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baton::{JobOptions, JobState, Queue};
use serde_json::json;

use super::job_waits::{wait_file, wait_state};
use super::procfs::{assert_no_zombies, gone};
use super::worker_proc::{fixture, WorkerProc};
use crate::common::{wait_until, RedisServer};

#[tokio::test]
async fn cancel_kills_the_process_group_and_reaps_it() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ex3").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex3", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut latencies = Vec::new();
    for i in 0..20 {
        let dir = tmp.path().join(format!("c{i}"));
        std::fs::create_dir(&dir).unwrap();
        let a = q
            .add(
                "grandchild",
                &json!({"dir": dir.display().to_string()}),
                JobOptions::default(),
            )
            .await
            .unwrap();
        let gpid: i32 = wait_file(&dir.join("pid"), Duration::from_secs(10))
            .await
            .trim()
            .parse()
            .unwrap();
        assert!(!gone(gpid));
        let t0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let c = Instant::now();
        q.cancel(&a.id).await.unwrap();
        let info = wait_state(&q, &a.id, JobState::Cancelled, Duration::from_secs(5)).await;
        let cancelled_in = c.elapsed();
        assert_eq!(info.state, JobState::Cancelled);
        // The grandchild ignores SIGTERM: only the SIGKILL to the group stops it, and it
        // must be reaped (by the worker: it was re-parented to it), not left a zombie.
        wait_until(
            Duration::from_secs(5),
            &format!("grandchild {gpid} gone"),
            || async { gone(gpid) },
        )
        .await;
        let term: u128 = wait_file(&dir.join("term"), Duration::from_secs(1))
            .await
            .trim()
            .parse()
            .unwrap();
        let latency = Duration::from_nanos((term.saturating_sub(t0.as_nanos())) as u64);
        assert!(
            cancelled_in < Duration::from_secs(3),
            "cancel took {cancelled_in:?}"
        );
        latencies.push(latency);
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "cancel → SIGTERM in the child over {} cancels: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        p(0.5),
        p(0.99),
        latencies.last().unwrap()
    );
    assert!(*latencies.last().unwrap() < Duration::from_secs(1));
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}

/// In-process, with an abort grace shorter than the kill grace: the worker aborts the
/// handler while it waits to SIGKILL, and dropping it must still kill the whole group and
/// reap the command (tokio's kill_on_drop would only kill the command itself).
#[tokio::test]
async fn an_aborted_handler_still_kills_the_group() {
    use baton::exec::{ExecConfig, ExecHandler};
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ex8").unwrap();
    let handler = ExecHandler::new(ExecConfig {
        program: "sh".into(),
        args: vec![fixture().display().to_string()],
        kill_grace: Duration::from_secs(30),
    });
    let worker = baton::Worker::builder(redis.url(), "ex8")
        .lease(Duration::from_secs(2))
        .abort_grace(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(1))
        .build(handler)
        .unwrap();
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    let tmp = tempfile::tempdir().unwrap();
    let a = q
        .add(
            "stubborn",
            &json!({"dir": tmp.path().display().to_string()}),
            JobOptions::default(),
        )
        .await
        .unwrap();
    let pids = wait_file(&tmp.path().join("pids"), Duration::from_secs(10)).await;
    let pids: Vec<i32> = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let t = Instant::now();
    q.cancel(&a.id).await.unwrap();
    wait_state(&q, &a.id, JobState::Cancelled, Duration::from_secs(5)).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the handler was aborted, not waited for: {:?}",
        t.elapsed()
    );
    for pid in pids {
        // The command is reaped by us (no zombie left), its child killed with the group.
        wait_until(Duration::from_secs(5), &format!("{pid} gone"), || async {
            gone(pid)
        })
        .await;
    }
    stop.shutdown();
    run.await.unwrap().unwrap();
}
