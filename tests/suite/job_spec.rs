//! A job's name, run options and payload are one hash field, `spec` (src/job/spec.rs).
//! A job stored by an earlier baton has the three fields `name`, `data` and `opts`
//! instead: it is shown, listed, debounced and run as before, and the first script
//! that reads it for a run moves it to `spec` (lua/common.lua `legacy_spec`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use baton::{handler_fn, Dedup, JobContext, JobError, JobOptions, JobState, Queue, Worker};
use redis::Commands;
use serde_json::{json, Value};

use crate::common::{expand_by_hand, set_stored_spec, spec_parts, start, wait_until, RedisServer};

/// Rewrites job `id` of queue `q` as an earlier baton stored it: `name`, `data` and
/// `opts` instead of `spec` ("<name> NUL <opts length>:<opts><data>").
fn store_as_before_spec(redis: &RedisServer, q: &str, id: &str) {
    expand_by_hand(redis, q, id);
    let key = format!("baton:{{{q}}}:job:{id}");
    let mut c = redis.conn();
    let spec: Vec<u8> = c.hget(&key, "spec").unwrap();
    let (name, opts, data) = spec_parts(&spec);
    let _: () = redis::pipe()
        .hset(&key, "name", name)
        .hset(&key, "opts", opts)
        .hset(&key, "data", data)
        .hdel(&key, "spec")
        .query(&mut c)
        .unwrap();
}

fn fields(redis: &RedisServer, q: &str, id: &str) -> Vec<String> {
    let h: BTreeMap<String, Vec<u8>> = redis
        .conn()
        .hgetall(format!("baton:{{{q}}}:job:{id}"))
        .unwrap();
    h.into_keys().collect()
}

#[tokio::test]
async fn a_job_stored_before_the_spec_field_is_shown_debounced_and_run() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "old").unwrap();
    let plain = q
        .add(
            "greet",
            &json!({"to": "ada"}),
            JobOptions::default().attempts(5),
        )
        .await
        .unwrap()
        .id;
    let bounce = || {
        JobOptions::default()
            .attempts(2)
            .dedup(Dedup::debounce("d", Duration::from_secs(60)))
    };
    let debounced = q.add("tick", &json!(1), bounce()).await.unwrap().id;
    for id in [&plain, &debounced] {
        store_as_before_spec(&redis, "old", id);
        assert!(!fields(&redis, "old", id).contains(&"spec".to_string()));
    }

    // Shown and listed from the three fields.
    let j = q.job(&plain).await.unwrap().unwrap();
    assert_eq!(
        (j.name.as_str(), &j.data, j.attempts, j.state),
        ("greet", &json!({"to": "ada"}), 5, JobState::Waiting)
    );
    let rows = q.summaries(std::slice::from_ref(&plain)).await.unwrap();
    assert_eq!(rows[0].as_ref().map(|r| r.name.as_str()), Some("greet"));

    // A debounced add gives the old job its payload.
    let again = q.add("tick", &json!(2), bounce()).await.unwrap();
    assert_eq!(again.id, debounced);
    let d = q.job(&debounced).await.unwrap().unwrap();
    assert_eq!((d.name.as_str(), &d.data), ("tick", &json!(2)));
    q.promote(&debounced).await.unwrap();

    // Run: the handler gets its name, payload and options; the kept job has `spec`.
    let ran: Arc<Mutex<Vec<(String, Value, u32)>>> = Arc::default();
    let seen = ran.clone();
    let w = Worker::builder(redis.url(), "old")
        .build(handler_fn(move |d: Value, ctx: JobContext| {
            seen.lock()
                .unwrap()
                .push((ctx.name().to_string(), d, ctx.attempts()));
            async move { Ok::<_, JobError>(json!("done")) }
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(20), "both completed", || async {
        q.counts().await.unwrap().completed == 2
    })
    .await;
    run.stop().await;
    let mut ran = ran.lock().unwrap().clone();
    ran.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ran,
        [
            ("greet".to_string(), json!({"to": "ada"}), 5),
            ("tick".to_string(), json!(2), 2)
        ]
    );
    for id in [&plain, &debounced] {
        let f = fields(&redis, "old", id);
        assert!(f.contains(&"spec".to_string()), "{id}: {f:?}");
        for gone in ["name", "data", "opts"] {
            assert!(!f.contains(&gone.to_string()), "{id}: {f:?}");
        }
    }
    let j = q.job(&plain).await.unwrap().unwrap();
    assert_eq!(
        (j.name.as_str(), &j.data, j.state),
        ("greet", &json!({"to": "ada"}), JobState::Completed)
    );
}

#[tokio::test]
async fn a_plain_job_is_compact_and_another_is_stored_as_one_spec_field() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "new").unwrap();
    let plain = q
        .add("n", &json!({"a": 1}), JobOptions::default())
        .await
        .unwrap()
        .id;
    let later = q
        .add(
            "n",
            &json!({"a": 2}),
            JobOptions::default().delay(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .id;
    // A plain job: one field of the queue's jobs hash, no hash of its own.
    assert!(fields(&redis, "new", &plain).is_empty());
    let v: Vec<u8> = redis.conn().hget("baton:{new}:jobs", &plain).unwrap();
    let job = baton::job::Compact::parse(&v).unwrap();
    assert!(std::str::from_utf8(job.ts).unwrap().parse::<u64>().is_ok());
    assert!(!job.keep.is_empty() && job.done.is_none());
    assert_eq!(spec_parts(job.spec).0, b"n");
    // A delayed one: its own hash, name, options and payload as one field.
    assert_eq!(
        fields(&redis, "new", &later),
        ["keep", "ready", "spec", "state", "ts"]
    );
    let j = q.job(&plain).await.unwrap().unwrap();
    assert_eq!(
        (j.name.as_str(), &j.data, j.state),
        ("n", &json!({"a": 1}), JobState::Waiting)
    );
}

#[tokio::test]
async fn a_job_whose_spec_is_malformed_fails_with_the_reason_and_the_rest_run() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "bad").unwrap();
    let broken = q
        .add("x", &json!(1), JobOptions::default())
        .await
        .unwrap()
        .id;
    let fine = q
        .add("y", &json!(2), JobOptions::default())
        .await
        .unwrap()
        .id;
    set_stored_spec(&redis, "bad", &broken, b"no nul here");
    let w = Worker::builder(redis.url(), "bad")
        .build(handler_fn(|d: Value, _ctx: JobContext| async move {
            Ok::<_, JobError>(d)
        }))
        .unwrap();
    let run = start(w);
    wait_until(
        Duration::from_secs(20),
        "one failed, one completed",
        || async {
            let c = q.counts().await.unwrap();
            (c.failed, c.completed) == (1, 1)
        },
    )
    .await;
    run.stop().await;
    let b = q.job(&broken).await.unwrap().unwrap();
    assert_eq!(b.state, JobState::Failed);
    assert_eq!(
        b.error.as_deref(),
        Some("corrupt job record: field spec is \"no nul here\"")
    );
    assert_eq!(q.job(&fine).await.unwrap().unwrap().result, Some(json!(2)));
}
