//! A worker's background loop that dies (a panic) stops the worker: its running jobs
//! are handed back (unless the dead loop is the acker, which writes them: then they are
//! recovered after their lease, as after a crash), the failure is counted, and `run`
//! returns the error, so the pod restarts instead of claiming jobs it can no longer
//! renew (issue 8, defect 10).

use std::time::Duration;

use crate::common::{wait_until, RedisServer};
use baton::{handler_fn, JobContext, JobOptions, JobState, Queue, Worker};

#[tokio::test]
async fn a_dead_loop_stops_the_worker_and_hands_its_jobs_back() {
    for task in ["heartbeat", "sweeper", "canceller", "acker", "claimer"] {
        let redis = RedisServer::start();
        let q = Queue::connect(redis.url(), "sup").unwrap();
        let job = q.add("n", &1u32, JobOptions::default()).await.unwrap();
        let w = Worker::builder(redis.url(), "sup")
            .abort_grace(Duration::from_millis(100))
            .inject_fault(task, Duration::from_millis(800))
            .build(handler_fn(|_: u32, _ctx: JobContext| async move {
                std::future::pending::<()>().await;
                Ok(())
            }))
            .unwrap();
        let run = tokio::spawn(w.run());
        wait_until(Duration::from_secs(10), "job running", || async {
            q.job(&job.id).await.unwrap().unwrap().state == JobState::Active
        })
        .await;
        let r = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap_or_else(|_| panic!("the worker went on after its {task} loop died"))
            .unwrap();
        let e = r.expect_err("a dead loop is an error").to_string();
        assert!(e.contains(task) && e.contains("injected fault"), "{e}");
        let j = q.job(&job.id).await.unwrap().unwrap();
        if task == "acker" {
            // The loop that writes outcomes is the one that died: the hand-back cannot be
            // written, and the job is recovered when its lease expires, as after a crash.
            assert_eq!(j.state, JobState::Active, "{task}: left to its lease");
        } else {
            assert_eq!(
                j.state,
                JobState::Waiting,
                "{task}: the job was handed back"
            );
            assert_eq!(j.stalled, 0, "{task}: no stall counted");
        }
    }
}
