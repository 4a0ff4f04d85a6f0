//! A short run of every `baton bench` phase (tiny job counts) against a real
//! redis-server, worker processes included: the JSON has every figure, each is sane
//! (positive where it must be, jobs counted right). Never a timing threshold: speed is
//! measured by `bench/compare.sh`, not asserted here.

use std::process::Command;

use serde_json::Value;

use crate::common::{baton_bin, RedisServer};

fn bench(redis: &RedisServer, args: &[&str]) -> Value {
    let out = Command::new(baton_bin())
        .arg("--redis-url")
        .arg(redis.url())
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bench failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(stdout.trim()).unwrap()
}

fn num(v: &Value, path: &str) -> f64 {
    path.split('.')
        .fold(v, |v, k| &v[k])
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

/// Positive and finite.
fn pos(v: &Value, path: &str) -> f64 {
    let x = num(v, path);
    assert!(x.is_finite() && x > 0.0, "{path} = {x} in {v}");
    x
}

/// Zero or more and finite (CPU deltas may round to zero on tiny runs).
fn nonneg(v: &Value, path: &str) -> f64 {
    let x = num(v, path);
    assert!(x.is_finite() && x >= 0.0, "{path} = {x} in {v}");
    x
}

/// The figures every drain reports.
fn drained(p: &Value, jobs: f64, workers: f64) {
    assert_eq!(num(p, "jobs"), jobs, "{p}");
    assert_eq!(num(p, "handled"), jobs, "every job handled once: {p}");
    assert_eq!(num(p, "workers"), workers, "{p}");
    pos(p, "jobs_per_s");
    pos(p, "seconds");
    nonneg(p, "redis_cpu_us_per_job");
    nonneg(p, "worker_cpu_us_per_job");
    pos(p, "commands_per_job");
    for k in ["ready", "peak", "end"] {
        pos(p, &format!("worker_rss_mib.{k}"));
    }
    assert!(
        num(p, "worker_rss_mib.peak") >= num(p, "worker_rss_mib.ready"),
        "{p}"
    );
}

#[test]
fn every_bench_phase_reports_every_figure() {
    let redis = RedisServer::start();
    let v = bench(
        &redis,
        &[
            "--jobs",
            "300",
            "--concurrency",
            "8",
            "--bulk-size",
            "100",
            "--rate",
            "500",
            "--latency-jobs",
            "100",
            "--rss-jobs",
            "2000",
            "--idle-queues",
            "5",
            "--idle-seconds",
            "1",
            "--many-workers",
            "2",
            "--many-jobs",
            "400",
        ],
    );
    assert_eq!(v["peer"], "baton");
    assert_eq!(v["retention"], "none");
    assert_eq!(
        v["phases"].as_array().unwrap().len(),
        8,
        "all phases by default: {v}"
    );

    let b = &v["add_bulk"];
    assert_eq!(num(b, "jobs"), 300.0);
    assert_eq!(num(b, "batch"), 100.0);
    pos(b, "jobs_per_s");
    nonneg(b, "redis_cpu_us_per_job");
    pos(b, "commands_per_job");

    drained(&v["process"], 300.0, 1.0);

    let s = &v["add_single"];
    assert_eq!(num(s, "jobs"), 75.0);
    assert_eq!(num(s, "inflight"), 50.0);
    pos(s, "jobs_per_s");
    nonneg(s, "redis_cpu_us_per_job");

    let l = &v["latency"];
    assert_eq!(num(l, "jobs"), 100.0);
    assert_eq!(
        num(l, "latency_ms.count"),
        100.0,
        "every job's latency: {l}"
    );
    assert_eq!(num(l, "offered_per_s"), 500.0);
    pos(l, "achieved_per_s");
    let (p50, p99, max) = (
        pos(l, "latency_ms.p50"),
        pos(l, "latency_ms.p99"),
        pos(l, "latency_ms.max"),
    );
    assert!(p50 <= p99 && p99 <= max, "{l}");

    let m = &v["memory"];
    assert_eq!(num(m, "jobs"), 300.0);
    assert_eq!(
        num(m, "waiting"),
        300.0,
        "the memory phase's jobs stay waiting: {m}"
    );
    pos(m, "bytes_per_job");

    let r = &v["rss"];
    assert_eq!(num(r, "jobs"), 2000.0);
    assert_eq!(num(r, "handled"), 2000.0);
    for k in ["idle", "after_start", "end", "min", "max"] {
        pos(r, &format!("worker_rss_mib.{k}"));
    }
    nonneg(r, "worker_cpu_us_per_job");
    assert!(num(r, "worker_rss_mib.growth_pct").is_finite());

    let i = &v["idle_queues"];
    assert_eq!(num(i, "queues"), 5.0);
    assert!(num(i, "seconds") >= 1.0, "{i}");
    nonneg(i, "redis_cpu_pct_of_core");
    nonneg(i, "redis_cpu_pct_of_core_no_workers");
    nonneg(i, "commands_per_s");
    pos(i, "worker_rss_mib");

    let w = &v["many_workers"];
    assert_eq!(num(w, "workers"), 2.0);
    drained(&w["one"], 400.0, 1.0);
    drained(&w["many"], 400.0, 2.0);
    pos(w, "rate_ratio");
    pos(w, "commands_per_job_ratio");
}

#[test]
fn bench_takes_payload_size_retention_and_worker_processes() {
    let redis = RedisServer::start();
    let v = bench(
        &redis,
        &[
            "--jobs",
            "200",
            "--concurrency",
            "4",
            "--bulk-size",
            "50",
            "--payload-bytes",
            "1024",
            "--retention",
            "default",
            "--workers",
            "2",
            "--phases",
            "memory,process",
        ],
    );
    assert_eq!(v["retention"], "default");
    assert_eq!(num(&v, "payload_bytes"), 1024.0);
    // Phases run in their fixed order whatever the order asked.
    assert_eq!(v["phases"], serde_json::json!(["process", "memory"]));
    assert!(v.get("add_bulk").is_none(), "only the phases asked: {v}");
    // The process phase adds the jobs it drains when add_bulk did not run.
    drained(&v["process"], 200.0, 2.0);
    // 1 KiB payloads take at least 1 KiB of Redis memory each.
    assert!(num(&v["memory"], "bytes_per_job") >= 1024.0, "{v}");
    // Default retention keeps completed jobs (the last 1000).
    let mut c = redis.conn();
    let queue = v["queue"].as_str().unwrap();
    let kept: u64 = redis::cmd("ZCARD")
        .arg(baton::keys::Keys::new(queue).completed())
        .query(&mut c)
        .unwrap();
    assert_eq!(kept, 200, "completed jobs kept under the default retention");
}

#[test]
fn bench_refuses_an_unknown_phase_by_name() {
    let redis = RedisServer::start();
    let out = Command::new(baton_bin())
        .args([
            "--redis-url",
            &redis.url(),
            "bench",
            "--phases",
            "process,warp",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"warp\"") && err.contains("many_workers"),
        "{err}"
    );
}
