//! Cancel, remove and sending a flow again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton::{handler_fn, Error, FlowJob, JobContext, JobError, JobOptions, JobState, Worker};

use super::Env;
use crate::common::{spawn_child_test, start, wait_until};

fn id(s: &str) -> JobOptions {
    JobOptions::default().job_id(s)
}

#[tokio::test]
async fn cancelling_a_parent_cancels_its_unfinished_children_and_theirs() {
    let env = Env::single();
    let q = env.queue("{c}p");
    let busy = env.queue("{c}busy");
    // "run" runs on a worker that holds it until it is cancelled; "waits" and the
    // grandchild on a queue no worker serves; "done" completes first.
    let flow = FlowJob::new("p", &0)
        .opts(id("p"))
        .child(FlowJob::new("n", &1).queue("{c}busy").opts(id("run")))
        .child(FlowJob::new("n", &2).queue("{c}idle").opts(id("waits")))
        .child(
            FlowJob::new("n", &3)
                .queue("{c}idle")
                .opts(id("mid"))
                .child(FlowJob::new("n", &4).queue("{c}idle").opts(id("grand"))),
        )
        .child(FlowJob::new("n", &5).queue("{c}done").opts(id("done")));
    q.add_flow(&flow).await.unwrap();
    let done = env.worker("{c}done");
    let started = Arc::new(AtomicBool::new(false));
    let s2 = started.clone();
    let w = Worker::builder(env.cfg.clone(), "{c}busy")
        .shutdown_timeout(Duration::from_secs(2))
        .build(handler_fn(move |_: i64, ctx: JobContext| {
            let s = s2.clone();
            async move {
                s.store(true, Ordering::SeqCst);
                ctx.cancelled().await;
                Err::<(), _>(JobError::retry("stopped"))
            }
        }))
        .unwrap();
    let busy_worker = start(w);
    let idle = env.queue("{c}idle");
    let done_q = env.queue("{c}done");
    wait_until(
        Duration::from_secs(10),
        "run started, done completed",
        || async {
            started.load(Ordering::SeqCst)
                && done_q.job("done").await.unwrap().unwrap().state == JobState::Completed
        },
    )
    .await;

    q.cancel("p").await.unwrap();
    let p = q.job("p").await.unwrap().unwrap();
    assert_eq!(p.state, JobState::Cancelled);
    for (qq, j) in [(&idle, "waits"), (&idle, "mid"), (&idle, "grand")] {
        let c = qq.job(j).await.unwrap().unwrap();
        assert_eq!(c.state, JobState::Cancelled, "{j}");
        assert!(
            c.error.unwrap().starts_with("parent {c}"),
            "{j} says its parent was cancelled"
        );
    }
    assert_eq!(
        idle.counts().await.unwrap().waiting,
        0,
        "nothing left to run"
    );
    wait_until(
        Duration::from_secs(10),
        "the running child cancelled",
        || async { busy.job("run").await.unwrap().unwrap().state == JobState::Cancelled },
    )
    .await;
    assert_eq!(
        done_q.job("done").await.unwrap().unwrap().state,
        JobState::Completed,
        "a finished child stays as it was"
    );
    let p = q.job("p").await.unwrap().unwrap();
    let run = p.children.iter().find(|c| c.id == "run").unwrap();
    assert_eq!(run.state, "failed", "the parent saw its running child end");
    busy_worker.stop().await;
    done.stop().await;
}

#[tokio::test]
async fn removing_a_pending_child_releases_its_parent_when_it_was_the_last() {
    let env = Env::single();
    let q = env.queue("r");
    let flow = FlowJob::new("sum", &0)
        .opts(id("p"))
        .child(FlowJob::new("n", &1).opts(id("a").delay(Duration::from_secs(3600))))
        .child(FlowJob::new("n", &2).opts(id("b")));
    q.add_flow(&flow).await.unwrap();
    let w = env.worker("r");
    wait_until(Duration::from_secs(10), "b completed", || async {
        q.job("b").await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    assert_eq!(
        q.job("p").await.unwrap().unwrap().state,
        JobState::WaitingChildren
    );
    q.remove("a").await.unwrap();
    wait_until(Duration::from_secs(10), "parent completed", || async {
        q.job("p").await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    let p = q.job("p").await.unwrap().unwrap();
    assert_eq!(p.result, Some(serde_json::json!(20)));
    assert_eq!(p.children.len(), 1, "the removed child is no longer listed");
    w.stop().await;
}

#[tokio::test]
async fn a_flow_sent_again_changes_nothing_and_a_taken_child_id_refuses_it_whole() {
    let env = Env::single();
    let q = env.queue("s");
    let flow = FlowJob::new("sum", &0)
        .opts(id("root"))
        .child(FlowJob::new("n", &1).opts(id("k1")));
    assert!(q.add_flow(&flow).await.unwrap().added);
    let again = q.add_flow(&flow).await.unwrap();
    assert!(!again.added && !again.children[0].added);
    assert_eq!(q.counts().await.unwrap().waiting, 1, "no second child");

    let other = FlowJob::new("sum", &0)
        .opts(id("root2"))
        .child(FlowJob::new("n", &1).opts(id("fresh")))
        .child(FlowJob::new("n", &2).opts(id("k1")));
    let e = q.add_flow(&other).await.unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("\"k1\"")),
        "{e}"
    );
    assert!(
        q.job("root2").await.unwrap().is_none(),
        "nothing of it written"
    );
    assert!(
        q.job("fresh").await.unwrap().is_none(),
        "nothing of it written"
    );

    // Refused before sending: a dedup key, a parent with a delay.
    let dedup = FlowJob::new("p", &0)
        .child(FlowJob::new("c", &0).opts(JobOptions::default().dedup(baton::Dedup::simple("k"))));
    assert!(matches!(q.add_flow(&dedup).await, Err(Error::Invalid(_))));
    let delayed = FlowJob::new("p", &0)
        .opts(JobOptions::default().delay(Duration::from_secs(1)))
        .child(FlowJob::new("c", &0));
    assert!(matches!(q.add_flow(&delayed).await, Err(Error::Invalid(_))));
}

#[tokio::test]
async fn a_child_failing_as_stalled_fails_its_parent() {
    // The child's worker process is SIGKILLed mid-job; the sweeper of another worker
    // (max_stalled 0) fails the child as stalled, and that reaches the parent like any
    // other way a child ends.
    let env = Env::single();
    let q = env.queue("st");
    let flow = FlowJob::new("p", &0)
        .opts(id("p"))
        .child(FlowJob::new("c", &"hold").opts(id("c")));
    q.add_flow(&flow).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let mut child = spawn_child_test(
        "recovery::child_worker",
        &[
            ("BATON_URL", env.url()),
            ("BATON_QUEUE", "st".to_string()),
            ("BATON_LOG", log.display().to_string()),
        ],
    );
    wait_until(Duration::from_secs(20), "the child job started", || async {
        std::fs::read_to_string(&log).is_ok_and(|l| l.starts_with("start"))
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let sweeper = start(
        Worker::builder(env.cfg.clone(), "st")
            .max_stalled(0)
            .stalled_interval(Duration::from_millis(100))
            .shutdown_timeout(Duration::from_secs(2))
            .build(handler_fn(|_: String, _ctx: JobContext| async move {
                Ok::<_, JobError>(())
            }))
            .unwrap(),
    );
    wait_until(Duration::from_secs(20), "parent failed", || async {
        q.job("p").await.unwrap().unwrap().state == JobState::Failed
    })
    .await;
    let p = q.job("p").await.unwrap().unwrap();
    let e = p.error.unwrap();
    assert!(e.starts_with("child st/c failed"), "{e}");
    assert_eq!(q.job("c").await.unwrap().unwrap().state, JobState::Failed);
    sweeper.stop().await;
}
