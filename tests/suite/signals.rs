//! `run_until_signal` in a real process: SIGTERM drains, a second SIGTERM skips the wait.

use std::time::{Duration, Instant};

use crate::common::{signal, spawn_child_test, wait_until, RedisServer};
use baton::{handler_fn, JobContext, JobError, JobOptions, JobState, Queue, Worker};

/// The child side: a worker with a 30 s shutdown timeout whose jobs sleep for the
/// number of ms in their payload (stopping early when told to).
#[tokio::test]
async fn child_signal_worker() {
    if std::env::var("BATON_CHILD").is_err() {
        return;
    }
    baton::telemetry::init_logging(false, "info");
    let url = std::env::var("BATON_URL").unwrap();
    let w = Worker::builder(&url, "sig")
        .concurrency(4)
        .shutdown_timeout(Duration::from_secs(30))
        .abort_grace(Duration::from_millis(500))
        .build(handler_fn(|ms: u64, ctx: JobContext| async move {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok::<_, JobError>(ms),
                _ = ctx.cancelled() => Err(JobError::retry("stopped")),
            }
        }))
        .unwrap();
    w.run_until_signal().await.unwrap();
}

#[tokio::test]
async fn sigterm_drains_and_a_second_sigterm_skips_the_wait() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "sig").unwrap();
    let short = q
        .add("short", &700u64, JobOptions::default())
        .await
        .unwrap();
    let long = q
        .add("long", &600_000u64, JobOptions::default())
        .await
        .unwrap();
    let mut child = spawn_child_test(
        "signals::child_signal_worker",
        &[("BATON_URL", redis.url())],
    );
    wait_until(Duration::from_secs(20), "both jobs running", || async {
        q.counts().await.unwrap().active == 2
    })
    .await;

    signal(child.id(), libc::SIGTERM);
    // The short job still completes during the drain.
    wait_until(
        Duration::from_secs(5),
        "short job completed during the drain",
        || async { q.job(&short.id).await.unwrap().unwrap().state == JobState::Completed },
    )
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still draining the long job (30 s shutdown timeout)"
    );
    let t = Instant::now();
    signal(child.id(), libc::SIGTERM);
    let status = child.wait().unwrap();
    let took = t.elapsed();
    eprintln!("second SIGTERM → exit in {took:?}");
    assert!(status.success(), "exit 0: {status:?}");
    assert!(
        took < Duration::from_secs(5),
        "the second signal skipped the 30 s wait: {took:?}"
    );
    let l = q.job(&long.id).await.unwrap().unwrap();
    assert_eq!(
        (l.state, l.attempt, l.stalled),
        (JobState::Waiting, 0, 0),
        "handed back"
    );
    let c = q.counts().await.unwrap();
    assert_eq!(c.active, 0);
    assert!(
        q.workers().await.unwrap().is_empty(),
        "nothing left under its name"
    );
}
