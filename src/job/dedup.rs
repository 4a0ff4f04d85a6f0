//! [`Dedup`]: a job's deduplication key, and what an add with a key that stands does.

use std::time::Duration;

/// How an add whose dedup key stands is absorbed (see [`Dedup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupMode {
    /// The add is ignored while the job that took the key is waiting, delayed or
    /// active; once it finishes (or is cancelled or removed) the key is free.
    Simple,
    /// The add is ignored for this long after the add that took the key, whatever that
    /// job does in the meantime (throttling). Removing the job frees the key early.
    Ttl(Duration),
    /// The job runs this long after the last add with its key: while the job that took
    /// the key is waiting or delayed, an add replaces its payload and makes it due this
    /// long from now (a job already due goes back to delayed). Once it has started, an
    /// add is a new job, which takes the key. The window is the job's delay, so a
    /// debounced job takes no other delay.
    Debounce(Duration),
}

/// A deduplication key for an add ([`JobOptions::dedup`](super::JobOptions::dedup)): at
/// most one job stands under a key at a time, per queue. An add with a key that stands
/// adds nothing and returns the id of the job that stands, with
/// [`Added::deduplicated`](crate::Added::deduplicated) set.
///
/// The check and the write are one Redis script, so concurrent adds from any number of
/// producers leave exactly one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dedup {
    /// The key: 1 to 256 bytes, no braces, no control characters (as a job id).
    pub key: String,
    /// What an add with the key does while it stands.
    pub mode: DedupMode,
}

impl Dedup {
    /// Ignore adds with `key` while its job is not finished.
    pub fn simple(key: impl Into<String>) -> Self {
        Dedup {
            key: key.into(),
            mode: DedupMode::Simple,
        }
    }
    /// Ignore adds with `key` for `ttl` after the add that took it.
    pub fn ttl(key: impl Into<String>, ttl: Duration) -> Self {
        Dedup {
            key: key.into(),
            mode: DedupMode::Ttl(ttl),
        }
    }
    /// Run once, `window` after the last add with `key`, with the last payload.
    pub fn debounce(key: impl Into<String>, window: Duration) -> Self {
        Dedup {
            key: key.into(),
            mode: DedupMode::Debounce(window),
        }
    }

    /// Checks the key and the duration (at least 1 ms, at most ten years).
    pub fn check(&self) -> crate::Result<()> {
        let k = &self.key;
        if k.is_empty() || k.len() > crate::validate::MAX_ID_BYTES {
            return Err(crate::Error::Invalid(format!(
                "dedup key must be 1 to {} bytes, got {}",
                crate::validate::MAX_ID_BYTES,
                k.len()
            )));
        }
        if let Some(c) = k.chars().find(|c| *c == '{' || *c == '}' || c.is_control()) {
            return Err(crate::Error::Invalid(format!(
                "dedup key {k:?} contains {c:?}: braces and control characters are not allowed"
            )));
        }
        let (what, d) = match self.mode {
            DedupMode::Simple => return Ok(()),
            DedupMode::Ttl(d) => ("dedup ttl", d),
            DedupMode::Debounce(d) => ("debounce", d),
        };
        if d.as_millis() == 0 {
            return Err(crate::Error::Invalid(format!(
                "{what} must be at least 1ms (it is kept in whole milliseconds), got {d:?}"
            )));
        }
        if d > crate::validate::MAX_DURATION {
            return Err(crate::Error::Invalid(format!(
                "{what} is longer than ten years"
            )));
        }
        Ok(())
    }

    /// The script's form, after the fresh flag: `<mode><ms>:<key>` (see `lua/add.lua`).
    pub(crate) fn script_arg(&self) -> String {
        let (mode, ms) = match self.mode {
            DedupMode::Simple => ('s', 0),
            DedupMode::Ttl(d) => ('t', d.as_millis()),
            DedupMode::Debounce(d) => ('d', d.as_millis()),
        };
        format!("{mode}{ms}:{}", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_encodes() {
        assert_eq!(Dedup::simple("k").script_arg(), "s0:k");
        let t = Dedup::ttl("a:b|c", Duration::from_secs(30));
        assert_eq!(t.script_arg(), "t30000:a:b|c");
        assert!(t.check().is_ok());
        assert!(Dedup::simple("").check().is_err());
        assert!(Dedup::simple("a{b").check().is_err());
        assert!(Dedup::simple("x".repeat(257)).check().is_err());
        assert!(Dedup::debounce("k", Duration::from_micros(10))
            .check()
            .is_err());
        assert!(Dedup::ttl("k", Duration::from_secs(400_000_000))
            .check()
            .is_err());
    }
}
