//! Forgettable completions (lua/finish.lua, src/scripts/claim.rs): a job the claim
//! showed compact and kept by none is completed without its value being read: one
//! HDEL of the batch's. A job expanded while it ran (a progress record, a cancel
//! request) has no value left to delete: its completion still goes the full way, so
//! its hash is deleted and a cancel request still wins; and the events stream still
//! says each job completed.

use std::time::Duration;

use baton::{
    handler_fn, JobContext, JobError, JobOptions, JobOutcome, JobState, Queue, Retention, Worker,
};
use redis::Commands;
use serde_json::{json, Value};

use crate::common::{start, wait_until, RedisServer};

#[tokio::test]
async fn a_job_expanded_while_it_ran_is_finished_the_full_way() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "fg").unwrap();
    q.set_events(Some(10_000)).await.unwrap();
    let none = JobOptions::default().keep_completed(Retention::none());
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let w = Worker::builder(redis.url(), "fg")
        .concurrency(20)
        .build(handler_fn(move |d: Value, ctx: JobContext| {
            let mut go = go_rx.clone();
            async move {
                if d == json!("cancel") {
                    // Completes all the same once cancelled: the cancel request wins.
                    ctx.cancelled().await;
                    return Ok::<_, JobError>(d);
                }
                let _ = go.wait_for(|g| *g).await;
                if d == json!("progress") {
                    ctx.progress(&json!({"half": true})).await.unwrap();
                }
                Ok::<_, JobError>(d)
            }
        }))
        .unwrap();
    let mut quiet = Vec::new();
    for i in 0..8 {
        quiet.push(q.add("n", &json!(i), none.clone()).await.unwrap().id);
    }
    let talks = q
        .add("n", &json!("progress"), none.clone())
        .await
        .unwrap()
        .id;
    let cancelled = q.add("n", &json!("cancel"), none.clone()).await.unwrap().id;
    let run = start(w);
    wait_until(Duration::from_secs(10), "all running", || async {
        q.counts().await.unwrap().active == 10
    })
    .await;
    let waiters: Vec<_> = [&quiet[0], &talks, &cancelled]
        .into_iter()
        .map(|id| {
            let (q, id) = (q.clone(), id.clone());
            tokio::spawn(async move { q.wait_finished(&id, Duration::from_secs(20)).await })
        })
        .collect();
    q.cancel(&cancelled).await.unwrap();
    go_tx.send(true).unwrap();
    wait_until(Duration::from_secs(10), "all finished", || async {
        let c = q.counts().await.unwrap();
        c.active == 0 && c.waiting == 0 && c.cancelled == 1
    })
    .await;
    let mut outcomes = Vec::new();
    for w in waiters {
        outcomes.push(w.await.unwrap().unwrap());
    }
    assert_eq!(
        outcomes[..2],
        [
            Some(JobOutcome::Completed { result: json!(0) }),
            Some(JobOutcome::Completed {
                result: json!("progress")
            }),
        ]
    );
    assert!(
        matches!(outcomes[2], Some(JobOutcome::Cancelled { .. })),
        "{outcomes:?}"
    );
    let c = q.job(&cancelled).await.unwrap().expect("kept as cancelled");
    assert_eq!(c.state, JobState::Cancelled);
    // Nothing else is left: no value (the one field is the hash's padding), no hash.
    let mut conn = redis.conn();
    let fields: Vec<String> = conn.hkeys("baton:{fg}:jobs").unwrap();
    assert_eq!(fields, [""]);
    let hashes: Vec<String> = conn.keys("baton:{fg}:job:*").unwrap();
    assert_eq!(hashes, [format!("baton:{{fg}}:job:{cancelled}")]);
    assert_eq!(q.counts().await.unwrap().completed, 0);
    let completed = q
        .events(None, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event == "completed")
        .count();
    assert_eq!(completed, 9, "every completed job has its event");
    run.stop().await;
}
