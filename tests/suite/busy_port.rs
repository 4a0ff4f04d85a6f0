//! A busy port is a start-up error: `baton serve --listen` and `baton worker
//! --metrics-addr` on a port another process holds exit non-zero, naming the address,
//! before doing any work. (Before: the worker ran on without /metrics and /healthz, so a
//! liveness probe restarted it in a loop, and `serve` logged "listening" first.)

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{baton_bin, ChildGuard, RedisServer};
use baton::{JobOptions, JobState, Queue};

/// Runs `cmd` to its end (at most `limit`; killed and reported as still running after).
fn run_for(mut cmd: Command, limit: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = ChildGuard(child);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.0.wait_with_output_taken();
            panic!(
                "still running after {limit:?}; it should have exited at once. stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.0.wait_with_output_taken()
}

/// `wait_with_output` for a child owned by a guard.
trait TakeOutput {
    fn wait_with_output_taken(&mut self) -> Output;
}

impl TakeOutput for std::process::Child {
    fn wait_with_output_taken(&mut self) -> Output {
        use std::io::Read;
        let status = self.wait().unwrap();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        if let Some(mut o) = self.stdout.take() {
            o.read_to_end(&mut stdout).unwrap();
        }
        if let Some(mut e) = self.stderr.take() {
            e.read_to_end(&mut stderr).unwrap();
        }
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

fn assert_refused(out: &Output, addr: &str, what: &str) {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{what} must exit non-zero: {text}");
    let want = format!("cannot listen on {addr}: address in use");
    assert!(text.contains(&want), "{what}: want {want:?} in:\n{text}");
}

#[test]
fn serve_on_a_busy_port_exits_before_listening() {
    let redis = RedisServer::start();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let mut cmd = Command::new(baton_bin());
    cmd.args(["serve", "--listen", &addr, "--redis-url", &redis.url()])
        .env_remove("BATON_API_TOKEN");
    let out = run_for(cmd, Duration::from_secs(15));
    assert_refused(&out, &addr, "baton serve");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("listening"),
        "must not claim to listen on a port it could not bind:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_with_busy_metrics_port_exits_before_claiming() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "busy").unwrap();
    let id = q
        .add("j", &serde_json::json!({}), JobOptions::default())
        .await
        .unwrap()
        .id;
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let mut cmd = Command::new(baton_bin());
    cmd.args([
        "worker",
        "busy",
        "--exec",
        "--metrics-addr",
        &addr,
        "--redis-url",
        &redis.url(),
        "--",
        "true",
    ]);
    let out = tokio::task::spawn_blocking(move || run_for(cmd, Duration::from_secs(15)))
        .await
        .unwrap();
    assert_refused(&out, &addr, "baton worker --metrics-addr");
    let job = q.job(&id).await.unwrap().expect("the job is still there");
    assert_eq!(
        (job.state, job.attempt),
        (JobState::Waiting, 0),
        "the worker must not claim anything before its ops server listens"
    );
}
