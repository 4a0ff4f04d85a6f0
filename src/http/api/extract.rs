//! Request extractors: path parameters and JSON bodies, every failure a 4xx.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::errors::ApiError;
use super::validate::{invalid, validate_queue_name};

/// A valid queue name from the path.
pub(crate) struct QueueName(pub(super) String);

/// A job id from the path.
pub(crate) struct JobId(pub(super) String);

async fn path_param<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<String, ApiError> {
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::bad(format!("bad path: {}", e.body_text())))?;
    params
        .get(name)
        .cloned()
        .ok_or_else(|| ApiError::bad(format!("missing path parameter {name}")))
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
        crate::validate::job_id(&id).map_err(invalid)?;
        Ok(JobId(id))
    }
}

/// Reads a JSON body, turning every failure into a 4xx.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|e| {
        let status = e.status();
        let msg = if status == StatusCode::PAYLOAD_TOO_LARGE {
            format!(
                "request body is larger than the limit of {} bytes; \
                 keep large data elsewhere and pass a reference to it",
                crate::http::MAX_BODY_BYTES
            )
        } else {
            format!("could not read the request body: {}", e.body_text())
        };
        ApiError::new(
            if status.is_client_error() {
                status
            } else {
                StatusCode::BAD_REQUEST
            },
            msg,
        )
    })?;
    if bytes.is_empty() {
        return Err(ApiError::bad(
            "request body is empty; expected a JSON object",
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}
