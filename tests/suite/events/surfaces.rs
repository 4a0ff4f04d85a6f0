//! The CLI (`baton events`, `baton add --wait` and its exit codes) and HTTP (SSE,
//! `?wait=`).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{handler, worker};
use crate::common::{baton_bin, start, wait_until, ChildGuard, RedisServer};
use crate::http_api::support::Api;
use baton::{JobOptions, JobState, Queue};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Runs `baton` to its end off the runtime's thread, so the test's in-process worker
/// runs meanwhile.
async fn baton(redis: &RedisServer, args: &[&str]) -> Output {
    let mut cmd = Command::new(baton_bin());
    cmd.arg("--redis-url").arg(redis.url()).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn cli_events_and_add_wait_exit_codes() {
    let redis = RedisServer::start();
    let o = baton(&redis, &["events", "cli", "--enable", "--max-len", "500"]).await;
    assert!(o.status.success(), "{o:?}");
    let o = baton(&redis, &["stats", "cli", "--json"]).await;
    let stats: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(stats["events"], json!(500));
    let o = baton(&redis, &["stats", "cli"]).await;
    assert!(stdout(&o).contains("events on, 500 kept"), "{}", stdout(&o));

    let q = Queue::connect(redis.url(), "cli").unwrap();
    let w = start(worker(redis.url(), "cli").build(handler()).unwrap());
    let o = baton(
        &redis,
        &["add", "cli", "\"ok\"", "--job-id", "j1", "--wait", "20s"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o).trim(), r#"{"done":true}"#);
    let o = baton(
        &redis,
        &["add", "cli", "\"bad\"", "--wait", "20s", "--json"],
    )
    .await;
    assert_eq!(o.status.code(), Some(3), "{o:?}");
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["state"].clone(), v["error"].clone()),
        (json!("failed"), json!("boom"))
    );
    let o = baton(
        &redis,
        &["add", "cli", "\"ok\"", "--delay", "1h", "--wait", "300ms"],
    )
    .await;
    assert_eq!(o.status.code(), Some(124), "{o:?}");
    // Cancelled while the CLI waits.
    let mut waiting = ChildGuard(
        Command::new(baton_bin())
            .args(["--redis-url", &redis.url()])
            .args(["add", "cli", "\"hang\"", "--job-id", "h1", "--wait", "30s"])
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(20), "h1 running", || async {
        q.job("h1")
            .await
            .unwrap()
            .is_some_and(|j| j.state == JobState::Active)
    })
    .await;
    q.cancel("h1").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = waiting.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "baton add --wait did not end");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(4));
    w.stop().await;

    // Every event as a JSON line, in order; --from resumes after an id.
    let o = baton(&redis, &["events", "cli"]).await;
    assert!(o.status.success(), "{o:?}");
    let lines: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let j1: Vec<_> = lines
        .iter()
        .filter(|e| e["job_id"] == "j1")
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(j1, ["added", "active", "progress", "completed"]);
    let first = lines[0]["stream_id"].as_str().unwrap();
    let o = baton(&redis, &["events", "cli", "--from", first]).await;
    assert_eq!(stdout(&o).lines().count(), lines.len() - 1);
    let o = baton(&redis, &["events", "cli", "--from", "nonsense"]).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a stream id"));
}

/// Reads SSE text from `resp` until it holds `until` (10 s at most).
async fn read_sse(resp: &mut reqwest::Response, until: &str) -> String {
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains(until) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, resp.chunk())
            .await
            .unwrap_or_else(|_| panic!("no {until:?} in time; got:\n{text}"))
            .unwrap()
            .expect("stream open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[tokio::test]
async fn http_sse_resumes_and_get_job_waits() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    let q = Queue::connect(redis.url(), "web").unwrap();
    q.set_events(Some(1000)).await.unwrap();
    let id = q.add("n", &"ok", JobOptions::default()).await.unwrap().id;
    let url = format!("{}/v1/queues/web/events?from=0", api.base);
    let mut resp = api.http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = read_sse(&mut resp, "event: added").await;
    let added_id = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .expect("an id line")
        .to_string();

    // ?wait= answers once the job ends.
    let w = start(worker(redis.url(), "web").build(handler()).unwrap());
    let (status, job) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/queues/web/jobs/{id}?wait=30s"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["state"], "completed");
    assert_eq!(job["result"], json!({"done": true}));
    let text = read_sse(&mut resp, "event: completed").await;
    assert!(text.contains(r#""result":{"done":true}"#), "{text}");
    drop(resp);
    w.stop().await;

    // A reconnect with Last-Event-ID gets what followed that event, from `active` on.
    let mut again = api
        .http
        .get(format!("{}/v1/queues/web/events", api.base))
        .header("Last-Event-ID", &added_id)
        .send()
        .await
        .unwrap();
    let text = read_sse(&mut again, "event: completed").await;
    let names: Vec<_> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names, ["active", "progress", "completed"]);

    for (path, want) in [
        ("/v1/queues/web/events?from=x", StatusCode::BAD_REQUEST),
        ("/v1/queues/web/events?nope=1", StatusCode::BAD_REQUEST),
        (
            &*format!("/v1/queues/web/jobs/{id}?wait=soon"),
            StatusCode::BAD_REQUEST,
        ),
        (
            &*format!("/v1/queues/web/jobs/{id}?wait=1h"),
            StatusCode::BAD_REQUEST,
        ),
        ("/v1/queues/web/jobs/nope?wait=1s", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = api.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, want, "{path}: {body}");
    }
    // Not ended in time: the job as it is.
    let later = q
        .add(
            "n",
            &"ok",
            JobOptions::default().delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap()
        .id;
    let (status, job) = api
        .call(
            reqwest::Method::GET,
            &format!("/v1/queues/web/jobs/{later}?wait=300ms"),
            None,
        )
        .await;
    assert_eq!(
        (status, job["state"].clone()),
        (StatusCode::OK, json!("delayed"))
    );
    api.stop().await;
}
