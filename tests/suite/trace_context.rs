//! Tracing across the queue: the producer's W3C trace context is stored with the job and
//! becomes the parent of the worker's job span (tracing-opentelemetry), whether the job
//! was added by the library inside a traced span, by `baton add` with `TRACEPARENT`, or
//! over HTTP with a `traceparent` header; on one Redis and on a Cluster.
//!
//! Spans are collected by an in-memory exporter installed once for this test process
//! (nextest runs each test in a process of its own; under `cargo test` the tests share
//! it, so each looks only at its own trace ids).

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use baton::conn::RedisConfig;
use baton::{handler_fn, JobContext, JobError, JobOptions, Queue, TraceParent, Worker};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use crate::common::{baton_bin, start, wait_until, RedisServer};
use crate::http_api::support::Api;

struct Collector {
    exporter: InMemorySpanExporter,
    provider: SdkTracerProvider,
}

/// The process-wide subscriber: a tracing-opentelemetry layer exporting to memory.
fn collector() -> &'static Collector {
    static C: OnceLock<Collector> = OnceLock::new();
    C.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("trace-test"));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .expect("no other global subscriber in this test process");
        Collector { exporter, provider }
    })
}

/// The finished spans named `name` in trace `trace_id`.
fn spans(name: &str, trace_id: [u8; 16]) -> Vec<SpanData> {
    let c = collector();
    let _ = c.provider.force_flush();
    c.exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|s| s.name == name && s.span_context.trace_id().to_bytes() == trace_id)
        .collect()
}

fn quick(cfg: impl Into<RedisConfig>, queue: &str) -> Worker {
    Worker::builder(cfg, queue)
        .lease(Duration::from_secs(5))
        .shutdown_timeout(Duration::from_secs(2))
        .build(handler_fn(|_: serde_json::Value, _: JobContext| async {
            Ok::<_, JobError>(())
        }))
        .unwrap()
}

/// Waits until the worker's `job` span of trace `t` has ended, then checks it is the
/// child of `t`'s span.
async fn job_span_joins(t: TraceParent, what: &str) {
    wait_until(Duration::from_secs(15), what, || async {
        !spans("job", t.trace_id).is_empty()
    })
    .await;
    let found = spans("job", t.trace_id);
    assert_eq!(
        found.len(),
        1,
        "{what}: one job span in the trace: {found:?}"
    );
    assert_eq!(
        found[0].parent_span_id.to_bytes(),
        t.span_id,
        "{what}: the job span's parent is the producer's span"
    );
    assert!(
        found[0].parent_span_is_remote,
        "{what}: the parent came from elsewhere"
    );
}

/// Adds inside a traced span; the job span joins that trace, and the job shows it.
async fn library_add_carries_the_span(cfg: RedisConfig) {
    collector();
    let q = Queue::connect(cfg.clone(), "traced").unwrap();
    let producer = tracing::info_span!("http_request");
    let (added, parent) = async {
        let parent =
            TraceParent::current().expect("the OpenTelemetry layer gives the span a trace");
        (
            q.add("send", &1, JobOptions::default()).await.unwrap(),
            parent,
        )
    }
    .instrument(producer)
    .await;
    let job = q.job(&added.id).await.unwrap().unwrap();
    assert_eq!(
        job.traceparent,
        Some(parent.to_string()),
        "stored with the job"
    );
    // A job added outside any span carries none.
    let plain = q.add("send", &2, JobOptions::default()).await.unwrap();
    assert_eq!(q.job(&plain.id).await.unwrap().unwrap().traceparent, None);

    let run = start(quick(cfg, "traced"));
    job_span_joins(parent, "library add").await;
    wait_until(Duration::from_secs(10), "both jobs done", || async {
        q.counts().await.unwrap().completed == 2
    })
    .await;
    run.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_span_is_the_child_of_the_span_that_added_it() {
    let redis = RedisServer::start();
    library_add_carries_the_span(redis.url().into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_span_is_the_child_of_the_span_that_added_it_on_a_cluster() {
    let cluster = crate::topology::RedisCluster::start(3, 0);
    library_add_carries_the_span(RedisConfig::cluster(cluster.seed_urls())).await;
}

/// `baton add` in a traced shell script: `TRACEPARENT` from the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baton_add_takes_traceparent_from_the_environment() {
    collector();
    let redis = RedisServer::start();
    let t: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .unwrap();
    let out = Command::new(baton_bin())
        .args(["--redis-url", &redis.url(), "add", "traced", "{}"])
        .env("TRACEPARENT", t.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let q = Queue::connect(redis.url(), "traced").unwrap();
    assert_eq!(
        q.job(&id).await.unwrap().unwrap().traceparent,
        Some(t.to_string())
    );

    // A malformed one is refused with the rule, and nothing is added.
    let out = Command::new(baton_bin())
        .args(["--redis-url", &redis.url(), "add", "traced", "{}"])
        .env("TRACEPARENT", "00-nothex-b7ad6b7169203331-01")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("traceparent") && err.contains("00-<32 hex>"),
        "{err}"
    );
    assert_eq!(q.counts().await.unwrap().waiting, 1);

    let run = start(quick(redis.url(), "traced"));
    job_span_joins(t, "baton add").await;
    run.stop().await;
}

/// `POST /v1/queues/{q}/jobs` with a `traceparent` header; a body field wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_add_takes_the_traceparent_header() {
    collector();
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    let header: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        .parse()
        .unwrap();
    let body: TraceParent = "00-11112222333344445555666677778888-1111222233334444-01"
        .parse()
        .unwrap();
    let post = |json: serde_json::Value, tp: &str| {
        api.http
            .post(format!("{}/v1/queues/traced/jobs", api.base))
            .header("traceparent", tp)
            .json(&json)
            .send()
    };
    let r = post(serde_json::json!({"name": "n"}), &header.to_string())
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let by_header: serde_json::Value = r.json().await.unwrap();
    let r = post(
        serde_json::json!({"name": "n", "traceparent": body.to_string()}),
        &header.to_string(),
    )
    .await
    .unwrap();
    let by_body: serde_json::Value = r.json().await.unwrap();
    let r = post(serde_json::json!({"name": "n"}), "junk")
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let refusal: serde_json::Value = r.json().await.unwrap();
    assert!(refusal.to_string().contains("traceparent"), "{refusal}");

    let q = Queue::connect(redis.url(), "traced").unwrap();
    let stored = |v: &serde_json::Value| {
        let id = v["id"].as_str().unwrap().to_string();
        let q = q.clone();
        async move { q.job(&id).await.unwrap().unwrap().traceparent }
    };
    assert_eq!(stored(&by_header).await, Some(header.to_string()));
    assert_eq!(stored(&by_body).await, Some(body.to_string()));
    assert_eq!(
        q.counts().await.unwrap().waiting,
        2,
        "the refused add added nothing"
    );

    let run = start(quick(redis.url(), "traced"));
    job_span_joins(header, "HTTP header").await;
    job_span_joins(body, "HTTP body").await;
    run.stop().await;
    api.stop().await;
}

/// An exec command gets `TRACEPARENT`: a worker process without an OpenTelemetry layer
/// hands on the producer's context; a job without one, and a worker started inside
/// someone else's trace, hand on nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_command_continues_the_trace() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "traced").unwrap();
    let t: TraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        .parse()
        .unwrap();
    let traced = q
        .add("n", &1, JobOptions::default().trace(t))
        .await
        .unwrap();
    let plain = q.add("n", &2, JobOptions::default()).await.unwrap();
    let _worker = crate::common::ChildGuard(
        Command::new(baton_bin())
            .args([
                "--redis-url",
                &redis.url(),
                "worker",
                "traced",
                "--exec",
                "--",
            ])
            .args(["sh", "-c", "printf '\"%s\"\\n' \"${TRACEPARENT:-none}\""])
            .env(
                "TRACEPARENT",
                "00-99999999999999999999999999999999-9999999999999999-01",
            )
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(15), "both jobs done", || async {
        q.counts().await.unwrap().completed == 2
    })
    .await;
    let result = |id: String| {
        let q = q.clone();
        async move { q.job(&id).await.unwrap().unwrap().result }
    };
    assert_eq!(
        result(traced.id).await,
        Some(serde_json::json!(t.to_string()))
    );
    assert_eq!(result(plain.id).await, Some(serde_json::json!("none")));
}

/// A stand-in OTLP/HTTP collector: answers 200 to every request and keeps the bodies
/// of `POST /v1/traces`.
async fn fake_collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // Headers, then Content-Length bytes of body.
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if buf.len() < end + 4 + len {
                        continue;
                    }
                    if head.starts_with("post /v1/traces") {
                        keep.lock()
                            .unwrap()
                            .push(buf[end + 4..end + 4 + len].to_vec());
                    }
                    buf.drain(..end + 4 + len);
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if s.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, bodies)
}

/// `baton worker` with `OTEL_EXPORTER_OTLP_ENDPOINT` exports its job spans, in the
/// producer's trace, over OTLP/HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_exports_job_spans_over_otlp() {
    let redis = RedisServer::start();
    let (collector_url, bodies) = fake_collector().await;
    let q = Queue::connect(redis.url(), "traced").unwrap();
    let t: TraceParent = "00-5ca1ab1e5ca1ab1e5ca1ab1e5ca1ab1e-b7ad6b7169203331-01"
        .parse()
        .unwrap();
    q.add("n", &1, JobOptions::default().trace(t))
        .await
        .unwrap();
    let _worker = crate::common::ChildGuard(
        Command::new(baton_bin())
            .args([
                "--redis-url",
                &redis.url(),
                "worker",
                "traced",
                "--exec",
                "--",
                "true",
            ])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &collector_url)
            .env("OTEL_BSP_SCHEDULE_DELAY", "100")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The protobuf body holds the trace id and the parent span id as raw bytes.
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    wait_until(
        Duration::from_secs(20),
        "a job span in the producer's trace exported",
        || async {
            bodies
                .lock()
                .unwrap()
                .iter()
                .any(|b| has(b, &t.trace_id) && has(b, &t.span_id) && has(b, b"job"))
        },
    )
    .await;
}
