//! Sentinel failover under load, with real processes: a master, a replica and three
//! sentinels; an exec worker process and a producer follow the master through the
//! sentinels. The master is SIGKILLed mid-run: the replica is promoted, work resumes
//! within seconds, every job replicated before the kill completes, and none ends in
//! any other state.

use std::time::{Duration, Instant};

use crate::common::wait_until;
use crate::failover::{
    ledger_in, ledger_runs, replication_fence, settle, spawn_exec_worker, wait_for_resume, Producer,
};
use crate::topology::{SentinelOptions, SentinelSet};
use baton::conn::RedisConfig;
use baton::Queue;

#[tokio::test]
async fn work_follows_a_sentinel_failover_and_nothing_replicated_is_lost() {
    let mut set = SentinelSet::start_with(SentinelOptions {
        data_password: Some("datapw".into()),
        ..SentinelOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "datapw\n").unwrap();
    let cfg = RedisConfig::sentinel(set.sentinel_addrs(), set.master_name())
        .password_file(&pw)
        .unwrap();
    let conn_args = vec![
        "--sentinel".to_string(),
        set.sentinel_addrs().join(","),
        "--sentinel-master".to_string(),
        set.master_name().to_string(),
        "--redis-password-file".to_string(),
        pw.display().to_string(),
    ];
    let ledger = ledger_in(dir.path());
    let _worker = spawn_exec_worker(&conn_args, "sq", &ledger);
    let q = Queue::connect(cfg.clone(), "sq").unwrap();
    let producer = Producer::start(cfg.clone(), vec!["sq".into()], Duration::from_millis(4));

    wait_until(
        Duration::from_secs(20),
        "100 jobs completed before the kill",
        || async {
            q.counts()
                .await
                .map(|c| c.completed >= 100)
                .unwrap_or(false)
        },
    )
    .await;
    let old = set.master_port();
    let fence = replication_fence(&set.data_url(old), "baton:{sq}:fence").await;
    let killed_at = Instant::now();
    set.kill_master();
    let new = set.wait_for_failover(old, Duration::from_secs(30)).await;
    let promoted_after = killed_at.elapsed();
    assert_ne!(new, old);

    // Work resumes: a job added after the kill runs (the ledger shows it).
    let resumed = wait_for_resume(&producer, &ledger, killed_at, None).await;
    // Keep producing a little on the new master, then stop and let the worker drain.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = producer.stop().await;
    let must = acked.iter().filter(|a| a.at < fence).count();
    // Jobs acknowledged between the fence and the kill may have been lost with the
    // master (asynchronous replication); the rest must complete.
    let lost_in_window = settle(&acked, std::slice::from_ref(&q), |a| {
        a.at >= fence && a.at <= killed_at + Duration::from_secs(1)
    })
    .await;
    let runs = ledger_runs(&ledger);
    let reran = runs.values().filter(|n| **n > 1).count();
    println!(
        "sentinel failover: {} jobs acknowledged ({} replicated before the kill, 0 of them lost), \
         {lost_in_window} acknowledged in the replication window and lost, {reran} ran more than once; \
         replica promoted {promoted_after:?} after the kill, work resumed {resumed:?} after the kill",
        acked.len(),
        must,
    );
}

/// A graceful failover (`SENTINEL FAILOVER`): the old master stays up and is demoted to
/// a replica, so connections to it do not break; they get `READONLY` (and blocked
/// clients `UNBLOCKED`) and must ask the sentinels again.
#[tokio::test]
async fn work_follows_a_demoted_master() {
    graceful_failover(0).await;
}

/// The same with durable adds (`Queue::durable(1, …)`): an add is acknowledged only once
/// the replica has it, so not one acknowledged add is lost in the switch-over.
#[tokio::test]
async fn durable_adds_lose_nothing_in_a_graceful_failover() {
    let lost = graceful_failover(1).await;
    assert_eq!(lost, 0, "a durable add was acknowledged and lost");
}

/// Runs a graceful failover under load; returns how many acknowledged adds were lost.
async fn graceful_failover(replicas: u32) -> usize {
    let set = SentinelSet::start();
    let cfg = RedisConfig::sentinel(set.sentinel_addrs(), set.master_name());
    let conn_args = vec![
        "--sentinel".to_string(),
        set.sentinel_addrs().join(","),
        "--sentinel-master".to_string(),
        set.master_name().to_string(),
    ];
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(dir.path());
    let _worker = spawn_exec_worker(&conn_args, "dq", &ledger);
    let q = Queue::connect(cfg.clone(), "dq").unwrap();
    let producer = Producer::start_durable(
        cfg.clone(),
        vec!["dq".into()],
        Duration::from_millis(4),
        replicas,
    );
    wait_until(
        Duration::from_secs(20),
        "jobs running before the failover",
        || async {
            q.counts()
                .await
                .map(|c| c.completed >= 100)
                .unwrap_or(false)
        },
    )
    .await;
    let old = set.master_port();
    let started = Instant::now();
    let sentinel = set.sentinel_addrs()[0].clone();
    let port = sentinel.rsplit_once(':').unwrap().1.to_string();
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port, "SENTINEL", "FAILOVER", set.master_name()])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("OK"),
        "{out:?}"
    );
    let new = set.wait_for_failover(old, Duration::from_secs(30)).await;
    let promoted_at = started.elapsed();
    assert_ne!(new, old);
    let resumed =
        wait_for_resume(&producer, &ledger, started + promoted_at, None).await + promoted_at;
    // The old master is alive and now a replica.
    let demoted_at = loop {
        let role = std::process::Command::new("redis-cli")
            .args(["-p", &old.to_string(), "ROLE"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&role.stdout).starts_with("slave") {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "old master never demoted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let producer_failures = producer.failures.lock().unwrap().len();
    let acked = producer.stop().await;
    let window_end = started + demoted_at + Duration::from_secs(1);
    let lost_in_window = settle(&acked, std::slice::from_ref(&q), |a| {
        a.at >= started && a.at <= window_end
    })
    .await;
    let reran = ledger_runs(&ledger).values().filter(|n| **n > 1).count();
    let failed_adds = producer_failures;
    println!(
        "sentinel graceful failover (durable adds: {replicas} replica): {} jobs acknowledged, {failed_adds} adds refused and retried, {lost_in_window} lost in the switch-over \
         window (written to the old master after the promotion), {reran} ran more than once; the sentinels \
         agreed on the new master {promoted_at:?} after SENTINEL FAILOVER, the old master was demoted after \
         {demoted_at:?}, work resumed on the new master {resumed:?} after it",
        acked.len()
    );
    lost_in_window
}
