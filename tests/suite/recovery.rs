//! Crashes and takeovers with real processes: a worker process SIGKILLed mid-job, a
//! frozen worker whose late result is refused, and steps that resume after a crash.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{spawn_child_test, start, wait_until, RedisServer};
use baton::{handler_fn, JobContext, JobError, JobOptions, JobState, Queue, Worker};

const LEASE: Duration = Duration::from_millis(1000);
const SWEEP: Duration = Duration::from_millis(200);

fn builder(url: &str, q: &str) -> baton::WorkerBuilder {
    Worker::builder(url, q)
        .concurrency(2)
        .lease(LEASE)
        .heartbeat(Duration::from_millis(250))
        .stalled_interval(SWEEP)
}

fn append(path: &PathBuf, line: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "{line}").unwrap();
}

fn lines(path: &PathBuf) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The child side: a worker process whose handler records what it does in
/// `BATON_LOG` and, in step mode, blocks in step three until killed.
#[tokio::test]
async fn child_worker() {
    if std::env::var("BATON_CHILD").is_err() {
        return;
    }
    baton::telemetry::init_logging(false, "info");
    let url = std::env::var("BATON_URL").unwrap();
    let queue = std::env::var("BATON_QUEUE").unwrap();
    let log = PathBuf::from(std::env::var("BATON_LOG").unwrap());
    let worker = builder(&url, &queue)
        .build(handler_fn(move |mode: String, ctx: JobContext| {
            let log = log.clone();
            async move {
                match mode.as_str() {
                    "steps" => run_steps(&ctx, &log, true).await,
                    _ => {
                        append(&log, &format!("start {}", ctx.attempt()));
                        // Ignores cancellation on purpose: a hung handler.
                        let hold = std::env::var("BATON_HOLD_MS")
                            .ok()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(600_000u64);
                        tokio::time::sleep(Duration::from_millis(hold)).await;
                        append(&log, "child finished");
                        Ok("from the first worker".to_string())
                    }
                }
            }
        }))
        .unwrap();
    worker.run_until_signal().await.unwrap();
}

/// Three steps; with `block_in_three` the third blocks forever (until SIGKILL).
async fn run_steps(
    ctx: &JobContext,
    log: &PathBuf,
    block_in_three: bool,
) -> Result<String, JobError> {
    let a: u32 = ctx
        .step("one", async {
            append(log, "ran one");
            Ok(1)
        })
        .await?;
    let b: u32 = ctx
        .step("two", async {
            append(log, "ran two");
            Ok(a + 1)
        })
        .await?;
    let c: u32 = ctx
        .step("three", async {
            append(log, "ran three");
            if block_in_three {
                std::future::pending::<()>().await;
            }
            Ok(b + 1)
        })
        .await?;
    Ok(format!("{a}{b}{c}"))
}

fn child_env(redis: &RedisServer, q: &str, log: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![
        ("BATON_URL", redis.url()),
        ("BATON_QUEUE", q.to_string()),
        ("BATON_LOG", log.display().to_string()),
    ]
}

#[tokio::test]
async fn sigkilled_worker_process_job_runs_on_another_worker_once() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let q = Queue::connect(redis.url(), "crash").unwrap();
    let job = q
        .add("hang", &"hang", JobOptions::default().attempts(1))
        .await
        .unwrap();
    let mut child = spawn_child_test("recovery::child_worker", &child_env(&redis, "crash", &log));
    wait_until(Duration::from_secs(20), "child started the job", || async {
        lines(&log).len() == 1
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_at = Instant::now();

    let runs = Arc::new(AtomicU32::new(0));
    let r2 = runs.clone();
    let w = builder(&redis.url(), "crash")
        .build(handler_fn(move |_: String, _ctx| {
            let r = r2.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                Ok::<_, JobError>("from the second worker")
            }
        }))
        .unwrap();
    let run = start(w);
    wait_until(
        Duration::from_secs(10),
        "job completed by the second worker",
        || async { q.job(&job.id).await.unwrap().unwrap().state == JobState::Completed },
    )
    .await;
    let recovered_in = killed_at.elapsed();
    let j = q.job(&job.id).await.unwrap().unwrap();
    assert_eq!(j.result, Some(serde_json::json!("from the second worker")));
    assert_eq!(j.stalled, 1, "the recovery is counted");
    assert_eq!(j.attempt, 1, "a stall does not consume an attempt");
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "ran once on the second worker"
    );
    // Lease expiry + one sweep interval + claim; measured, with slack for a loaded machine.
    eprintln!("recovered {recovered_in:?} after SIGKILL (lease {LEASE:?}, sweep {SWEEP:?})");
    assert!(
        recovered_in < LEASE + SWEEP + Duration::from_millis(1500),
        "recovery took {recovered_in:?}"
    );
    run.stop().await;
}

#[tokio::test]
async fn frozen_worker_late_result_is_refused() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let q = Queue::connect(redis.url(), "frozen").unwrap();
    let job = q
        .add("hang", &"hang", JobOptions::default().attempts(1))
        .await
        .unwrap();
    let mut env = child_env(&redis, "frozen", &log);
    env.push(("BATON_HOLD_MS", "1500".into()));
    let mut child = spawn_child_test("recovery::child_worker", &env);
    let stderr = child.stderr.take().unwrap();
    let stderr_lines = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sl = stderr_lines.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            sl.lock().unwrap().push(l);
        }
    });
    wait_until(Duration::from_secs(20), "child started the job", || async {
        lines(&log).len() == 1
    })
    .await;
    crate::common::signal(child.id(), libc::SIGSTOP);

    let w = builder(&redis.url(), "frozen")
        .build(handler_fn(|_: String, _ctx| async {
            Ok::<_, JobError>("from the second worker")
        }))
        .unwrap();
    let run = start(w);
    wait_until(
        Duration::from_secs(10),
        "taken over and completed",
        || async { q.job(&job.id).await.unwrap().unwrap().state == JobState::Completed },
    )
    .await;
    crate::common::signal(child.id(), libc::SIGCONT);
    // The frozen worker wakes, finishes its handler (or is told its lease is gone) and
    // must not overwrite the result.
    wait_until(
        Duration::from_secs(10),
        "old worker noticed the lost lock",
        || async {
            stderr_lines
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("lock lost") || l.contains("lease lost"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let j = q.job(&job.id).await.unwrap().unwrap();
    assert_eq!(
        j.result,
        Some(serde_json::json!("from the second worker")),
        "late result refused"
    );
    assert_eq!(j.state, JobState::Completed);
    crate::common::signal(child.id(), libc::SIGTERM);
    let status = child.wait().unwrap();
    assert!(status.success(), "old worker exits cleanly: {status:?}");
    run.stop().await;
}

#[tokio::test]
async fn steps_resume_after_sigkill_in_step_three() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let q = Queue::connect(redis.url(), "steps").unwrap();
    let job = q
        .add("steps", &"steps", JobOptions::default().attempts(1))
        .await
        .unwrap();
    let mut child = spawn_child_test("recovery::child_worker", &child_env(&redis, "steps", &log));
    wait_until(Duration::from_secs(20), "child in step three", || async {
        lines(&log).contains(&"ran three".to_string())
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(lines(&log), vec!["ran one", "ran two", "ran three"]);

    let log2 = log.clone();
    let w = builder(&redis.url(), "steps")
        .build(handler_fn(move |_: String, ctx: JobContext| {
            let log = log2.clone();
            async move { run_steps(&ctx, &log, false).await }
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(10), "job completed", || async {
        q.job(&job.id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    assert_eq!(
        lines(&log),
        vec!["ran one", "ran two", "ran three", "ran three"],
        "only step three ran again"
    );
    let j = q.job(&job.id).await.unwrap().unwrap();
    assert_eq!(j.result, Some(serde_json::json!("123")));
    assert_eq!(j.steps.len(), 3);
    run.stop().await;
}

#[tokio::test]
async fn failing_step_two_retries_from_step_two() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "steps2").unwrap();
    let runs: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let r2 = runs.clone();
    let w = builder(&redis.url(), "steps2")
        .build(handler_fn(move |_: u8, ctx: JobContext| {
            let runs = r2.clone();
            async move {
                let r = runs.clone();
                let a: u32 = ctx
                    .step("one", async move {
                        r.lock().unwrap().push("one".into());
                        Ok(1)
                    })
                    .await?;
                let r = runs.clone();
                let attempt = ctx.attempt();
                // Progress survives a retry: the second attempt reads what the first wrote.
                let seen = ctx
                    .read_progress()
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
                let expected = (attempt > 1).then(|| serde_json::json!({"attempt": attempt - 1}));
                assert_eq!(seen, expected, "progress kept across attempts");
                ctx.progress(&serde_json::json!({"attempt": attempt}))
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
                let b: u32 = ctx
                    .step("two", async move {
                        r.lock().unwrap().push(format!("two@{attempt}"));
                        if attempt == 1 {
                            Err(JobError::retry_after(
                                "flaky step",
                                Duration::from_millis(10),
                            ))
                        } else {
                            Ok(a + 1)
                        }
                    })
                    .await?;
                let r = runs.clone();
                ctx.step("three", async move {
                    r.lock().unwrap().push("three".into());
                    Ok(b + 1)
                })
                .await
            }
        }))
        .unwrap();
    let run = start(w);
    let job = q
        .add("s", &1u8, JobOptions::default().attempts(3))
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "job completed", || async {
        q.job(&job.id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    assert_eq!(
        *runs.lock().unwrap(),
        vec!["one", "two@1", "two@2", "three"]
    );
    assert_eq!(
        q.job(&job.id).await.unwrap().unwrap().result,
        Some(serde_json::json!(3))
    );
    run.stop().await;
}
