//! Series that exist at zero before anything happened: a healthy worker shows 0 Redis
//! errors, not "No data".

use std::time::Duration;

use baton::metrics as m;
use baton::{handler_fn, JobContext, Queue, Worker};

use super::{parse, value};
use crate::common::{start, wait_until, RedisServer};

/// A healthy worker exports `baton_redis_errors_total` at 0 for every operation it
/// makes, so the dashboard's Redis-errors panel shows 0 rather than "No data", and the
/// first error is seen by `rate()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_worker_exports_redis_errors_at_zero() {
    const QZ: &str = "healthyq";
    let handle = m::install();
    let redis = RedisServer::start();
    let worker = Worker::builder(redis.url(), QZ)
        .build(handler_fn(|_: serde_json::Value, _: JobContext| async {
            Ok(())
        }))
        .unwrap();
    let run = start(worker);
    let q = Queue::connect(redis.url(), QZ).unwrap();
    wait_until(Duration::from_secs(10), "worker registered", || async {
        !q.workers().await.unwrap().is_empty()
    })
    .await;
    let text = handle.render();
    let samples = parse(&text);
    // Every op label the worker's loops count errors under (claimer, heartbeat, acker,
    // sweeper), and the gauge refresher's per-queue reads.
    for op in [
        "wait",
        "reconcile",
        "claim",
        "renew",
        "finish",
        "sweep",
        "counts",
    ] {
        assert_eq!(
            value(&samples, m::REDIS_ERRORS, &[("queue", QZ), ("op", op)]),
            Some(0.0),
            "{op}\n{text}"
        );
    }
    // The process-wide ones of the ops server (queue ""), present from the start.
    for op in ["discover", "readyz"] {
        assert!(
            value(&samples, m::REDIS_ERRORS, &[("queue", ""), ("op", op)]).is_some(),
            "{op}\n{text}"
        );
    }
    run.stop().await;
}

/// Every `op` label the worker's sources count Redis errors under is one
/// `register_queue` registers at zero (a new op added without registering it would
/// bring "No data" back).
#[test]
fn every_worker_op_label_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/worker");
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let src = std::fs::read_to_string(e.unwrap().path()).unwrap();
        for pat in ["\"op\" => \"", ".failed(\""] {
            for (i, _) in src.match_indices(pat) {
                let rest = &src[i + pat.len()..];
                found.push(rest[..rest.find('"').unwrap()].to_string());
            }
        }
    }
    assert!(found.len() >= 5, "the scan finds the ops: {found:?}");
    for op in &found {
        assert!(
            m::QUEUE_REDIS_OPS.contains(&op.as_str()),
            "op {op:?} is counted but not registered at zero"
        );
    }
}
