//! Key rotation: rewriting every job's data, result and error under the keyring's
//! first key (`baton reencrypt`).
//!
//! Jobs are found by SCAN over their hash keys (every master of a cluster), then HSCAN
//! over the queue's compact jobs ([`Compact`]), a batch at a time, so a queue of millions costs Redis many small calls rather than one long
//! one. Each value is decrypted and encrypted here and written back by `reencrypt.lua`
//! only if the field still holds what was read: a job that finished, retried or was
//! removed meanwhile keeps what its worker wrote (already under the first key when that
//! worker has the new keyring), and a later run picks up anything left.

use serde::Serialize;

use super::Queue;
use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::job::{Compact, Done};
use crate::scripts::{self, Rewrite};

/// The fields that may hold encrypted values: the payload inside `spec`
/// ([`crate::job::Spec`]; `data` for a job from before that field), the result and the
/// error.
const FIELDS: [&str; 4] = ["spec", "data", "result", "error"];

/// Largest batch of jobs read and rewritten per call.
pub const MAX_REENCRYPT_BATCH: usize = 1000;

/// About the most bytes (values read plus values written) one `reencrypt.lua` call
/// carries: a batch of large payloads is split over several calls.
const MAX_CALL_BYTES: usize = 8 << 20;

/// What [`Queue::reencrypt`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reencrypted {
    /// Jobs looked at.
    pub jobs: u64,
    /// Values rewritten under the first key (plaintext ones included).
    pub rewritten: u64,
    /// Values left alone because the job changed between the read and the write.
    pub changed: u64,
    /// Values that did not decrypt (a key not in the keyring, or tampered with): left
    /// as they are. Not zero means an old key is still needed, or a value is damaged.
    pub undecryptable: u64,
}

impl Queue {
    /// Rewrites every job's data, result and error that is not yet under the
    /// keyring's first key (encrypted under an older key, or stored in plaintext),
    /// `batch` jobs per round trip (1 to [`MAX_REENCRYPT_BATCH`]). Needs
    /// [`Queue::with_encryption`]. Safe to run while workers run, and to run again.
    pub async fn reencrypt(&self, batch: usize) -> Result<Reencrypted> {
        self.check_name()?;
        let keyring = self.keyring.clone().ok_or_else(|| {
            Error::Invalid("reencrypt needs encryption keys (--encryption-key-file)".into())
        })?;
        let batch = batch.clamp(1, MAX_REENCRYPT_BATCH);
        let prefix = format!("{}job:", self.keys.prefix());
        let pattern = format!("{}*", glob_escape(&prefix));
        let mut report = Reencrypted::default();
        let mut scan = crate::conn::MasterScan::new(self.conn.connector(), &pattern, batch).await?;
        while let Some(keys) = scan.next_page().await? {
            let ids: Vec<String> = keys
                .iter()
                .filter_map(|k| k.strip_prefix(&prefix))
                .map(String::from)
                .collect();
            for chunk in ids.chunks(batch) {
                self.reencrypt_batch(&keyring, chunk, &mut report).await?;
            }
        }
        self.reencrypt_compact(&keyring, batch, &mut report).await?;
        Ok(report)
    }

    /// Reads the fields of `ids`, and rewrites those not under the first key.
    async fn reencrypt_batch(
        &self,
        keyring: &Keyring,
        ids: &[String],
        report: &mut Reencrypted,
    ) -> Result<()> {
        let read: Vec<Vec<Option<Vec<u8>>>> = self
            .bounded(async {
                let mut p = redis::pipe();
                for id in ids {
                    p.cmd("HMGET").arg(self.keys.job(id)).arg(&FIELDS[..]);
                }
                Ok(p.query_async(&mut self.conn().await?).await?)
            })
            .await?;
        let mut jobs = Vec::new();
        for (id, values) in ids.iter().zip(read) {
            report.jobs += 1;
            let mut rewrites = Vec::new();
            for (field, v) in FIELDS.iter().zip(values) {
                let Some(old) = v else { continue };
                if let Some(new) = resealed(keyring, (self.name(), id), field, &old, report) {
                    rewrites.push(Rewrite {
                        field: field.to_string(),
                        old,
                        new,
                        values: 1,
                    });
                }
            }
            if !rewrites.is_empty() {
                jobs.push((self.keys.job(id), rewrites));
            }
        }
        self.rewrite(jobs, report).await
    }

    /// The compact jobs ([`Compact`]): the payload inside each value of the queue's
    /// `jobs` hash (and the result inside a value from before the `done` hash), then
    /// the result inside each kept completion's outcome in `done` ([`Done`]), each
    /// read with HSCAN `batch` at a time and rewritten as a whole value.
    async fn reencrypt_compact(
        &self,
        keyring: &Keyring,
        batch: usize,
        report: &mut Reencrypted,
    ) -> Result<()> {
        let at = |id: &str| (self.name().to_string(), id.to_string());
        self.reencrypt_values(self.keys.jobs(), batch, report, |id, old, report| {
            report.jobs += 1;
            let c = Compact::parse(old)?;
            let (q, id) = at(id);
            let spec = resealed(keyring, (&q, &id), "spec", c.spec, report);
            let result = c
                .done
                .and_then(|d| resealed(keyring, (&q, &id), "result", d.result, report));
            let values = u64::from(spec.is_some()) + u64::from(result.is_some());
            let new = Compact {
                spec: spec.as_deref().unwrap_or(c.spec),
                done: c.done.map(|d| Done {
                    result: result.as_deref().unwrap_or(d.result),
                    ..d
                }),
                ..c
            };
            (values > 0).then(|| (new.encode(), values))
        })
        .await?;
        // The job was counted with its value in `jobs`.
        self.reencrypt_values(self.keys.done(), batch, report, |id, old, report| {
            let d = Done::parse(old)?;
            let (q, id) = at(id);
            let result = resealed(keyring, (&q, &id), "result", d.result, report)?;
            Some((
                Done {
                    result: &result,
                    ..d
                }
                .encode(),
                1,
            ))
        })
        .await
    }

    /// Every value of the hash `key` (field "" is its padding, not a job), HSCAN
    /// `batch` at a time: `reseal` gives a value's new text and how many sealed values
    /// it rewrote, or None to leave it.
    async fn reencrypt_values(
        &self,
        key: String,
        batch: usize,
        report: &mut Reencrypted,
        reseal: impl Fn(&str, &[u8], &mut Reencrypted) -> Option<(Vec<u8>, u64)>,
    ) -> Result<()> {
        let mut cursor = 0u64;
        loop {
            let (next, page): (u64, Vec<(String, Vec<u8>)>) = self
                .bounded(async {
                    Ok(redis::cmd("HSCAN")
                        .arg(&key)
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(batch)
                        .query_async(&mut self.conn().await?)
                        .await?)
                })
                .await?;
            let mut jobs = Vec::new();
            for (field, old) in page.into_iter().filter(|(id, _)| !id.is_empty()) {
                let Some((new, values)) = reseal(&field, &old, report) else {
                    continue;
                };
                let rewrite = Rewrite {
                    field,
                    old,
                    new,
                    values,
                };
                jobs.push((key.clone(), vec![rewrite]));
            }
            self.rewrite(jobs, report).await?;
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    /// Writes `jobs` (per key its compare-and-set rewrites) with `reencrypt.lua`.
    async fn rewrite(
        &self,
        jobs: Vec<(String, Vec<Rewrite>)>,
        report: &mut Reencrypted,
    ) -> Result<()> {
        // Large payloads: one call carries at most about MAX_CALL_BYTES (at least one
        // job), so no single script holds Redis for long.
        let mut start = 0;
        while start < jobs.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < jobs.len() && (end == start || bytes < MAX_CALL_BYTES) {
                bytes += jobs[end]
                    .1
                    .iter()
                    .map(|r| r.old.len() + r.new.len())
                    .sum::<usize>();
                end += 1;
            }
            let part = &jobs[start..end];
            let (rewritten, changed) = self
                .bounded(async { scripts::reencrypt(&mut self.conn().await?, part).await })
                .await?;
            report.rewritten += rewritten;
            report.changed += changed;
            start = end;
        }
        Ok(())
    }
}

/// The value of job `id`'s field `field` (`old`) sealed under the keyring's first key;
/// None when it is already, or when it does not decrypt (counted in `report`), or when
/// a spec is not one (the claim fails that job).
fn resealed(
    keyring: &Keyring,
    (queue, id): (&str, &str),
    field: &str,
    old: &[u8],
    report: &mut Reencrypted,
) -> Option<Vec<u8>> {
    // The sealed value: the field, or the payload inside a spec.
    let spec = (field == "spec").then(|| crate::job::Spec::decode(old));
    let sealed = match spec {
        Some(Some(s)) => s.data,
        Some(None) => return None,
        None => old,
    };
    if keyring.is_current(sealed) {
        return None;
    }
    match crate::crypto::open(Some(keyring), sealed) {
        Ok(plain) => {
            let sealed = keyring.encrypt(&plain);
            Some(match spec {
                Some(Some(s)) => crate::job::Spec::encode(s.name, s.opts, &sealed),
                _ => sealed,
            })
        }
        Err(e) => {
            tracing::warn!(queue, job_id = %id, field, reason = %e,
                "value left as it is: it does not decrypt with these keys");
            report.undecryptable += 1;
            None
        }
    }
}

/// `s` with the characters SCAN MATCH treats as a pattern escaped (queue names may
/// hold `*`, `?`, `[`, `]` and `\`).
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_escape_escapes_pattern_characters() {
        assert_eq!(
            super::glob_escape("baton:{a*b?[c]\\}:job:"),
            "baton:{a\\*b\\?\\[c\\]\\\\}:job:"
        );
        assert_eq!(super::glob_escape("baton:{q}:job:"), "baton:{q}:job:");
    }
}
