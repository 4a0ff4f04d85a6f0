//! Flow control (issue 11): a cap on a queue's running jobs and a rate limit on its
//! starts, both across all workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{baton_bin, start, wait_until, RedisServer};
use baton::conn::RedisConfig;
use baton::{handler_fn, JobContext, JobError, JobOptions, NewJob, Queue, Worker};

/// Running now and the most seen at once, over every worker of the test.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// Waits until the queue has `n` completed jobs (30 s at most), then stops the workers.
async fn until_completed(
    q: &Queue,
    n: u64,
    workers: impl IntoIterator<Item = crate::common::Running>,
) {
    wait_until(
        Duration::from_secs(30),
        &format!("{n} jobs completed"),
        || {
            let q = q.clone();
            async move { q.counts().await.map(|c| c.completed == n).unwrap_or(false) }
        },
    )
    .await;
    for w in workers {
        w.stop().await;
    }
}

fn worker(redis: impl Into<RedisConfig>, gauge: Arc<Gauge>) -> baton::Worker {
    Worker::builder(redis, "capped")
        .concurrency(5)
        .lease(Duration::from_secs(5))
        .shutdown_timeout(Duration::from_secs(2))
        .build(handler_fn(move |_: u32, _: JobContext| {
            let g = gauge.clone();
            async move {
                let n = g.now.fetch_add(1, Ordering::SeqCst) + 1;
                g.max.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(60)).await;
                g.now.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, JobError>(())
            }
        }))
        .unwrap()
}

#[tokio::test]
async fn a_queue_wide_cap_holds_across_workers_and_frees_as_jobs_finish() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "capped").unwrap();
    q.set_concurrency(Some(3)).await.unwrap();
    assert_eq!(q.counts().await.unwrap().concurrency, Some(3));
    let jobs: Vec<_> = (0..45u32).map(|i| NewJob::new("n", i)).collect();
    q.add_bulk(&jobs).await.unwrap();
    let gauge = Arc::new(Gauge::default());
    // Three workers of 5 slots each: 15 could run at once without the cap.
    let ws: Vec<_> = (0..3)
        .map(|_| start(worker(redis.url(), gauge.clone())))
        .collect();
    until_completed(&q, 45, ws).await;
    let max = gauge.max.load(Ordering::SeqCst);
    assert!(max <= 3, "{max} jobs ran at once under a cap of 3");
    assert_eq!(max, 3, "the cap's room was never used in full");

    // Without the cap, the workers' own concurrency is the limit again.
    q.set_concurrency(None).await.unwrap();
    assert_eq!(q.counts().await.unwrap().concurrency, None);
    let jobs: Vec<_> = (0..30u32)
        .map(|i| NewJob::new("n", i).with_opts(JobOptions::default()))
        .collect();
    q.add_bulk(&jobs).await.unwrap();
    let gauge = Arc::new(Gauge::default());
    let ws: Vec<_> = (0..3)
        .map(|_| start(worker(redis.url(), gauge.clone())))
        .collect();
    until_completed(&q, 75, ws).await;
    assert!(
        gauge.max.load(Ordering::SeqCst) > 3,
        "uncapped, more than 3 ran at once"
    );
}

#[tokio::test]
async fn the_cli_and_stats_set_and_show_the_cap() {
    let redis = RedisServer::start();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(baton_bin())
            .args(["--redis-url", &redis.url()])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let set: serde_json::Value =
        serde_json::from_str(&run(&["limit", "capped", "--concurrency", "2", "--json"])).unwrap();
    assert_eq!(set["concurrency"], 2);
    let stats: serde_json::Value =
        serde_json::from_str(&run(&["stats", "capped", "--json"])).unwrap();
    assert_eq!(stats["concurrency"], 2, "{stats}");
    assert!(run(&["stats", "capped"]).contains("at most 2 running"));
    let unset: serde_json::Value =
        serde_json::from_str(&run(&["limit", "capped", "--concurrency", "0", "--json"])).unwrap();
    assert!(unset["concurrency"].is_null());
    let rated: serde_json::Value =
        serde_json::from_str(&run(&["limit", "capped", "--rate", "100/1s", "--json"])).unwrap();
    assert_eq!(
        rated["rate"],
        serde_json::json!({"max": 100, "per_ms": 1000})
    );
    assert!(run(&["stats", "capped"]).contains("at most 100/1s started"));
    let out = std::process::Command::new(baton_bin())
        .args([
            "--redis-url",
            &redis.url(),
            "limit",
            "capped",
            "--rate",
            "fast",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("N/DURATION"));
    let unrated: serde_json::Value =
        serde_json::from_str(&run(&["limit", "capped", "--rate", "none", "--json"])).unwrap();
    assert!(unrated["rate"].is_null());
    let q = Queue::connect(redis.url(), "capped").unwrap();
    assert_eq!(q.counts().await.unwrap().concurrency, None);
}

#[tokio::test]
async fn the_cap_holds_on_a_cluster() {
    let cluster = crate::topology::RedisCluster::start(3, 0);
    let cfg = RedisConfig::cluster(cluster.seed_urls());
    let q = Queue::connect(cfg.clone(), "capped").unwrap();
    q.set_concurrency(Some(2)).await.unwrap();
    let jobs: Vec<_> = (0..20u32).map(|i| NewJob::new("n", i)).collect();
    q.add_bulk(&jobs).await.unwrap();
    let gauge = Arc::new(Gauge::default());
    let ws: Vec<_> = (0..2)
        .map(|_| start(worker(cfg.clone(), gauge.clone())))
        .collect();
    until_completed(&q, 20, ws).await;
    let max = gauge.max.load(Ordering::SeqCst);
    assert!(max <= 2, "{max} jobs ran at once under a cap of 2");
    assert_eq!(max, 2, "the cap's room was never used in full");
}

#[tokio::test]
async fn a_rate_limit_spreads_starts_over_windows_across_workers() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "capped").unwrap();
    q.set_rate_limit(Some((5, Duration::from_secs(1))))
        .await
        .unwrap();
    let rate = q.counts().await.unwrap().rate.expect("rate shown");
    assert_eq!((rate.max, rate.per_ms), (5, 1000));
    let jobs: Vec<_> = (0..20u32).map(|i| NewJob::new("n", i)).collect();
    q.add_bulk(&jobs).await.unwrap();
    let starts = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mk = |starts: Arc<std::sync::Mutex<Vec<std::time::Instant>>>| {
        Worker::builder(redis.url(), "capped")
            .concurrency(10)
            .build(handler_fn(move |_: u32, _: JobContext| {
                let starts = starts.clone();
                async move {
                    starts.lock().unwrap().push(std::time::Instant::now());
                    Ok::<_, JobError>(())
                }
            }))
            .unwrap()
    };
    // Two workers of 10 slots: without the limit all 20 start at once.
    let ws = [start(mk(starts.clone())), start(mk(starts.clone()))];
    until_completed(&q, 20, ws).await;
    let mut t = starts.lock().unwrap().clone();
    t.sort();
    // Five per window of one second: 20 jobs take four windows, so the last start
    // comes at least three seconds after the first, and the first window holds five.
    let span = t[19] - t[0];
    assert!(
        span >= Duration::from_millis(2900),
        "20 starts within {span:?}"
    );
    let first_window = t
        .iter()
        .filter(|s| **s - t[0] < Duration::from_millis(900))
        .count();
    assert!(
        first_window <= 5,
        "{first_window} starts in the first window"
    );

    // Removed: the next jobs start without waiting.
    q.set_rate_limit(None).await.unwrap();
    assert!(q.counts().await.unwrap().rate.is_none());
}

#[tokio::test]
async fn the_http_api_sets_and_removes_limits_field_by_field() {
    use reqwest::{Method, StatusCode};
    use serde_json::json;
    let redis = RedisServer::start();
    let api = crate::http_api::support::Api::start(&redis.url(), None).await;
    let path = "/v1/queues/capped/limits";
    let (st, body) = api
        .call(
            Method::POST,
            path,
            Some(json!({"concurrency": 4, "rate": "10/500ms"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["concurrency"], 4);
    assert_eq!(body["rate"], json!({"max": 10, "per_ms": 500}));
    // A field left out stays; null removes.
    let (_, body) = api
        .call(Method::POST, path, Some(json!({"rate": null})))
        .await;
    assert_eq!(body["concurrency"], 4);
    assert!(body["rate"].is_null(), "{body}");
    let (st, body) = api
        .call(Method::POST, path, Some(json!({"rate": "ten a second"})))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("N/DURATION"),
        "{body}"
    );
    let (_, counts) = api.call(Method::GET, "/v1/queues/capped", None).await;
    assert_eq!(counts["concurrency"], 4, "{counts}");
    api.stop().await;
}
