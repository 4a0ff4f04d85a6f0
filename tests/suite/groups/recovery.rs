//! A group's concurrency room comes back when its job stalls (worker SIGKILLed, lease
//! swept), is cancelled while running, or is handed back at a worker's shutdown
//! (SIGTERM): with a cap of 1, a leaked room would leave the group's other jobs waiting
//! forever.

use std::time::Duration;

use baton::JobState;

use super::procs::{job, until_completed, Env};
use crate::common::{signal, wait_until};

/// Group `a` capped at 1: `a.0` runs slow on its first run, `a.1` and `a.2` behind it.
async fn capped_group_with_a_slow_job(env: &Env, queue: &str) -> baton::Queue {
    let q = env.queue(queue);
    q.set_group_limits(Some(1), None).await.unwrap();
    let jobs = vec![job("a", 0, "slow"), job("a", 1, "ok"), job("a", 2, "ok")];
    q.add_bulk(&jobs).await.unwrap();
    q
}

async fn until_started(env: &Env, id: &str) {
    wait_until(
        Duration::from_secs(30),
        &format!("{id} started"),
        || async { env.ledger().iter().any(|(e, i)| e == "start" && i == id) },
    )
    .await;
}

#[tokio::test]
async fn a_stalled_jobs_group_room_comes_back() {
    let env = Env::single();
    let q = capped_group_with_a_slow_job(&env, "gstall").await;
    let mut w1 = env.worker("gstall", 3);
    until_started(&env, "a.0").await;
    signal(w1.id(), libc::SIGKILL);
    let _ = w1.wait();
    let _w2 = env.worker("gstall", 3);
    until_completed(&q, 3).await;
    let a0 = q.job("a.0").await.unwrap().unwrap();
    assert_eq!((a0.state, a0.stalled), (JobState::Completed, 1));
}

#[tokio::test]
async fn a_cancelled_jobs_group_room_comes_back() {
    let env = Env::single();
    let q = capped_group_with_a_slow_job(&env, "gcancel").await;
    let _w = env.worker("gcancel", 3);
    until_started(&env, "a.0").await;
    q.cancel("a.0").await.unwrap();
    until_completed(&q, 2).await;
    let c = q.counts().await.unwrap();
    assert_eq!((c.completed, c.cancelled), (2, 1));
}

#[tokio::test]
async fn a_handed_back_jobs_group_room_comes_back() {
    let env = Env::single();
    let q = capped_group_with_a_slow_job(&env, "gback").await;
    let mut w1 = env.worker("gback", 3);
    until_started(&env, "a.0").await;
    signal(w1.id(), libc::SIGTERM);
    assert!(w1.wait().unwrap().success(), "the worker shut down cleanly");
    let a0 = q.job("a.0").await.unwrap().unwrap();
    assert_eq!(a0.state, JobState::Waiting, "handed back: {a0:?}");
    let _w2 = env.worker("gback", 3);
    until_completed(&q, 3).await;
    let a0 = q.job("a.0").await.unwrap().unwrap();
    assert_eq!(a0.attempt, 1, "the hand back consumed no attempt");
}

#[tokio::test]
async fn raising_a_groups_concurrency_starts_its_waiting_jobs_at_once() {
    // Group `a` capped at 1 runs a slow job; raised to 3, its other jobs start now, not
    // when the slow one ends (a group at its cap is out of line until a lease ends).
    let env = Env::single();
    let q = env.queue("graise");
    q.set_group_limits(Some(1), None).await.unwrap();
    let jobs = vec![job("a", 0, "slow"), job("a", 1, "ok"), job("a", 2, "ok")];
    q.add_bulk(&jobs).await.unwrap();
    let _w = env.worker("graise", 3);
    until_started(&env, "a.0").await;
    q.set_group_limits(Some(3), None).await.unwrap();
    wait_until(Duration::from_secs(10), "a.1 and a.2 completed", || async {
        q.job("a.2")
            .await
            .unwrap()
            .is_some_and(|j| j.state == JobState::Completed)
            && q.job("a.1")
                .await
                .unwrap()
                .is_some_and(|j| j.state == JobState::Completed)
    })
    .await;
    assert_eq!(q.job("a.0").await.unwrap().unwrap().state, JobState::Active);
}
