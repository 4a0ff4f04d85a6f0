//! Sentinel failover under load, with real processes: a master, a replica and three
//! sentinels; an exec worker process and a producer follow the master through the
//! sentinels. The master is SIGKILLed mid-run: the replica is promoted, work resumes
//! within seconds, every job replicated before the kill completes, and none ends in
//! any other state.

mod common;
#[path = "common/failover.rs"]
mod failover;
#[path = "common/topology.rs"]
mod topology;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use baton::conn::RedisConfig;
use baton::{JobState, Queue};
use common::wait_until;
use failover::{ledger_in, ledger_runs, replication_fence, spawn_exec_worker, Producer};
use topology::{SentinelOptions, SentinelSet};

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
    let resumed = loop {
        let after: HashSet<String> = producer
            .acked()
            .into_iter()
            .filter(|a| a.at > killed_at)
            .map(|a| a.id)
            .collect();
        if ledger_runs(&ledger).keys().any(|id| after.contains(id)) {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(40),
            "work did not resume after the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Keep producing a little on the new master, then stop and let the worker drain.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = producer.stop().await;
    let replicated: Vec<&failover::Acked> = acked.iter().filter(|a| a.at < fence).collect();
    let must: HashSet<&str> = replicated.iter().map(|a| a.id.as_str()).collect();
    wait_until(
        Duration::from_secs(60),
        "every replicated job completed",
        || async {
            let mut done = 0;
            for id in &must {
                if matches!(q.job(id).await, Ok(Some(j)) if j.state == JobState::Completed) {
                    done += 1;
                }
            }
            done == must.len()
        },
    )
    .await;
    // Jobs acknowledged between the fence and the kill may have been lost with the
    // master (asynchronous replication); the rest must complete.
    let mut lost_in_window = 0;
    let mut unfinished = Vec::new();
    for a in &acked {
        match q.job(&a.id).await.unwrap() {
            None => {
                assert!(
                    a.at >= fence && a.at <= killed_at + Duration::from_secs(1),
                    "{} lost",
                    a.id
                );
                lost_in_window += 1;
            }
            Some(j) if j.state == JobState::Completed => {}
            Some(j) => unfinished.push((a.id.clone(), j.state)),
        }
    }
    if !unfinished.is_empty() {
        wait_until(
            Duration::from_secs(30),
            "jobs added after the kill completed",
            || async {
                let mut left = 0;
                for (id, _) in &unfinished {
                    if !matches!(q.job(id).await, Ok(Some(j)) if j.state == JobState::Completed) {
                        left += 1;
                    }
                }
                left == 0
            },
        )
        .await;
    }
    let c = q.counts().await.unwrap();
    assert_eq!(c.failed, 0, "no job wrongly failed");
    assert_eq!(c.active + c.waiting + c.delayed, 0, "nothing stuck: {c:?}");
    let runs = ledger_runs(&ledger);
    let reran = runs.values().filter(|n| **n > 1).count();
    println!(
        "sentinel failover: {} jobs acknowledged ({} replicated before the kill, 0 of them lost), \
         {lost_in_window} acknowledged in the replication window and lost, {reran} ran more than once; \
         replica promoted {promoted_after:?} after the kill, work resumed {resumed:?} after the kill",
        acked.len(),
        must.len(),
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
    let resumed = loop {
        let after: HashSet<String> = producer
            .acked()
            .into_iter()
            .filter(|a| a.at > started + promoted_at)
            .map(|a| a.id)
            .collect();
        if ledger_runs(&ledger).keys().any(|id| after.contains(id)) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "work did not resume"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
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
    let mut lost_in_window = 0;
    let mut must = Vec::new();
    for a in &acked {
        // Sentinel closes the clients of the demoted master: the first call on such a
        // connection fails fast, and the next one reconnects to the new master.
        let found = match q.job(&a.id).await {
            Ok(j) => j,
            Err(_) => q.job(&a.id).await.unwrap(),
        };
        if found.is_none() {
            assert!(
                a.at >= started && a.at <= window_end,
                "{} acknowledged outside the failover window and lost",
                a.id
            );
            lost_in_window += 1;
        } else {
            must.push(a.id.clone());
        }
    }
    wait_until(Duration::from_secs(60), "every job completed", || async {
        for id in &must {
            if !matches!(q.job(id).await, Ok(Some(j)) if j.state == JobState::Completed) {
                return false;
            }
        }
        true
    })
    .await;
    let c = q.counts().await.unwrap();
    assert_eq!(c.failed, 0, "no job wrongly failed");
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
