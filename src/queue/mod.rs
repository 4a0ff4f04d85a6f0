//! The producer and admin side: [`Queue`] adds jobs and inspects and steers a queue.
//!
//! Every call is bounded: with Redis gone a call fails within
//! [`PRODUCER_TIMEOUT`](crate::conn::PRODUCER_TIMEOUT) with an error that says so, rather
//! than hanging the caller's request. Reading a queue back (counts, jobs, listings,
//! workers) lives in the `inspect` submodule, adding jobs in `add`, job schedulers in
//! `schedulers`, the events stream in `events`, waiting for a job's outcome in `wait`.
//!
//! Inputs are checked before anything is sent: the queue name, job ids and job names by
//! the rules of [`crate::validate`] (the same as the CLI's and the HTTP API's), and each
//! payload against [`Queue::max_payload`] while it is encoded, so an oversized payload
//! costs at most the limit in memory and never reaches Redis.
//!
//! An add whose reply does not come back (timeout, broken connection) may have been
//! applied: it fails with [`Error::MaybeAdded`], naming the job ids to add again. Ids are
//! made here (`src/job/id.rs` when the caller gave none) before anything is sent, so adding again
//! with them is always safe.

mod add;
mod coalesce;
mod durable;
mod events;
mod flow;
mod grouped;
mod inspect;
mod overview;
mod reencrypt;
pub(crate) mod registry;
mod schedulers;
mod uncompact;
mod wait;

pub use add::{Added, NewJob};
pub(crate) use coalesce::AddLanes;
pub use events::{Event, EventFollower, JobOutcome, EVENTS_PAGE};
pub use flow::{FlowAdded, FlowJob, MAX_FLOW_JOBS};
pub use overview::{Finished, JobSummary};
pub use reencrypt::{Reencrypted, MAX_REENCRYPT_BATCH};

use std::sync::Arc;

use redis::AsyncCommands;
use serde::Serialize;

use crate::crypto::Keyring;
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::keys::Keys;
use crate::metrics as m;
use crate::scripts;

/// A queue handle: cheap to clone, safe to share between tasks.
#[derive(Clone)]
pub struct Queue {
    keys: Keys,
    conn: crate::conn::SharedConn,
    max_payload: usize,
    /// Why the queue name is refused, if it is: every call then fails with it.
    bad_name: Option<Arc<str>>,
    /// Adds wait for this many replicas (see [`Queue::durable`]).
    durable: Option<durable::Durable>,
    /// Encrypts payloads on add and decrypts what is read back (see [`crate::crypto`]).
    keyring: Option<Arc<Keyring>>,
}

/// The default limit on one job's payload, encoded as MessagePack: 4 MiB.
///
/// Why 4 MiB: a payload is held in Redis's memory for the job's whole life and copied
/// on every claim, and Redis runs one command at a time, so a large one delays every
/// other client (a claim of 10 such jobs moves 40 MiB within one worker reply, well
/// inside its 10 s reply limit). It is far below Redis's own 512 MB bulk limit, and
/// above the 1 MiB request body of `baton serve`, so over HTTP the body limit is the one
/// that applies. Data larger than this belongs in a blob store, with a reference in the
/// payload.
pub const DEFAULT_MAX_PAYLOAD: usize = 4 << 20;

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.keys.queue())
            .finish()
    }
}

/// What [`Queue::cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cancelled {
    /// The job was waiting or delayed and is now `cancelled`.
    Now,
    /// The job is running: the cancel is recorded and sent to its worker, whose handler
    /// is told to stop; the job ends `cancelled` whatever the handler returns.
    Requested,
}

impl Queue {
    /// The queue `name` at `redis` (a URL, or a [`RedisConfig`](crate::conn::RedisConfig)
    /// for TLS files, Sentinel or Cluster), over a connection of its own made on first
    /// use. For many queue handles over one connection, use [`Queue::with_conn`].
    ///
    /// Refuses a queue name that breaks the rules of [`crate::validate::queue_name`]
    /// (braces, whitespace, control characters, empty, over 128 characters).
    pub fn connect(redis: impl Into<crate::conn::RedisConfig>, name: &str) -> Result<Queue> {
        crate::validate::queue_name(name)?;
        Ok(Queue::with_conn(
            crate::conn::SharedConn::producer(redis)?,
            name,
        ))
    }

    /// The queue `name` over a shared connection (cheap: make one per request if you like).
    ///
    /// A name that breaks the rules of [`crate::validate::queue_name`] is not refused
    /// here (this cannot fail) but by every call on the handle, with
    /// [`Error::Invalid`], before anything is sent to Redis.
    pub fn with_conn(conn: crate::conn::SharedConn, name: &str) -> Queue {
        let bad_name = crate::validate::queue_name(name)
            .err()
            .map(|e| Arc::from(e.to_string()));
        Queue {
            keys: Keys::new(name),
            conn,
            max_payload: DEFAULT_MAX_PAYLOAD,
            bad_name,
            durable: None,
            keyring: None,
        }
    }

    /// Encrypts every payload this handle adds with the keyring's first key, and
    /// decrypts the data, results and errors it reads back ([`Queue::job`]) with any of
    /// its keys. Without it, encrypted values read back as `"encrypted (key K)"`.
    /// Workers need the same keys ([`crate::WorkerBuilder::encryption`]).
    pub fn with_encryption(mut self, keyring: Arc<Keyring>) -> Queue {
        self.keyring = Some(keyring);
        self
    }

    /// The keyring in force, if any (see [`Queue::with_encryption`]).
    pub fn encryption(&self) -> Option<&Arc<Keyring>> {
        self.keyring.as_ref()
    }

    /// A stored data, result or error field as `decode` reads its plaintext; an
    /// encrypted one that this handle cannot decrypt as the placeholder saying why
    /// (`"encrypted (key K)"`), so inspecting a job never fails for want of a key.
    fn reveal<T: From<String>>(&self, stored: &[u8], decode: impl FnOnce(&[u8]) -> T) -> T {
        match crate::crypto::open(self.keyring.as_deref(), stored) {
            Ok(plain) => decode(&plain),
            Err(e) => T::from(e.placeholder()),
        }
    }

    /// Sets the largest payload, in bytes encoded as MessagePack, that [`Queue::add`]
    /// and [`Queue::add_bulk`] accept (default [`DEFAULT_MAX_PAYLOAD`], 4 MiB). A larger
    /// one fails with [`Error::PayloadTooLarge`] before it is encoded in full.
    pub fn max_payload(mut self, bytes: usize) -> Queue {
        self.max_payload = bytes;
        self
    }

    /// The payload limit in force (see [`Queue::max_payload`]).
    pub fn payload_limit(&self) -> usize {
        self.max_payload
    }

    /// Fails when the queue name is refused (see [`Queue::with_conn`]).
    fn check_name(&self) -> Result<()> {
        match &self.bad_name {
            Some(e) => Err(Error::Invalid(
                e.strip_prefix("invalid argument: ")
                    .unwrap_or(e)
                    .to_string(),
            )),
            None => Ok(()),
        }
    }

    /// The queue name.
    pub fn name(&self) -> &str {
        self.keys.queue()
    }

    /// The key names of this queue.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The shared connection.
    pub fn shared_conn(&self) -> &crate::conn::SharedConn {
        &self.conn
    }

    /// Runs `f` within the producer time limit, so a hung Redis fails the call rather
    /// than the caller.
    async fn bounded<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.check_name()?;
        let limit =
            crate::conn::PRODUCER_TIMEOUT + self.durable.map(|d| d.timeout).unwrap_or_default();
        let r = match tokio::time::timeout(limit, f).await {
            Ok(r) => r,
            Err(_) => Err(Error::Unavailable {
                timeout: limit,
                detail: "no reply from redis in time; a write may or may not have been applied \
                         (adding again with the same job_id is safe)"
                    .into(),
            }),
        };
        if matches!(&r, Err(e) if e.is_connection() || e.is_failover()) {
            self.conn.invalidate();
        }
        r
    }

    async fn conn(&self) -> Result<crate::conn::RedisConn> {
        self.conn.get().await
    }

    /// Cancels a job. Waiting or delayed: cancelled at once. Running: see
    /// [`Cancelled::Requested`]. Finished: [`Error::InvalidState`]. Unknown: [`Error::NotFound`].
    pub async fn cancel(&self, id: &str) -> Result<Cancelled> {
        self.bounded(async { self.cancel_with_reason(id, "cancelled by request").await })
            .await
    }

    /// [`Queue::cancel`] with the reason to record.
    pub async fn cancel_with_reason(&self, id: &str, reason: &str) -> Result<Cancelled> {
        crate::validate::job_id(id)?;
        self.bounded(async {
            let mut c = self.conn().await?;
            let sharded = c.is_cluster();
            let (code, state) = scripts::cancel(&mut c, &self.keys, id, reason, sharded).await?;
            let code = Error::from_code(code, state, self.name(), id, "cancel")?;
            if code == 1 {
                metrics::counter!(m::JOBS_CANCELLED, "queue" => self.name().to_string())
                    .increment(1);
                Ok(Cancelled::Now)
            } else {
                Ok(Cancelled::Requested)
            }
        })
        .await
    }

    /// Runs a failed or cancelled job again (attempts counted afresh, recorded steps kept).
    pub async fn retry(&self, id: &str) -> Result<()> {
        crate::validate::job_id(id)?;
        self.bounded(async {
            let (code, state) = scripts::retry(&mut self.conn().await?, &self.keys, id).await?;
            Error::from_code(code, state, self.name(), id, "retry").map(|_| ())
        })
        .await
    }

    /// Retries every failed job (up to `limit`); returns how many were queued again.
    pub async fn retry_all_failed(&self, limit: usize) -> Result<usize> {
        let ids = self.list(JobState::Failed, 0, limit).await?;
        let mut n = 0;
        for id in ids {
            match self.retry(&id).await {
                Ok(()) => n += 1,
                Err(Error::NotFound { .. } | Error::InvalidState { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Deletes a job that is not running.
    pub async fn remove(&self, id: &str) -> Result<()> {
        crate::validate::job_id(id)?;
        self.bounded(async {
            let (code, state) = scripts::remove(&mut self.conn().await?, &self.keys, id).await?;
            Error::from_code(code, state, self.name(), id, "remove (cancel it first)").map(|_| ())
        })
        .await
    }

    /// Stops workers from claiming new jobs of this queue (running jobs go on).
    pub async fn pause(&self) -> Result<()> {
        self.bounded(async {
            let _: () = self
                .conn()
                .await?
                .hset(self.keys.meta(), "paused", "1")
                .await?;
            Ok(())
        })
        .await
    }

    /// Caps this queue's running jobs across every worker at `limit` (`None` or 0:
    /// no cap). Enforced inside the claim script against the lease table, so it is
    /// exact however many workers race, and room frees as jobs finish, stall, are
    /// cancelled or are handed back. Lowering it below the jobs running now stops new
    /// claims until enough of them end; it never stops a running job.
    pub async fn set_concurrency(&self, limit: Option<u32>) -> Result<()> {
        // Room may have grown: the wake-up lets an idle worker look.
        self.change_meta_and_wake(|p| {
            match limit.filter(|l| *l > 0) {
                Some(l) => p.hset(self.keys.meta(), "concurrency", l).ignore(),
                None => p.hdel(self.keys.meta(), "concurrency").ignore(),
            };
        })
        .await
    }

    /// Starts at most `max` of this queue's jobs per `per` over all workers (`None`: no
    /// limit). A fixed window, counted inside the claim script, so exact however many
    /// workers race; a worker held back sleeps until the window ends. Retried and
    /// recovered jobs count again when they start again.
    pub async fn set_rate_limit(&self, limit: Option<(u32, std::time::Duration)>) -> Result<()> {
        if let Some((max, per)) = limit {
            if max == 0 || per.as_millis() == 0 {
                return Err(Error::Invalid(format!(
                    "a rate limit needs at least 1 job per at least 1ms, got {max} per {per:?}"
                )));
            }
        }
        self.change_meta_and_wake(|p| {
            match limit {
                Some((max, per)) => p
                    .hset(
                        self.keys.meta(),
                        "rate",
                        format!("{max}:{}", per.as_millis()),
                    )
                    .ignore(),
                None => p.hdel(self.keys.meta(), "rate").ignore(),
            };
            // A new limit starts a new window.
            p.del(self.keys.limiter()).ignore();
        })
        .await
    }

    /// Limits each group of this queue (jobs added with
    /// [`JobOptions::group`](crate::JobOptions::group)): at most `concurrency` running
    /// at once per group (`None` or 0: no cap) and at most `rate.0` started per
    /// `rate.1` per group (`None`: no limit; a fixed window per group). Enforced in the
    /// claim script, exact however many workers race; a group's room frees as its jobs
    /// finish, stall, are cancelled or are handed back. Groups are served in turns
    /// either way.
    pub async fn set_group_limits(
        &self,
        concurrency: Option<u32>,
        rate: Option<(u32, std::time::Duration)>,
    ) -> Result<()> {
        if let Some((max, per)) = rate {
            if max == 0 || per.as_millis() == 0 {
                return Err(Error::Invalid(format!(
                    "a group rate limit needs at least 1 job per at least 1ms, got {max} per {per:?}"
                )));
            }
        }
        let (n, ms) = rate.map_or((0, 0), |(n, per)| (n, per.as_millis() as u64));
        let spec = format!("{}:{n}:{ms}", concurrency.unwrap_or(0));
        // A script, not a meta write: groups at their old cap go back in line.
        self.bounded(async {
            scripts::group_limits(&mut self.conn().await?, &self.keys, &spec).await?;
            Ok(())
        })
        .await
    }

    /// Lets workers claim again.
    pub async fn resume(&self) -> Result<()> {
        self.change_meta_and_wake(|p| {
            p.hdel(self.keys.meta(), "paused").ignore();
        })
        .await
    }

    /// Runs `edit` (changes to the queue's settings) and leaves one wake-up token, in
    /// one atomic pipeline: an idle worker wakes and claims under the new settings
    /// instead of sleeping out its block.
    async fn change_meta_and_wake(&self, edit: impl FnOnce(&mut redis::Pipeline)) -> Result<()> {
        self.bounded(async {
            let mut c = self.conn().await?;
            let mut p = redis::pipe();
            p.atomic();
            edit(&mut p);
            p.lpush(self.keys.wake(), "1")
                .ignore()
                .ltrim(self.keys.wake(), 0, 0)
                .ignore();
            let _: () = p.query_async(&mut c).await?;
            Ok(())
        })
        .await
    }
}
