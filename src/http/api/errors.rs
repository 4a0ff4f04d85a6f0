//! The API's error type and the JSON 404/405 fallbacks.

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::error::Error;
use crate::metrics as m;

/// A failed request: status and message, rendered as `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
    pub(super) fn bad(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({ "error": self.message }))).into_response();
        match self.status {
            StatusCode::SERVICE_UNAVAILABLE => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            StatusCode::UNAUTHORIZED => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"baton\""),
                );
            }
            _ => {}
        }
        resp
    }
}

/// Maps a library error onto a response, counting Redis failures under `op`.
pub(super) fn fail(queue: &str, op: &'static str, e: Error) -> ApiError {
    let status = match &e {
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::InvalidState { .. } | Error::LockLost(_) => StatusCode::CONFLICT,
        Error::Invalid(_) | Error::Encode(_) | Error::Decode(_) => StatusCode::BAD_REQUEST,
        Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::Redis(_)
        | Error::MaybeAdded { .. }
        | Error::NotReplicated { .. }
        | Error::Unavailable { .. }
        | Error::Connect { .. }
        | Error::UnfitRedis(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::WorkerFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(queue, op, error = %e, "redis call failed");
        metrics::counter!(m::REDIS_ERRORS, "queue" => queue.to_string(), "op" => op).increment(1);
    }
    // Said without the library's "invalid argument: " prefix, as the API's own checks
    // say it.
    ApiError::new(status, e.reason())
}

/// The router's fallback: a JSON 404.
pub(crate) async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route for {method} {}; see GET /openapi.json",
            uri.path()
        ),
    )
}

/// A JSON 405.
pub(crate) async fn no_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on {}; see GET /openapi.json",
            uri.path()
        ),
    )
}
