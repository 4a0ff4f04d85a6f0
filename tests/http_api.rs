//! The `baton serve` HTTP API against real redis-server processes: routes, status
//! codes, auth, the refusal to listen openly without a token, readiness, and the
//! OpenAPI document against the router.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use baton::http::{ServeConfig, MAX_BODY_BYTES};
use baton::{handler_fn, JobContext, JobError, Queue, Worker};
use common::{free_port, wait_until, RedisServer};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// An API server running in this process.
struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<baton::Result<()>>>,
}

impl Api {
    async fn start(redis_url: &str, token: Option<&str>) -> Api {
        let port = free_port();
        let listen: SocketAddr = ([127, 0, 0, 1], port).into();
        let stop = CancellationToken::new();
        let cfg = ServeConfig { redis_url: redis_url.to_string(), listen, token: token.map(String::from) };
        let task = tokio::spawn(baton::http::serve(cfg, stop.clone()));
        let api = Api {
            base: format!("http://{listen}"),
            token: token.map(String::from),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
            stop,
            task: Some(task),
        };
        wait_http(&api.http, &format!("{}/healthz", api.base)).await;
        api
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let b = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => b.bearer_auth(t),
            None => b,
        }
    }

    /// Sends and returns (status, parsed JSON body or Null).
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut b = self.req(method, path);
        if let Some(v) = body {
            b = b.json(&v);
        }
        split(b.send().await.unwrap()).await
    }

    async fn raw(&self, method: Method, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
        split(self.req(method, path).header("content-type", "application/json").body(body).send().await.unwrap()).await
    }

    async fn stop(mut self) {
        self.stop.cancel();
        let r = tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap()).await;
        r.expect("server stops on the token").unwrap().unwrap();
    }
}

async fn split(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

async fn wait_http(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} did not answer in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A JSON error body with a non-empty message.
#[track_caller]
fn assert_json_error(what: &str, status: StatusCode, body: &Value, want: StatusCode) {
    assert_eq!(status, want, "{what}: status (body {body})");
    let msg = body.get("error").and_then(Value::as_str);
    assert!(msg.is_some_and(|m| !m.is_empty()), "{what}: want a JSON {{\"error\": ...}} body, got {body}");
}

#[tokio::test]
async fn happy_path_enqueue_inspect_cancel_retry_delete() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;

    // Enqueue: 201 with a fresh id.
    let (st, added) = api
        .call(Method::POST, "/v1/queues/emails/jobs", Some(json!({"name": "send", "data": {"to": "a@x"}, "priority": 5, "attempts": 2, "timeout_ms": 30000})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{added}");
    assert_eq!(added["added"], true);
    let id = added["id"].as_str().unwrap().to_string();

    // The same job_id twice: 201 then 200 with added=false, nothing changed.
    let (st, first) = api.call(Method::POST, "/v1/queues/emails/jobs", Some(json!({"name": "send", "data": 1, "job_id": "fixed"}))).await;
    assert_eq!((st, first.clone()), (StatusCode::CREATED, json!({"id": "fixed", "added": true})));
    let (st, again) = api.call(Method::POST, "/v1/queues/emails/jobs", Some(json!({"name": "send", "data": 2, "job_id": "fixed"}))).await;
    assert_eq!((st, again), (StatusCode::OK, json!({"id": "fixed", "added": false})));
    let (_, fixed) = api.call(Method::GET, "/v1/queues/emails/jobs/fixed", None).await;
    assert_eq!(fixed["data"], 1, "a second add with the same id changes nothing");

    // A delayed job (data omitted: null).
    let (st, delayed) = api.call(Method::POST, "/v1/queues/emails/jobs", Some(json!({"name": "later", "delay_ms": 3_600_000}))).await;
    assert_eq!(st, StatusCode::CREATED);
    let delayed_id = delayed["id"].as_str().unwrap().to_string();

    // Get the job.
    let (st, job) = api.call(Method::GET, &format!("/v1/queues/emails/jobs/{id}"), None).await;
    assert_eq!(st, StatusCode::OK, "{job}");
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["queue"], "emails");
    assert_eq!(job["name"], "send");
    assert_eq!(job["state"], "waiting");
    assert_eq!(job["data"], json!({"to": "a@x"}));
    assert_eq!(job["priority"], 5);
    assert_eq!(job["attempts"], 2);
    let (_, d) = api.call(Method::GET, &format!("/v1/queues/emails/jobs/{delayed_id}"), None).await;
    assert_eq!((d["state"].clone(), d["data"].clone()), (json!("delayed"), Value::Null));

    // List by state.
    let (st, list) = api.call(Method::GET, "/v1/queues/emails/jobs?state=waiting&limit=50", None).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let ids: BTreeSet<&str> = list["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(ids, BTreeSet::from([id.as_str(), "fixed"]));
    let (_, list) = api.call(Method::GET, "/v1/queues/emails/jobs?state=delayed", None).await;
    assert_eq!(list["ids"], json!([delayed_id]));
    let (_, list) = api.call(Method::GET, "/v1/queues/emails/jobs?state=waiting&limit=1&offset=1", None).await;
    assert_eq!(list["ids"].as_array().unwrap().len(), 1);

    // Counts, one queue and all.
    let (st, counts) = api.call(Method::GET, "/v1/queues/emails", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        counts,
        json!({"queue": "emails", "waiting": 2, "delayed": 1, "active": 0, "completed": 0, "failed": 0, "cancelled": 0, "paused": false})
    );
    let (st, all) = api.call(Method::GET, "/v1/queues", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(all["queues"], json!([counts]));

    // Pause and resume.
    let (st, p) = api.call(Method::POST, "/v1/queues/emails/pause", None).await;
    assert_eq!((st, p), (StatusCode::OK, json!({"queue": "emails", "paused": true})));
    assert_eq!(api.call(Method::GET, "/v1/queues/emails", None).await.1["paused"], true);
    let (st, p) = api.call(Method::POST, "/v1/queues/emails/resume", None).await;
    assert_eq!((st, p), (StatusCode::OK, json!({"queue": "emails", "paused": false})));
    assert_eq!(api.call(Method::GET, "/v1/queues/emails", None).await.1["paused"], false);

    // Retry of a waiting job: 409.
    let (st, e) = api.call(Method::POST, &format!("/v1/queues/emails/jobs/{id}/retry"), None).await;
    assert_json_error("retry waiting", st, &e, StatusCode::CONFLICT);

    // Cancel a waiting job: cancelled at once; again: 409.
    let (st, c) = api.call(Method::POST, &format!("/v1/queues/emails/jobs/{id}/cancel"), None).await;
    assert_eq!((st, c), (StatusCode::OK, json!({"id": id, "result": "cancelled"})));
    assert_eq!(api.call(Method::GET, &format!("/v1/queues/emails/jobs/{id}"), None).await.1["state"], "cancelled");
    let (st, e) = api.call(Method::POST, &format!("/v1/queues/emails/jobs/{id}/cancel"), None).await;
    assert_json_error("cancel cancelled", st, &e, StatusCode::CONFLICT);
    assert_eq!(api.call(Method::GET, "/v1/queues/emails/jobs?state=cancelled", None).await.1["ids"], json!([id]));

    // Retry it: waiting again.
    let (st, r) = api.call(Method::POST, &format!("/v1/queues/emails/jobs/{id}/retry"), None).await;
    assert_eq!((st, r), (StatusCode::OK, json!({"id": id, "result": "queued"})));
    assert_eq!(api.call(Method::GET, &format!("/v1/queues/emails/jobs/{id}"), None).await.1["state"], "waiting");

    // Delete: 204, then 404 for everything about it.
    let (st, body) = api.call(Method::DELETE, &format!("/v1/queues/emails/jobs/{id}"), None).await;
    assert_eq!((st, body), (StatusCode::NO_CONTENT, Value::Null));
    for (m, p) in [
        (Method::GET, format!("/v1/queues/emails/jobs/{id}")),
        (Method::DELETE, format!("/v1/queues/emails/jobs/{id}")),
        (Method::POST, format!("/v1/queues/emails/jobs/{id}/cancel")),
        (Method::POST, format!("/v1/queues/emails/jobs/{id}/retry")),
    ] {
        let (st, e) = api.call(m.clone(), &p, None).await;
        assert_json_error(&format!("{m} {p} after delete"), st, &e, StatusCode::NOT_FOUND);
    }

    api.stop().await;
}

#[tokio::test]
async fn running_jobs_cancel_requested_and_not_deletable() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    let worker = Worker::builder(&redis.url(), "runs")
        .lease(Duration::from_secs(5))
        .shutdown_timeout(Duration::from_secs(5))
        .build(handler_fn(|_: Value, ctx: JobContext| async move {
            ctx.cancelled().await;
            Err::<(), _>(JobError::retry("stopped"))
        }))
        .unwrap();
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());

    let (st, added) = api.call(Method::POST, "/v1/queues/runs/jobs", Some(json!({"name": "long", "data": null, "attempts": 1}))).await;
    assert_eq!(st, StatusCode::CREATED);
    let id = added["id"].as_str().unwrap().to_string();
    let path = format!("/v1/queues/runs/jobs/{id}");
    wait_until(Duration::from_secs(10), "job active", || async { api.call(Method::GET, &path, None).await.1["state"] == "active" }).await;

    let (st, e) = api.call(Method::DELETE, &path, None).await;
    assert_json_error("delete running", st, &e, StatusCode::CONFLICT);
    let (st, e) = api.call(Method::POST, &format!("{path}/retry"), None).await;
    assert_json_error("retry running", st, &e, StatusCode::CONFLICT);

    let (st, c) = api.call(Method::POST, &format!("{path}/cancel"), None).await;
    assert_eq!((st, c), (StatusCode::OK, json!({"id": id, "result": "cancel_requested"})));
    wait_until(Duration::from_secs(10), "job cancelled", || async { api.call(Method::GET, &path, None).await.1["state"] == "cancelled" }).await;
    let (st, e) = api.call(Method::POST, &format!("{path}/cancel"), None).await;
    assert_json_error("cancel finished", st, &e, StatusCode::CONFLICT);
    let (st, _) = api.call(Method::DELETE, &path, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    stop.shutdown();
    run.await.unwrap().unwrap();
    api.stop().await;
}

#[tokio::test]
async fn bad_input_gets_4xx_json_never_500() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    Queue::connect(&redis.url(), "q").unwrap().add("n", &1, Default::default()).await.unwrap();

    let jobs = "/v1/queues/q/jobs";
    let bodies: &[(&str, &str)] = &[
        ("malformed JSON", "{"),
        ("not an object", "[]"),
        ("a string", "\"send\""),
        ("missing name", r#"{"data": 1}"#),
        ("empty name", r#"{"name": ""}"#),
        ("name of the wrong type", r#"{"name": 5}"#),
        ("priority above the maximum", r#"{"name": "x", "priority": 1000001}"#),
        ("negative priority", r#"{"name": "x", "priority": -1}"#),
        ("fractional priority", r#"{"name": "x", "priority": 1.5}"#),
        ("priority beyond u32", r#"{"name": "x", "priority": 99999999999}"#),
        ("zero attempts", r#"{"name": "x", "attempts": 0}"#),
        ("attempts as string", r#"{"name": "x", "attempts": "3"}"#),
        ("empty job id", r#"{"name": "x", "job_id": ""}"#),
        ("overlong job id", &format!(r#"{{"name": "x", "job_id": "{}"}}"#, "i".repeat(257))),
        ("job id of the wrong type", r#"{"name": "x", "job_id": 7}"#),
        ("negative delay", r#"{"name": "x", "delay_ms": -5}"#),
        ("absurd delay", r#"{"name": "x", "delay_ms": 18446744073709551615}"#),
        ("zero timeout", r#"{"name": "x", "timeout_ms": 0}"#),
        ("timeout as text", r#"{"name": "x", "timeout_ms": "soon"}"#),
        ("unknown field", r#"{"name": "x", "priorty": 3}"#),
        ("empty body", ""),
    ];
    for (what, body) in bodies {
        let (st, e) = api.raw(Method::POST, jobs, body.to_string()).await;
        assert_json_error(what, st, &e, StatusCode::BAD_REQUEST);
    }

    // Too large: 413, also JSON.
    let big = format!(r#"{{"name": "x", "data": "{}"}}"#, "a".repeat(MAX_BODY_BYTES));
    let (st, e) = api.raw(Method::POST, jobs, big).await;
    assert_json_error("body over 1 MiB", st, &e, StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is fine.
    let ok = format!(r#"{{"name": "x", "data": "{}"}}"#, "a".repeat(MAX_BODY_BYTES - 100));
    assert_eq!(api.raw(Method::POST, jobs, ok).await.0, StatusCode::CREATED);

    // Bad queue names, on every kind of route.
    let long = "q".repeat(129);
    for q in ["a%7Bb", "a%7Db", "a%20b", "a%09b", long.as_str(), "%FF%FE"] {
        for (m, p) in [
            (Method::GET, format!("/v1/queues/{q}")),
            (Method::POST, format!("/v1/queues/{q}/jobs")),
            (Method::GET, format!("/v1/queues/{q}/jobs?state=waiting")),
            (Method::GET, format!("/v1/queues/{q}/jobs/x")),
            (Method::POST, format!("/v1/queues/{q}/pause")),
        ] {
            let (st, e) = api.call(m.clone(), &p, Some(json!({"name": "x"}))).await;
            assert_json_error(&format!("{m} {p}"), st, &e, StatusCode::BAD_REQUEST);
        }
    }
    assert_eq!(api.call(Method::GET, &format!("/v1/queues/{}", "q".repeat(128)), None).await.0, StatusCode::OK);

    // Listing: unknown or missing state, bad limits, unknown parameters.
    for query in ["state=bogus", "", "state=failed&limit=0", "state=failed&limit=abc", "state=failed&limit=5000", "state=failed&offset=-1", "state=failed&sort=asc"] {
        let (st, e) = api.call(Method::GET, &format!("{jobs}?{query}"), None).await;
        assert_json_error(&format!("list ?{query}"), st, &e, StatusCode::BAD_REQUEST);
    }

    // Unknown jobs: 404.
    for (m, p) in [
        (Method::GET, "/v1/queues/q/jobs/nope"),
        (Method::DELETE, "/v1/queues/q/jobs/nope"),
        (Method::POST, "/v1/queues/q/jobs/nope/cancel"),
        (Method::POST, "/v1/queues/q/jobs/nope/retry"),
    ] {
        let (st, e) = api.call(m.clone(), p, None).await;
        assert_json_error(&format!("{m} {p}"), st, &e, StatusCode::NOT_FOUND);
    }

    // Unknown routes and wrong methods: JSON too.
    let (st, e) = api.call(Method::GET, "/v1/nothing/here", None).await;
    assert_json_error("unknown route", st, &e, StatusCode::NOT_FOUND);
    let (st, e) = api.call(Method::PUT, jobs, Some(json!({}))).await;
    assert_json_error("wrong method", st, &e, StatusCode::METHOD_NOT_ALLOWED);

    // The queue is untouched by all of that: the one job added directly plus the big one.
    assert_eq!(api.call(Method::GET, "/v1/queues/q", None).await.1["waiting"], 2);
    api.stop().await;
}

#[tokio::test]
async fn redis_down_gives_503_json_and_health_stays_up() {
    let mut redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    assert_eq!(api.call(Method::GET, "/v1/queues/q", None).await.0, StatusCode::OK);
    redis.kill();
    for (m, p, body) in [
        (Method::GET, "/v1/queues/q", None),
        (Method::GET, "/v1/queues", None),
        (Method::POST, "/v1/queues/q/jobs", Some(json!({"name": "x"}))),
        (Method::GET, "/v1/queues/q/jobs/x", None),
    ] {
        let started = Instant::now();
        let (st, e) = api.call(m.clone(), p, body).await;
        assert_json_error(&format!("{m} {p} with redis down"), st, &e, StatusCode::SERVICE_UNAVAILABLE);
        assert!(started.elapsed() < Duration::from_secs(8), "{m} {p} took {:?}", started.elapsed());
    }
    // Client mistakes are still 400, not 503: they are checked before Redis is asked.
    let (st, e) = api.call(Method::POST, "/v1/queues/q/jobs", Some(json!({"name": "x", "attempts": 0}))).await;
    assert_json_error("bad input with redis down", st, &e, StatusCode::BAD_REQUEST);

    let (st, _) = api.call(Method::GET, "/healthz", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, ready) = api.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["ready"], false);
    assert!(ready["error"].as_str().unwrap().contains("unreachable"), "{ready}");

    redis.restart();
    wait_until(Duration::from_secs(15), "ready again after redis restarts", || async {
        api.call(Method::GET, "/readyz", None).await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(api.call(Method::GET, "/v1/queues/q", None).await.0, StatusCode::OK);
    api.stop().await;
}

#[tokio::test]
async fn healthz_and_readyz() {
    let fit = RedisServer::start();
    let api = Api::start(&fit.url(), None).await;
    let resp = api.http.get(format!("{}/healthz", api.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "ok");
    let (st, ready) = api.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::OK, "{ready}");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["problems"], json!([]));
    api.stop().await;

    let unfit = RedisServer::start_with(&["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]);
    let api = Api::start(&unfit.url(), None).await;
    assert_eq!(api.call(Method::GET, "/healthz", None).await.0, StatusCode::OK, "alive even when not ready");
    let (st, ready) = api.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["ready"], false);
    let settings: BTreeSet<&str> = ready["problems"].as_array().unwrap().iter().map(|p| p["setting"].as_str().unwrap()).collect();
    assert_eq!(settings, BTreeSet::from(["appendonly", "maxmemory-policy"]), "{ready}");
    for p in ready["problems"].as_array().unwrap() {
        assert!(!p["fix"].as_str().unwrap().is_empty(), "{p}");
    }
    api.stop().await;

    // The same endpoints from serve_ops, the server every worker runs.
    let port = free_port();
    let stop = CancellationToken::new();
    let task = tokio::spawn(baton::http::serve_ops(([127, 0, 0, 1], port).into(), unfit.url(), stop.clone()));
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&http, &format!("{base}/healthz")).await;
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["problems"].as_array().unwrap().len(), 2, "{body}");
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let r = http.get(format!("{base}/v1/queues")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "serve_ops has no API routes");
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), Some("tok")).await;
    // No token needed for the document.
    let resp = api.http.get(format!("{}/openapi.json", api.base)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = resp.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "OpenAPI 3.1");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete", "head", "options"].contains(&method.as_str()) {
                assert!(op["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path} documents its responses");
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> = baton::http::routes().into_iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(documented, routed, "openapi.json and the router disagree");
    for must in [
        ("POST", "/v1/queues/{queue}/jobs"),
        ("GET", "/v1/queues/{queue}/jobs/{id}"),
        ("POST", "/v1/queues/{queue}/jobs/{id}/cancel"),
        ("POST", "/v1/queues/{queue}/jobs/{id}/retry"),
        ("DELETE", "/v1/queues/{queue}/jobs/{id}"),
        ("GET", "/v1/queues/{queue}/jobs"),
        ("GET", "/v1/queues/{queue}"),
        ("GET", "/v1/queues"),
        ("POST", "/v1/queues/{queue}/pause"),
        ("POST", "/v1/queues/{queue}/resume"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.json"),
    ] {
        assert!(routed.contains(&(must.0.to_string(), must.1.to_string())), "{must:?} is routed and documented");
    }

    // Every listed route is really served (not the 404/405 fallback), and every /v1
    // route documents 401 and asks for the bearer scheme.
    for (method, path) in &routed {
        let concrete = path.replace("{queue}", "q").replace("{id}", "nope");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (st, body) = api.call(m, &concrete, None).await;
        let fallback = st == StatusCode::METHOD_NOT_ALLOWED
            || (st == StatusCode::NOT_FOUND && body["error"].as_str().unwrap_or("").starts_with("no route"));
        assert!(!fallback, "{method} {path} is not served: {st} {body}");
        assert!(st.as_u16() < 500 || path == "/readyz", "{method} {path}: {st} {body}");
        if path.starts_with("/v1") {
            let op = &doc["paths"][path][method.to_lowercase()];
            assert!(op["responses"]["401"].is_object(), "{method} {path} documents 401");
            assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path} security");
        }
    }
    api.stop().await;
}

#[tokio::test]
async fn refuses_open_listen_without_token() {
    // In process: an Error::Invalid that says what to do.
    let cfg = ServeConfig { redis_url: "redis://127.0.0.1:1".into(), listen: ([0, 0, 0, 0], free_port()).into(), token: None };
    let err = baton::http::serve(cfg.clone(), CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, baton::Error::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("BATON_API_TOKEN"), "{err}");
    let err = baton::http::serve(ServeConfig { token: Some(String::new()), ..cfg }, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, baton::Error::Invalid(_)), "an empty token is no token: {err:?}");

    // The binary: exits non-zero with the message, without serving.
    let redis = RedisServer::start();
    let port = free_port();
    let out = Command::new(common::baton_bin())
        .args(["serve", "--listen", &format!("0.0.0.0:{port}"), "--redis-url", &redis.url()])
        .env_remove("BATON_API_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "baton serve on 0.0.0.0 without a token must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("BATON_API_TOKEN") && stderr.contains("0.0.0.0"), "stderr: {stderr}");
}

#[tokio::test]
async fn binary_with_token_requires_bearer_auth() {
    let redis = RedisServer::start();
    let port = free_port();
    let mut child = Command::new(common::baton_bin())
        // Not loopback: allowed because a token is set.
        .args(["serve", "--listen", &format!("0.0.0.0:{port}"), "--redis-url", &redis.url()])
        .env("BATON_API_TOKEN", "s3cret-token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("baton serve exited early with {status}: {err}");
            }
            if http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "baton serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let child = Kill(child);

    let get = |auth: Option<&'static str>| {
        let mut b = http.get(format!("{base}/v1/queues"));
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        async move { split(b.send().await.unwrap()).await }
    };
    for (what, auth) in [
        ("no header", None),
        ("wrong token", Some("Bearer s3cret-tokeN")),
        ("token prefix", Some("Bearer s3cret")),
        ("token plus more", Some("Bearer s3cret-token2")),
        ("wrong scheme", Some("Basic czNjcmV0LXRva2Vu")),
        ("bare token", Some("s3cret-token")),
    ] {
        let (st, e) = get(auth).await;
        assert_json_error(what, st, &e, StatusCode::UNAUTHORIZED);
    }
    let r = http.get(format!("{base}/v1/queues")).send().await.unwrap();
    assert!(r.headers().get("www-authenticate").is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")));

    let (st, body) = get(Some("Bearer s3cret-token")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"queues": []}));
    let (st, _) = get(Some("bearer s3cret-token")).await;
    assert_eq!(st, StatusCode::OK, "the scheme is case-insensitive");

    // Every /v1 route is guarded, whatever the method; a bad request without a token is 401, not 400.
    let (st, e) = split(http.post(format!("{base}/v1/queues/q/jobs")).body("{").send().await.unwrap()).await;
    assert_json_error("add without token", st, &e, StatusCode::UNAUTHORIZED);
    let (st, e) = split(http.delete(format!("{base}/v1/queues/q/jobs/x")).send().await.unwrap()).await;
    assert_json_error("delete without token", st, &e, StatusCode::UNAUTHORIZED);
    let (st, added) = split(
        http.post(format!("{base}/v1/queues/q/jobs")).bearer_auth("s3cret-token").json(&json!({"name": "x"})).send().await.unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{added}");

    // Ops endpoints and the document need no token.
    for p in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let r = http.get(format!("{base}{p}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p} without a token");
    }

    // SIGTERM: graceful shutdown, exit 0.
    let mut child = child;
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "baton serve did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
