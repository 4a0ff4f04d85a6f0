//! [`JobRequest`]: a new job's options as text, read the same way by `baton add`, each
//! line of `baton add-bulk` and the HTTP add route.

use std::time::Duration;

use serde::Deserialize;

use super::{backoff, duration, job_id, job_name, retention, MAX_DURATION};
use crate::error::{Error, Result};
use crate::job::{Dedup, DedupMode, JobOptions, MAX_PRIORITY};

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
    /// The job's group (see [`JobOptions::group`](crate::JobOptions::group)).
    #[serde(default, deserialize_with = "text")]
    pub group: Option<String>,
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
    /// The producer's W3C trace context (`00-<trace id>-<span id>-<flags>`); the
    /// worker's job span joins that trace. The HTTP API also takes it from a
    /// `traceparent` header, and `baton add` from `TRACEPARENT` in its environment.
    #[serde(default, deserialize_with = "text")]
    pub traceparent: Option<String>,
    /// A deduplication key: while a job added with it stands, adds with it add nothing
    /// (see [`Dedup`](crate::Dedup)). Alone: simple mode.
    pub dedup: Option<String>,
    /// With `dedup`: ttl mode, adds with the key are ignored this long (`30s`).
    #[serde(default, deserialize_with = "text")]
    pub dedup_ttl: Option<String>,
    /// With `dedup`: debounce mode, the job runs this long after the last add with the
    /// key, with the last payload (`5s`; not with `delay`).
    #[serde(default, deserialize_with = "text")]
    pub debounce: Option<String>,
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
            group: self.group.or(d.group),
            attempts: self.attempts.or(d.attempts),
            backoff: self.backoff.or(d.backoff),
            timeout: self.timeout.or(d.timeout),
            keep_completed: self.keep_completed.or(d.keep_completed),
            keep_failed: self.keep_failed.or(d.keep_failed),
            traceparent: self.traceparent.or(d.traceparent),
            dedup: self.dedup.or(d.dedup),
            dedup_ttl: self.dedup_ttl.or(d.dedup_ttl),
            debounce: self.debounce.or(d.debounce),
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
        if let Some(g) = &self.group {
            crate::validate::group_name(g)?;
            o = o.group(g.clone());
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
        if let Some(t) = &self.traceparent {
            let t = t.parse().map_err(|e: crate::job::BadTraceParent| {
                Error::Invalid(format!("traceparent: {e}"))
            })?;
            o = o.trace(t);
        }
        o.dedup = self.dedup()?;
        if let Some(d) = &o.dedup {
            d.check()?;
            if matches!(d.mode, DedupMode::Debounce(_)) && !o.delay.is_zero() {
                return Err(Error::Invalid(
                    "a debounced job runs its window after the last add: give debounce or delay, not both".into(),
                ));
            }
        }
        Ok(o)
    }

    /// `dedup` with `dedup_ttl` or `debounce` (at most one of them).
    fn dedup(&self) -> Result<Option<Dedup>> {
        let mode = match (&self.dedup_ttl, &self.debounce) {
            (Some(_), Some(_)) => {
                return Err(Error::Invalid(
                    "give dedup_ttl or debounce, not both".into(),
                ))
            }
            (Some(t), None) => DedupMode::Ttl(duration("dedup_ttl", t)?),
            (None, Some(t)) => DedupMode::Debounce(duration("debounce", t)?),
            (None, None) => DedupMode::Simple,
        };
        match &self.dedup {
            Some(key) => Ok(Some(Dedup {
                key: key.clone(),
                mode,
            })),
            None if mode == DedupMode::Simple => Ok(None),
            None => Err(Error::Invalid(
                "dedup_ttl and debounce need a dedup key (dedup)".into(),
            )),
        }
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
