//! `/metrics` after real work: every metric in `baton::metrics::ALL` is exported with
//! HELP and TYPE lines, the counters the work drove are non-zero, and `promtool check
//! metrics` accepts the exposition (promtool is required; Debian: `prometheus`).

#[path = "metrics_exposition/zero.rs"]
mod zero;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{free_port, start, wait_until, RedisServer};
use baton::metrics as m;
use baton::{handler_fn, JobContext, JobError, JobOptions, Queue, Worker};
use redis::Commands;
use tokio_util::sync::CancellationToken;

const Q: &str = "metq";

/// One sample line: metric name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((n, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("bad labels in {line:?}"));
                let mut labels = BTreeMap::new();
                // Label values here never contain `",` so a simple split is enough.
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair
                        .split_once("=\"")
                        .unwrap_or_else(|| panic!("bad label {pair:?} in {line:?}"));
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (n.to_string(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .reduce(|a, b| a + b)
}

async fn scrape(http: &reqwest::Client, base: &str) -> String {
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(
        ct.starts_with("text/plain") && ct.contains("version=0.0.4"),
        "content-type {ct}"
    );
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_after_real_work_are_complete_and_valid() {
    let redis = RedisServer::start();
    let url = redis.url();
    let q = Queue::connect(&url, Q).unwrap();

    // The ops server every worker runs, in process.
    let port = free_port();
    let stop_ops = CancellationToken::new();
    let ops = tokio::spawn(baton::http::serve_ops(
        ([127, 0, 0, 1], port).into(),
        url.clone(),
        stop_ops.clone(),
    ));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_until(Duration::from_secs(20), "ops server up", || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    // A worker whose handler does what the job's name says.
    let worker = Worker::builder(&url, Q)
        .concurrency(1)
        .lease(Duration::from_secs(3))
        .stalled_interval(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_secs(5))
        .build(handler_fn(
            |_: serde_json::Value, ctx: JobContext| async move {
                match ctx.name() {
                    "ok" => Ok(()),
                    "fail" => Err(JobError::fatal("told to fail")),
                    "flaky" if ctx.attempt() == 1 => Err(JobError::retry_after(
                        "first attempt fails",
                        Duration::from_millis(10),
                    )),
                    "flaky" => Ok(()),
                    // Blocks until told to stop (cancel, lost lease); once recovered from a
                    // stall, succeeds at once.
                    "block" if ctx.stalled() == 0 => {
                        ctx.cancelled().await;
                        Err(JobError::retry("stopped"))
                    }
                    _ => Ok(()),
                }
            },
        ))
        .unwrap();
    let run = start(worker);

    let count = |state: &'static str| {
        let q = q.clone();
        async move {
            let c = q.counts().await.unwrap();
            match state {
                "completed" => c.completed,
                "failed" => c.failed,
                "cancelled" => c.cancelled,
                _ => unreachable!(),
            }
        }
    };

    // completed, enqueued, duration, wait
    for _ in 0..3 {
        q.add("ok", &1, JobOptions::default()).await.unwrap();
    }
    wait_until(Duration::from_secs(10), "3 completed", || async {
        count("completed").await == 3
    })
    .await;
    // failed
    q.add("fail", &1, JobOptions::default()).await.unwrap();
    wait_until(Duration::from_secs(10), "1 failed", || async {
        count("failed").await == 1
    })
    .await;
    // retried
    q.add("flaky", &1, JobOptions::default().attempts(2))
        .await
        .unwrap();
    wait_until(Duration::from_secs(10), "flaky completed", || async {
        count("completed").await == 4
    })
    .await;
    // cancelled: a running job, cancelled through the worker
    let running = q
        .add("block", &1, JobOptions::default().attempts(1))
        .await
        .unwrap()
        .id;
    wait_until(Duration::from_secs(10), "block job active", || async {
        q.job(&running).await.unwrap().unwrap().state == baton::JobState::Active
    })
    .await;
    q.cancel(&running).await.unwrap();
    wait_until(Duration::from_secs(10), "block job cancelled", || async {
        count("cancelled").await == 1
    })
    .await;
    // stalled and lock_lost: expire the lease of a running job by hand, as if its
    // worker had hung. The sweeper recovers it (stalled) and fences the old attempt
    // off; the heartbeat then finds the lease lost (lock_lost) and stops the handler;
    // the recovered job runs again and completes.
    let stuck = q
        .add("block", &1, JobOptions::default().attempts(1))
        .await
        .unwrap()
        .id;
    wait_until(Duration::from_secs(10), "stuck job active", || async {
        q.job(&stuck).await.unwrap().unwrap().state == baton::JobState::Active
    })
    .await;
    // Fence the worker off first (as a takeover would), so a heartbeat landing between
    // these two writes cannot renew the lease back.
    let _: () = redis
        .conn()
        .hincr(q.keys().job(&stuck), "token", 1)
        .unwrap();
    let _: () = redis.conn().zadd(q.keys().active(), &stuck, 1).unwrap();
    wait_until(
        Duration::from_secs(15),
        "stuck job recovered and completed",
        || async {
            let j = q.job(&stuck).await.unwrap().unwrap();
            j.state == baton::JobState::Completed && j.stalled == 1
        },
    )
    .await;

    // Redis errors: a second ops server against a Redis that is not there; its gauge
    // refresher fails to list queues and its /readyz fails to connect.
    let dead_port = free_port();
    let dead_stop = CancellationToken::new();
    let dead_ops = tokio::spawn(baton::http::serve_ops(
        ([127, 0, 0, 1], free_port()).into(),
        format!("redis://127.0.0.1:{dead_port}"),
        dead_stop.clone(),
    ));

    // Everything shows up, with the values the work implies.
    let ready = |s: &[Sample]| {
        value(s, m::QUEUE_JOBS, &[("queue", Q), ("state", "completed")]) == Some(5.0)
            && value(s, m::JOBS_LOCK_LOST, &[("queue", Q)]).is_some_and(|v| v >= 1.0)
            && value(s, m::REDIS_ERRORS, &[("op", "discover")]).is_some_and(|v| v >= 1.0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = scrape(&http, &base).await;
        if ready(&parse(&text)) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "series missing after 20 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let samples = parse(&text);
    for name in m::ALL {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "no HELP line for {name} in:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no TYPE line for {name} in:\n{text}"
        );
        assert!(
            samples.iter().any(|s| s.name == *name
                || s.name
                    .strip_prefix(*name)
                    .is_some_and(|x| ["_bucket", "_sum", "_count"].contains(&x))),
            "no samples of {name}"
        );
    }
    let at_least = |name: &str, n: f64| {
        let v = value(&samples, name, &[("queue", Q)]).unwrap_or(0.0);
        assert!(
            v >= n,
            "{name}{{queue={Q:?}}} is {v}, want at least {n}\n{text}"
        );
    };
    at_least(m::JOBS_ENQUEUED, 7.0);
    at_least(m::JOBS_COMPLETED, 5.0);
    at_least(m::JOBS_FAILED, 1.0);
    at_least(m::JOBS_RETRIED, 1.0);
    at_least(m::JOBS_CANCELLED, 1.0);
    at_least(m::JOBS_STALLED, 1.0);
    at_least(m::JOBS_LOCK_LOST, 1.0);
    at_least(&format!("{}_count", m::JOB_DURATION), 5.0);
    at_least(&format!("{}_count", m::JOB_WAIT), 5.0);
    assert!(
        text.contains(&format!("# TYPE {} histogram", m::JOB_DURATION)),
        "{text}"
    );
    assert!(
        text.contains(&format!("# TYPE {} gauge", m::QUEUE_JOBS)),
        "{text}"
    );
    assert!(
        text.contains(&format!("# TYPE {} counter", m::JOBS_COMPLETED)),
        "{text}"
    );
    assert!(
        value(&samples, m::WORKER_IN_FLIGHT, &[("queue", Q)]).is_some(),
        "in-flight gauge of the worker"
    );
    for (state, want) in [
        ("waiting", 0.0),
        ("delayed", 0.0),
        ("active", 0.0),
        ("completed", 5.0),
        ("failed", 1.0),
        ("cancelled", 1.0),
    ] {
        assert_eq!(
            value(&samples, m::QUEUE_JOBS, &[("queue", Q), ("state", state)]),
            Some(want),
            "{state}\n{text}"
        );
    }

    // promtool, the reference linter.
    promtool_check(&text);

    run.stop().await;
    dead_stop.cancel();
    stop_ops.cancel();
    tokio::time::timeout(Duration::from_secs(10), dead_ops)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), ops)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Pipes the exposition through `promtool check metrics`. Without promtool the test
/// fails with the install line: a check that did not run must not pass.
fn promtool_check(text: &str) {
    let mut child = Command::new(crate::common::require_program("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\nstdout: {}\nstderr: {}\nexposition:\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("promtool check metrics: ok");
}

#[tokio::test]
async fn register_queue_exports_zero_counters() {
    let handle = m::install();
    baton::http::register_queue("zeroq");
    let text = handle.render();
    let samples = parse(&text);
    for name in [
        m::JOBS_ENQUEUED,
        m::JOBS_COMPLETED,
        m::JOBS_FAILED,
        m::JOBS_RETRIED,
        m::JOBS_STALLED,
        m::JOBS_CANCELLED,
        m::JOBS_LOCK_LOST,
    ] {
        assert_eq!(
            value(&samples, name, &[("queue", "zeroq")]),
            Some(0.0),
            "{name}\n{text}"
        );
    }
}
