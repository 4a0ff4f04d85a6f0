//! Regression tests for the defects of issue 8 that the producer, the HTTP API, the
//! outcome writer, the worker options and the exec handler had: each failed on the code
//! before its fix. Every test starts its own redis-server and waits on conditions with
//! deadlines.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{baton_bin, signal, start, wait_until, ChildGuard, RedisServer};
use crate::http_api::support::Api;
use baton::{handler_fn, JobError, JobOptions, JobState, NewJob, Queue, Worker};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Counts the bytes this test process holds allocated, and the peak since a reset
/// (nextest runs each test in a process of its own).
struct Counting;

static HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        let p = unsafe { std::alloc::System.alloc(l) };
        if !p.is_null() {
            let now = HELD.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(p, l) };
        HELD.fetch_sub(l.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn baton(redis: &RedisServer, args: &[&str]) -> Output {
    Command::new(baton_bin())
        .arg("--redis-url")
        .arg(redis.url())
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn config_set(redis: &RedisServer, key: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(key)
        .arg(value)
        .query(&mut redis.conn())
        .unwrap();
}

/// How many times Redis answered with error code `code` (INFO errorstats).
fn error_count(redis: &RedisServer, code: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut redis.conn())
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("errorstat_{code}:count=")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// SIGCONTs a SIGSTOPped redis-server when dropped, whatever happened in between.
struct Stopped(u32);

impl Stopped {
    fn new(pid: u32) -> Stopped {
        signal(pid, libc::SIGSTOP);
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

// ---- Defect 3: a write refusal for Redis's state must not discard an outcome ----

/// `min-replicas-to-write 1` on a Redis without replicas while a job finishes: the
/// worker keeps the outcome and retries; once the setting is back to 0 the job ends
/// completed, having run once, never failed or stalled.
#[tokio::test]
async fn a_write_refused_for_missing_replicas_keeps_the_outcome() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "norepl").unwrap();
    let runs = Arc::new(AtomicU32::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let (r2, rel2) = (runs.clone(), release.clone());
    let w = Worker::builder(redis.url(), "norepl")
        .lease(Duration::from_secs(6))
        .stalled_interval(Duration::from_millis(300))
        .build(handler_fn(move |_: u8, _ctx| {
            let (runs, release) = (r2.clone(), rel2.clone());
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                while !release.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok::<_, JobError>("done")
            }
        }))
        .unwrap();
    let run = start(w);
    let a = q.add("once", &1u8, JobOptions::default()).await.unwrap();
    wait_until(Duration::from_secs(10), "the job started", || async {
        runs.load(Ordering::SeqCst) == 1
    })
    .await;

    let before = error_count(&redis, "NOREPLICAS");
    config_set(&redis, "min-replicas-to-write", "1");
    release.store(true, Ordering::SeqCst);
    // The outcome is refused several times (first try and retries with backoff).
    wait_until(
        Duration::from_secs(10),
        "writes refused with NOREPLICAS",
        || async { error_count(&redis, "NOREPLICAS") >= before + 4 },
    )
    .await;
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(j.state, JobState::Active, "kept while refused: {j:?}");
    config_set(&redis, "min-replicas-to-write", "0");

    wait_until(Duration::from_secs(30), "the job finished", || async {
        q.job(&a.id).await.unwrap().unwrap().state.is_finished()
    })
    .await;
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.stalled, j.attempt, j.error.as_deref()),
        (JobState::Completed, 0, 1, None),
        "{j:?}"
    );
    assert_eq!(j.result, Some(json!("done")));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "ran once");
    run.stop().await;
}

// ---- Defect 7: a producer timeout must say "may or may not", naming the id ----

/// The id named by a "may or may not have been added" message, or the message itself.
fn named_id(msg: &str) -> Option<String> {
    assert!(
        msg.contains("may or may not have been added"),
        "an add without a reply must say it may or may not have been added: {msg}"
    );
    let rest = msg.split("add it again with job id ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

#[tokio::test]
async fn an_add_without_a_reply_says_it_may_have_been_added_and_names_the_id() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "stopped").unwrap();
    q.add("warm", &0u8, JobOptions::default()).await.unwrap();
    let api = Api::start(&redis.url(), None).await;
    let (st, _) = api
        .call(
            Method::POST,
            "/v1/queues/stopped/jobs",
            Some(json!({"name": "warm"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    let stopped = Stopped::new(redis.pid());
    let t0 = Instant::now();
    let given = JobOptions::default().job_id("given-1");
    let bulk: Vec<_> = (0..3).map(|i| NewJob::new("bulk", i)).collect();
    let (generated, given, bulk, http) = tokio::join!(
        q.add("gen", &1u8, JobOptions::default()),
        q.add("given", &2u8, given),
        q.add_bulk(&bulk),
        api.call(
            Method::POST,
            "/v1/queues/stopped/jobs",
            Some(json!({"name": "http"}))
        ),
    );
    let waited = t0.elapsed();
    let generated = generated.unwrap_err().to_string();
    let gen_id = named_id(&generated).expect("names the generated id");
    let given = given.unwrap_err().to_string();
    assert_eq!(named_id(&given).as_deref(), Some("given-1"), "{given}");
    let bulk = bulk.unwrap_err().to_string();
    assert!(
        bulk.contains("3 jobs") && bulk.contains("may or may not have been added"),
        "{bulk}"
    );
    let (st, body) = http;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let http_id = named_id(body["error"].as_str().unwrap()).expect("names the id");
    drop(stopped);
    eprintln!("adds to a stopped redis failed after {waited:?}");

    // Adding again with the named ids is safe: each job exists once.
    let again = q
        .add("gen", &1u8, JobOptions::default().job_id(&gen_id))
        .await
        .unwrap();
    assert_eq!(again.id, gen_id);
    let (st, body) = api
        .call(
            Method::POST,
            "/v1/queues/stopped/jobs",
            Some(json!({"name": "http", "job_id": http_id})),
        )
        .await;
    assert!(st.is_success(), "{st} {body}");
    // warm ×2, gen, given, 3 bulk, http: 8 jobs, no duplicate.
    wait_until(Duration::from_secs(5), "8 jobs waiting", || async {
        q.counts().await.unwrap().waiting == 8
    })
    .await;
    assert!(q.job(&gen_id).await.unwrap().is_some());
    api.stop().await;
}

// ---- Defect 8: payload size limit ----

#[tokio::test]
async fn a_payload_over_the_limit_is_refused_before_it_reaches_redis() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "big").unwrap();
    // Default limit: 4 MiB encoded.
    let big = "x".repeat(5 << 20);
    let err = q
        .add("big", &big, JobOptions::default().job_id("big-1"))
        .await
        .expect_err("a 5 MiB payload is refused")
        .to_string();
    assert!(
        err.contains("big-1") && err.contains("larger than the limit of 4194304 bytes"),
        "{err}"
    );
    let bulk = vec![
        NewJob::new("ok", "small".to_string()),
        NewJob::new("big", big),
    ];
    let err = q
        .add_bulk(&bulk)
        .await
        .expect_err("bulk refused")
        .to_string();
    assert!(err.contains("larger than the limit"), "{err}");
    assert_eq!(q.counts().await.unwrap().waiting, 0, "nothing was added");
    // Refused while encoding: the add holds at most about the limit, not the payload.
    let huge = "h".repeat(256 << 20);
    let base = HELD.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    let err = q
        .add("huge", &huge, JobOptions::default())
        .await
        .unwrap_err();
    let extra = PEAK.load(Ordering::SeqCst) - base;
    eprintln!(
        "a 256 MiB payload was refused holding {} KiB more at most: {err}",
        extra >> 10
    );
    assert!(extra < 16 << 20, "refusing took {extra} bytes");
    drop(huge);
    // Just under the limit goes in.
    let fits = "y".repeat((4 << 20) - 100);
    q.add("fits", &fits, JobOptions::default()).await.unwrap();

    // CLI: the same limit, configurable.
    let out = baton(
        &redis,
        &[
            "add",
            "big",
            &format!("\"{}\"", "z".repeat(200)),
            "--max-payload",
            "100",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("larger than the limit of 100 bytes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(q.counts().await.unwrap().waiting, 1);

    // HTTP: its body limit (1 MiB) says it the same way, with 413.
    let api = Api::start(&redis.url(), None).await;
    let body = format!(r#"{{"name":"big","data":"{}"}}"#, "w".repeat(2 << 20));
    let (st, v) = api.raw(Method::POST, "/v1/queues/big/jobs", body).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("larger than the limit of 1048576 bytes"),
        "{v}"
    );
    api.stop().await;
}

// ---- Defect 9: the heartbeat follows the lease ----

fn noop() -> impl baton::Handler {
    handler_fn(|_: u8, _ctx| async { Ok::<_, JobError>(()) })
}

#[test]
fn the_default_heartbeat_is_a_third_of_the_lease() {
    let url = "redis://127.0.0.1:1";
    for (lease, want) in [(12, 4_000), (30, 10_000), (60, 20_000), (3, 1_000)] {
        let w = Worker::builder(url, "q")
            .lease(Duration::from_secs(lease))
            .build(noop())
            .unwrap();
        assert_eq!(
            w.options().heartbeat,
            Duration::from_millis(want),
            "lease {lease}s"
        );
    }
}

/// Needs `WorkerBuilder::build_arc` to call `WorkerOptions::resolved` (src/worker/mod.rs)
/// and `baton worker` to stop setting the heartbeat itself (src/bin/baton/worker_cmd.rs).
#[test]
fn a_heartbeat_not_shorter_than_the_lease_is_refused_and_errors_name_the_given_setting() {
    let url = "redis://127.0.0.1:1";
    let err = Worker::builder(url, "q")
        .lease(Duration::from_secs(1))
        .heartbeat(Duration::from_secs(1))
        .build(noop())
        .expect_err("heartbeat = lease is refused, not replaced")
        .to_string();
    assert!(
        err.contains("heartbeat (1s)") && err.contains("lease (1s)"),
        "{err}"
    );
    let err = Worker::builder(url, "q")
        .lease(Duration::from_millis(10))
        .build(noop())
        .expect_err("a 10ms lease is too short")
        .to_string();
    assert!(
        err.contains("worker lease (10ms)"),
        "names the lease: {err}"
    );

    let out = Command::new(baton_bin())
        .args([
            "--redis-url",
            "redis://127.0.0.1:1",
            "worker",
            "q",
            "--exec",
            "--lease",
            "10ms",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("lease (10ms)"),
        "the CLI names --lease: {}",
        stderr(&out)
    );
}

// ---- Defect 11: small input checks, the same in library, CLI and HTTP ----

#[tokio::test]
async fn a_timeout_that_rounds_to_zero_ms_is_refused() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "t").unwrap();
    let err = q
        .add(
            "t",
            &0u8,
            JobOptions::default().timeout(Duration::from_nanos(1)),
        )
        .await
        .expect_err("1ns is 0 ms")
        .to_string();
    assert!(err.contains("at least 1ms"), "{err}");
    let out = baton(&redis, &["add", "t", "{}", "--timeout", "1ns"]);
    assert!(!out.status.success(), "--timeout 1ns accepted");
    assert!(stderr(&out).contains("at least 1ms"), "{}", stderr(&out));
    assert_eq!(q.counts().await.unwrap().waiting, 0);
    let err = Worker::builder(redis.url(), "t")
        .timeout(Duration::from_micros(999))
        .build(noop())
        .expect_err("a worker timeout under 1ms")
        .to_string();
    assert!(err.contains("at least 1ms"), "{err}");
}

#[tokio::test]
async fn a_nul_in_a_job_id_or_name_is_refused_everywhere() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "nul").unwrap();
    for (name, id) in [("a\0b", "ok"), ("ok", "a\0b")] {
        let err = q
            .add(name, &0u8, JobOptions::default().job_id(id))
            .await
            .expect_err("NUL refused by the library");
        assert!(matches!(err, baton::Error::Invalid(_)), "{err:?}");
    }
    let api = Api::start(&redis.url(), None).await;
    for body in [
        json!({"name": "a\u{0}b"}),
        json!({"name": "ok", "job_id": "a\u{0}b"}),
    ] {
        let (st, v) = api
            .call(Method::POST, "/v1/queues/nul/jobs", Some(body.clone()))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}: {v}");
    }
    let (st, v) = api
        .call(Method::GET, "/v1/queues/nul/jobs/a%00b", None)
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(q.counts().await.unwrap().waiting, 0);
    api.stop().await;
}

/// Queue `q}:job:5` with job `1` and queue `q` with job `5}:job:1` are the same Redis
/// key: before the check, the second add found the first's job and silently changed
/// nothing. Braces (and empty names, whitespace) are refused by the library, the CLI
/// and the HTTP API alike.
#[tokio::test]
async fn braces_in_queue_names_or_job_ids_are_refused_everywhere() {
    let redis = RedisServer::start();
    let conn = baton::conn::SharedConn::producer(redis.url()).unwrap();
    let a = Queue::with_conn(conn.clone(), "q}:job:5")
        .add("a", &1u8, JobOptions::default().job_id("1"))
        .await;
    let b = Queue::with_conn(conn.clone(), "q")
        .add("b", &2u8, JobOptions::default().job_id("5}:job:1"))
        .await;
    assert!(
        matches!(a, Err(baton::Error::Invalid(_))) && matches!(b, Err(baton::Error::Invalid(_))),
        "colliding keys accepted: {a:?} {b:?}"
    );
    for bad in ["", "a{b", "a}b", "bad queue!"] {
        assert!(Queue::connect(redis.url(), bad).is_err(), "connect {bad:?}");
        let q = Queue::with_conn(conn.clone(), bad);
        assert!(
            matches!(
                q.add("n", &0u8, JobOptions::default()).await,
                Err(baton::Error::Invalid(_))
            ),
            "add to {bad:?}"
        );
        assert!(
            matches!(q.counts().await, Err(baton::Error::Invalid(_))),
            "counts of {bad:?}"
        );
        let out = baton(&redis, &["add", bad, "{}"]);
        assert!(!out.status.success(), "CLI add to {bad:?}");
        assert!(stderr(&out).contains("queue name"), "{}", stderr(&out));
    }
    let out = baton(&redis, &["add", "q", "{}", "--job-id", "5}:job:1"]);
    assert!(!out.status.success(), "CLI job id with a brace");
    assert!(stderr(&out).contains("job id"), "{}", stderr(&out));

    let api = Api::start(&redis.url(), None).await;
    let (st, v) = api
        .call(
            Method::POST,
            "/v1/queues/q/jobs",
            Some(json!({"name": "b", "job_id": "5}:job:1"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = api.call(Method::GET, "/v1/queues/q/jobs/5%7D", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    api.stop().await;

    let mut c = redis.conn();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*job*").query(&mut c).unwrap();
    assert!(keys.is_empty(), "no job was written: {keys:?}");
}

// ---- Defect 5: exec children die with a SIGKILLed worker ----

/// Pids whose argv is exactly `argv`.
fn pids_with_argv(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| a.bytes().chain(std::iter::once(0)))
        .collect();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want) {
            found.push(pid);
        }
    }
    found
}

/// Gone, or a zombie (dead, waiting for whoever adopted it to reap it).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 2..].chars().next())
            .is_some_and(|st| st == 'Z' || st == 'X'),
    }
}

/// SIGKILLs the leftover command if the test failed, so nothing outlives it.
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            if !dead(*p) {
                unsafe { libc::kill(*p, libc::SIGKILL) };
            }
        }
    }
}

#[tokio::test]
async fn exec_children_die_with_a_sigkilled_worker() {
    let redis = RedisServer::start();
    // A unique argv marks this test's command among every process on the machine.
    let marker = format!("29.{:06}", std::process::id() % 1_000_000);
    let worker = ChildGuard(
        Command::new(baton_bin())
            .args([
                "--redis-url",
                &redis.url(),
                "worker",
                "pdeath",
                "--exec",
                "--concurrency",
                "1",
                "--lease",
                "5s",
                "--",
                "sleep",
                &marker,
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let q = Queue::connect(redis.url(), "pdeath").unwrap();
    q.add("sleep", &0u8, JobOptions::default()).await.unwrap();
    let mut pids = Vec::new();
    wait_until(Duration::from_secs(15), "the command started", || {
        pids = pids_with_argv(&["sleep", &marker]);
        std::future::ready(!pids.is_empty())
    })
    .await;
    let _cleanup = KillOnDrop(pids.clone());
    let mut worker = worker;
    worker.0.kill().unwrap();
    worker.0.wait().unwrap();
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(2),
        "the command died with its worker",
        || std::future::ready(pids.iter().all(|p| dead(*p))),
    )
    .await;
    eprintln!("command gone {:?} after the worker's SIGKILL", t0.elapsed());
}
