//! A job deleted when it finishes (a retention that keeps none) takes every key of its
//! own along: its hash, and its steps, logs and error history when it has them. finish.lua
//! names those three in its DEL only for a job whose hash has the field `side`, which
//! their writers set (`mark_side` in lua/common.lua), so a plain job costs one key.

use std::time::Duration;

use baton::{handler_fn, Backoff, JobContext, JobError, JobOptions, Queue, Retention, Worker};
use redis::Commands;
use serde_json::{json, Value};

use crate::common::{start, wait_until, RedisServer};

/// Every key of the queue whose name ends with `:<id>`.
fn keys_of(redis: &RedisServer, queue: &str, id: &str) -> Vec<String> {
    let mut c = redis.conn();
    let all: Vec<String> = c.keys(format!("baton:{{{queue}}}:*")).unwrap();
    all.into_iter()
        .filter(|k| k.ends_with(&format!(":{id}")))
        .collect()
}

#[tokio::test]
async fn a_job_deleted_at_its_finish_leaves_no_key_behind() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "bare").unwrap();
    let none = || {
        JobOptions::default()
            .keep_completed(Retention::none())
            .keep_failed(Retention::none())
            .attempts(2)
            .backoff(Backoff::Fixed {
                delay: Duration::from_millis(10),
            })
    };
    // "rich": a step, a log line and a failed first attempt, then completes; "plain":
    // none of those; "lost": a step and a log line, then fails for good.
    let rich = q.add("rich", &json!({}), none()).await.unwrap().id;
    let plain = q.add("plain", &json!({}), none()).await.unwrap().id;
    let lost = q.add("lost", &json!({}), none()).await.unwrap().id;
    let during = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = during.clone();
    let probe = redis.url();
    let w = Worker::builder(redis.url(), "bare")
        .build(handler_fn(move |_d: Value, ctx: JobContext| {
            let (seen, probe) = (seen.clone(), probe.clone());
            async move {
                if ctx.name() == "plain" {
                    return Ok::<_, JobError>(json!(0));
                }
                ctx.step("s", async { Ok::<_, JobError>(1u8) }).await?;
                ctx.log("a line")
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
                let side: Option<String> = redis::Client::open(probe)
                    .unwrap()
                    .get_connection()
                    .unwrap()
                    .hget(format!("baton:{{bare}}:job:{}", ctx.id()), "side")
                    .unwrap();
                seen.lock().unwrap().push((ctx.name().to_string(), side));
                if ctx.name() == "lost" || ctx.attempt() == 1 {
                    return Err(JobError::retry("not yet"));
                }
                Ok(json!(1))
            }
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(20), "all three gone", || async {
        q.job(&rich).await.unwrap().is_none()
            && q.job(&plain).await.unwrap().is_none()
            && q.job(&lost).await.unwrap().is_none()
    })
    .await;
    run.stop().await;
    for id in [&rich, &plain, &lost] {
        assert_eq!(
            keys_of(&redis, "bare", id),
            Vec::<String>::new(),
            "job {id}"
        );
    }
    let seen = during.lock().unwrap().clone();
    assert!(
        seen.iter().all(|(_, side)| side.as_deref() == Some("1")),
        "a job with steps and logs is marked while it runs: {seen:?}"
    );
    assert_eq!(seen.len(), 4, "rich ran twice, lost twice: {seen:?}");
}

#[tokio::test]
async fn a_job_trimmed_by_retention_leaves_no_key_behind() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "trimmed").unwrap();
    let last_one = || JobOptions::default().keep_completed(Retention::last(1));
    let w = Worker::builder(redis.url(), "trimmed")
        .build(handler_fn(|_d: Value, ctx: JobContext| async move {
            if ctx.name() == "rich" {
                ctx.step("s", async { Ok::<_, JobError>(1u8) }).await?;
                ctx.log("a line")
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
            }
            Ok::<_, JobError>(json!(1))
        }))
        .unwrap();
    let run = start(w);
    // Each completion keeps the last one only: the one before is trimmed.
    let mut ids = Vec::new();
    for name in ["rich", "plain", "last"] {
        let id = q.add(name, &json!({}), last_one()).await.unwrap().id;
        wait_until(Duration::from_secs(20), "completed", || async {
            q.job(&id).await.unwrap().map(|j| j.state) == Some(baton::JobState::Completed)
        })
        .await;
        ids.push(id);
    }
    run.stop().await;
    for id in &ids[..2] {
        assert!(q.job(id).await.unwrap().is_none(), "{id} trimmed");
        assert_eq!(
            keys_of(&redis, "trimmed", id),
            Vec::<String>::new(),
            "job {id}"
        );
    }
    assert!(
        q.job(&ids[2]).await.unwrap().is_some(),
        "the last one is kept"
    );
}
