//! The error of each attempt (`errors:<id>`, written by finish.lua and sweep.lua on
//! retry and fail, never on completion): read back by `Queue::job`, the JSON API and
//! `baton job`, deleted with the job (remove, retention that keeps none), on a single
//! Redis and on a 3-master cluster.

use std::time::Duration;

use baton::conn::RedisConfig;
use baton::{
    handler_fn, Backoff, JobContext, JobError, JobOptions, JobState, Queue, Retention, Worker,
};
use serde_json::{json, Value};

use crate::common::{baton_bin, start, wait_until, RedisServer};
use crate::topology::{ClusterOptions, RedisCluster};
use crate::ui::server::Serve;

const LIMIT: Duration = Duration::from_secs(30);

/// A worker that fails every attempt with "boom <attempt>", except jobs named "ok".
fn failing_worker(cfg: RedisConfig, queue: &str) -> Worker {
    Worker::builder(cfg, queue)
        .concurrency(2)
        .stalled_interval(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(2))
        .build(handler_fn(|_d: Value, ctx: JobContext| async move {
            if ctx.name() == "ok" {
                Ok::<_, JobError>(json!(1))
            } else {
                Err(JobError::retry(format!("boom {}", ctx.attempt())))
            }
        }))
        .unwrap()
}

fn three_tries() -> JobOptions {
    JobOptions::default().attempts(3).backoff(Backoff::Fixed {
        delay: Duration::from_millis(20),
    })
}

/// Runs the whole story on `cfg` (one queue); `cli` are the connection arguments of
/// `baton`. Returns the id of a failed job with three errors, for the caller's checks.
async fn story(cfg: RedisConfig, queue: &str, cli: &[String]) -> String {
    let q = Queue::connect(cfg.clone(), queue).unwrap();
    let w = start(failing_worker(cfg.clone(), queue));
    let failed = q
        .add("x", &json!({}), three_tries().job_id("three"))
        .await
        .unwrap()
        .id;
    let ok = q
        .add("ok", &json!({}), three_tries().job_id("fine"))
        .await
        .unwrap()
        .id;
    let gone = q
        .add(
            "x",
            &json!({}),
            three_tries().job_id("gone").keep_failed(Retention::none()),
        )
        .await
        .unwrap()
        .id;
    wait_until(LIMIT, "one failed, one completed, one deleted", || async {
        q.job(&failed).await.unwrap().map(|j| j.state) == Some(JobState::Failed)
            && q.job(&ok).await.unwrap().map(|j| j.state) == Some(JobState::Completed)
            && q.job(&gone).await.unwrap().is_none()
    })
    .await;
    w.stop().await;

    let j = q.job(&failed).await.unwrap().unwrap();
    let got: Vec<(u32, String)> = j
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (3, "boom 3".to_string()),
            (2, "boom 2".to_string()),
            (1, "boom 1".to_string())
        ],
        "newest first, one per attempt"
    );
    assert!(j.errors.windows(2).all(|w| w[0].at_ms >= w[1].at_ms));
    assert!(j.errors.iter().all(|e| e.at_ms >= j.created_ms));
    assert!(
        q.job(&ok).await.unwrap().unwrap().errors.is_empty(),
        "a completion writes no history"
    );

    // The CLI shows each attempt's error.
    let mut args: Vec<String> = cli.to_vec();
    args.extend(["job".into(), queue.into(), failed.clone()]);
    let out = std::process::Command::new(baton_bin())
        .args(&args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for a in 1..=3 {
        assert!(
            text.contains(&format!("attempt {a} failed at "))
                && text.contains(&format!("boom {a}")),
            "attempt {a} missing from:\n{text}"
        );
    }
    args.push("--json".into());
    let out = std::process::Command::new(baton_bin())
        .args(&args)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["errors"][2]["error"], "boom 1", "{v}");

    // A job deleted when it failed (retention none) took its history with it: the same
    // id added again starts with none. So does a removed job.
    let again = |id: String| {
        let q = q.clone();
        async move {
            q.add("ok", &json!({}), JobOptions::default().job_id(id.clone()))
                .await
                .unwrap();
            q.job(&id).await.unwrap().unwrap().errors
        }
    };
    assert!(
        again(gone).await.is_empty(),
        "retention deleted the history"
    );
    let removed = q
        .add("x", &json!({}), three_tries().job_id("removed").attempts(1))
        .await
        .unwrap()
        .id;
    let w = start(failing_worker(cfg.clone(), queue));
    wait_until(LIMIT, "removed-to-be failed", || async {
        q.job(&removed).await.unwrap().map(|j| j.errors.len()) == Some(1)
            && q.job(&removed).await.unwrap().map(|j| j.state) == Some(JobState::Failed)
    })
    .await;
    w.stop().await;
    q.remove(&removed).await.unwrap();
    assert!(
        again(removed).await.is_empty(),
        "remove deleted the history"
    );
    failed
}

async fn api_shows(s: &Serve, queue: &str, id: &str) {
    let v: Value = reqwest::get(s.url(&format!("/v1/queues/{queue}/jobs/{id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let attempts: Vec<u64> = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {v}"))
        .iter()
        .map(|e| e["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![3, 2, 1], "{v}");
    assert_eq!(v["errors"][0]["error"], "boom 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_error_is_kept_shown_and_deleted_with_the_job() {
    let redis = RedisServer::start();
    let id = story(
        RedisConfig::url(redis.url()),
        "hist",
        &["--redis-url".into(), redis.url()],
    )
    .await;
    let s = Serve::start(&redis.url(), &[], &[]).await;
    api_shows(&s, "hist", &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_error_on_a_cluster() {
    let cluster = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas_per_master: 0,
        ..ClusterOptions::default()
    });
    let queue = cluster.queues_on_distinct_masters(1).remove(0);
    let cli = vec!["--cluster-nodes".to_string(), cluster.seed_urls().join(",")];
    let id = story(RedisConfig::cluster(cluster.seed_urls()), &queue, &cli).await;
    let s = Serve::start_with(&cli, &[], &[]).await;
    api_shows(&s, &queue, &id).await;
}
