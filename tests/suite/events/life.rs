//! Events read back in the order of each job's life.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{all_events, event, handler, names_of, worker};
use crate::common::{spawn_child_test, start, wait_until, RedisServer};
use baton::{JobOptions, JobState, NewJob, Queue};
use serde_json::json;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

async fn until_state(q: &Queue, id: &str, want: JobState) {
    wait_until(Duration::from_secs(20), &format!("{id} {want}"), || async {
        q.job(id).await.unwrap().is_some_and(|j| j.state == want)
    })
    .await;
}

#[tokio::test]
async fn a_jobs_life_reads_back_in_order_with_retries_failure_cancel_and_remove() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "life").unwrap();
    // Off: the scripts write nothing.
    q.add("n", &"ok", JobOptions::default()).await.unwrap();
    assert!(all_events(&q).await.is_empty(), "events written while off");
    q.remove(&q.list(JobState::Waiting, 0, 1).await.unwrap()[0])
        .await
        .unwrap();
    assert!(all_events(&q).await.is_empty(), "events written while off");

    q.set_events(Some(1000)).await.unwrap();
    assert_eq!(q.counts().await.unwrap().events, Some(1000));
    let ok = q.add("n", &"ok", JobOptions::default()).await.unwrap().id;
    let flaky = q
        .add("n", &"flaky", JobOptions::default().attempts(2))
        .await
        .unwrap()
        .id;
    let bad = q.add("n", &"bad", JobOptions::default()).await.unwrap().id;
    let later = q
        .add(
            "n",
            &"ok",
            JobOptions::default().delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap()
        .id;
    let w = start(worker(redis.url(), "life").build(handler()).unwrap());
    until_state(&q, &ok, JobState::Completed).await;
    until_state(&q, &flaky, JobState::Completed).await;
    until_state(&q, &bad, JobState::Failed).await;
    q.cancel(&later).await.unwrap();
    q.retry(&bad).await.unwrap();
    until_state(&q, &bad, JobState::Failed).await;
    q.remove(&ok).await.unwrap();
    w.stop().await;

    let ev = all_events(&q).await;
    assert_eq!(
        names_of(&ev, &ok),
        s(&["added", "active", "progress", "completed", "removed"])
    );
    assert_eq!(
        names_of(&ev, &flaky),
        s(&[
            "added",
            "active",
            "retried",
            "active",
            "progress",
            "completed"
        ])
    );
    assert_eq!(
        names_of(&ev, &bad),
        s(&["added", "active", "failed", "retried", "active", "failed"])
    );
    assert_eq!(names_of(&ev, &later), s(&["added", "cancelled"]));

    let done = event(&ev, &ok, "completed");
    assert_eq!(done.fields["result"], json!({"done": true}));
    assert_eq!(done.fields["attempt"], json!(1));
    assert_eq!(event(&ev, &ok, "progress").fields["progress"], json!(50));
    assert_eq!(
        event(&ev, &ok, "removed").fields["state"],
        json!("completed")
    );
    assert_eq!(event(&ev, &bad, "failed").fields["error"], json!("boom"));
    assert_eq!(event(&ev, &bad, "retried").fields["by"], json!("request"));
    assert_eq!(
        event(&ev, &flaky, "retried").fields["error"],
        json!("first try")
    );
    assert_eq!(
        event(&ev, &later, "cancelled").fields["error"],
        json!("cancelled by request")
    );
    assert!(
        event(&ev, &later, "added").fields["delayed"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(event(&ev, &ok, "active").fields["worker"].is_string());
    // Stream ids only grow, and resuming from one returns exactly what follows it.
    let mid = &ev[ev.len() / 2];
    let rest = q.events(Some(&mid.stream_id), 1000).await.unwrap();
    assert_eq!(rest, ev[ev.len() / 2 + 1..].to_vec());
    assert!(matches!(
        q.events(Some("not-an-id"), 10).await,
        Err(baton::Error::Invalid(_))
    ));

    // Off again: nothing more is written, what was written stays.
    q.set_events(None).await.unwrap();
    q.add("n", &"ok", JobOptions::default()).await.unwrap();
    assert_eq!(all_events(&q).await.len(), ev.len());
}

#[tokio::test]
async fn the_cap_bounds_the_stream() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "capped").unwrap();
    q.set_events(Some(100)).await.unwrap();
    let jobs: Vec<_> = (0..2000).map(|_| NewJob::new("n", "ok")).collect();
    q.add_bulk(&jobs[..1000]).await.unwrap();
    q.add_bulk(&jobs[1000..]).await.unwrap();
    let n = all_events(&q).await.len();
    // MAXLEN ~ trims whole nodes (100 entries each by default): about the cap.
    assert!(
        (100..=300).contains(&n),
        "{n} events kept under a cap of 100"
    );
}

/// The child side of the SIGKILL tests: a worker process running `hang` and `slow` jobs.
#[tokio::test]
async fn child_events_worker() {
    if std::env::var("BATON_CHILD").is_err() {
        return;
    }
    let url = std::env::var("BATON_URL").unwrap();
    let queue = std::env::var("BATON_QUEUE").unwrap();
    let w = worker(url.as_str(), &queue)
        .concurrency(2)
        .build(handler())
        .unwrap();
    w.run_until_signal().await.unwrap();
}

fn child(redis: &RedisServer, q: &str) -> crate::common::ChildGuard {
    spawn_child_test(
        "events::life::child_events_worker",
        &[("BATON_URL", redis.url()), ("BATON_QUEUE", q.to_string())],
    )
}

#[tokio::test]
async fn a_sigkilled_workers_job_reads_stalled_then_runs_again() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "stall").unwrap();
    q.set_events(Some(1000)).await.unwrap();
    let id = q.add("n", &"hang", JobOptions::default()).await.unwrap().id;
    let mut c = child(&redis, "stall");
    until_state(&q, &id, JobState::Active).await;
    c.kill().unwrap(); // SIGKILL
    c.wait().unwrap();
    // The sweeper of another worker recovers it; it hangs again there: cancel it.
    let w = start(worker(redis.url(), "stall").build(handler()).unwrap());
    wait_until(
        Duration::from_secs(20),
        "recovered and running again",
        || async { names_of(&all_events(&q).await, &id).len() >= 4 },
    )
    .await;
    q.cancel(&id).await.unwrap();
    until_state(&q, &id, JobState::Cancelled).await;
    w.stop().await;
    let ev = all_events(&q).await;
    assert_eq!(
        names_of(&ev, &id),
        s(&["added", "active", "stalled", "active", "cancelled"])
    );
    assert_eq!(event(&ev, &id, "stalled").fields["stalled"], json!(1));
    let workers: BTreeSet<_> = ev
        .iter()
        .filter(|e| e.event == "active")
        .map(|e| e.fields["worker"].to_string())
        .collect();
    assert_eq!(workers.len(), 2, "run by the killed worker, then another");
}

#[tokio::test]
async fn several_worker_processes_keep_each_jobs_order() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "many").unwrap();
    q.set_events(Some(10_000)).await.unwrap();
    let children: Vec<_> = (0..3).map(|_| child(&redis, "many")).collect();
    let jobs: Vec<_> = (0..60)
        .map(|i| NewJob::new("n", if i % 3 == 0 { "flaky" } else { "slow" }))
        .collect();
    let ids: Vec<String> = q
        .add_bulk(&jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    wait_until(Duration::from_secs(60), "60 jobs completed", || async {
        q.counts().await.unwrap().completed == 60
    })
    .await;
    drop(children);
    let ev = all_events(&q).await;
    for (i, id) in ids.iter().enumerate() {
        let want = if i % 3 == 0 {
            s(&[
                "added",
                "active",
                "retried",
                "active",
                "progress",
                "completed",
            ])
        } else {
            s(&["added", "active", "progress", "completed"])
        };
        assert_eq!(names_of(&ev, id), want, "job {i}");
    }
    let workers: BTreeSet<_> = ev
        .iter()
        .filter(|e| e.event == "active")
        .map(|e| e.fields["worker"].to_string())
        .collect();
    assert!(workers.len() >= 2, "one process ran every job: {workers:?}");
}
