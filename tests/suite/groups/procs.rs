//! Worker processes, the ledger they write and what the tests read from it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use baton::conn::RedisConfig;
use baton::{JobOptions, NewJob, Queue};

use crate::common::{baton_bin, wait_until, ChildGuard, RedisServer};
use crate::topology::RedisCluster;

/// The job command: records its start (with the attempt) and end in `$LEDGER`; payload
/// `{"mode": …}`: `slow` runs for a minute on its first run, `limited` exits 76 ("rate
/// limited, retry after 700 ms") on its first run. The first run is marked (a file per
/// job) BEFORE its start is recorded: a test that kills the worker as soon as it sees
/// the start (its child dies with it) must not find the next run slow again.
const FIXTURE: &str = r#"#!/bin/sh
read -r payload
first=
if [ ! -e "$LEDGER.$BATON_JOB_ID" ]; then
  touch "$LEDGER.$BATON_JOB_ID"
  first=1
fi
echo "start $BATON_JOB_ID $BATON_ATTEMPT" >> "$LEDGER"
case "$payload" in
  *slow*)
    if [ -n "$first" ]; then
      sleep 60
    fi ;;
  *limited*)
    if [ -n "$first" ]; then
      echo "limited $BATON_JOB_ID" >> "$LEDGER"
      echo '{"retry_after_ms": 700}'
      exit 76
    fi ;;
esac
sleep 0.05
echo "end $BATON_JOB_ID" >> "$LEDGER"
"#;

/// A Redis (single or a 3-master cluster) with a ledger directory.
pub(crate) struct Env {
    _redis: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
    conn_args: Vec<String>,
    pub cfg: RedisConfig,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub(crate) fn single() -> Env {
        let redis = RedisServer::start();
        Env {
            conn_args: vec!["--redis-url".into(), redis.url()],
            cfg: RedisConfig::from(redis.url()),
            _redis: Some(redis),
            _cluster: None,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn cluster() -> Env {
        let c = RedisCluster::start(3, 0);
        Env {
            conn_args: vec!["--cluster-nodes".into(), c.seed_urls().join(",")],
            cfg: RedisConfig::cluster(c.seed_urls()),
            _redis: None,
            _cluster: Some(c),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn queue(&self, name: &str) -> Queue {
        Queue::connect(self.cfg.clone(), name).unwrap()
    }

    pub(crate) fn ledger_path(&self) -> PathBuf {
        self.dir.path().join("ledger")
    }

    /// `baton worker QUEUE --exec` with `concurrency` slots, killed on drop.
    pub(crate) fn worker(&self, queue: &str, concurrency: u32) -> ChildGuard {
        let fixture = self.dir.path().join("job.sh");
        if !fixture.exists() {
            std::fs::write(&fixture, FIXTURE).unwrap();
        }
        let log = std::fs::File::create(
            self.dir
                .path()
                .join(format!("worker-{}.log", rand_suffix())),
        )
        .unwrap();
        let mut cmd = Command::new(baton_bin());
        cmd.args(&self.conn_args)
            .args(["worker", queue, "--exec", "--concurrency"])
            .arg(concurrency.to_string())
            .args(["--lease", "2s", "--stalled-interval", "300ms"])
            .args(["--kill-grace", "500ms", "--shutdown-timeout", "1s"])
            .args(["--", "sh"])
            .arg(&fixture)
            .env("LEDGER", self.ledger_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        ChildGuard(cmd.spawn().unwrap())
    }

    /// The `baton` CLI's stdout, asserting success.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(baton_bin())
            .args(&self.conn_args)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The ledger's lines as (event, job id).
    pub(crate) fn ledger(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.ledger_path())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.split(' ');
                Some((w.next()?.to_string(), w.next()?.to_string()))
            })
            .collect()
    }
}

fn rand_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// Job `group.n` of `group`, with payload mode `mode`.
pub(crate) fn job(group: &str, n: usize, mode: &str) -> NewJob<serde_json::Value> {
    NewJob::new("n", serde_json::json!({ "mode": mode })).with_opts(
        JobOptions::default()
            .job_id(format!("{group}.{n}"))
            .group(group)
            .attempts(1),
    )
}

/// The group of a job id `group.n`.
pub(crate) fn group_of(id: &str) -> &str {
    id.split('.').next().unwrap()
}

/// The most jobs of each group running at once, from the ledger's order.
pub(crate) fn max_overlap(ledger: &[(String, String)]) -> HashMap<String, usize> {
    let mut now: HashMap<String, usize> = HashMap::new();
    let mut max: HashMap<String, usize> = HashMap::new();
    for (ev, id) in ledger {
        let g = group_of(id).to_string();
        let n = now.entry(g.clone()).or_default();
        match ev.as_str() {
            "start" => *n += 1,
            "end" | "limited" => *n -= 1,
            _ => {}
        }
        let n = *n;
        let m = max.entry(g).or_default();
        *m = (*m).max(n);
    }
    max
}

/// Waits until `n` jobs of the queue completed (60 s at most).
pub(crate) async fn until_completed(q: &Queue, n: u64) {
    wait_until(
        Duration::from_secs(60),
        &format!("{n} jobs completed"),
        || {
            let q = q.clone();
            async move { q.counts().await.map(|c| c.completed >= n).unwrap_or(false) }
        },
    )
    .await;
}
