//! The chaos suite (issue 8): `baton chaos` drives real worker processes and a real
//! Redis through every fault kind, then checks that no acknowledged job was lost, stuck
//! or wrongly failed. The short run here is the one `.ci/run` runs; the long run
//! (`baton chaos --duration 10m`) is run by hand and its figures are in
//! docs/reliability.md.

use std::process::{Command, Stdio};

use crate::common::baton_bin;

fn chaos(args: &[&str]) -> (bool, serde_json::Value, String) {
    let out = Command::new(baton_bin())
        .arg("chaos")
        .args(args)
        .arg("--json")
        .env_remove("REDIS_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run baton chaos");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout: {stdout}\nstderr: {stderr}"));
    (out.status.success(), report, stderr)
}

#[test]
fn a_short_run_of_every_fault_loses_no_job() {
    // Every fault kind comes once first, in a seeded order, then at random.
    let (ok, r, stderr) = chaos(&["--duration", "40s", "--seed", "20261122"]);
    let pretty = serde_json::to_string_pretty(&r).unwrap();
    assert!(ok, "violations:\n{pretty}\n{stderr}");
    assert_eq!(r["violations"], 0, "{pretty}");
    let faults = r["faults"].as_object().unwrap();
    for kind in [
        "worker-kill",
        "worker-term",
        "worker-stop",
        "redis-kill",
        "redis-stop",
        "oom",
        "no-replicas",
        "blackhole",
        "delay",
        "cut",
        "corrupt",
    ] {
        assert!(
            faults.get(kind).and_then(|v| v.as_u64()).unwrap_or(0) >= 1,
            "{kind} never injected: {pretty}"
        );
    }
    let f = &r["findings"];
    assert!(
        f["acked"].as_u64().unwrap() >= 300,
        "too few jobs to mean anything: {pretty}"
    );
    assert_eq!(f["lost"].as_array().unwrap().len(), 0);
    assert!(f["states"]["completed"].as_u64().unwrap() > 0, "{pretty}");
    assert!(
        r["leases"]["samples"].as_u64().unwrap() > 0,
        "lease invariant never sampled: {pretty}"
    );
}

#[test]
fn the_check_catches_a_lost_a_stale_and_a_stuck_job() {
    // The run is clean; the sabotage then breaks three jobs the way a defect would.
    let (ok, r, _) = chaos(&[
        "--duration",
        "3s",
        "--faults",
        "cut",
        "--seed",
        "3",
        "--sabotage",
        "lose,stale,stuck",
    ]);
    let pretty = serde_json::to_string_pretty(&r).unwrap();
    assert!(!ok, "sabotage went unnoticed: {pretty}");
    let f = &r["findings"];
    assert_eq!(f["lost"].as_array().unwrap().len(), 1, "{pretty}");
    assert_eq!(f["bad_outcome"].as_array().unwrap().len(), 1, "{pretty}");
    assert!(
        !f["inconsistent"].as_array().unwrap().is_empty(),
        "{pretty}"
    );
    assert!(f["stats_mismatch"].is_string(), "{pretty}");
    assert!(r["violations"].as_u64().unwrap() >= 3, "{pretty}");
}

#[test]
fn a_short_run_on_a_cluster_loses_no_job() {
    // Three masters, three queues spread over them, every fault that needs no proxy.
    let (ok, r, stderr) = chaos(&["--duration", "30s", "--seed", "5", "--cluster"]);
    let pretty = serde_json::to_string_pretty(&r).unwrap();
    assert!(ok, "violations:\n{pretty}\n{stderr}");
    let faults = r["faults"].as_object().unwrap();
    for kind in [
        "worker-kill",
        "redis-kill",
        "redis-stop",
        "oom",
        "no-replicas",
        "corrupt",
    ] {
        assert!(
            faults.get(kind).and_then(|v| v.as_u64()).unwrap_or(0) >= 1,
            "{kind} never injected: {pretty}"
        );
    }
    assert!(r["findings"]["acked"].as_u64().unwrap() >= 200, "{pretty}");
    assert!(
        r["findings"]["states"]["completed"].as_u64().unwrap() > 0,
        "{pretty}"
    );
}
