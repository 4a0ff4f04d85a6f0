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
