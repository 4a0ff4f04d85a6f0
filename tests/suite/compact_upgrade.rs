//! Compact jobs stored by an earlier baton: a kept completion as session 9 wrote it
//! (its outcome ahead of its value in `jobs`, nothing in `done`) is read, waited on,
//! refused a retry, removed and trimmed like one stored now.

use std::time::Duration;

use baton::{Error, JobOptions, JobState, Queue};
use redis::Commands;
use serde_json::json;

use crate::common::RedisServer;
use crate::compact_jobs::is_compact;

/// A kept completion as a baton of session 9 stored it: the outcome ahead of the value
/// in `jobs`, nothing in `done`. Shown with its result, waited on, removed whole, and
/// trimmed by `clean` like the others.
#[tokio::test]
async fn a_completion_stored_with_its_outcome_in_its_value_is_read_and_deleted() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "old").unwrap();
    let mut ids = Vec::new();
    for i in 0..2 {
        ids.push(
            q.add("n", &json!(i), JobOptions::default())
                .await
                .unwrap()
                .id,
        );
    }
    let mut c = redis.conn();
    for id in &ids {
        assert!(is_compact(&redis, "old", id));
        let v: Vec<u8> = c.hget("baton:{old}:jobs", id).unwrap();
        let job = baton::job::Compact::parse(&v).unwrap();
        let result = rmp_serde::to_vec(&json!({"was": id})).unwrap();
        let old = baton::job::Compact {
            done: Some(baton::job::Done {
                finished: b"1700000000000",
                lease: b"170000000000000:1:1700000000000:w",
                result: &result,
            }),
            ..job
        }
        .encode();
        let _: () = redis::pipe()
            .hset("baton:{old}:jobs", id, old)
            .lrem("baton:{old}:wait", 0, id)
            .zadd("baton:{old}:completed", id, 1_700_000_000_000u64)
            .query(&mut c)
            .unwrap();
    }
    let j = q.job(&ids[0]).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Completed);
    assert_eq!(j.result, Some(json!({"was": ids[0]})));
    assert_eq!(
        q.wait_finished(&ids[0], Duration::from_secs(1))
            .await
            .unwrap(),
        Some(baton::JobOutcome::Completed {
            result: json!({"was": ids[0]})
        })
    );
    assert!(matches!(
        q.retry(&ids[0]).await,
        Err(Error::InvalidState { .. })
    ));
    q.remove(&ids[0]).await.unwrap();
    assert!(q.job(&ids[0]).await.unwrap().is_none());
    assert!(!is_compact(&redis, "old", &ids[0]));
    assert_eq!(
        q.clean(JobState::Completed, Duration::ZERO, 10)
            .await
            .unwrap(),
        1
    );
    assert!(q.job(&ids[1]).await.unwrap().is_none());
    assert!(!is_compact(&redis, "old", &ids[1]));
    let left: Vec<String> = c.hkeys("baton:{old}:jobs").unwrap();
    assert_eq!(left, [""], "only the padding is left");
}
