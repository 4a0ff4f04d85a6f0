//! The route handlers of `/v1` and `/openapi.json`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::errors::{fail, ApiError};
use super::extract::{json_body, JobId, QueueName};
use super::validate::AddRequest;
use super::{ApiState, MAX_LIST};
use crate::error::Error;
use crate::job::{Counts, JobState};
use crate::queue::{Cancelled, Queue};

pub(super) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::http::OPENAPI,
    )
        .into_response()
}

#[derive(Serialize)]
pub(super) struct QueueCounts {
    queue: String,
    #[serde(flatten)]
    counts: Counts,
}

pub(super) async fn list_queues(
    State(s): State<ApiState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let names = Queue::discover(&s.conn)
        .await
        .map_err(|e| fail("", "discover", e))?;
    let mut queues = Vec::with_capacity(names.len());
    for name in names {
        let counts = s
            .queue(&name)
            .counts()
            .await
            .map_err(|e| fail(&name, "counts", e))?;
        queues.push(QueueCounts {
            queue: name,
            counts,
        });
    }
    Ok(Json(json!({ "queues": queues })))
}

pub(super) async fn queue_counts(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
) -> Result<Json<QueueCounts>, ApiError> {
    let counts = s
        .queue(&q)
        .counts()
        .await
        .map_err(|e| fail(&q, "counts", e))?;
    Ok(Json(QueueCounts { queue: q, counts }))
}

pub(super) async fn pause(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.queue(&q)
        .pause()
        .await
        .map_err(|e| fail(&q, "pause", e))?;
    Ok(Json(json!({ "queue": q, "paused": true })))
}

pub(super) async fn resume(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.queue(&q)
        .resume()
        .await
        .map_err(|e| fail(&q, "resume", e))?;
    Ok(Json(json!({ "queue": q, "paused": false })))
}

/// Body of `POST /v1/queues/{queue}/limits`: a field left out is left as it is; `null`
/// (or a concurrency of 0, a rate of `"none"`) removes that limit.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitsRequest {
    /// At most this many running at once over all workers.
    #[serde(default, deserialize_with = "present")]
    concurrency: Option<Option<u32>>,
    /// At most N started per duration over all workers: `"100/1s"`.
    #[serde(default, deserialize_with = "present")]
    rate: Option<Option<String>>,
    /// Per group: at most this many running at once.
    #[serde(default, deserialize_with = "present")]
    group_concurrency: Option<Option<u32>>,
    /// Per group: at most N started per duration: `"5/1s"`.
    #[serde(default, deserialize_with = "present")]
    group_rate: Option<Option<String>>,
}

/// A field that is present (even as `null`) is `Some`, so "absent" and "remove" differ.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub(super) async fn set_limits(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: LimitsRequest = json_body(body)?;
    let rate = match &req.rate {
        Some(Some(text)) => {
            Some(crate::validate::rate(text).map_err(|e| ApiError::bad(e.to_string()))?)
        }
        Some(None) => Some(None),
        None => None,
    };
    let group_rate = match &req.group_rate {
        Some(Some(text)) => {
            Some(crate::validate::rate(text).map_err(|e| ApiError::bad(e.to_string()))?)
        }
        Some(None) => Some(None),
        None => None,
    };
    let queue = s.queue(&q);
    if req.group_concurrency.is_some() || group_rate.is_some() {
        // The one left out stays as it is.
        let now = queue.counts().await.map_err(|e| fail(&q, "counts", e))?;
        let gc = match req.group_concurrency {
            Some(c) => c.filter(|c| *c > 0),
            None => now.group_concurrency.map(|c| c as u32),
        };
        let gr = match group_rate {
            Some(r) => r,
            None => now
                .group_rate
                .map(|r| (r.max, std::time::Duration::from_millis(r.per_ms))),
        };
        queue
            .set_group_limits(gc, gr)
            .await
            .map_err(|e| fail(&q, "limits", e))?;
    }
    if let Some(c) = req.concurrency {
        queue
            .set_concurrency(c.filter(|c| *c > 0))
            .await
            .map_err(|e| fail(&q, "limits", e))?;
    }
    if let Some(r) = rate {
        queue
            .set_rate_limit(r)
            .await
            .map_err(|e| fail(&q, "limits", e))?;
    }
    let counts = queue.counts().await.map_err(|e| fail(&q, "counts", e))?;
    Ok(Json(json!({
        "queue": q,
        "concurrency": counts.concurrency,
        "rate": counts.rate,
        "group_concurrency": counts.group_concurrency,
        "group_rate": counts.group_rate,
    })))
}

pub(super) async fn add_job(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut req: crate::validate::JobRequest = json_body(body)?;
    // W3C Trace Context: the caller's `traceparent` header, unless the body names one.
    if req.traceparent.is_none() {
        if let Some(v) = headers.get("traceparent") {
            let v = v
                .to_str()
                .map_err(|_| ApiError::bad("traceparent header is not text"))?;
            req.traceparent = Some(v.to_string());
        }
    }
    let req = AddRequest::new(req)?;
    let opts = req.options()?;
    let added = s
        .queue(&q)
        .add(&req.name, &req.data, opts)
        .await
        .map_err(|e| fail(&q, "add", e))?;
    let status = if added.added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(added)).into_response())
}

/// The longest `?wait=` of `GET /v1/queues/{queue}/jobs/{id}`: below the server's
/// 35 s request timeout, with room for the job's read after the wait.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The query of `GET /v1/queues/{queue}/jobs/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GetJobQuery {
    /// Wait up to this long (`30s`, `500ms`) for the job to end before answering.
    wait: Option<String>,
}

pub(super) async fn get_job(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    JobId(id): JobId,
    query: Result<Query<GetJobQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad(format!("bad query: {}", e.body_text())))?;
    let queue = s.queue(&q);
    let mut ended = None;
    if let Some(w) = &query.wait {
        let wait = humantime::parse_duration(w)
            .map_err(|e| ApiError::bad(format!("wait '{w}' is not a duration (e.g. 20s): {e}")))?;
        if wait > MAX_WAIT {
            return Err(ApiError::bad(format!(
                "wait is at most {}s (the server answers every request within 35s), got {w}",
                MAX_WAIT.as_secs()
            )));
        }
        ended = queue
            .wait_finished(&id, wait)
            .await
            .map_err(|e| fail(&q, "job", e))?;
    }
    match queue.job(&id).await.map_err(|e| fail(&q, "job", e))? {
        Some(info) => Ok(Json(info).into_response()),
        // Ended and deleted by its retention (kept by none) since: its outcome as the
        // wait saw it.
        None if ended.is_some() => {
            let mut v = serde_json::to_value(&ended).expect("outcome serializes");
            v["id"] = json!(id);
            v["queue"] = json!(q);
            Ok(Json(v).into_response())
        }
        None => Err(fail(
            &q,
            "job",
            Error::NotFound {
                queue: q.clone(),
                id,
            },
        )),
    }
}

/// The query of `GET /v1/queues/{queue}/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    state: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

pub(super) async fn list_jobs(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad(format!("bad query: {}", e.body_text())))?;
    let names = || {
        JobState::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let state = match query.state.as_deref() {
        None => {
            return Err(ApiError::bad(format!(
                "query parameter `state` is required: one of {}",
                names()
            )))
        }
        Some(st) => JobState::parse(st).ok_or_else(|| {
            ApiError::bad(format!("unknown state {st:?}: use one of {}", names()))
        })?,
    };
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::bad(format!(
            "limit must be 1 to {MAX_LIST}, got {limit}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    if offset > isize::MAX as usize / 2 {
        return Err(ApiError::bad("offset is too large"));
    }
    if state == JobState::Delayed {
        // Delayed jobs come with the time they become ready, as in `baton list`.
        let due = s
            .queue(&q)
            .list_due(offset, limit)
            .await
            .map_err(|e| fail(&q, "list", e))?;
        let ids: Vec<&str> = due.iter().map(|(id, _)| id.as_str()).collect();
        let jobs: Vec<_> = due
            .iter()
            .map(|(id, at)| json!({ "id": id, "due_ms": at }))
            .collect();
        return Ok(Json(
            json!({ "queue": q, "state": state, "offset": offset, "ids": ids, "jobs": jobs }),
        ));
    }
    let ids = s
        .queue(&q)
        .list(state, offset, limit)
        .await
        .map_err(|e| fail(&q, "list", e))?;
    Ok(Json(
        json!({ "queue": q, "state": state, "offset": offset, "ids": ids }),
    ))
}

pub(super) async fn cancel_job(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    JobId(id): JobId,
) -> Result<Json<serde_json::Value>, ApiError> {
    let result = match s
        .queue(&q)
        .cancel(&id)
        .await
        .map_err(|e| fail(&q, "cancel", e))?
    {
        Cancelled::Now => "cancelled",
        Cancelled::Requested => "cancel_requested",
    };
    Ok(Json(json!({ "id": id, "result": result })))
}

pub(super) async fn retry_job(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    JobId(id): JobId,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.queue(&q)
        .retry(&id)
        .await
        .map_err(|e| fail(&q, "retry", e))?;
    Ok(Json(json!({ "id": id, "result": "queued" })))
}

pub(super) async fn remove_job(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    JobId(id): JobId,
) -> Result<StatusCode, ApiError> {
    s.queue(&q)
        .remove(&id)
        .await
        .map_err(|e| fail(&q, "remove", e))?;
    Ok(StatusCode::NO_CONTENT)
}
