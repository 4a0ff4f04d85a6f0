//! Input validation: queue names and the options of a new job.

use super::errors::ApiError;
use crate::job::JobOptions;
use crate::validate::JobRequest;

/// Checks a queue name by the rule of [`crate::validate::queue_name`], the one the
/// library and the CLI apply.
pub fn validate_queue_name(q: &str) -> Result<(), String> {
    crate::validate::queue_name(q).map_err(|e| e.reason())
}

/// A 400 from a refusal of [`crate::validate`].
pub(super) fn invalid(e: crate::Error) -> ApiError {
    ApiError::bad(e.reason())
}

// The API's documented bound on durations is the library's.
const _: () = assert!(super::MAX_DURATION_MS == crate::validate::MAX_DURATION.as_millis() as u64);

/// The body of `POST /v1/queues/{queue}/jobs`: a [`JobRequest`], the shape `baton add`
/// and each line of `baton add-bulk` take, with `name` required.
pub(super) struct AddRequest {
    pub(super) name: String,
    pub(super) data: serde_json::Value,
    opts: JobOptions,
}

impl AddRequest {
    pub(super) fn new(req: JobRequest) -> Result<AddRequest, ApiError> {
        let Some(name) = req.name.clone() else {
            return Err(ApiError::bad("missing field `name`"));
        };
        let opts = req.options().map_err(invalid)?;
        Ok(AddRequest {
            name,
            data: req.data,
            opts,
        })
    }

    pub(super) fn options(&self) -> Result<JobOptions, ApiError> {
        Ok(self.opts.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
