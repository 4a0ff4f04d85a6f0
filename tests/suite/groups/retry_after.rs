//! "Rate limited, retry after D": the job goes back without consuming an attempt, and
//! its group (or, without a group, the whole queue) starts nothing for D, while other
//! groups keep running.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baton::{handler_fn, JobContext, JobError, JobOptions, JobState, NewJob, Worker};

use super::procs::{job, until_completed, Env};
use crate::common::start;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// (event, job id, ms) as the handler saw them; Redis runs on this host, same clock.
type Events = Arc<Mutex<Vec<(&'static str, String, u64)>>>;

fn worker(env: &Env, queue: &str, hold: Duration, events: Events) -> Worker {
    Worker::builder(env.cfg.clone(), queue)
        .concurrency(1)
        .build(handler_fn(move |mode: String, ctx: JobContext| {
            let events = events.clone();
            async move {
                let id = ctx.id().to_string();
                let first = !events.lock().unwrap().iter().any(|(_, i, _)| *i == id);
                if mode == "limited" && first {
                    events.lock().unwrap().push(("limited", id, now_ms()));
                    return Err(JobError::rate_limited(hold));
                }
                events.lock().unwrap().push(("start", id, now_ms()));
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok::<_, JobError>(())
            }
        }))
        .unwrap()
}

fn at(events: &Events, ev: &str, id: &str) -> u64 {
    let e = events.lock().unwrap();
    e.iter()
        .find(|(k, i, _)| *k == ev && i == id)
        .unwrap_or_else(|| panic!("no {ev} of {id}: {e:?}"))
        .2
}

fn grouped(id: &str, group: &str, mode: &str) -> NewJob<String> {
    NewJob::new("n", mode.to_string())
        .with_opts(JobOptions::default().job_id(id).group(group).attempts(1))
}

#[tokio::test]
async fn a_rate_limited_job_holds_only_its_group() {
    let env = Env::single();
    let q = env.queue("ra");
    let hold = Duration::from_millis(1200);
    let mut jobs = vec![grouped("a.0", "a", "limited"), grouped("a.1", "a", "ok")];
    jobs.extend((0..4).map(|i| grouped(&format!("b.{i}"), "b", "ok")));
    q.add_bulk(&jobs).await.unwrap();
    let events: Events = Arc::default();
    let w = start(worker(&env, "ra", hold, events.clone()));
    until_completed(&q, 6).await;
    w.stop().await;
    let limited = at(&events, "limited", "a.0");
    let a1 = at(&events, "start", "a.1");
    assert!(
        a1 >= limited + hold.as_millis() as u64,
        "a.1 started {} ms after the hold began, within the {hold:?} hold",
        a1 - limited
    );
    let b_during = (0..4)
        .map(|i| at(&events, "start", &format!("b.{i}")))
        .filter(|t| *t > limited && *t < limited + hold.as_millis() as u64)
        .count();
    assert!(b_during > 0, "group b ran nothing while only a was held");
    let a0 = q.job("a.0").await.unwrap().unwrap();
    assert_eq!((a0.state, a0.attempt), (JobState::Completed, 1), "{a0:?}");
}

#[tokio::test]
async fn a_rate_limited_job_without_a_group_holds_the_queue() {
    let env = Env::single();
    let q = env.queue("rq");
    let hold = Duration::from_millis(1500);
    let opts = |id: &str| JobOptions::default().job_id(id).attempts(1);
    q.add_bulk(&[
        NewJob::new("n", "limited").with_opts(opts("u.0")),
        NewJob::new("n", "ok").with_opts(opts("u.1")),
    ])
    .await
    .unwrap();
    let events: Events = Arc::default();
    let w = start(worker(&env, "rq", hold, events.clone()));
    crate::common::wait_until(Duration::from_secs(10), "the queue held", || async {
        q.counts().await.unwrap().held_until_ms.is_some()
    })
    .await;
    assert!(env.cli(&["stats", "rq"]).contains("held until"));
    until_completed(&q, 2).await;
    w.stop().await;
    let limited = at(&events, "limited", "u.0");
    let u1 = at(&events, "start", "u.1");
    assert!(
        u1 >= limited + hold.as_millis() as u64,
        "u.1 started {} ms after the queue's hold began",
        u1 - limited
    );
    let u0 = q.job("u.0").await.unwrap().unwrap();
    assert_eq!((u0.state, u0.attempt), (JobState::Completed, 1), "{u0:?}");
}

/// Exit 76 with `{"retry_after_ms": 700}` from an exec command, with worker processes.
async fn exec_rate_limited(env: Env) {
    let q = env.queue("rexec");
    let mut jobs = vec![job("a", 0, "limited"), job("a", 1, "ok")];
    jobs.extend((0..3).map(|i| job("b", i, "ok")));
    q.add_bulk(&jobs).await.unwrap();
    let w = env.worker("rexec", 1);
    until_completed(&q, 5).await;
    drop(w);
    let ledger = std::fs::read_to_string(env.ledger_path()).unwrap();
    let a0: Vec<&str> = ledger
        .lines()
        .filter(|l| l.starts_with("start a.0"))
        .collect();
    assert_eq!(a0, ["start a.0 1", "start a.0 1"], "{ledger}");
    let info = q.job("a.0").await.unwrap().unwrap();
    assert_eq!((info.state, info.attempt), (JobState::Completed, 1));
    // Group a waited out its hold: a.1 started after group b's jobs, which kept going.
    let pos = |p: &str| ledger.lines().position(|l| l.starts_with(p)).unwrap();
    assert!(pos("limited a.0") < pos("start b.0"), "{ledger}");
    assert!(pos("start b.0") < pos("start a.1"), "{ledger}");
}

#[tokio::test]
async fn an_exec_command_says_rate_limited_with_exit_76() {
    exec_rate_limited(Env::single()).await;
}

#[tokio::test]
async fn cluster_an_exec_command_says_rate_limited() {
    exec_rate_limited(Env::cluster()).await;
}
