//! A parent waits for its children, on its own queue and on another of its slot, then
//! reads their results; on one Redis and on a Cluster.

use std::time::Duration;

use baton::{ChildFailure, FlowJob, JobOptions, JobState, Queue};

use super::Env;
use crate::common::wait_until;

async fn state(q: &Queue, id: &str) -> JobState {
    q.job(id).await.unwrap().unwrap().state
}

async fn until_state(q: &Queue, id: &str, want: JobState) {
    wait_until(
        Duration::from_secs(20),
        &format!("{id} {want:?}"),
        || async { q.job(id).await.unwrap().is_some_and(|j| j.state == want) },
    )
    .await;
}

/// Root on `{f}parents` with three children there and two on `{f}work`, one of which
/// has two children of its own on `{f}work`.
fn tree() -> FlowJob {
    let id = |s: &str| JobOptions::default().job_id(s);
    FlowJob::new("sum", &0)
        .opts(id("root"))
        .children((1..=3).map(|i| FlowJob::new("n", &i).opts(id(&format!("c{i}")))))
        .child(FlowJob::new("n", &4).queue("{f}work").opts(id("w4")))
        .child(
            FlowJob::new("sum", &0)
                .queue("{f}work")
                .opts(id("w5"))
                .child(FlowJob::new("n", &5).opts(id("g1")))
                .child(FlowJob::new("n", &6).opts(id("g2"))),
        )
}

async fn parent_after_children(env: Env) {
    let parents = env.queue("{f}parents");
    let work = env.queue("{f}work");
    let added = parents.add_flow(&tree()).await.unwrap();
    assert!(added.added);
    assert_eq!(added.children.len(), 5);
    assert_eq!(added.children[4].queue, "{f}work");
    assert_eq!(added.children[4].children[1].id, "g2");

    // Nothing runs yet: the parents wait for their children.
    assert_eq!(state(&parents, "root").await, JobState::WaitingChildren);
    assert_eq!(state(&work, "w5").await, JobState::WaitingChildren);
    let c = parents.counts().await.unwrap();
    assert_eq!((c.waiting_children, c.waiting), (1, 3));
    assert_eq!(
        parents
            .list(JobState::WaitingChildren, 0, 10)
            .await
            .unwrap(),
        vec!["root".to_string()]
    );
    let root = parents.job("root").await.unwrap().unwrap();
    assert_eq!(root.children.len(), 5);
    assert!(root.children.iter().all(|c| c.state == "pending"));
    let g1 = work.job("g1").await.unwrap().unwrap();
    assert_eq!(g1.parent.unwrap().to_string(), "{f}work/w5");
    let w4 = work.job("w4").await.unwrap().unwrap();
    assert_eq!(w4.parent.unwrap().to_string(), "{f}parents/root");

    let a = env.worker("{f}parents");
    let b = env.worker("{f}work");
    until_state(&parents, "root", JobState::Completed).await;
    let root = parents.job("root").await.unwrap().unwrap();
    // 10 + 20 + 30 + 40 + (50 + 60)
    assert_eq!(root.result, Some(serde_json::json!(210)));
    assert!(root.children.iter().all(|c| c.state == "completed"));
    // The parent started after every child finished (Redis clock).
    let started = root.started_ms.unwrap();
    for (q, id) in [
        (&parents, "c1"),
        (&parents, "c2"),
        (&parents, "c3"),
        (&work, "w4"),
        (&work, "w5"),
    ] {
        let c = q.job(id).await.unwrap().unwrap();
        assert!(
            c.finished_ms.unwrap() <= started,
            "{id} finished after the parent started"
        );
    }
    let w5 = work.job("w5").await.unwrap().unwrap();
    for id in ["g1", "g2"] {
        assert!(
            work.job(id).await.unwrap().unwrap().finished_ms.unwrap() <= w5.started_ms.unwrap()
        );
    }
    assert_eq!(parents.counts().await.unwrap().waiting_children, 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_parent_runs_after_its_children_and_reads_their_results() {
    parent_after_children(Env::single()).await;
}

#[tokio::test]
async fn a_parent_runs_after_its_children_on_a_cluster() {
    parent_after_children(Env::cluster()).await;
}

#[tokio::test]
async fn on_a_cluster_a_flow_across_slots_is_refused_before_anything_is_written() {
    let env = Env::cluster();
    let q = env.queue("orders");
    let flow = FlowJob::new("p", &0)
        .opts(JobOptions::default().job_id("p"))
        .child(FlowJob::new("c", &1).queue("emails"));
    let e = q.add_flow(&flow).await.unwrap_err().to_string();
    assert!(
        e.contains("\"emails\" is not in the Redis Cluster slot of queue \"orders\""),
        "{e}"
    );
    assert!(e.contains("{tag}"), "{e}");
    assert!(q.job("p").await.unwrap().is_none());
}

async fn failing_child(env: Env, policy: ChildFailure) -> (Queue, baton::JobInfo) {
    let q = env.queue("f");
    let flow = FlowJob::new("sum", &0)
        .opts(JobOptions::default().job_id("p"))
        .child(FlowJob::new("n", &1).opts(JobOptions::default().job_id("ok")))
        .child(
            FlowJob::new("n", &-1)
                .opts(JobOptions::default().job_id("bad").attempts(1))
                .on_failure(policy),
        );
    q.add_flow(&flow).await.unwrap();
    let w = env.worker("f");
    let want = match policy {
        ChildFailure::FailParent => JobState::Failed,
        ChildFailure::Ignore => JobState::Completed,
    };
    until_state(&q, "p", want).await;
    w.stop().await;
    let p = q.job("p").await.unwrap().unwrap();
    (q, p)
}

#[tokio::test]
async fn a_child_failing_for_good_fails_its_parent() {
    let (_q, p) = failing_child(Env::single(), ChildFailure::FailParent).await;
    assert_eq!(
        p.error.as_deref(),
        Some("child f/bad failed: told to fail"),
        "the parent says which child and why"
    );
    assert_eq!(p.attempt, 0, "the parent never ran");
    let bad = p.children.iter().find(|c| c.id == "bad").unwrap();
    assert_eq!(
        (bad.state, bad.error.as_deref()),
        ("failed", Some("told to fail"))
    );
}

#[tokio::test]
async fn a_child_failing_under_ignore_lets_its_parent_run_and_see_it() {
    let (_q, p) = failing_child(Env::single(), ChildFailure::Ignore).await;
    // The parent summed the one result there was.
    assert_eq!(p.result, Some(serde_json::json!(10)));
    let bad = p.children.iter().find(|c| c.id == "bad").unwrap();
    assert_eq!(bad.state, "failed");
}
