//! The exec worker's contract with its command (`baton worker Q --exec -- CMD`), end to
//! end with the real binary: which exit codes retry and which fail for good, what an
//! oversized result does, progress lines, and a command that cannot run being refused
//! at start-up instead of failing every job.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{baton_bin, wait_until, ChildGuard, RedisServer};
use baton::{Backoff, JobInfo, JobOptions, JobState, Queue};
use serde_json::json;

/// Writes `body` as a shell script in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// `baton worker QUEUE --exec … -- command…`, output captured.
fn worker(url: &str, queue: &str, command: &[&str]) -> ChildGuard {
    let mut cmd = Command::new(baton_bin());
    cmd.args(["--redis-url", url, "worker", queue, "--exec"])
        .args(["--concurrency", "2", "--lease", "2s", "--kill-grace", "1s"])
        .args(["--stalled-interval", "500ms", "--shutdown-timeout", "2s"])
        .arg("--")
        .args(command)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    ChildGuard(cmd.spawn().unwrap())
}

/// SIGTERMs a worker and waits for its clean exit.
fn stop(mut w: ChildGuard) {
    crate::common::signal(w.id(), libc::SIGTERM);
    let status = w.wait().unwrap();
    assert!(status.success(), "worker exited with {status}");
}

fn fast_retries() -> JobOptions {
    JobOptions::default().backoff(Backoff::Fixed {
        delay: Duration::from_millis(50),
    })
}

async fn wait_state(q: &Queue, id: &str, state: JobState) -> JobInfo {
    let what = format!("job {id} {state}");
    wait_until(Duration::from_secs(15), &what, || async {
        q.job(id).await.unwrap().unwrap().state == state
    })
    .await;
    q.job(id).await.unwrap().unwrap()
}

#[tokio::test]
async fn exit_codes_follow_the_documented_table() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "codes").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = script(
        dir.path(),
        "exit.sh",
        r#"code=$(cat | tr -dc 0-9); echo "attempt $BATON_ATTEMPT exits with $code" >&2; exit "$code""#,
    );
    let w = worker(&redis.url(), "codes", &[s.to_str().unwrap()]);
    let add = |code: i32| {
        let q = q.clone();
        async move {
            q.add("exit", &code, fast_retries().attempts(3))
                .await
                .unwrap()
                .id
        }
    };
    let fatal = add(baton::exec::EXIT_FATAL).await;
    let temp = add(baton::exec::EXIT_TEMPFAIL).await;
    let other = add(3).await;

    let info = wait_state(&q, &fatal, JobState::Failed).await;
    assert_eq!(info.attempt, 1, "exit 65 fails for good, no retry");
    let err = info.error.unwrap();
    assert!(
        err.contains("exited with code 65") && err.contains("EX_DATAERR"),
        "{err}"
    );
    assert!(
        err.ends_with(": attempt 1 exits with 65"),
        "quotes stderr: {err}"
    );

    let info = wait_state(&q, &temp, JobState::Failed).await;
    assert_eq!(info.attempt, 3, "exit 75 retries until attempts run out");
    let info = wait_state(&q, &other, JobState::Failed).await;
    assert_eq!(info.attempt, 3, "any other code retries likewise");
    stop(w);
}

#[tokio::test]
async fn an_oversized_result_fails_the_job_like_a_rust_handler() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "big").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let over = baton::exec::MAX_RESULT_BYTES + 10;
    let s = script(
        dir.path(),
        "big.sh",
        &format!("cat >/dev/null; head -c {over} /dev/zero | tr '\\0' x; echo"),
    );
    let w = worker(&redis.url(), "big", &[s.to_str().unwrap()]);
    let id = q
        .add("big", &json!(null), fast_retries().attempts(3))
        .await
        .unwrap()
        .id;
    let info = wait_state(&q, &id, JobState::Failed).await;
    assert_eq!(
        info.attempt, 1,
        "the same output would come again: no retry"
    );
    let err = info.error.unwrap();
    assert!(
        err.contains("result too large")
            && err.contains(&baton::exec::MAX_RESULT_BYTES.to_string()),
        "{err}"
    );
    assert_eq!(info.result, None);
    stop(w);
}

#[tokio::test]
async fn progress_lines_on_stderr_set_the_progress() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "prog").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let s = script(
        dir.path(),
        "prog.sh",
        &format!(
            r#"cat >/dev/null
echo "BATON_PROGRESS 42" >&2
echo "working" >&2
while [ ! -f {go} ]; do sleep 0.02; done
echo 'BATON_PROGRESS {{"done":3,"total":3}}' >&2
echo '"ok"'"#,
            go = go.display()
        ),
    );
    let w = worker(&redis.url(), "prog", &[s.to_str().unwrap()]);
    let id = q
        .add("prog", &json!(null), JobOptions::default())
        .await
        .unwrap()
        .id;
    wait_until(Duration::from_secs(10), "progress 42", || async {
        q.job(&id).await.unwrap().unwrap().progress == Some(json!(42))
    })
    .await;
    std::fs::write(&go, "").unwrap();
    let info = wait_state(&q, &id, JobState::Completed).await;
    assert_eq!(info.progress, Some(json!({"done": 3, "total": 3})));
    assert_eq!(info.result, Some(json!("ok")));
    assert_eq!(
        info.logs,
        vec!["working".to_string()],
        "progress lines are not log lines"
    );
    stop(w);
}

/// Runs a worker for `command` with a job waiting, and expects it to refuse to start.
async fn refused(redis: &RedisServer, command: &str, names: &str) {
    let q = Queue::connect(redis.url(), "refuse").unwrap();
    let id = q
        .add("j", &json!(null), JobOptions::default())
        .await
        .unwrap()
        .id;
    let mut w = worker(&redis.url(), "refuse", &[command, "arg"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = w.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "worker for {command:?} did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(w.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{command:?}: exit {status}\n{err}");
    assert!(err.contains(names), "message names {names:?}: {err}");
    let info = q.job(&id).await.unwrap().unwrap();
    assert_eq!(info.state, JobState::Waiting, "{command:?}");
    assert_eq!(info.attempt, 0, "{command:?}: no attempt burnt");
    q.remove(&id).await.unwrap();
}

#[tokio::test]
async fn a_command_that_cannot_run_is_refused_at_start_up() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    refused(&redis, "baton-no-such-command", "baton-no-such-command").await;
    let plain = dir.path().join("not-executable.sh");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let p = plain.display().to_string();
    refused(&redis, &p, &p).await;
    let missing = dir.path().join("gone.sh").display().to_string();
    refused(&redis, &missing, &missing).await;
    let d = dir.path().display().to_string();
    refused(&redis, &d, &d).await;
}

#[tokio::test]
async fn a_command_found_on_path_or_relative_runs() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "found").unwrap();
    // `sh` from PATH, with the script as its argument.
    let dir = tempfile::tempdir().unwrap();
    let s = script(dir.path(), "ok.sh", "cat >/dev/null; echo '{\"ok\":true}'");
    let w = worker(&redis.url(), "found", &["sh", s.to_str().unwrap()]);
    let id = q
        .add("ok", &json!(null), JobOptions::default())
        .await
        .unwrap()
        .id;
    let info = wait_state(&q, &id, JobState::Completed).await;
    assert_eq!(info.result, Some(json!({"ok": true})));
    stop(w);
}
