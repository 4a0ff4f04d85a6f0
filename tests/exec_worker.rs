//! The exec worker (`baton worker --exec -- CMD`) end to end: the real `baton` binary
//! against a real redis-server, running tests/fixtures/job.sh per job.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use baton::{Backoff, JobInfo, JobOptions, JobState, Queue};
use common::{baton_bin, wait_until, RedisServer};
use serde_json::json;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/job.sh")
}

/// A running `baton worker --exec`; SIGKILLed on drop if still running (its log is
/// printed then, to help read a failure).
struct WorkerProc {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl WorkerProc {
    fn start(url: &str, queue: &str, extra: &[&str]) -> WorkerProc {
        Self::start_wrapped(&[], url, queue, extra)
    }

    /// `wrapper` goes before the baton binary (e.g. `unshare --pid --fork`).
    fn start_wrapped(wrapper: &[&str], url: &str, queue: &str, extra: &[&str]) -> WorkerProc {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("worker.log");
        let mut args: Vec<String> = vec!["--redis-url".into(), url.into(), "worker".into(), queue.into()];
        for a in ["--exec", "--concurrency", "2", "--lease", "2s", "--kill-grace", "1s", "--stalled-interval", "500ms"] {
            args.push(a.into());
        }
        let mut shutdown = "2s";
        let mut i = 0;
        while i < extra.len() {
            if extra[i] == "--shutdown-timeout" {
                shutdown = extra[i + 1];
                i += 2;
                continue;
            }
            args.push(extra[i].into());
            i += 1;
        }
        args.extend(["--shutdown-timeout".into(), shutdown.into()]);
        args.extend(["--".into(), "sh".into(), fixture().display().to_string()]);
        let mut cmd = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(baton_bin());
                c
            }
            None => Command::new(baton_bin()),
        };
        cmd.args(&args)
            .env("RUST_LOG", "baton=debug,info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("worker.log.err")).unwrap());
        let child = cmd.spawn().unwrap();
        WorkerProc { child, log, _dir: dir, status: None }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Waits (deadline) for it to exit.
    async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_status() {
                return s;
            }
            if Instant::now() > deadline {
                panic!("worker did not exit within {limit:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGTERM and wait for a clean exit.
    async fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let s = self.wait_exit(Duration::from_secs(10)).await;
        assert!(s.success(), "worker exit status {s}\n{}", self.logs());
    }

    fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("log.err")).unwrap_or_default();
        format!("--- worker stdout ---\n{out}\n--- worker stderr ---\n{err}")
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// (state, ppid) of `pid` from /proc/PID/stat; None once it is gone (reaped).
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

fn gone(pid: i32) -> bool {
    proc_stat(pid).is_none()
}

/// Zombie children of `parent`.
fn zombies_of(parent: i32) -> Vec<i32> {
    let mut z = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        if let Some(('Z', ppid)) = proc_stat(pid) {
            if ppid == parent {
                z.push(pid);
            }
        }
    }
    z
}

/// Asserts (within a deadline: a command that just exited is a zombie until its handler
/// reaps it) that `parent` has no zombie children.
async fn assert_no_zombies(parent: i32) {
    wait_until(Duration::from_secs(3), &format!("no zombie children of {parent}"), || async {
        zombies_of(parent).is_empty()
    })
    .await;
}

async fn job(q: &Queue, id: &str) -> JobInfo {
    q.job(id).await.unwrap().expect("job exists")
}

async fn wait_state(q: &Queue, id: &str, state: JobState, limit: Duration) -> JobInfo {
    let what = format!("job {id} {state}");
    wait_until(limit, &what, || async { job(q, id).await.state == state }).await;
    job(q, id).await
}

async fn wait_file(path: &Path, limit: Duration) -> String {
    let what = format!("{} to exist", path.display());
    wait_until(limit, &what, || async { path.exists() }).await;
    std::fs::read_to_string(path).unwrap()
}

fn fast_retries() -> JobOptions {
    JobOptions::default().backoff(Backoff::Fixed { delay: Duration::from_millis(50) })
}

#[tokio::test]
async fn exit_zero_completes_with_the_last_stdout_line() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), "ex1").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex1", &[]);
    let a = q.add("echo", &json!({"n": 7, "s": "hé \"quoted\""}), JobOptions::default().attempts(2)).await.unwrap();
    let t = q.add("text", &json!(null), JobOptions::default()).await.unwrap();
    let info = wait_state(&q, &a.id, JobState::Completed, Duration::from_secs(10)).await;
    let r = info.result.expect("a result");
    assert_eq!(r["payload"], json!({"n": 7, "s": "hé \"quoted\""}), "payload on stdin");
    assert_eq!(r["id"], json!(a.id));
    assert_eq!(r["name"], json!("echo"));
    assert_eq!(r["queue"], json!("ex1"));
    assert_eq!(r["attempt"], json!(1));
    assert_eq!(r["attempts"], json!(2));
    assert_eq!(info.logs, vec!["starting".to_string(), "done".to_string()], "stderr lines are the log");
    let info = wait_state(&q, &t.id, JobState::Completed, Duration::from_secs(10)).await;
    assert_eq!(info.result, Some(json!("plain text result")), "a non-JSON last line is the result as a string");
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}

#[tokio::test]
async fn exit_codes_retry_per_attempts_and_stderr_is_logged() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), "ex2").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex2", &[]);
    let temp = q.add("exit", &json!({"code": 75}), fast_retries().attempts(2)).await.unwrap();
    let three = q.add("exit", &json!({"code": 3}), fast_retries().attempts(2)).await.unwrap();
    let chatty = q.add("chatty", &json!(null), JobOptions::default()).await.unwrap();

    let info = wait_state(&q, &temp.id, JobState::Failed, Duration::from_secs(10)).await;
    assert_eq!(info.attempt, 2, "exit 75 is retried");
    assert_eq!(info.logs, vec!["attempt 1 exits with 75".to_string(), "attempt 2 exits with 75".to_string()]);
    let err = info.error.unwrap();
    assert!(err.contains("exited with code 75") && err.contains("EX_TEMPFAIL"), "{err}");
    assert!(err.ends_with(": attempt 2 exits with 75"), "the last stderr line is quoted: {err}");

    let info = wait_state(&q, &three.id, JobState::Failed, Duration::from_secs(10)).await;
    assert_eq!(info.attempt, 2, "other exit codes are retried per attempts too");
    assert!(info.error.as_deref().unwrap().starts_with("command exited with code 3"), "{:?}", info.error);
    assert_eq!(info.logs.len(), 2);

    // A chatty command: its log is bounded, the excess counted, long lines cut.
    let info = wait_state(&q, &chatty.id, JobState::Completed, Duration::from_secs(15)).await;
    assert_eq!(info.result, Some(json!("quiet now")));
    let last = info.logs.last().unwrap();
    assert!(last.starts_with("[baton] ") && last.contains("stderr lines dropped"), "{last}");
    assert!(info.logs.len() >= 100 && info.logs.len() <= 1000, "{} lines", info.logs.len());
    assert!(info.logs.iter().all(|l| l.len() <= baton::exec::MAX_LOG_LINE_BYTES + 64));
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}

#[tokio::test]
async fn cancel_kills_the_process_group_and_reaps_it() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), "ex3").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex3", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let mut latencies = Vec::new();
    for i in 0..20 {
        let dir = tmp.path().join(format!("c{i}"));
        std::fs::create_dir(&dir).unwrap();
        let a = q.add("grandchild", &json!({"dir": dir.display().to_string()}), JobOptions::default()).await.unwrap();
        let gpid: i32 = wait_file(&dir.join("pid"), Duration::from_secs(10)).await.trim().parse().unwrap();
        assert!(!gone(gpid));
        let t0 = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let c = Instant::now();
        q.cancel(&a.id).await.unwrap();
        let info = wait_state(&q, &a.id, JobState::Cancelled, Duration::from_secs(5)).await;
        let cancelled_in = c.elapsed();
        assert_eq!(info.state, JobState::Cancelled);
        // The grandchild ignores SIGTERM: only the SIGKILL to the group stops it, and it
        // must be reaped (by the worker: it was re-parented to it), not left a zombie.
        wait_until(Duration::from_secs(5), &format!("grandchild {gpid} gone"), || async { gone(gpid) }).await;
        let term: u128 = wait_file(&dir.join("term"), Duration::from_secs(1)).await.trim().parse().unwrap();
        let latency = Duration::from_nanos((term.saturating_sub(t0.as_nanos())) as u64);
        assert!(cancelled_in < Duration::from_secs(3), "cancel took {cancelled_in:?}");
        latencies.push(latency);
    }
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1)];
    println!(
        "cancel → SIGTERM in the child over {} cancels: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        p(0.5),
        p(0.99),
        latencies.last().unwrap()
    );
    assert!(*latencies.last().unwrap() < Duration::from_secs(1));
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}

#[tokio::test]
async fn timeout_stops_the_command_and_fails_after_attempts() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), "ex4").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex4", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let a = q
        .add(
            "sleep",
            &json!({"secs": 300, "dir": tmp.path().display().to_string()}),
            fast_retries().timeout(Duration::from_millis(300)).attempts(2),
        )
        .await
        .unwrap();
    let info = wait_state(&q, &a.id, JobState::Failed, Duration::from_secs(10)).await;
    let err = info.error.unwrap();
    assert!(err.contains("timed out after"), "{err}");
    assert_eq!(info.attempt, 2);
    assert_eq!(std::fs::read_to_string(tmp.path().join("started")).unwrap(), "1\n2\n");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}

#[tokio::test]
async fn sigterm_lets_a_short_job_finish() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), "ex5a").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex5a", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let a = q.add("short", &json!({"secs": 1, "dir": tmp.path().display().to_string()}), JobOptions::default()).await.unwrap();
    wait_file(&tmp.path().join("started"), Duration::from_secs(10)).await;
    let t = Instant::now();
    w.signal(libc::SIGTERM);
    let s = w.wait_exit(Duration::from_secs(10)).await;
    println!("short job: worker exited {:?} after SIGTERM", t.elapsed());
    assert!(s.success(), "{s}");
    let info = job(&q, &a.id).await;
    assert_eq!(info.state, JobState::Completed);
    assert_eq!(info.result, Some(json!({"slept": 1})));
    assert_eq!(info.stalled, 0);
}

#[tokio::test]
async fn sigterm_hands_a_long_job_back_to_the_next_worker() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), "ex5b").unwrap();
    let mut w1 = WorkerProc::start(&redis.url(), "ex5b", &["--shutdown-timeout", "1s"]);
    let tmp = tempfile::tempdir().unwrap();
    let started = tmp.path().join("started");
    let a = q.add("sleep", &json!({"secs": 300, "dir": tmp.path().display().to_string()}), JobOptions::default()).await.unwrap();
    wait_file(&started, Duration::from_secs(10)).await;
    let pid1 = w1.pid();
    let t = Instant::now();
    w1.signal(libc::SIGTERM);
    let s = w1.wait_exit(Duration::from_secs(10)).await;
    let exited = Instant::now();
    println!("long job: worker exited {:?} after SIGTERM (shutdown timeout 1s)", t.elapsed());
    assert!(s.success(), "{s}\n{}", w1.logs());
    let info = job(&q, &a.id).await;
    assert_eq!(info.state, JobState::Waiting, "handed back");
    assert_eq!(info.attempt, 0, "the attempt is not consumed");
    assert_eq!(info.stalled, 0);
    assert!(zombies_of(pid1).is_empty());

    let mut w2 = WorkerProc::start(&redis.url(), "ex5b", &[]);
    wait_until(Duration::from_secs(5), "second run started", || async {
        std::fs::read_to_string(&started).unwrap_or_default().lines().count() == 2
    })
    .await;
    let picked = exited.elapsed();
    println!("long job: picked up by a new worker {picked:?} after the first exited");
    assert!(picked < Duration::from_secs(1), "{picked:?}");
    assert_eq!(std::fs::read_to_string(&started).unwrap(), "1\n1\n", "the second run is attempt 1 again");
    let info = wait_state(&q, &a.id, JobState::Active, Duration::from_secs(2)).await;
    assert_eq!(info.stalled, 0);
    q.cancel(&a.id).await.unwrap();
    let info = wait_state(&q, &a.id, JobState::Cancelled, Duration::from_secs(5)).await;
    assert_eq!(info.stalled, 0);
    assert_no_zombies(w2.pid()).await;
    w2.stop().await;
}

/// In-process, with an abort grace shorter than the kill grace: the worker aborts the
/// handler while it waits to SIGKILL, and dropping it must still kill the whole group and
/// reap the command (tokio's kill_on_drop would only kill the command itself).
#[tokio::test]
async fn an_aborted_handler_still_kills_the_group() {
    use baton::exec::{ExecConfig, ExecHandler};
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), "ex8").unwrap();
    let handler = ExecHandler::new(ExecConfig {
        program: "sh".into(),
        args: vec![fixture().display().to_string()],
        kill_grace: Duration::from_secs(30),
    });
    let worker = baton::Worker::builder(&redis.url(), "ex8")
        .lease(Duration::from_secs(2))
        .abort_grace(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(1))
        .build(handler)
        .unwrap();
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());
    let tmp = tempfile::tempdir().unwrap();
    let a = q.add("stubborn", &json!({"dir": tmp.path().display().to_string()}), JobOptions::default()).await.unwrap();
    let pids = wait_file(&tmp.path().join("pids"), Duration::from_secs(10)).await;
    let pids: Vec<i32> = pids.split_whitespace().map(|p| p.parse().unwrap()).collect();
    let t = Instant::now();
    q.cancel(&a.id).await.unwrap();
    wait_state(&q, &a.id, JobState::Cancelled, Duration::from_secs(5)).await;
    assert!(t.elapsed() < Duration::from_secs(5), "the handler was aborted, not waited for: {:?}", t.elapsed());
    for pid in pids {
        // The command is reaped by us (no zombie left), its child killed with the group.
        wait_until(Duration::from_secs(5), &format!("{pid} gone"), || async { gone(pid) }).await;
    }
    stop.shutdown();
    run.await.unwrap().unwrap();
}

/// Checks that a grandchild that escaped the process group and outlived its job is
/// adopted by the worker (`ppid` = the worker, as seen from here) and then reaped.
async fn orphan_is_adopted_and_reaped(q: &Queue, worker_pid: i32) {
    let tmp = tempfile::tempdir().unwrap();
    let a = q.add("orphan", &json!({"dir": tmp.path().display().to_string()}), JobOptions::default()).await.unwrap();
    wait_state(q, &a.id, JobState::Completed, Duration::from_secs(10)).await;
    let opid: i32 = wait_file(&tmp.path().join("orphan"), Duration::from_secs(1)).await.trim().parse().unwrap();
    // Its parent (the job's sh) has exited: it now belongs to the worker, not to init.
    let ppid = proc_stat(opid).map(|(_, p)| p);
    assert_eq!(ppid, Some(worker_pid), "orphan {opid} (sleeping 1 s) belongs to the worker");
    wait_until(Duration::from_secs(5), &format!("orphan {opid} reaped"), || async { gone(opid) }).await;
}

#[tokio::test]
async fn orphans_are_adopted_and_reaped() {
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), "ex6").unwrap();
    let mut w = WorkerProc::start(&redis.url(), "ex6", &[]);
    for _ in 0..3 {
        orphan_is_adopted_and_reaped(&q, w.pid()).await;
    }
    assert_no_zombies(w.pid()).await;
    w.stop().await;
}

/// The same with baton as PID 1 of its own pid namespace (as in a container).
#[tokio::test]
async fn orphans_are_reaped_when_baton_is_pid_1() {
    if !Command::new("unshare")
        .args(["--pid", "--fork", "true"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        eprintln!("skipped: cannot create a pid namespace here (unshare --pid needs root or user namespaces)");
        return;
    }
    let redis = RedisServer::start();
    let q = Queue::connect(&redis.url(), "ex7").unwrap();
    let mut w = WorkerProc::start_wrapped(&["unshare", "--pid", "--fork", "--kill-child"], &redis.url(), "ex7", &[]);
    // baton is unshare's child: PID 1 inside, this pid outside.
    let unshare = w.pid();
    let mut baton = 0;
    wait_until(Duration::from_secs(5), "baton started under unshare", || {
        let found = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap_or_default();
        baton = found.split_whitespace().next().and_then(|p| p.parse().ok()).unwrap_or(0);
        async move { baton != 0 }
    })
    .await;
    let nspid = std::fs::read_to_string(format!("/proc/{baton}/status")).unwrap();
    let nspid = nspid.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert!(nspid.split_whitespace().last() == Some("1"), "baton is PID 1 inside: {nspid}");
    for _ in 0..2 {
        orphan_is_adopted_and_reaped(&q, baton).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = q.add("grandchild", &json!({"dir": tmp.path().display().to_string()}), JobOptions::default()).await.unwrap();
    let gpid: i32 = wait_file(&tmp.path().join("pid"), Duration::from_secs(10)).await.trim().parse::<i32>().unwrap();
    let _ = gpid; // a namespace pid: checked through the zombie scan below instead
    q.cancel(&a.id).await.unwrap();
    wait_state(&q, &a.id, JobState::Cancelled, Duration::from_secs(5)).await;
    assert_no_zombies(baton).await;
    unsafe { libc::kill(baton, libc::SIGTERM) };
    let s = w.wait_exit(Duration::from_secs(10)).await;
    assert!(s.success(), "{s}");
}
