//! Exit codes, stdout results, stderr logs and timeouts.

use std::time::{Duration, Instant};

use baton::{JobOptions, JobState, Queue};
use serde_json::json;

use super::job_waits::{fast_retries, wait_state};
use super::procfs::assert_no_zombies;
use super::worker_proc::WorkerProc;
use crate::common::RedisServer;

#[tokio::test]
async fn exit_zero_completes_with_the_last_stdout_line() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ex1").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex1", &[]);
    let a = q
        .add(
            "echo",
            &json!({"n": 7, "s": "hé \"quoted\""}),
            JobOptions::default().attempts(2),
        )
        .await
        .unwrap();
    let t = q
        .add("text", &json!(null), JobOptions::default())
        .await
        .unwrap();
    let info = wait_state(&q, &a.id, JobState::Completed, Duration::from_secs(10)).await;
    let r = info.result.expect("a result");
    assert_eq!(
        r["payload"],
        json!({"n": 7, "s": "hé \"quoted\""}),
        "payload on stdin"
    );
    assert_eq!(r["id"], json!(a.id));
    assert_eq!(r["name"], json!("echo"));
    assert_eq!(r["queue"], json!("ex1"));
    assert_eq!(r["attempt"], json!(1));
    assert_eq!(r["attempts"], json!(2));
    assert_eq!(
        info.logs,
        vec!["starting".to_string(), "done".to_string()],
        "stderr lines are the log"
    );
    let info = wait_state(&q, &t.id, JobState::Completed, Duration::from_secs(10)).await;
    assert_eq!(
        info.result,
        Some(json!("plain text result")),
        "a non-JSON last line is the result as a string"
    );
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}

#[tokio::test]
async fn exit_codes_retry_per_attempts_and_stderr_is_logged() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ex2").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex2", &[]);
    let temp = q
        .add("exit", &json!({"code": 75}), fast_retries().attempts(2))
        .await
        .unwrap();
    let three = q
        .add("exit", &json!({"code": 3}), fast_retries().attempts(2))
        .await
        .unwrap();
    let chatty = q
        .add("chatty", &json!(null), JobOptions::default())
        .await
        .unwrap();

    let info = wait_state(&q, &temp.id, JobState::Failed, Duration::from_secs(10)).await;
    assert_eq!(info.attempt, 2, "exit 75 is retried");
    assert_eq!(
        info.logs,
        vec![
            "attempt 1 exits with 75".to_string(),
            "attempt 2 exits with 75".to_string()
        ]
    );
    let err = info.error.unwrap();
    assert!(
        err.contains("exited with code 75") && err.contains("EX_TEMPFAIL"),
        "{err}"
    );
    assert!(
        err.ends_with(": attempt 2 exits with 75"),
        "the last stderr line is quoted: {err}"
    );

    let info = wait_state(&q, &three.id, JobState::Failed, Duration::from_secs(10)).await;
    assert_eq!(
        info.attempt, 2,
        "other exit codes are retried per attempts too"
    );
    assert!(
        info.error
            .as_deref()
            .unwrap()
            .starts_with("command exited with code 3"),
        "{:?}",
        info.error
    );
    assert_eq!(info.logs.len(), 2);

    // A chatty command: its log is bounded, the excess counted, long lines cut.
    let info = wait_state(&q, &chatty.id, JobState::Completed, Duration::from_secs(15)).await;
    assert_eq!(info.result, Some(json!("quiet now")));
    let last = info.logs.last().unwrap();
    assert!(
        last.starts_with("[baton] ") && last.contains("stderr lines dropped"),
        "{last}"
    );
    assert!(
        info.logs.len() >= 100 && info.logs.len() <= 1000,
        "{} lines",
        info.logs.len()
    );
    assert!(info
        .logs
        .iter()
        .all(|l| l.len() <= baton::exec::MAX_LOG_LINE_BYTES + 64));
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}

#[tokio::test]
async fn timeout_stops_the_command_and_fails_after_attempts() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ex4").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex4", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let a = q
        .add(
            "sleep",
            &json!({"secs": 300, "dir": tmp.path().display().to_string()}),
            fast_retries()
                .timeout(Duration::from_millis(300))
                .attempts(2),
        )
        .await
        .unwrap();
    let info = wait_state(&q, &a.id, JobState::Failed, Duration::from_secs(10)).await;
    let err = info.error.unwrap();
    assert!(err.contains("timed out after"), "{err}");
    assert_eq!(info.attempt, 2);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("started")).unwrap(),
        "1\n2\n"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}
