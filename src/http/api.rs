//! The `baton serve` JSON API under `/v1`, mounted with the operations endpoints.
//!
//! Every response that is not a success is `{"error": "..."}`:
//! - 400 for a request the client got wrong (malformed JSON, wrong types, unknown
//!   fields, missing `name`, a bad queue name, out-of-range options, unknown state);
//! - 401 without the right bearer token (when one is configured);
//! - 404 for an unknown job or route, 405 for a wrong method;
//! - 409 when the operation does not apply to the job's state;
//! - 413 for a body over [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES);
//! - 503 (with `Retry-After`) when Redis cannot be reached or refuses.
//!
//! Adding a job answers 201 when it was added and 200 with `"added": false` when a job
//! with the given `job_id` exists already (then nothing changed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRef, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use deadpool_redis::Pool;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ops::{self, OpsState};
use crate::error::Error;
use crate::job::{Counts, JobOptions, JobState, MAX_PRIORITY};
use crate::metrics as m;
use crate::queue::{Cancelled, Queue};

/// Longest queue name, in characters.
pub const MAX_QUEUE_NAME: usize = 128;
/// Longest job id and job name, in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// Longest `delay_ms` and `timeout_ms`: ten years.
pub const MAX_DURATION_MS: u64 = 10 * 366 * 24 * 3600 * 1000;
/// Largest `limit` of a listing.
pub const MAX_LIST: usize = 1000;

/// The API's own state.
#[derive(Clone)]
pub(crate) struct ApiState {
    pool: Pool,
    conn: crate::conn::SharedConn,
    token: Option<Arc<str>>,
}

impl ApiState {
    pub fn new(pool: Pool, token: Option<String>) -> ApiState {
        ApiState { conn: crate::conn::SharedConn::new(pool.clone()), pool, token: token.map(Arc::from) }
    }

    fn queue(&self, name: &str) -> Queue {
        Queue::with_conn(self.conn.clone(), name)
    }
}

/// What every handler of `serve` can extract.
#[derive(Clone)]
pub(crate) struct AppState {
    api: ApiState,
    ops: OpsState,
}

impl FromRef<AppState> for OpsState {
    fn from_ref(s: &AppState) -> OpsState {
        s.ops.clone()
    }
}

impl FromRef<AppState> for ApiState {
    fn from_ref(s: &AppState) -> ApiState {
        s.api.clone()
    }
}

/// One route: method, path, whether it needs the token, and its handler.
pub(crate) struct Route {
    pub method: MethodFilter,
    pub path: &'static str,
    pub auth: bool,
    handler: MethodRouter<AppState>,
}

fn r<H, T>(method: MethodFilter, path: &'static str, auth: bool, h: H) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    Route { method, path, auth, handler: on(method, h) }
}

/// Every route of `serve`: the one list both the router and [`super::routes`] read.
pub(crate) fn table() -> Vec<Route> {
    use MethodFilter as M;
    vec![
        r(M::GET, "/metrics", false, ops::metrics),
        r(M::GET, "/healthz", false, ops::healthz),
        r(M::GET, "/readyz", false, ops::readyz),
        r(M::GET, "/openapi.json", false, openapi),
        r(M::GET, "/v1/queues", true, list_queues),
        r(M::GET, "/v1/queues/{queue}", true, queue_counts),
        r(M::POST, "/v1/queues/{queue}/pause", true, pause),
        r(M::POST, "/v1/queues/{queue}/resume", true, resume),
        r(M::POST, "/v1/queues/{queue}/jobs", true, add_job),
        r(M::GET, "/v1/queues/{queue}/jobs", true, list_jobs),
        r(M::GET, "/v1/queues/{queue}/jobs/{id}", true, get_job),
        r(M::DELETE, "/v1/queues/{queue}/jobs/{id}", true, remove_job),
        r(M::POST, "/v1/queues/{queue}/jobs/{id}/cancel", true, cancel_job),
        r(M::POST, "/v1/queues/{queue}/jobs/{id}/retry", true, retry_job),
    ]
}

/// The whole `serve` app.
pub(crate) fn router(api: ApiState, ops: OpsState) -> Router {
    let state = AppState { api, ops };
    let (mut open, mut guarded) = (Router::new(), Router::new());
    for route in table() {
        if route.auth {
            guarded = guarded.route(route.path, route.handler);
        } else {
            open = open.route(route.path, route.handler);
        }
    }
    if state.api.token.is_some() {
        guarded = guarded.route_layer(axum::middleware::from_fn_with_state(state.clone(), require_token));
    }
    open.merge(guarded)
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY_BYTES))
        .with_state(state)
}

// ---------------------------------------------------------------------------------
// Errors

/// A failed request: status and message, rendered as `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    fn bad(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({ "error": self.message }))).into_response();
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"baton\""));
            }
            _ => {}
        }
        resp
    }
}

/// Maps a library error onto a response, counting Redis failures under `op`.
fn fail(queue: &str, op: &'static str, e: Error) -> ApiError {
    let status = match &e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::InvalidState { .. } | Error::LockLost(_) => StatusCode::CONFLICT,
        Error::Invalid(_) | Error::Encode(_) | Error::Decode(_) => StatusCode::BAD_REQUEST,
        Error::Redis(_) | Error::Unavailable { .. } | Error::UnfitRedis(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(queue, op, error = %e, "redis call failed");
        metrics::counter!(m::REDIS_ERRORS, "queue" => queue.to_string(), "op" => op).increment(1);
    }
    ApiError::new(status, e.to_string())
}

/// The router's fallback: a JSON 404.
pub(crate) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no route for {method} {}; see GET /openapi.json", uri.path()))
}

/// A JSON 405.
pub(crate) async fn no_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}; see GET /openapi.json", uri.path()))
}

// ---------------------------------------------------------------------------------
// Auth

async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(want) = &s.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match given {
            None => {
                return ApiError::new(StatusCode::UNAUTHORIZED, "missing `Authorization: Bearer <token>` header").into_response()
            }
            Some(t) if !ct_eq(t.as_bytes(), want.as_bytes()) => {
                return ApiError::new(StatusCode::UNAUTHORIZED, "wrong bearer token").into_response()
            }
            Some(_) => {}
        }
    }
    next.run(req).await
}

/// Compares in time that depends only on the lengths, not on where the bytes differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..n {
        let x = std::hint::black_box(a.get(i).copied().unwrap_or(0));
        let y = std::hint::black_box(b.get(i).copied().unwrap_or(0));
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

// ---------------------------------------------------------------------------------
// Extractors

/// A valid queue name from the path.
pub(crate) struct QueueName(String);

/// A job id from the path.
pub(crate) struct JobId(String);

async fn path_param<S: Send + Sync>(parts: &mut Parts, state: &S, name: &str) -> Result<String, ApiError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::bad(format!("bad path: {}", e.body_text())))?;
    params.get(name).cloned().ok_or_else(|| ApiError::bad(format!("missing path parameter {name}")))
}

/// Checks a queue name: 1 to 128 characters, no braces (they delimit the Redis Cluster
/// hash tag), no whitespace or control characters.
pub fn validate_queue_name(q: &str) -> Result<(), String> {
    let n = q.chars().count();
    if n == 0 || n > MAX_QUEUE_NAME {
        return Err(format!("queue name must be 1 to {MAX_QUEUE_NAME} characters, got {n}"));
    }
    if let Some(c) = q.chars().find(|c| *c == '{' || *c == '}' || c.is_whitespace() || c.is_control()) {
        return Err(format!("queue name {q:?} contains {c:?}: braces, whitespace and control characters are not allowed"));
    }
    Ok(())
}

impl<S: Send + Sync> FromRequestParts<S> for QueueName {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let q = path_param(parts, state, "queue").await?;
        validate_queue_name(&q).map_err(ApiError::bad)?;
        Ok(QueueName(q))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for JobId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let id = path_param(parts, state, "id").await?;
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return Err(ApiError::bad(format!("job id must be 1 to {MAX_ID_BYTES} bytes")));
        }
        Ok(JobId(id))
    }
}

// ---------------------------------------------------------------------------------
// Handlers

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

#[derive(Serialize)]
struct QueueCounts {
    queue: String,
    #[serde(flatten)]
    counts: Counts,
}

async fn list_queues(State(s): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let names = Queue::discover(&s.pool).await.map_err(|e| fail("", "discover", e))?;
    let mut queues = Vec::with_capacity(names.len());
    for name in names {
        let counts = s.queue(&name).counts().await.map_err(|e| fail(&name, "counts", e))?;
        queues.push(QueueCounts { queue: name, counts });
    }
    Ok(Json(json!({ "queues": queues })))
}

async fn queue_counts(State(s): State<ApiState>, QueueName(q): QueueName) -> Result<Json<QueueCounts>, ApiError> {
    let counts = s.queue(&q).counts().await.map_err(|e| fail(&q, "counts", e))?;
    Ok(Json(QueueCounts { queue: q, counts }))
}

async fn pause(State(s): State<ApiState>, QueueName(q): QueueName) -> Result<Json<serde_json::Value>, ApiError> {
    s.queue(&q).pause().await.map_err(|e| fail(&q, "pause", e))?;
    Ok(Json(json!({ "queue": q, "paused": true })))
}

async fn resume(State(s): State<ApiState>, QueueName(q): QueueName) -> Result<Json<serde_json::Value>, ApiError> {
    s.queue(&q).resume().await.map_err(|e| fail(&q, "resume", e))?;
    Ok(Json(json!({ "queue": q, "paused": false })))
}

/// The body of `POST /v1/queues/{queue}/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRequest {
    name: String,
    #[serde(default)]
    data: serde_json::Value,
    delay_ms: Option<u64>,
    priority: Option<u32>,
    attempts: Option<u32>,
    job_id: Option<String>,
    timeout_ms: Option<u64>,
}

impl AddRequest {
    fn options(&self) -> Result<JobOptions, ApiError> {
        if self.name.is_empty() || self.name.len() > MAX_ID_BYTES {
            return Err(ApiError::bad(format!("name must be 1 to {MAX_ID_BYTES} bytes")));
        }
        let mut o = JobOptions::default();
        if let Some(id) = &self.job_id {
            if id.is_empty() || id.len() > MAX_ID_BYTES {
                return Err(ApiError::bad(format!("job_id must be 1 to {MAX_ID_BYTES} bytes")));
            }
            o = o.job_id(id.clone());
        }
        if let Some(d) = self.delay_ms {
            if d > MAX_DURATION_MS {
                return Err(ApiError::bad(format!("delay_ms must be at most {MAX_DURATION_MS} (ten years)")));
            }
            o = o.delay(Duration::from_millis(d));
        }
        if let Some(p) = self.priority {
            if p > MAX_PRIORITY {
                return Err(ApiError::bad(format!("priority must be 0 (none) to {MAX_PRIORITY}, got {p}")));
            }
            o = o.priority(p);
        }
        if let Some(a) = self.attempts {
            if a == 0 {
                return Err(ApiError::bad("attempts must be at least 1"));
            }
            o = o.attempts(a);
        }
        if let Some(t) = self.timeout_ms {
            if t == 0 || t > MAX_DURATION_MS {
                return Err(ApiError::bad(format!("timeout_ms must be 1 to {MAX_DURATION_MS}")));
            }
            o = o.timeout(Duration::from_millis(t));
        }
        Ok(o)
    }
}

/// Reads a JSON body, turning every failure into a 4xx.
fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!("request body is larger than {} bytes", super::MAX_BODY_BYTES)
        } else {
            format!("could not read the request body: {}", e.body_text())
        };
        ApiError::new(if status.is_client_error() { status } else { StatusCode::BAD_REQUEST }, msg)
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad("request body is empty; expected a JSON object"));
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

async fn add_job(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: AddRequest = json_body(body)?;
    let opts = req.options()?;
    let added = s.queue(&q).add(&req.name, &req.data, opts).await.map_err(|e| fail(&q, "add", e))?;
    let status = if added.added { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(added)).into_response())
}

async fn get_job(State(s): State<ApiState>, QueueName(q): QueueName, JobId(id): JobId) -> Result<Response, ApiError> {
    match s.queue(&q).job(&id).await.map_err(|e| fail(&q, "job", e))? {
        Some(info) => Ok(Json(info).into_response()),
        None => Err(fail(&q, "job", Error::NotFound { queue: q.clone(), id })),
    }
}

/// The query of `GET /v1/queues/{queue}/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn list_jobs(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad(format!("bad query: {}", e.body_text())))?;
    let names = || JobState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
    let state = match query.state.as_deref() {
        None => return Err(ApiError::bad(format!("query parameter `state` is required: one of {}", names()))),
        Some(st) => JobState::parse(st).ok_or_else(|| ApiError::bad(format!("unknown state {st:?}: use one of {}", names())))?,
    };
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::bad(format!("limit must be 1 to {MAX_LIST}, got {limit}")));
    }
    let offset = query.offset.unwrap_or(0);
    if offset > isize::MAX as usize / 2 {
        return Err(ApiError::bad("offset is too large"));
    }
    let ids = s.queue(&q).list(state, offset, limit).await.map_err(|e| fail(&q, "list", e))?;
    Ok(Json(json!({ "queue": q, "state": state, "offset": offset, "ids": ids })))
}

async fn cancel_job(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    JobId(id): JobId,
) -> Result<Json<serde_json::Value>, ApiError> {
    let result = match s.queue(&q).cancel(&id).await.map_err(|e| fail(&q, "cancel", e))? {
        Cancelled::Now => "cancelled",
        Cancelled::Requested => "cancel_requested",
    };
    Ok(Json(json!({ "id": id, "result": result })))
}

async fn retry_job(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    JobId(id): JobId,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.queue(&q).retry(&id).await.map_err(|e| fail(&q, "retry", e))?;
    Ok(Json(json!({ "id": id, "result": "queued" })))
}

async fn remove_job(State(s): State<ApiState>, QueueName(q): QueueName, JobId(id): JobId) -> Result<StatusCode, ApiError> {
    s.queue(&q).remove(&id).await.map_err(|e| fail(&q, "remove", e))?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret2"));
        assert!(!ct_eq(b"", b"x"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn queue_names() {
        assert!(validate_queue_name("emails").is_ok());
        assert!(validate_queue_name("a.b-c:d/é").is_ok());
        assert!(validate_queue_name(&"x".repeat(128)).is_ok());
        assert!(validate_queue_name(&"x".repeat(129)).is_err());
        assert!(validate_queue_name("").is_err());
        assert!(validate_queue_name("a{b").is_err());
        assert!(validate_queue_name("a}b").is_err());
        assert!(validate_queue_name("a b").is_err());
        assert!(validate_queue_name("a\tb").is_err());
    }
}
