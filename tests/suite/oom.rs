//! Redis at `maxmemory` (noeviction) is Redis's state, not the jobs': a worker facing a
//! full Redis claims nothing, punishes no job, `/readyz` says not ready, and once memory
//! frees every job completes, each run once (issue 8, defect 1).

use std::time::Duration;

use crate::common::{baton_bin, free_port, wait_until, ChildGuard, RedisServer};
use baton::{JobOptions, JobState, Queue};

fn used_memory(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("memory").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_full_redis_fails_no_job_and_every_job_completes_once_memory_frees() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = Queue::connect(&url, "oomq").unwrap();
    let mut ids = Vec::new();
    for i in 0..10u32 {
        ids.push(q.add("n", &i, JobOptions::default()).await.unwrap().id);
    }
    let mut c = redis.conn();
    // A filler, then maxmemory well below what is used (query buffers are freed
    // lazily, so "just below" can drift back above): every write is refused.
    let _: () = redis::cmd("SET")
        .arg("filler")
        .arg(vec![b'x'; 4 << 20])
        .query(&mut c)
        .unwrap();
    let limit = used_memory(&mut c) / 2;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(limit)
        .query(&mut c)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("ran");
    let port = free_port();
    let _worker = ChildGuard(
        std::process::Command::new(baton_bin())
            .args(["--redis-url", &url, "worker", "oomq", "--lease", "2s"])
            .args([
                "--stalled-interval",
                "1s",
                "--metrics-addr",
                &format!("127.0.0.1:{port}"),
            ])
            .args([
                "--exec",
                "--",
                "sh",
                "-c",
                "cat >> \"$LEDGER\"; echo >> \"$LEDGER\"",
            ])
            .env("LEDGER", &ledger)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // While Redis is full: not ready, and no job is claimed, run or failed.
    let ready = format!("http://127.0.0.1:{port}/readyz");
    wait_until(
        Duration::from_secs(10),
        "/readyz answers 503 for a full redis",
        || async {
            match reqwest::get(&ready).await {
                Ok(r) if r.status() == 503 => {
                    let body = r.text().await.unwrap_or_default();
                    body.contains("maxmemory")
                }
                _ => false,
            }
        },
    )
    .await;
    // Several lease and sweep intervals pass with Redis full.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ran = std::fs::read_to_string(&ledger).unwrap_or_default();
    let c0 = q.counts().await.unwrap();
    assert_eq!(c0.failed, 0, "a job was failed for Redis's state: {c0:?}");
    assert_eq!(c0.completed, 0, "{c0:?}");
    // Memory frees.
    let _: () = redis::cmd("DEL").arg("filler").query(&mut c).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut c)
        .unwrap();
    wait_until(Duration::from_secs(20), "every job completed", || async {
        let mut done = 0;
        for id in &ids {
            if q.job(id).await.unwrap().unwrap().state == JobState::Completed {
                done += 1;
            }
        }
        done == ids.len()
    })
    .await;
    let ran_after = std::fs::read_to_string(&ledger).unwrap_or_default();
    let runs = ran_after.lines().filter(|l| !l.trim().is_empty()).count();
    assert_eq!(
        ran.lines().filter(|l| !l.trim().is_empty()).count(),
        0,
        "nothing ran while full"
    );
    assert_eq!(runs, 10, "each job ran once: {ran_after}");
    let c1 = q.counts().await.unwrap();
    assert_eq!((c1.completed, c1.failed), (10, 0), "{c1:?}");
    wait_until(Duration::from_secs(10), "/readyz ready again", || async {
        matches!(reqwest::get(&ready).await, Ok(r) if r.status() == 200)
    })
    .await;
}
