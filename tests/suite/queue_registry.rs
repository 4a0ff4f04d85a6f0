//! The queue-name registry (SET `baton:queues`): queues are listed from it, not by a
//! SCAN of the keyspace; an add, a worker start and a scheduler upsert register their
//! queue; queues made before the registry (only an old-style meta key) are found by
//! the one migration scan and by `--rescan`. On a single Redis and on a 3-master
//! cluster.

use std::time::Duration;

use baton::conn::{RedisConfig, SharedConn};
use baton::{handler_fn, JobContext, JobError, JobOptions, Queue, Repeat, Scheduler, Worker};
use serde_json::{json, Value};

use crate::common::{baton_bin, start, wait_until, RedisServer};
use crate::topology::{ClusterOptions, RedisCluster};

/// `baton <conn> stats --json [--rescan]`: the queue names it lists.
fn cli_queues(conn: &[String], rescan: bool) -> Vec<String> {
    let mut args = conn.to_vec();
    args.extend(["stats".into(), "--json".into()]);
    if rescan {
        args.push("--rescan".into());
    }
    let out = std::process::Command::new(baton_bin())
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = match v.get("queues") {
        Some(q) => q.as_array().unwrap().clone(),
        None => vec![v],
    };
    rows.iter()
        .map(|r| r["queue"].as_str().unwrap().to_string())
        .collect()
}

/// Makes queue `name` the way a baton older than the registry did: its keys only.
async fn old_style_queue(cfg: &RedisConfig, name: &str) {
    // A handle adds nothing to the registry until it writes a job; write its meta key
    // by hand, like a version without the registry left it.
    let conn = SharedConn::producer(cfg.clone()).unwrap();
    conn.run(async |c| {
        let _: () = redis::cmd("HSET")
            .arg(format!("baton:{{{name}}}:meta"))
            .arg("paused")
            .arg("0")
            .query_async(c)
            .await?;
        Ok(())
    })
    .await
    .unwrap();
}

async fn registry(conn: &SharedConn) -> Vec<String> {
    let mut v: Vec<String> = conn
        .run(async |c| {
            Ok(redis::cmd("SMEMBERS")
                .arg("baton:queues")
                .query_async(c)
                .await?)
        })
        .await
        .unwrap();
    v.sort();
    v
}

async fn story(cfg: RedisConfig, names: &[String], cli: &[String]) {
    let conn = SharedConn::producer(cfg.clone()).unwrap();
    let (added, worked, scheduled, old, older) =
        (&names[0], &names[1], &names[2], &names[3], &names[4]);
    old_style_queue(&cfg, old).await;
    let q = Queue::connect(cfg.clone(), added).unwrap();
    q.add("x", &json!({}), JobOptions::default()).await.unwrap();
    assert_eq!(
        registry(&conn).await,
        vec![added.clone()],
        "the add registered its queue"
    );
    // Until the migration scan, the old-style queue is found by scanning.
    let (listed, complete) = Queue::registered(&conn).await.unwrap();
    assert_eq!((listed, complete), (vec![added.clone()], false));
    let all = Queue::discover(&conn).await.unwrap();
    let mut want = vec![added.clone(), old.clone()];
    want.sort();
    assert_eq!(all, want, "the first listing scans and merges");
    assert_eq!(registry(&conn).await, want, "merged into the registry");
    assert!(Queue::registered(&conn).await.unwrap().1);

    // A worker start and a scheduler upsert register their queues too.
    let w = start(
        Worker::builder(cfg.clone(), worked)
            .shutdown_timeout(Duration::from_secs(2))
            .build(handler_fn(|_d: Value, _c: JobContext| async move {
                Ok::<_, JobError>(json!(1))
            }))
            .unwrap(),
    );
    wait_until(Duration::from_secs(20), "the worker registered", || async {
        registry(&conn).await.contains(worked)
    })
    .await;
    w.stop().await;
    Queue::connect(cfg.clone(), scheduled)
        .unwrap()
        .upsert_scheduler(
            "hourly",
            &Scheduler::new(Repeat::every(Duration::from_secs(3600)), "tick", json!({})),
        )
        .await
        .unwrap();
    let mut want = vec![
        added.clone(),
        old.clone(),
        worked.clone(),
        scheduled.clone(),
    ];
    want.sort();
    assert_eq!(Queue::discover(&conn).await.unwrap(), want);
    assert_eq!(
        cli_queues(cli, false),
        want,
        "baton stats reads the registry"
    );

    // A queue made by an older baton after the migration is not seen (no SCAN any
    // more) until an explicit rescan.
    old_style_queue(&cfg, older).await;
    assert_eq!(
        Queue::discover(&conn).await.unwrap(),
        want,
        "no scan once migrated"
    );
    want.push(older.clone());
    want.sort();
    assert_eq!(cli_queues(cli, true), want, "--rescan finds it");
    assert_eq!(
        Queue::discover(&conn).await.unwrap(),
        want,
        "and registers it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_are_listed_from_the_registry_with_a_scan_for_old_ones() {
    let redis = RedisServer::start();
    let names: Vec<String> = ["added", "worked", "scheduled", "old", "older"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    story(
        RedisConfig::url(redis.url()),
        &names,
        &["--redis-url".into(), redis.url()],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_on_a_cluster() {
    let cluster = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas_per_master: 0,
        ..ClusterOptions::default()
    });
    // Queues on every master (5 names over 3 masters), and the registry's own slot.
    let mut names = cluster.queues_on_distinct_masters(3);
    names.extend(
        cluster
            .queues_on_distinct_masters(3)
            .into_iter()
            .map(|n| format!("{n}-b")),
    );
    names.truncate(5);
    let cli = vec!["--cluster-nodes".to_string(), cluster.seed_urls().join(",")];
    story(RedisConfig::cluster(cluster.seed_urls()), &names, &cli).await;
}
