//! The `baton` binary's commands against a real redis-server.

use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{baton_bin, start, wait_until, RedisServer};
use baton::{handler_fn, JobError, Queue, Worker};
use serde::Deserialize;
use serde_json::Value;

fn baton(redis: &RedisServer, args: &[&str]) -> Output {
    Command::new(baton_bin())
        .arg("--redis-url")
        .arg(redis.url())
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(out: Output) -> Value {
    let s = ok(out);
    assert_eq!(
        s.trim().lines().count(),
        1,
        "one JSON object on one line: {s}"
    );
    serde_json::from_str(s.trim()).unwrap()
}

#[tokio::test]
async fn add_stats_job_list_and_admin_commands() {
    let redis = RedisServer::start();
    assert!(ok(baton(&redis, &["check"])).starts_with("ok:"));
    let id = ok(baton(
        &redis,
        &[
            "add",
            "mail",
            r#"{"to":"a@x"}"#,
            "--name",
            "send",
            "--attempts",
            "2",
        ],
    ))
    .trim()
    .to_string();
    // A generated id (src/job/id.rs): 12 base-62 characters, '.', a base-32 counter.
    let (prefix, n) = id.split_once('.').unwrap_or_default();
    assert!(
        prefix.len() == 12
            && prefix.bytes().all(|b| b.is_ascii_alphanumeric())
            && !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'v').contains(&b)),
        "prints the generated id: {id}"
    );
    let fixed = ok(baton(
        &redis,
        &["add", "mail", "{}", "--job-id", "j-1", "--priority", "3"],
    ))
    .trim()
    .to_string();
    assert_eq!(fixed, "j-1");
    let again = baton(&redis, &["add", "mail", "{}", "--job-id", "j-1"]);
    assert_eq!(ok(again).trim(), "j-1", "idempotent add prints the id too");
    ok(baton(
        &redis,
        &["add", "mail", "{}", "--delay", "1h", "--job-id", "later"],
    ));

    let stats = json(baton(&redis, &["stats", "mail", "--json"]));
    for k in [
        "waiting",
        "delayed",
        "active",
        "completed",
        "failed",
        "cancelled",
    ] {
        assert!(stats[k].is_u64(), "stats --json has {k}: {stats}");
    }
    assert_eq!(
        (stats["waiting"].as_u64(), stats["delayed"].as_u64()),
        (Some(2), Some(1))
    );
    let all = json(baton(&redis, &["stats", "--json"]));
    assert_eq!(all["queues"][0]["queue"], "mail");

    let job = json(baton(&redis, &["job", "mail", &id, "--json"]));
    assert_eq!(
        (job["state"].as_str(), job["attempt"].as_u64()),
        (Some("waiting"), Some(0))
    );
    assert_eq!(job["data"]["to"], "a@x");
    assert!(ok(baton(&redis, &["job", "mail", &id])).contains("state     waiting"));
    let missing = baton(&redis, &["job", "mail", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    let listed = json(baton(&redis, &["list", "mail", "waiting", "--json"]));
    assert_eq!(
        listed["ids"],
        serde_json::json!([id, "j-1"]),
        "unprioritized first, then by priority"
    );
    assert!(!baton(&redis, &["list", "mail", "bogus"]).status.success());

    ok(baton(&redis, &["cancel", "mail", "later"]));
    let cancelled = json(baton(&redis, &["job", "mail", "later", "--json"]));
    assert_eq!(cancelled["state"], "cancelled");
    let twice = baton(&redis, &["cancel", "mail", "later"]);
    assert_eq!(
        twice.status.code(),
        Some(1),
        "cancelling a finished job is an error"
    );
    assert!(String::from_utf8_lossy(&twice.stderr).contains("is cancelled"));
    ok(baton(&redis, &["retry", "mail", "later"]));
    assert_eq!(
        json(baton(&redis, &["job", "mail", "later", "--json"]))["state"],
        "waiting"
    );
    ok(baton(&redis, &["remove", "mail", "later"]));
    assert_eq!(
        baton(&redis, &["job", "mail", "later"]).status.code(),
        Some(1)
    );

    ok(baton(&redis, &["pause", "mail"]));
    assert_eq!(
        json(baton(&redis, &["stats", "mail", "--json"]))["paused"],
        true
    );
    ok(baton(&redis, &["resume", "mail"]));

    // A worker runs them; then workers, clean and retry --all-failed.
    let w = Worker::builder(redis.url(), "mail")
        .build(handler_fn(|v: Value, _ctx| async move {
            if v.get("to").is_some() {
                Err(JobError::fatal("no smtp"))
            } else {
                Ok(())
            }
        }))
        .unwrap();
    let run = start(w);
    let q = Queue::connect(redis.url(), "mail").unwrap();
    wait_until(Duration::from_secs(10), "both ran", || async {
        let c = q.counts().await.unwrap();
        c.completed == 1 && c.failed == 1
    })
    .await;
    let workers = json(baton(&redis, &["workers", "mail", "--json"]));
    assert_eq!(workers["workers"].as_array().unwrap().len(), 1, "{workers}");
    assert!(ok(baton(&redis, &["watch", "mail", "--iterations", "1"])).contains("mail"));
    run.stop().await;
    assert!(ok(baton(&redis, &["retry", "mail", "--all-failed"])).contains("queued 1"));
    assert_eq!(
        json(baton(&redis, &["job", "mail", &id, "--json"]))["state"],
        "waiting"
    );
    assert!(ok(baton(&redis, &["clean", "mail", "completed"])).contains("deleted 1"));
    assert_eq!(
        json(baton(&redis, &["stats", "mail", "--json"]))["completed"],
        0
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let redis = RedisServer::start();
    let out = baton(&redis, &["add", "q", "{not json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
    let out = baton(&redis, &["add", "q", "{}", "--attempts", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("attempts must be at least 1"));
    // Read by the parser the HTTP API uses, so refused in the same words.
    let out = baton(&redis, &["add", "q", "{}", "--delay", "soon"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("delay \"soon\" is not a duration"));
}

#[test]
fn demo_runs_end_to_end_and_names_the_missing_redis_server() {
    let out = Command::new(baton_bin())
        .args(["demo", "--jobs", "3"])
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let stdout = ok(out);
    assert!(stdout.contains("all 8 jobs finished"), "{stdout}");
    for state in ["completed", "failed", "cancelled"] {
        assert!(stdout.contains(state), "{state} in summary: {stdout}");
    }
    assert!(stdout.contains("/metrics"));
    let out = Command::new(baton_bin())
        .args(["demo"])
        .env_remove("REDIS_URL")
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("apt-get install -y redis-server"), "{err}");
}

#[tokio::test]
async fn json_logs_about_a_job_carry_queue_and_job_id() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "logs").unwrap();
    let id = q
        .add(
            "n",
            &serde_json::json!({}),
            baton::JobOptions::default().attempts(1),
        )
        .await
        .unwrap()
        .id;
    let child = Command::new(baton_bin())
        .args([
            "--redis-url",
            &redis.url(),
            "--log-format",
            "json",
            "worker",
            "logs",
            "--exec",
            "--",
            "sh",
            "-c",
            "exit 3",
        ])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "job failed", || async {
        q.job(&id).await.unwrap().unwrap().state == baton::JobState::Failed
    })
    .await;
    crate::common::signal(child.id(), libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "log lines are JSON");
    let about_job: Vec<&Value> = lines
        .iter()
        .filter(|l| l.to_string().contains(&id))
        .collect();
    assert!(!about_job.is_empty(), "some line names the job");
    for l in about_job {
        let text = l.to_string();
        assert!(
            text.contains("\"queue\":\"logs\""),
            "queue on every line about the job: {text}"
        );
        assert!(text.contains("\"job_id\""), "job_id field: {text}");
    }
}

/// The worker Deployment's arguments are ones the real binary accepts and runs with.
#[tokio::test]
async fn the_k8s_worker_arguments_run_the_real_binary() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/k8s/worker.yaml"
    ))
    .unwrap();
    let mut args: Vec<String> = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v = serde_yaml::Value::deserialize(doc).unwrap();
        if v["kind"] == "Deployment" {
            let c = &v["spec"]["template"]["spec"]["containers"][0];
            args = c["args"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
        }
    }
    let queue = args[1].clone();
    let dashdash = args
        .iter()
        .position(|a| a == "--")
        .expect("exec command after --");
    args.truncate(dashdash + 1);
    args.extend(["sh", "-c", "cat > /dev/null"].map(String::from));
    // The pod binds 0.0.0.0:9090; here any free loopback port.
    let at = args.iter().position(|a| a == "--metrics-addr").unwrap();
    args[at + 1] = format!("127.0.0.1:{}", crate::common::free_port());
    let redis = RedisServer::start();
    let mut child = crate::common::ChildGuard(
        Command::new(baton_bin())
            .arg("--redis-url")
            .arg(redis.url())
            .args(&args)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let q = Queue::connect(redis.url(), &queue).unwrap();
    wait_until(Duration::from_secs(10), "the worker runs", || async {
        !q.workers().await.unwrap().is_empty()
    })
    .await;
    crate::common::signal(child.id(), libc::SIGTERM);
    assert!(child.wait().unwrap().success());
}
