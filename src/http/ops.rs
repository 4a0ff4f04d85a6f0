//! The operations endpoints: `/metrics` (Prometheus text), `/healthz` (the process
//! answers), `/readyz` (Redis answers and is fit for a durable queue).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use crate::error::{Error, Result};
use crate::metrics as m;

/// The longest `/readyz` takes before it answers 503 (probes time out at 1 s by default
/// in Kubernetes, but a slow answer is still better than none from a wedged pool).
const READY_LIMIT: Duration = crate::conn::PRODUCER_TIMEOUT;

/// What the ops handlers share.
#[derive(Clone)]
pub(crate) struct OpsState {
    pub conn: crate::conn::SharedConn,
    pub metrics: PrometheusHandle,
}

impl OpsState {
    /// Over `conn`; installs the recorder if needed.
    pub fn new(conn: crate::conn::SharedConn) -> OpsState {
        OpsState {
            conn,
            metrics: m::install(),
        }
    }
}

/// `/metrics`, `/healthz`, `/readyz`.
pub(crate) fn router() -> Router<OpsState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `GET /metrics`: the Prometheus text exposition of this process's recorder.
pub(crate) async fn metrics(State(s): State<OpsState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

/// `GET /healthz`: 200 "ok" while the process serves HTTP at all.
pub(crate) async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when Redis answers PING, passes the durability check and is not
/// at `maxmemory`; else 503 with `{"ready": false, "problems": [...]}`, each problem
/// naming the setting or the connection failure.
pub(crate) async fn readyz(State(s): State<OpsState>) -> Response {
    let outcome = tokio::time::timeout(READY_LIMIT, probe(&s.conn)).await;
    let (ready, body) = match outcome {
        Ok(Ok(report)) if report.is_fit() && report.memory_full.is_some() => {
            let full = report.memory_full.unwrap_or_default();
            (
                false,
                json!({
                    "ready": false,
                    "redis_version": report.version,
                    "error": format!("redis is full: {full}"),
                    "problems": [{"setting": "maxmemory", "found": full, "wanted": "used_memory below maxmemory",
                        "fix": "free memory (finished jobs: `baton clean`; other keys) or raise maxmemory; baton claims nothing and keeps its outcomes until writes are accepted again"}],
                }),
            )
        }
        Ok(Ok(report)) if report.is_fit() => (
            true,
            json!({"ready": true, "redis_version": report.version, "problems": []}),
        ),
        Ok(Ok(report)) => (
            false,
            json!({
                "ready": false,
                "redis_version": report.version,
                "error": format!("redis is not fit for a durable queue:\n{}", report.message()),
                "problems": report.problems,
            }),
        ),
        Ok(Err(e)) => {
            metrics::counter!(m::REDIS_ERRORS, "queue" => "", "op" => "readyz").increment(1);
            (false, unreachable_body(&e.to_string()))
        }
        Err(_) => {
            metrics::counter!(m::REDIS_ERRORS, "queue" => "", "op" => "readyz").increment(1);
            (
                false,
                unreachable_body(&format!("redis did not answer within {READY_LIMIT:?}")),
            )
        }
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn unreachable_body(detail: &str) -> serde_json::Value {
    json!({
        "ready": false,
        "error": format!("redis unreachable: {detail}"),
        "problems": [{"setting": "connection", "found": detail, "wanted": "PONG", "fix": "check the Redis URL and that Redis is up and reachable"}],
    })
}

/// PING, then the start-up check (on every node of a cluster).
async fn probe(conn: &crate::conn::SharedConn) -> Result<crate::config::Report> {
    let pong: String = conn
        .run(async |c| Ok(redis::cmd("PING").query_async(c).await?))
        .await?;
    if pong != "PONG" {
        return Err(Error::Invalid(format!("PING answered {pong:?}")));
    }
    crate::config::check_all(conn.connector()).await
}
