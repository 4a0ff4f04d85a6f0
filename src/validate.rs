//! The one set of rules for names that become parts of Redis keys or reach a child
//! process: queue names, job ids and job names. The library ([`Queue`](crate::Queue)),
//! the CLI and the HTTP API all call these, so an input refused by one is refused by all.
//!
//! Why braces are refused: every key of a queue is `baton:{<queue>}:…`, and a job's keys
//! are `baton:{<queue>}:job:<id>`. Redis Cluster hashes only what lies between the first
//! `{` and the next `}`; and with a brace in a queue name or a job id, two different
//! (queue, id) pairs can spell the same key: queue `q}:job:5` with job `1` and queue `q`
//! with job `5}:job:1` are both `baton:{q}:job:5}:job:1`, so one add silently finds the
//! other's job and changes nothing. Control characters (NUL above all) cannot be passed
//! to a command as an environment variable (`BATON_JOB_ID`, `BATON_JOB_NAME`), so an exec
//! worker could never run such a job.

use crate::error::{Error, Result};

/// Longest queue name, in characters.
pub const MAX_QUEUE_NAME: usize = 128;
/// Longest job id and job name, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Checks a queue name: 1 to [`MAX_QUEUE_NAME`] characters, no braces (they delimit the
/// Redis Cluster hash tag), no whitespace or control characters.
pub fn queue_name(q: &str) -> Result<()> {
    let n = q.chars().count();
    if n == 0 || n > MAX_QUEUE_NAME {
        return Err(Error::Invalid(format!(
            "queue name must be 1 to {MAX_QUEUE_NAME} characters, got {n}"
        )));
    }
    if let Some(c) = q
        .chars()
        .find(|c| *c == '{' || *c == '}' || c.is_whitespace() || c.is_control())
    {
        return Err(Error::Invalid(format!(
            "queue name {q:?} contains {c:?}: braces, whitespace and control characters are not allowed"
        )));
    }
    Ok(())
}

/// Checks a job id: 1 to [`MAX_ID_BYTES`] bytes, no braces, no control characters
/// (NUL included).
pub fn job_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_BYTES {
        return Err(Error::Invalid(format!(
            "job id must be 1 to {MAX_ID_BYTES} bytes, got {}",
            id.len()
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| *c == '{' || *c == '}' || c.is_control())
    {
        return Err(Error::Invalid(format!(
            "job id {id:?} contains {c:?}: braces and control characters are not allowed"
        )));
    }
    Ok(())
}

/// Checks a job name: 1 to [`MAX_ID_BYTES`] bytes, no NUL (an exec worker passes the
/// name to its command as `BATON_JOB_NAME`, which cannot hold one).
pub fn job_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_ID_BYTES {
        return Err(Error::Invalid(format!(
            "job name must be 1 to {MAX_ID_BYTES} bytes, got {}",
            name.len()
        )));
    }
    if name.contains('\0') {
        return Err(Error::Invalid(format!(
            "job name {name:?} contains a NUL character, which is not allowed"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        assert!(queue_name("emails").is_ok());
        assert!(queue_name("a.b-c:d/é").is_ok());
        assert!(queue_name(&"x".repeat(128)).is_ok());
        for bad in ["", "a{b", "a}b", "a b", "a\tb", "bad queue!", "a\0b"] {
            assert!(queue_name(bad).is_err(), "{bad:?}");
        }
        assert!(queue_name(&"x".repeat(129)).is_err());
    }

    #[test]
    fn job_ids_and_names() {
        assert!(job_id("order-7:retry").is_ok());
        assert!(job_id("with space").is_ok());
        for bad in ["", "a}b", "{a", "a\0b", "a\nb"] {
            assert!(job_id(bad).is_err(), "{bad:?}");
        }
        assert!(job_id(&"x".repeat(257)).is_err());
        assert!(job_name("send email").is_ok());
        assert!(job_name("").is_err());
        assert!(job_name("a\0b").is_err());
    }
}
