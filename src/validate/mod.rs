//! The one set of rules for names that become parts of Redis keys or reach a child
//! process: queue names, job ids and job names. The library ([`Queue`](crate::Queue)),
//! the CLI and the HTTP API all call these, so an input refused by one is refused by all.
//!
//! Why braces are refused (but for a queue name's leading `{tag}`): every key of a queue is `baton:{<queue>}:…`, and a job's keys
//! are `baton:{<queue>}:job:<id>`. Redis Cluster hashes only what lies between the first
//! `{` and the next `}`; and with a brace in a queue name or a job id, two different
//! (queue, id) pairs can spell the same key: queue `q}:job:5` with job `1` and queue `q`
//! with job `5}:job:1` are both `baton:{q}:job:5}:job:1`, so one add silently finds the
//! other's job and changes nothing. Control characters (NUL above all) cannot be passed
//! to a command as an environment variable (`BATON_JOB_ID`, `BATON_JOB_NAME`), so an exec
//! worker could never run such a job.
//!
//! The options of a new job as text ([`JobRequest`], [`duration`], [`backoff`],
//! [`retention`]) and of a job scheduler ([`SchedulerRequest`]) live here too, for the same reason: the CLI and the HTTP API read
//! them with one parser, so they take the same names and units.

mod flow;
mod request;
mod schedule;

pub use flow::{flow, set_trace};
pub use request::JobRequest;
pub use schedule::SchedulerRequest;

use std::time::Duration;

use crate::error::{Error, Result};
use crate::job::{Backoff, Retention};

/// Longest queue name, in characters.
pub const MAX_QUEUE_NAME: usize = 128;
/// Longest job id and job name, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Checks a queue name: 1 to [`MAX_QUEUE_NAME`] characters, no whitespace or control
/// characters, and braces only as a leading `{tag}` (a non-empty tag without braces):
/// queues whose names start with the same `{tag}` share one Redis Cluster slot (their
/// keys are `baton:{{tag}…}:…`, and Redis hashes only `{tag`), which a flow across
/// queues needs on a Cluster. Anywhere else a brace would let two queues spell the same
/// key (see the module docs).
pub fn queue_name(q: &str) -> Result<()> {
    let n = q.chars().count();
    if n == 0 || n > MAX_QUEUE_NAME {
        return Err(Error::Invalid(format!(
            "queue name must be 1 to {MAX_QUEUE_NAME} characters, got {n}"
        )));
    }
    if let Some(c) = q.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!(
            "queue name {q:?} contains {c:?}: whitespace and control characters are not allowed"
        )));
    }
    // A leading "{tag}" is the only place for braces.
    let rest = match q.strip_prefix('{').and_then(|r| r.split_once('}')) {
        Some((tag, rest)) if !tag.is_empty() && !tag.contains('{') => rest,
        _ => q,
    };
    if let Some(c) = rest.chars().find(|c| *c == '{' || *c == '}') {
        return Err(Error::Invalid(format!(
            "queue name {q:?} contains {c:?}: braces are allowed only as a leading {{tag}} \
             (queues with the same tag share a Redis Cluster slot)"
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

/// Longest group name, in bytes.
pub const MAX_GROUP_BYTES: usize = 128;

/// Checks a job's group: 1 to [`MAX_GROUP_BYTES`] bytes, no braces, no control
/// characters. A group names keys of its own (`baton:{q}:g:<group>:wait`).
pub fn group_name(g: &str) -> Result<()> {
    if g.is_empty() || g.len() > MAX_GROUP_BYTES {
        return Err(Error::Invalid(format!(
            "group must be 1 to {MAX_GROUP_BYTES} bytes, got {}",
            g.len()
        )));
    }
    // '|' separates the group from a dedup key in the job's stored retention field.
    if let Some(c) = g
        .chars()
        .find(|c| *c == '{' || *c == '}' || *c == '|' || c.is_control())
    {
        return Err(Error::Invalid(format!(
            "group {g:?} contains {c:?}: braces, '|' and control characters are not allowed"
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

/// A rate limit as the CLI and the HTTP API write it: `N/DURATION` (`100/1s`,
/// `5/250ms`), or `none` for no limit (`Ok(None)`).
pub fn rate(text: &str) -> Result<Option<(u32, Duration)>> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let bad = || {
        Error::Invalid(format!(
            "rate {text:?}: write N/DURATION, e.g. 100/1s or 5/250ms (or none)"
        ))
    };
    let (n, per) = t.split_once('/').ok_or_else(bad)?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    let per = duration("rate window", per.trim())?;
    if n == 0 || per.as_millis() == 0 {
        return Err(bad());
    }
    Ok(Some((n, per)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names() {
        assert!(queue_name("emails").is_ok());
        assert!(queue_name("a.b-c:d/é").is_ok());
        assert!(queue_name(&"x".repeat(128)).is_ok());
        assert!(queue_name("{shop}orders").is_ok());
        assert!(queue_name("{shop}").is_ok());
        for bad in [
            "",
            "a{b",
            "a}b",
            "a b",
            "a\tb",
            "bad queue!",
            "a\0b",
            "{}x",
            "{a{b}x",
            "{a}b}",
            "{a}{b}c",
            "{ab",
        ] {
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
