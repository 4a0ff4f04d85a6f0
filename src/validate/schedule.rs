//! [`SchedulerRequest`]: a job scheduler as text, read the same way by `baton schedule
//! set` and `PUT /v1/queues/{queue}/schedulers/{id}`.

use serde_json::{Map, Value};

use super::{duration, JobRequest};
use crate::error::{Error, Result};
use crate::schedule::{Repeat, Scheduler};

/// The fields of a scheduler besides those of its job template ([`JobRequest`]).
const OWN_FIELDS: [&str; 6] = ["cron", "tz", "every", "start", "end", "limit"];

/// A scheduler as the CLI and the HTTP API describe it: `cron` (with `tz`) or `every`
/// (a duration such as `30s`), optional `start` and `end` (RFC 3339 times such as
/// `2026-12-01T08:00:00Z`) and `limit`, and the job template with the fields and units
/// of [`JobRequest`] (`name`, `data`, `priority`, `attempts`, `backoff`, `timeout`,
/// `keep_completed`, `keep_failed`; not `job_id` or `delay`).
#[derive(Debug, Clone, Default)]
pub struct SchedulerRequest {
    /// A cron expression (5 fields, or 6 with seconds first).
    pub cron: Option<String>,
    /// The cron expression's IANA time zone (default UTC).
    pub tz: Option<String>,
    /// A fixed interval (`30s`, at least `1s`).
    pub every: Option<String>,
    /// No tick before this (RFC 3339).
    pub start: Option<String>,
    /// No tick after this (RFC 3339).
    pub end: Option<String>,
    /// At most this many jobs in all.
    pub limit: Option<u64>,
    /// Each job's name, payload and options. Without a name, jobs are named after the
    /// scheduler.
    pub job: JobRequest,
}

impl SchedulerRequest {
    /// Reads a JSON object: the scheduler's own fields, then the rest as a
    /// [`JobRequest`] (so an unknown field is refused, naming it).
    pub fn from_json(v: Value) -> Result<SchedulerRequest> {
        let Value::Object(mut map) = v else {
            return Err(Error::Invalid("expected a JSON object".into()));
        };
        let text = |map: &mut Map<String, Value>, k: &str| -> Result<Option<String>> {
            match map.remove(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(Error::Invalid(format!("`{k}` must be text, got {other}"))),
            }
        };
        let mut r = SchedulerRequest {
            cron: text(&mut map, "cron")?,
            tz: text(&mut map, "tz")?,
            every: text(&mut map, "every")?,
            start: text(&mut map, "start")?,
            end: text(&mut map, "end")?,
            ..Default::default()
        };
        r.limit = match map.remove("limit") {
            None | Some(Value::Null) => None,
            Some(v) => Some(v.as_u64().ok_or_else(|| {
                Error::Invalid(format!("`limit` must be a whole number >= 1, got {v}"))
            })?),
        };
        debug_assert!(OWN_FIELDS.iter().all(|f| !map.contains_key(*f)));
        r.job = serde_json::from_value(Value::Object(map))
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(r)
    }

    /// The scheduler `id` as [`Queue::upsert_scheduler`](crate::Queue::upsert_scheduler)
    /// takes it, every field checked.
    pub fn scheduler(&self, id: &str) -> Result<Scheduler<Value>> {
        let repeat = match (&self.cron, &self.every) {
            (Some(expr), None) => Repeat::Cron {
                expr: expr.clone(),
                tz: self.tz.clone(),
            },
            (None, Some(every)) => {
                if self.tz.is_some() {
                    return Err(Error::Invalid(
                        "tz applies to cron only (an interval is the same in every zone)".into(),
                    ));
                }
                Repeat::Every(duration("every", every)?)
            }
            (Some(_), Some(_)) => {
                return Err(Error::Invalid("give cron or every, not both".into()))
            }
            (None, None) => {
                return Err(Error::Invalid(
                    "give cron (e.g. \"0 */5 * * * *\") or every (e.g. \"30s\")".into(),
                ))
            }
        };
        let time = |what: &str, t: &Option<String>| {
            t.as_deref()
                .map(|t| {
                    humantime::parse_rfc3339_weak(t).map_err(|e| {
                        Error::Invalid(format!(
                            "{what} must be an RFC 3339 time such as 2026-12-01T08:00:00Z, \
                             got {t:?}: {e}"
                        ))
                    })
                })
                .transpose()
        };
        if self.job.traceparent.is_some() {
            return Err(Error::Invalid(
                "a scheduler's job template takes no traceparent: each run starts a trace of its own".into(),
            ));
        }
        let mut s = Scheduler::new(
            repeat,
            self.job.name.clone().unwrap_or_else(|| id.to_string()),
            self.job.data.clone(),
        )
        .opts(self.job.options()?);
        s.start = time("start", &self.start)?;
        s.end = time("end", &self.end)?;
        s.limit = self.limit;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_reads_the_scheduler_then_the_job_template() {
        let r = SchedulerRequest::from_json(json!({
            "cron": "*/5 * * * * *", "tz": "Europe/Berlin", "limit": 3,
            "name": "report", "data": {"x": 1}, "attempts": 2
        }))
        .unwrap();
        let s = r.scheduler("daily").unwrap();
        assert_eq!(s.repeat, Repeat::cron_in("*/5 * * * * *", "Europe/Berlin"));
        assert_eq!(
            (s.name.as_str(), s.limit, s.opts.attempts),
            ("report", Some(3), 2)
        );
        let e = SchedulerRequest::from_json(json!({"every": "1s", "colour": "red"})).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let named = SchedulerRequest::from_json(json!({"every": "30s"}))
            .unwrap()
            .scheduler("tidy")
            .unwrap();
        assert_eq!(named.name, "tidy");
    }

    #[test]
    fn the_rule_must_be_one_of_cron_or_every() {
        let e = |v: Value| {
            SchedulerRequest::from_json(v)
                .and_then(|r| r.scheduler("x"))
                .unwrap_err()
                .to_string()
        };
        assert!(e(json!({})).contains("give cron"));
        assert!(e(json!({"cron": "* * * * *", "every": "1s"})).contains("not both"));
        assert!(e(json!({"every": "1s", "tz": "UTC"})).contains("cron only"));
        assert!(e(json!({"every": "1s", "start": "tomorrow"})).contains("RFC 3339"));
        assert!(e(json!({"every": "1s", "limit": -1})).contains("limit"));
    }
}
