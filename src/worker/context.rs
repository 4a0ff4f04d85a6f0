//! What a handler sees of its job: id, attempt, payload, a cancellation token, and ways
//! to report progress, log and record steps, all fenced by the attempt's token.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::conn::SharedConn;
use redis::AsyncCommands;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::handler::JobError;
use crate::error::{Error, Result};
use crate::keys::Keys;
use crate::scripts::{self, Record};

/// Log lines kept per job.
pub const MAX_LOG_LINES: usize = 1000;

/// One attempt of one job, as its handler sees it. Cheap to clone.
#[derive(Clone)]
pub struct JobContext {
    inner: Arc<Inner>,
}

struct Inner {
    id: String,
    name: String,
    attempt: u32,
    attempts: u32,
    stalled: u32,
    data: Vec<u8>,
    token: u64,
    cancel: CancellationToken,
    keys: Keys,
    conn: SharedConn,
    trace: Option<crate::job::TraceParent>,
    /// Opens children's results sealed by their workers (see [`JobContext::children`]).
    keyring: Option<Arc<crate::crypto::Keyring>>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("queue", &self.queue())
            .field("id", &self.inner.id)
            .field("attempt", &self.inner.attempt)
            .finish()
    }
}

impl JobContext {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        name: String,
        attempt: u32,
        attempts: u32,
        stalled: u32,
        data: Vec<u8>,
        token: u64,
        cancel: CancellationToken,
        keys: Keys,
        conn: SharedConn,
        trace: Option<crate::job::TraceParent>,
        keyring: Option<Arc<crate::crypto::Keyring>>,
    ) -> Self {
        JobContext {
            inner: Arc::new(Inner {
                id,
                name,
                attempt,
                attempts,
                stalled,
                data,
                token,
                cancel,
                keys,
                conn,
                trace,
                keyring,
            }),
        }
    }

    /// The job id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }
    /// The job name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// The queue name.
    pub fn queue(&self) -> &str {
        self.inner.keys.queue()
    }
    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }
    /// Attempts allowed in all.
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }
    /// How often this job's lease expired before (it was recovered that often).
    pub fn stalled(&self) -> u32 {
        self.inner.stalled
    }
    /// The trace the job joined: its producer's span, when the producer sent one.
    pub fn trace(&self) -> Option<crate::job::TraceParent> {
        self.inner.trace
    }

    /// The trace context to hand on to work this job starts (a command, an outgoing
    /// request): the job span's own when an OpenTelemetry layer is installed (`otel`
    /// feature), else the producer's ([`JobContext::trace`]).
    pub fn outgoing_trace(&self) -> Option<crate::job::TraceParent> {
        #[cfg(feature = "otel")]
        if let Some(t) = crate::job::TraceParent::current() {
            return Some(t);
        }
        self.inner.trace
    }

    /// This attempt's fencing token.
    pub fn token(&self) -> u64 {
        self.inner.token
    }

    /// The payload decoded as `T`. A payload that does not decode gives a fatal error
    /// (no retry) naming the type and the decoder's complaint.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, JobError> {
        rmp_serde::from_slice(&self.inner.data).map_err(|e| {
            JobError::fatal(format!(
                "payload could not be decoded as {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
    /// The payload's MessagePack bytes.
    pub fn raw_data(&self) -> &[u8] {
        &self.inner.data
    }

    /// Fires when the handler should stop: cancel, timeout, lease lost or shutdown.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.inner.cancel
    }
    /// True once the handler has been told to stop.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }
    /// Resolves when the handler is told to stop.
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await
    }

    async fn record(&self, what: Record<'_>, value: &[u8]) -> Result<()> {
        let i = &self.inner;
        if i.conn
            .run(async |c| scripts::record(c, &i.keys, &i.id, i.token, what, value).await)
            .await?
        {
            Ok(())
        } else {
            Err(Error::LockLost(self.inner.id.clone()))
        }
    }

    /// Stores the job's progress (any JSON-able value), shown by `baton job`.
    pub async fn progress<T: Serialize>(&self, progress: &T) -> Result<()> {
        let json = serde_json::to_vec(progress).map_err(|e| Error::Encode(e.to_string()))?;
        self.record(Record::Progress, &json).await
    }

    /// A flow parent's children ([`crate::FlowJob`]) and how each ended, sorted by queue
    /// and id; empty for a job without children. A parent runs once every child is done,
    /// so each is completed (read it with [`Child::result`](crate::Child::result)) or,
    /// under [`ChildFailure::Ignore`](crate::ChildFailure::Ignore), failed.
    pub async fn children(&self) -> Result<Vec<crate::job::Child>> {
        let key = self.inner.keys.job(&self.inner.id);
        let raw: std::collections::BTreeMap<String, Vec<u8>> = self
            .inner
            .conn
            .run(async |c| Ok(c.hgetall(key).await?))
            .await?;
        let keyring = self.inner.keyring.as_deref();
        Ok(crate::job::parse_children(&raw, |b| {
            crate::crypto::open(keyring, b)
                .map(|p| p.into_owned())
                .unwrap_or_else(|e| e.placeholder().into_bytes())
        }))
    }

    /// The results of the completed children, decoded as `T`, by `"<queue>/<id>"`.
    pub async fn children_results<T: DeserializeOwned>(
        &self,
    ) -> Result<std::collections::BTreeMap<String, T>> {
        let mut out = std::collections::BTreeMap::new();
        for c in self.children().await? {
            if let Some(v) = c.result::<T>()? {
                out.insert(c.job.to_string(), v);
            }
        }
        Ok(out)
    }

    /// Reads the job's progress as last stored (by this attempt or an earlier one), so a
    /// retried or recovered job can pick up where it reported being.
    pub async fn read_progress(&self) -> Result<Option<serde_json::Value>> {
        let key = self.inner.keys.job(&self.inner.id);
        let raw: Option<Vec<u8>> = self
            .inner
            .conn
            .run(async |c| Ok(c.hget(key, "progress").await?))
            .await?;
        raw.map(|b| serde_json::from_slice(&b).map_err(|e| Error::Decode(e.to_string())))
            .transpose()
    }

    /// Appends a line to the job's log (the last 1000 lines are kept), marked with this
    /// attempt so `baton job` can say which attempt wrote it.
    pub async fn log(&self, line: impl AsRef<str>) -> Result<()> {
        let stored = crate::job::log_line(self.attempt(), line.as_ref());
        self.record(
            Record::Log {
                keep: MAX_LOG_LINES,
            },
            stored.as_bytes(),
        )
        .await
    }

    /// Runs a named step once per job. If an earlier attempt (a retry, or a run before
    /// the job was recovered from a dead worker) finished this step, its stored result is
    /// returned and `work` is not run. Otherwise `work` runs and its result is stored
    /// under the job before this returns.
    pub async fn step<T, Fut>(&self, name: &str, work: Fut) -> Result<T, JobError>
    where
        T: Serialize + DeserializeOwned,
        Fut: Future<Output = Result<T, JobError>>,
    {
        let stored: Option<Vec<u8>> = {
            let key = self.inner.keys.steps(&self.inner.id);
            self.inner
                .conn
                .run(async |c| Ok(c.hget(key, name).await?))
                .await
                .map_err(|e| JobError::retry(format!("step {name}: reading stored result: {e}")))?
        };
        if let Some(bytes) = stored {
            return rmp_serde::from_slice(&bytes).map_err(|e| {
                JobError::fatal(format!("step {name}: stored result does not decode: {e}"))
            });
        }
        let value = work.await?;
        let bytes = rmp_serde::to_vec_named(&value)
            .map_err(|e| JobError::fatal(format!("step {name}: {e}")))?;
        let mut backoff = super::backoff::ReconnectBackoff::default();
        loop {
            match self.record(Record::Step(name), &bytes).await {
                Ok(()) => return Ok(value),
                Err(Error::LockLost(_)) => {
                    return Err(JobError::fatal(format!("step {name}: lease lost")))
                }
                Err(e) if backoff.failures() < 5 && !self.is_cancelled() => {
                    tracing::warn!(queue = self.queue(), job_id = self.id(), step = name, error = %e, "recording step failed; retrying");
                    tokio::time::sleep(backoff.next_delay().min(Duration::from_secs(2))).await;
                }
                Err(e) => {
                    return Err(JobError::retry(format!(
                        "step {name}: result could not be recorded: {e}"
                    )))
                }
            }
        }
    }
}
