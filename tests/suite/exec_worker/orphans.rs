//! Grandchildren that outlive their job are adopted and reaped by the worker.

use std::process::{Command, Stdio};
use std::time::Duration;

use baton::{JobOptions, JobState, Queue};
use serde_json::json;

use super::job_waits::{wait_file, wait_state};
use super::procfs::{assert_no_zombies, gone, proc_stat};
use super::worker_proc::WorkerProc;
use crate::common::{wait_until, RedisServer};

/// Checks that a grandchild that escaped the process group and outlived its job is
/// adopted by the worker (`ppid` = the worker, as seen from here) and then reaped.
async fn orphan_is_adopted_and_reaped(q: &Queue, worker_pid: i32) {
    let tmp = tempfile::tempdir().unwrap();
    let a = q
        .add(
            "orphan",
            &json!({"dir": tmp.path().display().to_string()}),
            JobOptions::default(),
        )
        .await
        .unwrap();
    wait_state(q, &a.id, JobState::Completed, Duration::from_secs(10)).await;
    let opid: i32 = wait_file(&tmp.path().join("orphan"), Duration::from_secs(1))
        .await
        .trim()
        .parse()
        .unwrap();
    // Its parent (the job's sh) has exited: it now belongs to the worker, not to init.
    let ppid = proc_stat(opid).map(|(_, p)| p);
    assert_eq!(
        ppid,
        Some(worker_pid),
        "orphan {opid} (sleeping 1 s) belongs to the worker"
    );
    wait_until(
        Duration::from_secs(5),
        &format!("orphan {opid} reaped"),
        || async { gone(opid) },
    )
    .await;
}

#[tokio::test]
async fn orphans_are_adopted_and_reaped() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ex6").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex6", &[]);
    for _ in 0..3 {
        orphan_is_adopted_and_reaped(&q, w.pid()).await;
    }
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}

/// How to start a command as PID 1 of a new pid namespace here: as root, `unshare
/// --pid`; otherwise inside a user namespace of its own. Neither possible: the test
/// fails saying so (a test that checked nothing must not pass).
fn pid_namespace_prefix() -> Vec<&'static str> {
    crate::common::require_program("unshare");
    let works = |args: &[&str]| {
        Command::new("unshare")
            .args(args)
            .arg("true")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    for p in [
        &["--pid", "--fork"][..],
        &["--user", "--map-root-user", "--pid", "--fork"][..],
    ] {
        if works(p) {
            let mut v = vec!["unshare"];
            v.extend_from_slice(p);
            v.push("--kill-child");
            return v;
        }
    }
    panic!(
        "cannot create a pid namespace here: run the tests as root, or allow unprivileged \
         user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
    );
}

/// The same with baton as PID 1 of its own pid namespace (as in a container).
#[tokio::test]
async fn orphans_are_reaped_when_baton_is_pid_1() {
    let prefix = pid_namespace_prefix();
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ex7").unwrap();
    let mut w = WorkerProc::start_wrapped(&prefix, &redis.url(), "ex7", &[]);
    // baton is unshare's child: PID 1 inside, this pid outside.
    let unshare = w.pid();
    let mut baton = 0;
    wait_until(
        Duration::from_secs(5),
        "baton started under unshare",
        || {
            let found = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
                .unwrap_or_default();
            baton = found
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            async move { baton != 0 }
        },
    )
    .await;
    let nspid = std::fs::read_to_string(format!("/proc/{baton}/status")).unwrap();
    let nspid = nspid.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(
        nspid.split_whitespace().last() == Some("1"),
        "baton is PID 1 inside: {nspid}"
    );
    for _ in 0..2 {
        orphan_is_adopted_and_reaped(&q, baton).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = q
        .add(
            "grandchild",
            &json!({"dir": tmp.path().display().to_string()}),
            JobOptions::default(),
        )
        .await
        .unwrap();
    let gpid: i32 = wait_file(&tmp.path().join("pid"), Duration::from_secs(10))
        .await
        .trim()
        .parse::<i32>()
        .unwrap();
    let _ = gpid; // a namespace pid: checked through the zombie scan below instead
    q.cancel(&a.id).await.unwrap();
    wait_state(&q, &a.id, JobState::Cancelled, Duration::from_secs(5)).await;
    assert_no_zombies(baton).await;
    unsafe { libc::kill(baton, libc::SIGTERM) };
    let s = w.wait_exit(Duration::from_secs(10)).await;
    assert!(s.success(), "{s}");
}
