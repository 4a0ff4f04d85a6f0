//! The dedup scenarios on one Redis, and the options refused before anything is sent.

use std::time::Duration;

use baton::conn::RedisConfig;
use baton::{Dedup, Error, JobOptions, Queue, Scheduler};
use serde_json::json;

use super::scenarios;
use crate::common::RedisServer;

fn cfg(r: &RedisServer) -> RedisConfig {
    RedisConfig::url(r.url())
}

#[tokio::test]
async fn dedup_simple_mode_and_its_release_on_every_end() {
    let r = RedisServer::start();
    scenarios::simple_mode(cfg(&r), "dsimple").await;
}

#[tokio::test]
async fn dedup_stale_keys_do_not_block_an_add() {
    let r = RedisServer::start();
    scenarios::stale_keys(cfg(&r), "dstale").await;
}

#[tokio::test]
async fn dedup_ttl_mode_stands_for_its_time() {
    let r = RedisServer::start();
    scenarios::ttl_mode(cfg(&r), "dttl").await;
}

#[tokio::test]
async fn dedup_debounce_replaces_payload_and_restarts_delay() {
    let r = RedisServer::start();
    scenarios::debounce_mode(cfg(&r), "ddeb").await;
}

#[tokio::test]
async fn dedup_concurrent_adds_leave_exactly_one_job() {
    let r = RedisServer::start();
    scenarios::concurrent_adds(cfg(&r), "dconc").await;
}

#[tokio::test]
async fn dedup_bad_options_are_refused_before_sending() {
    let r = RedisServer::start();
    let q = Queue::connect(r.url(), "dbad").unwrap();
    let cases = [
        JobOptions::default().dedup(Dedup::simple("")),
        JobOptions::default().dedup(Dedup::simple("a{b}")),
        JobOptions::default().dedup(Dedup::ttl("k", Duration::ZERO)),
        JobOptions::default()
            .dedup(Dedup::debounce("k", Duration::from_secs(1)))
            .delay(Duration::from_secs(1)),
    ];
    for o in cases {
        match q.add("j", &json!(1), o.clone()).await {
            Err(Error::Invalid(_)) => {}
            other => panic!("{o:?}: {other:?}"),
        }
    }
    assert_eq!(q.counts().await.unwrap().waiting, 0);
    let s = Scheduler::new(baton::Repeat::Every(Duration::from_secs(60)), "j", json!(1))
        .opts(JobOptions::default().dedup(Dedup::simple("k")));
    assert!(matches!(
        q.upsert_scheduler("s", &s).await,
        Err(Error::Invalid(_))
    ));
}

/// A job with both a group and a dedup key: both ride on the job's `keep` field
/// ("…|g<group>|<mode><key>"). The duplicate add is refused, the finish releases the key
/// and gives the group its room back (a group cap of 1 would block the next job if it
/// did not), and a debounced job in a group or a group holding '|' is refused.
#[tokio::test]
async fn a_grouped_job_with_a_dedup_key_keeps_both() {
    let r = RedisServer::start();
    let q = Queue::connect(r.url(), "dgrp").unwrap();
    q.set_group_limits(Some(1), None).await.unwrap();
    let opts = || JobOptions::default().group("t1").dedup(Dedup::simple("k1"));
    let a = q.add("j", &json!(1), opts()).await.unwrap();
    assert!(a.added);
    let b = q.add("j", &json!(2), opts()).await.unwrap();
    assert!(!b.added && b.deduplicated, "{b:?}");
    assert_eq!(b.id, a.id);
    let mut c = r.conn();
    let keep: String = redis::cmd("HGET")
        .arg(format!("baton:{{dgrp}}:job:{}", a.id))
        .arg("keep")
        .query(&mut c)
        .unwrap();
    assert!(keep.ends_with("|gt1|sk1"), "{keep}");

    let worker = baton::Worker::builder(r.url(), "dgrp")
        .build(baton::handler_fn(|_: serde_json::Value, _| async {
            Ok::<_, baton::JobError>(())
        }))
        .unwrap();
    let run = crate::common::start(worker);
    crate::common::wait_until(Duration::from_secs(10), "the first job done", || async {
        q.counts().await.unwrap().completed == 1
    })
    .await;
    let key_left: bool = redis::cmd("EXISTS")
        .arg("baton:{dgrp}:dedup:k1")
        .query(&mut c)
        .unwrap();
    assert!(!key_left, "the dedup key was released");
    let again = q.add("j", &json!(3), opts()).await.unwrap();
    assert!(again.added && again.id != a.id, "{again:?}");
    crate::common::wait_until(
        Duration::from_secs(10),
        "the group's next job done",
        || async { q.counts().await.unwrap().completed == 2 },
    )
    .await;
    run.stop().await;

    for bad in [
        JobOptions::default()
            .group("t1")
            .dedup(Dedup::debounce("k2", Duration::from_secs(1))),
        JobOptions::default().group("a|b"),
    ] {
        assert!(
            matches!(q.add("j", &json!(4), bad).await, Err(Error::Invalid(_))),
            "refused"
        );
    }
}
