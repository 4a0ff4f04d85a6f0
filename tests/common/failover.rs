//! What the failover tests share: exec worker processes that append each job's payload
//! to a ledger file, a producer that adds jobs at a steady pace (retrying a failed add
//! with the same job id, which is safe), a replication fence, and the figures.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::conn::RedisConfig;
use baton::{JobOptions, Queue};
use tokio_util::sync::CancellationToken;

use crate::common::{baton_bin, ChildGuard};

/// A `baton worker QUEUE --exec` process that appends each payload to `ledger`.
/// `conn_args` are the connection flags (`--sentinel …`, `--cluster-nodes …`).
pub fn spawn_exec_worker(conn_args: &[String], queue: &str, ledger: &Path) -> ChildGuard {
    let mut cmd = Command::new(baton_bin());
    cmd.args(conn_args)
        .args([
            "worker",
            queue,
            "--concurrency",
            "20",
            "--lease",
            "10s",
            "--stalled-interval",
            "500ms",
            "--max-stalled",
            "5",
            "--exec",
            "--",
            "sh",
            "-c",
            "cat >> \"$LEDGER\"; echo >> \"$LEDGER\"",
        ])
        .env("LEDGER", ledger)
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    ChildGuard(cmd.spawn().expect("spawn baton worker"))
}

/// How many times each job's command ran, by job id (from the ledger).
pub fn ledger_runs(ledger: &Path) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    let text = std::fs::read_to_string(ledger).unwrap_or_default();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(id) = v["id"].as_str() {
                *out.entry(id.to_string()).or_default() += 1;
            }
        }
    }
    out
}

/// One acknowledged add.
#[derive(Debug, Clone)]
pub struct Acked {
    pub queue: String,
    pub id: String,
    pub at: Instant,
}

/// Adds jobs round-robin over queues until stopped.
pub struct Producer {
    pub acked: Arc<Mutex<Vec<Acked>>>,
    /// Adds that failed (each was retried with the same id until it was acknowledged).
    pub failures: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Producer {
    /// Starts adding one job every `pace`.
    pub fn start(cfg: RedisConfig, queues: Vec<String>, pace: Duration) -> Producer {
        Producer::start_durable(cfg, queues, pace, 0)
    }

    /// Like [`Producer::start`]; each add waits for `replicas` replicas (`Queue::durable`).
    pub fn start_durable(
        cfg: RedisConfig,
        queues: Vec<String>,
        pace: Duration,
        replicas: u32,
    ) -> Producer {
        let acked: Arc<Mutex<Vec<Acked>>> = Default::default();
        let failures: Arc<Mutex<Vec<String>>> = Default::default();
        let stop = CancellationToken::new();
        let (a, f, s) = (acked.clone(), failures.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let conn = baton::conn::SharedConn::producer(cfg).unwrap();
            let qs: Vec<Queue> = queues
                .iter()
                .map(|n| {
                    Queue::with_conn(conn.clone(), n).durable(replicas, Duration::from_millis(500))
                })
                .collect();
            let mut i = 0usize;
            while !s.is_cancelled() {
                let q = &qs[i % qs.len()];
                let id = format!("{}-{i}", q.name());
                let payload = serde_json::json!({ "id": id });
                loop {
                    match q
                        .add(
                            "n",
                            &payload,
                            // Keep every finished job: the checks read each one back.
                            JobOptions::default()
                                .job_id(&id)
                                .keep_completed(baton::Retention::all()),
                        )
                        .await
                    {
                        Ok(_) => {
                            a.lock().unwrap().push(Acked {
                                queue: q.name().to_string(),
                                id: id.clone(),
                                at: Instant::now(),
                            });
                            break;
                        }
                        Err(e) => {
                            f.lock().unwrap().push(e.to_string());
                            // Pace the retries of this id; not a synchronisation.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                i += 1;
                tokio::time::sleep(pace).await;
            }
        });
        Producer {
            acked,
            failures,
            stop,
            task,
        }
    }

    /// Acknowledged adds so far.
    pub fn acked(&self) -> Vec<Acked> {
        self.acked.lock().unwrap().clone()
    }

    /// Stops after the add in progress.
    pub async fn stop(self) -> Vec<Acked> {
        self.stop.cancel();
        let acked = self.acked.clone();
        let _ = self.task.await;
        let out = acked.lock().unwrap().clone();
        out
    }
}

/// Writes `key` on the server at `url` and waits until one replica has it: every write
/// acknowledged before this call (on any connection) is then replicated too, since a
/// replica applies the stream in order. Returns when the call started.
pub async fn replication_fence(url: &str, key: &str) -> Instant {
    let started = Instant::now();
    let client = redis::Client::open(url).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg("fence")
        .query_async(&mut c)
        .await
        .unwrap();
    let n: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(n, 1, "the replica acknowledged the fence");
    started
}

/// A temp file path for a ledger.
pub fn ledger_in(dir: &Path) -> PathBuf {
    dir.join("ledger.jsonl")
}

/// What a failover cost, for the report.
#[derive(Debug)]
pub struct Figures {
    pub acked: usize,
    pub replicated_before_kill: usize,
    pub lost_replicated: usize,
    pub lost_in_window: usize,
    pub reran: usize,
    pub failed_adds: usize,
    pub resume_after: Duration,
}

/// Waits until a job acknowledged after `since` (on `queue`, if given) has run, and
/// returns how long after `since` that was.
pub async fn wait_for_resume(
    producer: &Producer,
    ledger: &Path,
    since: Instant,
    queue: Option<&str>,
) -> Duration {
    loop {
        let after: std::collections::HashSet<String> = producer
            .acked()
            .into_iter()
            .filter(|a| a.at > since && queue.is_none_or(|q| a.queue == q))
            .map(|a| a.id)
            .collect();
        if ledger_runs(ledger).keys().any(|id| after.contains(id)) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(40),
            "work did not resume after the failover"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After a failover: every acknowledged job ends completed, except those lost where
/// `may_lose` allows it (acknowledged in the replication window); no job ends failed and
/// none is left waiting, delayed or active. Returns how many were lost.
pub async fn settle(acked: &[Acked], qs: &[Queue], may_lose: impl Fn(&Acked) -> bool) -> usize {
    let queue_of = |name: &str| qs.iter().find(|q| q.name() == name).unwrap();
    let mut lost = 0;
    let mut must = Vec::new();
    for a in acked {
        let q = queue_of(&a.queue);
        // A connection that the failover closed fails its first call; the next reconnects.
        let found = match q.job(&a.id).await {
            Ok(j) => j,
            Err(_) => q.job(&a.id).await.unwrap(),
        };
        if found.is_none() {
            assert!(
                may_lose(a),
                "{} was acknowledged outside the replication window and lost",
                a.id
            );
            lost += 1;
        } else {
            must.push((q, a.id.clone()));
        }
    }
    crate::common::wait_until(
        Duration::from_secs(60),
        "every surviving job completed",
        || async {
            for (q, id) in &must {
                if !matches!(q.job(id).await, Ok(Some(j)) if j.state == baton::JobState::Completed)
                {
                    return false;
                }
            }
            true
        },
    )
    .await;
    for q in qs {
        let c = q.counts().await.unwrap();
        assert_eq!(c.failed, 0, "no job wrongly failed on {}", q.name());
        assert_eq!(c.active + c.waiting + c.delayed, 0, "nothing stuck: {c:?}");
    }
    lost
}
