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
//!
//! The options of a new job as text ([`JobRequest`], [`duration`], [`backoff`],
//! [`retention`]) live here too, for the same reason: the CLI and the HTTP API read
//! them with one parser, so they take the same names and units.

use std::time::Duration;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::job::{Backoff, JobOptions, Retention, MAX_PRIORITY};

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

/// Longest delay or timeout accepted from text: ten years.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// A duration as the CLI and the HTTP API take it: humantime text such as `30s`, `5m`,
/// `1h 30m`, `250ms`, at most [`MAX_DURATION`]. `what` names the option in the message.
pub fn duration(what: &str, text: &str) -> Result<Duration> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        Error::Invalid(format!(
            "{what} {text:?} is not a duration ({e}); write it like 30s, 5m, 1h or 250ms"
        ))
    })?;
    if d > MAX_DURATION {
        return Err(Error::Invalid(format!(
            "{what} {text:?} is longer than ten years"
        )));
    }
    Ok(d)
}

/// A backoff as text: `fixed:DELAY` (e.g. `fixed:5s`), or
/// `exponential:BASE[:MAX][:no-jitter]` (e.g. `exponential:1s:10m`; MAX defaults to
/// 10m, jitter is on unless `no-jitter`).
pub fn backoff(text: &str) -> Result<Backoff> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "backoff {text:?} {why}; write fixed:5s or exponential:1s[:10m][:no-jitter]"
        ))
    };
    let mut parts = text.trim().split(':');
    match parts.next() {
        Some("fixed") => {
            let delay = duration(
                "backoff delay",
                parts.next().ok_or_else(|| bad("has no delay"))?,
            )?;
            if parts.next().is_some() {
                return Err(bad("has too many parts"));
            }
            Ok(Backoff::Fixed { delay })
        }
        Some("exponential") => {
            let base = duration(
                "backoff base",
                parts.next().ok_or_else(|| bad("has no base"))?,
            )?;
            let (mut max, mut jitter) = (Duration::from_secs(600), true);
            for (i, p) in parts.enumerate() {
                match p {
                    "no-jitter" => jitter = false,
                    p if i == 0 => max = duration("backoff max", p)?,
                    _ => return Err(bad("has too many parts")),
                }
            }
            if max < base {
                return Err(bad("has a max below its base"));
            }
            Ok(Backoff::Exponential { base, max, jitter })
        }
        _ => Err(bad("is neither fixed nor exponential")),
    }
}

/// A retention as text: `all` (keep every one), `none` (delete at once), a count
/// (`1000`: keep the last 1000), an age (`7d`: none older), or both (`1000,7d`).
pub fn retention(what: &str, text: &str) -> Result<Retention> {
    match text.trim() {
        "all" => return Ok(Retention::all()),
        "none" => return Ok(Retention::none()),
        _ => {}
    }
    let mut r = Retention::all();
    for part in text.split(',').map(str::trim) {
        if let Ok(n) = part.parse::<u64>() {
            if r.count.replace(n).is_some() {
                return Err(Error::Invalid(format!("{what} {text:?} gives two counts")));
            }
        } else if humantime::parse_duration(part).is_ok() {
            if r.age.replace(duration(what, part)?).is_some() {
                return Err(Error::Invalid(format!("{what} {text:?} gives two ages")));
            }
        } else {
            return Err(Error::Invalid(format!(
                "{what} {text:?} is not a retention; write all, none, a count (1000), \
                 an age (7d) or both (1000,7d)"
            )));
        }
    }
    Ok(r)
}

/// A new job as the CLI (`baton add`, each line of `baton add-bulk`) and the HTTP API
/// (`POST /v1/queues/{queue}/jobs`) describe it: one set of names and units, so
/// whatever one accepts the others do. Durations are text (see [`duration`]); the
/// options are those of [`JobOptions`], and absent ones keep its defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Job name (what kind of work).
    pub name: Option<String>,
    /// The payload (JSON; null when absent).
    #[serde(default)]
    pub data: serde_json::Value,
    /// Your own id; adding an existing one changes nothing.
    pub job_id: Option<String>,
    /// Run no earlier than this from now (`30s`).
    #[serde(default, deserialize_with = "text")]
    pub delay: Option<String>,
    /// 0 = none; 1 is the highest, larger numbers lower.
    #[serde(default, deserialize_with = "whole")]
    pub priority: Option<u32>,
    /// Attempts in all (1 = no retry).
    #[serde(default, deserialize_with = "whole")]
    pub attempts: Option<u32>,
    /// Between attempts: see [`backoff`].
    #[serde(default, deserialize_with = "text")]
    pub backoff: Option<String>,
    /// Limit on one attempt's run time (`30s`).
    #[serde(default, deserialize_with = "text")]
    pub timeout: Option<String>,
    /// Completed jobs to keep: see [`retention`].
    #[serde(default, deserialize_with = "text")]
    pub keep_completed: Option<String>,
    /// Failed and cancelled jobs to keep: see [`retention`].
    #[serde(default, deserialize_with = "text")]
    pub keep_failed: Option<String>,
    /// The HTTP API's first spelling of `delay`, in ms; still accepted.
    #[serde(default, deserialize_with = "whole")]
    pub delay_ms: Option<u64>,
    /// The HTTP API's first spelling of `timeout`, in ms; still accepted.
    #[serde(default, deserialize_with = "whole")]
    pub timeout_ms: Option<u64>,
}

impl JobRequest {
    /// This request with every option it leaves out taken from `defaults`.
    pub fn or(self, defaults: &JobRequest) -> JobRequest {
        let d = defaults.clone();
        JobRequest {
            name: self.name.or(d.name),
            data: self.data,
            job_id: self.job_id.or(d.job_id),
            delay: self.delay.or(d.delay),
            priority: self.priority.or(d.priority),
            attempts: self.attempts.or(d.attempts),
            backoff: self.backoff.or(d.backoff),
            timeout: self.timeout.or(d.timeout),
            keep_completed: self.keep_completed.or(d.keep_completed),
            keep_failed: self.keep_failed.or(d.keep_failed),
            delay_ms: self.delay_ms.or(d.delay_ms),
            timeout_ms: self.timeout_ms.or(d.timeout_ms),
        }
    }

    /// The options, each checked as the library checks it.
    pub fn options(&self) -> Result<JobOptions> {
        let mut o = JobOptions::default();
        if let Some(name) = &self.name {
            job_name(name)?;
        }
        if let Some(id) = &self.job_id {
            job_id(id)?;
            o = o.job_id(id.clone());
        }
        let ms = |what: &str, v: u64| {
            let d = Duration::from_millis(v);
            if d > MAX_DURATION {
                return Err(Error::Invalid(format!("{what} is longer than ten years")));
            }
            Ok(d)
        };
        o.delay = match (&self.delay, self.delay_ms) {
            (Some(_), Some(_)) => {
                return Err(Error::Invalid("give delay or delay_ms, not both".into()))
            }
            (Some(t), None) => duration("delay", t)?,
            (None, Some(v)) => ms("delay_ms", v)?,
            (None, None) => Duration::ZERO,
        };
        o.timeout = match (&self.timeout, self.timeout_ms) {
            (Some(_), Some(_)) => {
                return Err(Error::Invalid(
                    "give timeout or timeout_ms, not both".into(),
                ))
            }
            (Some(t), None) => Some(duration("timeout", t)?),
            (None, Some(v)) => Some(ms("timeout_ms", v)?),
            (None, None) => None,
        };
        if o.timeout.is_some_and(|t| t.as_millis() == 0) {
            return Err(Error::Invalid("timeout must be at least 1ms".into()));
        }
        if let Some(p) = self.priority {
            if p > MAX_PRIORITY {
                return Err(Error::Invalid(format!(
                    "priority must be 0 (none) to {MAX_PRIORITY}, got {p}"
                )));
            }
            o = o.priority(p);
        }
        if let Some(a) = self.attempts {
            if a == 0 {
                return Err(Error::Invalid("attempts must be at least 1".into()));
            }
            o = o.attempts(a);
        }
        if let Some(b) = &self.backoff {
            o = o.backoff(backoff(b)?);
        }
        if let Some(r) = &self.keep_completed {
            o = o.keep_completed(retention("keep_completed", r)?);
        }
        if let Some(r) = &self.keep_failed {
            o = o.keep_failed(retention("keep_failed", r)?);
        }
        Ok(o)
    }
}

/// Optional text; a number here is refused with a hint, since its unit would be a
/// guess (`"delay": 5`: seconds? milliseconds?).
fn text<'de, D>(d: D) -> std::result::Result<Option<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(D::Error::custom(format!(
            "expected text such as \"30s\" (durations, backoff and retention are strings), \
             got {v}"
        ))),
    }
}

/// An optional whole number, also when written with a zero fraction (`5.0`), as JSON
/// Schema's `integer` allows.
fn whole<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::de::Error as _;
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

    #[test]
    fn options_as_text() {
        assert_eq!(
            backoff("fixed:5s").unwrap(),
            Backoff::Fixed {
                delay: Duration::from_secs(5)
            }
        );
        assert_eq!(
            backoff("exponential:1s:1m:no-jitter").unwrap(),
            Backoff::Exponential {
                base: Duration::from_secs(1),
                max: Duration::from_secs(60),
                jitter: false
            }
        );
        for bad in [
            "",
            "fixed",
            "fixed:soon",
            "linear:1s",
            "exponential:1m:1s",
            "fixed:1s:2s",
        ] {
            assert!(backoff(bad).is_err(), "{bad:?}");
        }
        assert_eq!(retention("k", "none").unwrap(), Retention::none());
        assert_eq!(retention("k", "all").unwrap(), Retention::all());
        assert_eq!(
            retention("k", "10, 1h").unwrap(),
            Retention {
                count: Some(10),
                age: Some(Duration::from_secs(3600))
            }
        );
        for bad in ["", "1,2", "1h,2h", "lots"] {
            assert!(retention("k", bad).is_err(), "{bad:?}");
        }
        assert!(duration("delay", "11000d").is_err());
    }
}
