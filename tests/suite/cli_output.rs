//! The binary's output when it goes to a pipe or a file, as in CI logs, `| grep` and
//! `kubectl logs`: no escape codes, tables whose columns line up whatever the names,
//! and a `--log-format` that refuses what it does not know.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{baton_bin, start, wait_until, ChildGuard, RedisServer};
use baton::{handler_fn, JobContext, Queue, Worker};

fn baton(redis: &RedisServer, args: &[&str]) -> Output {
    Command::new(baton_bin())
        .arg("--redis-url")
        .arg(redis.url())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn no_escapes(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(
        !text.contains('\x1b'),
        "{what} has escape codes though it is not a terminal:\n{text:?}"
    );
}

/// Checks that `lines` (a header and rows) form a table: the same number of
/// whitespace-separated cells per line, and each column either starts at the same
/// place on every line (left-aligned) or ends at the same place (right-aligned).
fn assert_aligned(lines: &[&str]) {
    let cells = |l: &str| -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in l.char_indices().chain([(l.len(), ' ')]) {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    out.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        out
    };
    let table: Vec<_> = lines.iter().map(|l| cells(l)).collect();
    let n = table[0].len();
    for (l, row) in lines.iter().zip(&table) {
        assert_eq!(row.len(), n, "cells in {l:?} (table: {lines:#?})");
    }
    for col in 0..n {
        let starts = table.iter().all(|r| r[col].0 == table[0][col].0);
        let ends = table.iter().all(|r| r[col].1 == table[0][col].1);
        assert!(
            starts || ends,
            "column {col} is not aligned:\n{}",
            lines.join("\n")
        );
    }
}

async fn idle_worker(url: &str, queue: &str) -> crate::common::Running {
    let w = Worker::builder(url, queue)
        .concurrency(3)
        .build(handler_fn(|_: serde_json::Value, _: JobContext| async {
            Ok(())
        }))
        .unwrap();
    start(w)
}

#[tokio::test]
async fn watch_into_a_pipe_has_no_escape_codes_and_aligned_columns() {
    let redis = RedisServer::start();
    for name in ["a", "a-queue-name-longer-than-twenty-chars"] {
        Queue::connect(redis.url(), name)
            .unwrap()
            .add("j", &1, Default::default())
            .await
            .unwrap();
    }
    let out = baton(
        &redis,
        &["watch", "--interval", "50ms", "--iterations", "2"],
    );
    assert!(out.status.success(), "{out:?}");
    no_escapes("baton watch", &out.stdout);
    let text = String::from_utf8(out.stdout).unwrap();
    let frame: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("QUEUE"))
        .take(3)
        .collect();
    assert_eq!(frame.len(), 3, "{text}");
    assert_aligned(&frame);
    assert_eq!(
        text.lines().filter(|l| l.starts_with("QUEUE")).count(),
        2,
        "one frame per refresh, one after another: {text}"
    );
}

#[tokio::test]
async fn logs_into_a_pipe_have_no_escape_codes() {
    let redis = RedisServer::start();
    let mut w = ChildGuard(
        Command::new(baton_bin())
            .args(["--redis-url", &redis.url(), "worker", "logq", "--exec"])
            .args(["--allow-unfit-redis", "--", "cat"])
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let q = Queue::connect(redis.url(), "logq").unwrap();
    wait_until(Duration::from_secs(10), "worker registered", || async {
        !q.workers().await.unwrap().is_empty()
    })
    .await;
    crate::common::signal(w.id(), libc::SIGTERM);
    let mut stderr = Vec::new();
    std::io::Read::read_to_end(w.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = w.wait().unwrap();
    let err = String::from_utf8_lossy(&stderr);
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("worker started"), "{err}");
    no_escapes("the worker's log", &stderr);
}

#[tokio::test]
async fn workers_columns_line_up() {
    let redis = RedisServer::start();
    let names = ["q", "a-queue-name-longer-than-twenty-chars"];
    for name in names {
        // A job, so that the queue is found (queues are discovered by their keys).
        Queue::connect(redis.url(), name)
            .unwrap()
            .add("j", &1, Default::default())
            .await
            .unwrap();
    }
    let short = idle_worker(&redis.url(), names[0]).await;
    let long = idle_worker(&redis.url(), names[1]).await;
    wait_until(Duration::from_secs(10), "two workers", || async {
        let out = baton(&redis, &["workers"]);
        String::from_utf8_lossy(&out.stdout).lines().count() == 3
    })
    .await;
    let out = baton(&redis, &["workers"]);
    assert!(out.status.success(), "{out:?}");
    no_escapes("baton workers", &out.stdout);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_aligned(&text.lines().collect::<Vec<_>>());
    short.stop().await;
    long.stop().await;
}

#[test]
fn an_unknown_log_format_is_refused() {
    for (how, args, env) in [
        ("flag", &["--log-format", "yaml", "stats"][..], None),
        ("env", &["stats"][..], Some("yaml")),
    ] {
        let mut cmd = Command::new(baton_bin());
        // Nothing listens here: a refused format must stop it before any connection.
        cmd.args(["--redis-url", "redis://127.0.0.1:1"]).args(args);
        if let Some(v) = env {
            cmd.env("BATON_LOG_FORMAT", v);
        } else {
            cmd.env_remove("BATON_LOG_FORMAT");
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{how}: {err}");
        assert!(
            err.contains("yaml") && err.contains("text") && err.contains("json"),
            "{how}: names the bad value and the good ones: {err}"
        );
    }
    for good in ["text", "json"] {
        let out = Command::new(baton_bin())
            .args(["--log-format", good, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{good}: {out:?}");
    }
}
