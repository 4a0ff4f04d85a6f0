//! `POST /v1/queues/{queue}/flows`: a flow (a parent and its children, nested) read by
//! [`crate::validate::flow`], the shape `baton add-flow` takes from a file.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::errors::{fail, ApiError};
use super::extract::{json_body, QueueName};
use super::validate::invalid;
use super::ApiState;

pub(super) async fn add_flow(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut v: serde_json::Value = json_body(body)?;
    // W3C Trace Context: the caller's `traceparent` header for every job of the flow
    // that names none.
    if let Some(h) = headers.get("traceparent") {
        let t = h
            .to_str()
            .map_err(|_| ApiError::bad("traceparent header is not text"))?;
        crate::validate::set_trace(&mut v, t);
    }
    let flow = crate::validate::flow(v).map_err(invalid)?;
    let added = s
        .queue(&q)
        .add_flow(&flow)
        .await
        .map_err(|e| fail(&q, "add flow", e))?;
    let status = if added.added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(added)).into_response())
}
