//! `wait_finished` and `add_and_wait`, with the events stream on and off.

use std::time::Duration;

use super::{handler, worker};
use crate::common::{start, wait_until, RedisServer};
use baton::{JobOptions, JobOutcome, JobState, Queue, Retention};
use serde_json::json;

async fn outcomes(q: &Queue) {
    let long = Duration::from_secs(20);
    let (_, out) = q
        .add_and_wait("n", &"ok", JobOptions::default(), long)
        .await
        .unwrap();
    assert_eq!(
        out,
        Some(JobOutcome::Completed {
            result: json!({"done": true})
        })
    );
    let (id, out) = q
        .add_and_wait("n", &"bad", JobOptions::default(), long)
        .await
        .unwrap();
    assert_eq!(
        out,
        Some(JobOutcome::Failed {
            error: "boom".into()
        })
    );
    // Ended already: at once.
    assert_eq!(
        q.wait_finished(&id, Duration::ZERO).await.unwrap(),
        Some(JobOutcome::Failed {
            error: "boom".into()
        })
    );
    // Not ended in time: None, and the job goes on.
    let later = JobOptions::default().delay(Duration::from_secs(3600));
    let (id, out) = q
        .add_and_wait("n", &"ok", later, Duration::from_millis(300))
        .await
        .unwrap();
    assert_eq!(out, None);
    assert_eq!(q.job(&id).await.unwrap().unwrap().state, JobState::Delayed);
    // Cancelled while waited on.
    let id = q.add("n", &"hang", JobOptions::default()).await.unwrap().id;
    let waiter = {
        let (q, id) = (q.clone(), id.clone());
        tokio::spawn(async move { q.wait_finished(&id, long).await })
    };
    wait_until(long, "hang running", || async {
        q.job(&id).await.unwrap().unwrap().state == JobState::Active
    })
    .await;
    q.cancel(&id).await.unwrap();
    assert!(matches!(
        waiter.await.unwrap().unwrap(),
        Some(JobOutcome::Cancelled { .. })
    ));
    assert!(matches!(
        q.wait_finished("no-such-job", long).await,
        Err(baton::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn wait_finished_with_the_stream_off() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "w").unwrap();
    let w = start(worker(redis.url(), "w").build(handler()).unwrap());
    outcomes(&q).await;
    w.stop().await;
    assert_eq!(
        q.last_event_id().await.unwrap(),
        "0-0",
        "no events while off"
    );
}

#[tokio::test]
async fn wait_finished_with_the_stream_on() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "w").unwrap();
    q.set_events(Some(1000)).await.unwrap();
    let w = start(worker(redis.url(), "w").build(handler()).unwrap());
    outcomes(&q).await;
    // Kept by none of its retention: the hash is gone at once; the event carries the
    // result.
    let none = JobOptions::default().keep_completed(Retention::none());
    let (_, out) = q
        .add_and_wait("n", &"slow", none, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(
        out,
        Some(JobOutcome::Completed {
            result: json!({"done": true})
        })
    );
    w.stop().await;
}

#[tokio::test]
async fn following_the_stream_sees_new_events_only() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "f").unwrap();
    q.set_events(Some(1000)).await.unwrap();
    q.add("n", &"ok", JobOptions::default()).await.unwrap();
    let mut f = q.follow_events(None).await.unwrap();
    // Nothing new: empty after the wait (the blocking read outlives no reply limit).
    assert!(f
        .next(Duration::from_millis(2500))
        .await
        .unwrap()
        .is_empty());
    let id = q.add("n", &"ok", JobOptions::default()).await.unwrap().id;
    let got = f.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].event.as_str(), got[0].job_id.as_str()),
        ("added", id.as_str())
    );
    assert_eq!(f.cursor(), got[0].stream_id);
}
