//! Three `baton worker --exec` processes appending to a ledger: every tick once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{baton_bin, signal, wait_until, ChildGuard, RedisServer};
use baton::conn::RedisConfig;
use baton::{JobOptions, Queue, Repeat, Scheduler};
use serde_json::json;

use super::tick_of;

/// A file each job appends `<job id> <start ms>` to, from several worker processes.
struct Ledger {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Ledger {
    fn new() -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        std::fs::write(&path, "").unwrap();
        Ledger { _dir: dir, path }
    }

    /// (job id, start ms) per line, in the order written.
    fn entries(&self) -> Vec<(String, u64)> {
        std::fs::read_to_string(&self.path)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (id, ms) = l.split_once(' ')?;
                Some((id.to_string(), ms.trim().parse().ok()?))
            })
            .collect()
    }
}

/// `baton worker QUEUE --exec` appending to the ledger, as a process of its own.
fn worker_process(conn: &[String], queue: &str, ledger: &Path) -> ChildGuard {
    ChildGuard(
        Command::new(baton_bin())
            .args(conn)
            .args(["worker", queue, "--shutdown-timeout", "2s", "--exec", "--"])
            .args(["sh", "-c", r#"echo "$BATON_JOB_ID $(date +%s%3N)" >> "$0""#])
            .arg(ledger)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// SIGTERM, then wait (bounded; the guard kills whatever is left).
fn stop_all(workers: Vec<ChildGuard>) {
    for w in &workers {
        signal(w.id(), libc::SIGTERM);
    }
    for mut w in workers {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while w.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Every tick once, consecutive, none started before its time.
fn assert_every_tick_once(entries: &[(String, u64)], scheduler: &str, every_ms: u64) -> Vec<u64> {
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, _) in entries {
        *by_id.entry(id).or_default() += 1;
    }
    let doubled: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "ticks run more than once: {doubled:?}");
    let mut ticks: Vec<u64> = entries
        .iter()
        .map(|(id, started)| {
            let t = tick_of(id, scheduler).unwrap_or_else(|| panic!("unexpected job id {id}"));
            assert!(*started >= t, "{id} started at {started}, before its tick");
            t
        })
        .collect();
    ticks.sort();
    for w in ticks.windows(2) {
        assert_eq!(
            w[1] - w[0],
            every_ms,
            "a tick is missing between {} and {}",
            w[0],
            w[1]
        );
    }
    ticks
}

/// Three worker processes, one scheduler ticking every second: at least `n` ticks, each
/// run once, none missing.
async fn many_workers_one_job_per_tick(conn: Vec<String>, cfg: RedisConfig, n: usize) {
    let q = Queue::connect(cfg, "ticks").unwrap();
    let ledger = Ledger::new();
    let workers: Vec<_> = (0..3)
        .map(|_| worker_process(&conn, "ticks", &ledger.path))
        .collect();
    let s = Scheduler::new(Repeat::cron("*/1 * * * * *"), "tick", json!({"k": 1}))
        .opts(JobOptions::default().attempts(1));
    let info = q.upsert_scheduler("every-second", &s).await.unwrap();
    assert!(info.next_run_ms.is_some(), "{info:?}");
    wait_until(
        Duration::from_secs(60),
        &format!("{n} ticks in the ledger"),
        || async { ledger.entries().len() >= n },
    )
    .await;
    assert!(q.remove_scheduler("every-second").await.unwrap());
    // Whatever was already due runs; then nothing more comes.
    wait_until(
        Duration::from_secs(10),
        "the last ticks finished",
        || async {
            let c = q.counts().await.unwrap();
            c.waiting + c.delayed + c.active == 0
        },
    )
    .await;
    stop_all(workers);
    let entries = ledger.entries();
    let ticks = assert_every_tick_once(&entries, "every-second", 1000);
    assert!(ticks.len() >= n, "{} ticks", ticks.len());
    let counts = q.counts().await.unwrap();
    assert_eq!(counts.completed as usize, entries.len(), "{counts:?}");
    // Measured, not asserted: how long after its tick each job started (exec start-up
    // included).
    let mut late: Vec<u64> = entries
        .iter()
        .map(|(id, started)| started - tick_of(id, "every-second").unwrap())
        .collect();
    late.sort();
    eprintln!(
        "{} ticks; start after tick: median {} ms, max {} ms",
        late.len(),
        late[late.len() / 2],
        late[late.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_run_each_tick_exactly_once() {
    let redis = RedisServer::start();
    let conn = vec!["--redis-url".to_string(), redis.url()];
    many_workers_one_job_per_tick(conn, redis.url().into(), 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_run_each_tick_exactly_once_on_a_cluster() {
    let cluster = crate::topology::RedisCluster::start(3, 0);
    let conn = vec!["--cluster-nodes".to_string(), cluster.seed_urls().join(",")];
    many_workers_one_job_per_tick(conn, RedisConfig::cluster(cluster.seed_urls()), 10).await;
}
