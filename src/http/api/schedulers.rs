//! The job scheduler routes under `/v1/queues/{queue}/schedulers`: list, get, upsert
//! (PUT by id), delete. The body of a PUT is a
//! [`SchedulerRequest`](crate::validate::SchedulerRequest), the shape `baton schedule
//! set` builds from its flags.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::json;

use super::errors::{fail, ApiError};
use super::extract::{json_body, JobId, QueueName};
use super::validate::invalid;
use super::ApiState;
use crate::schedule::SchedulerInfo;
use crate::validate::SchedulerRequest;

fn not_found(q: &str, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("scheduler {id} not found in queue {q}"),
    )
}

pub(super) async fn list_schedulers(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
) -> Result<Json<serde_json::Value>, ApiError> {
    let all = s
        .queue(&q)
        .schedulers()
        .await
        .map_err(|e| fail(&q, "schedulers", e))?;
    Ok(Json(json!({ "queue": q, "schedulers": all })))
}

pub(super) async fn get_scheduler(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    JobId(id): JobId,
) -> Result<Json<SchedulerInfo>, ApiError> {
    match s
        .queue(&q)
        .scheduler(&id)
        .await
        .map_err(|e| fail(&q, "schedulers", e))?
    {
        Some(info) => Ok(Json(info)),
        None => Err(not_found(&q, &id)),
    }
}

pub(super) async fn put_scheduler(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    JobId(id): JobId,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SchedulerInfo>, ApiError> {
    let body: serde_json::Value = json_body(body)?;
    let req = SchedulerRequest::from_json(body).map_err(invalid)?;
    let scheduler = req.scheduler(&id).map_err(invalid)?;
    let info = s
        .queue(&q)
        .upsert_scheduler(&id, &scheduler)
        .await
        .map_err(|e| fail(&q, "schedulers", e))?;
    Ok(Json(info))
}

pub(super) async fn delete_scheduler(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    JobId(id): JobId,
) -> Result<StatusCode, ApiError> {
    let removed = s
        .queue(&q)
        .remove_scheduler(&id)
        .await
        .map_err(|e| fail(&q, "schedulers", e))?;
    if removed {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&q, &id))
    }
}
