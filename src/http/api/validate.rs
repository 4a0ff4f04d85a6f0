//! Input validation: queue names and the options of a new job.

use std::time::Duration;

use serde::Deserialize;

use super::errors::ApiError;
use super::MAX_DURATION_MS;
use crate::job::{JobOptions, MAX_PRIORITY};

/// Checks a queue name: 1 to 128 characters, no braces (they delimit the Redis Cluster
/// hash tag), no whitespace or control characters. The rule is
/// [`crate::validate::queue_name`], the one the library and the CLI apply.
pub fn validate_queue_name(q: &str) -> Result<(), String> {
    crate::validate::queue_name(q).map_err(|e| message(&e))
}

/// A library error's message without the "invalid argument: " prefix.
fn message(e: &crate::Error) -> String {
    match e {
        crate::Error::Invalid(m) => m.clone(),
        e => e.to_string(),
    }
}

/// A 400 from a refusal of [`crate::validate`].
pub(super) fn invalid(e: crate::Error) -> ApiError {
    ApiError::bad(message(&e))
}

/// The body of `POST /v1/queues/{queue}/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddRequest {
    pub(super) name: String,
    #[serde(default)]
    pub(super) data: serde_json::Value,
    #[serde(default, deserialize_with = "whole")]
    pub(super) delay_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole")]
    pub(super) priority: Option<u32>,
    #[serde(default, deserialize_with = "whole")]
    pub(super) attempts: Option<u32>,
    pub(super) job_id: Option<String>,
    #[serde(default, deserialize_with = "whole")]
    pub(super) timeout_ms: Option<u64>,
}

/// An optional whole number, also when written with a zero fraction (`5.0`), as JSON
/// Schema's `integer` allows.
fn whole<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let v = match (n.as_u64(), n.as_f64()) {
        (Some(v), _) => v,
        (None, Some(f)) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => f as u64,
        _ => {
            return Err(D::Error::custom(format!(
                "expected a whole number >= 0, got {n}"
            )))
        }
    };
    T::try_from(v)
        .map(Some)
        .map_err(|_| D::Error::custom(format!("{v} is out of range")))
}

impl AddRequest {
    pub(super) fn options(&self) -> Result<JobOptions, ApiError> {
        crate::validate::job_name(&self.name).map_err(invalid)?;
        let mut o = JobOptions::default();
        if let Some(id) = &self.job_id {
            crate::validate::job_id(id).map_err(invalid)?;
            o = o.job_id(id.clone());
        }
        if let Some(d) = self.delay_ms {
            if d > MAX_DURATION_MS {
                return Err(ApiError::bad(format!(
                    "delay_ms must be at most {MAX_DURATION_MS} (ten years)"
                )));
            }
            o = o.delay(Duration::from_millis(d));
        }
        if let Some(p) = self.priority {
            if p > MAX_PRIORITY {
                return Err(ApiError::bad(format!(
                    "priority must be 0 (none) to {MAX_PRIORITY}, got {p}"
                )));
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
                return Err(ApiError::bad(format!(
                    "timeout_ms must be 1 to {MAX_DURATION_MS}"
                )));
            }
            o = o.timeout(Duration::from_millis(t));
        }
        Ok(o)
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
