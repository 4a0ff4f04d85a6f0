//! The one error type of the library, and the mapping of Lua status codes onto it.

use std::time::Duration;

/// Everything that can go wrong calling baton.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Redis answered with an error, or the connection failed or timed out.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection could be had from the pool within the producer's time limit.
    #[error("redis unavailable (no connection within {timeout:?}): {detail}")]
    Unavailable {
        /// How long we waited.
        timeout: Duration,
        /// What the pool reported.
        detail: String,
    },
    /// A connection could not be made: names the endpoint (no password) and what
    /// failed (refused, TLS handshake, authentication, unknown Sentinel master, …).
    #[error("cannot connect to redis at {endpoint}: {reason}")]
    Connect {
        /// The endpoint in words, without passwords.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// The Redis server is not fit to hold a durable queue (see `baton check`).
    #[error("redis is not fit for a durable queue:\n{0}")]
    UnfitRedis(String),
    /// The job does not exist (never added, removed, or trimmed by retention).
    #[error("job {id} not found in queue {queue}")]
    NotFound {
        /// Queue name.
        queue: String,
        /// Job id.
        id: String,
    },
    /// The operation does not apply to a job in this state (e.g. cancelling a completed job).
    #[error("job {id} is {state}: cannot {op}")]
    InvalidState {
        /// Job id.
        id: String,
        /// The job's state.
        state: String,
        /// What was asked.
        op: &'static str,
    },
    /// The worker's lease on the job is gone or another worker holds it; the write was refused.
    #[error("lock lost on job {0}: its lease expired or another worker took it over")]
    LockLost(String),
    /// A payload or result could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
    /// A payload or stored value could not be decoded.
    #[error("decode: {0}")]
    Decode(String),
    /// A worker's background loop ended early (it panicked or returned); the worker
    /// handed its jobs back and stopped.
    #[error("worker stopped: {0}")]
    WorkerFailed(String),
    /// An argument was out of range or malformed.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A job's payload, encoded as MessagePack, is larger than the queue's limit
    /// ([`Queue::max_payload`](crate::Queue::max_payload)). Refused before it was
    /// encoded in full: nothing was sent to Redis.
    #[error(
        "payload of job {id} is larger than the limit of {limit} bytes (encoded as MessagePack); \
         keep large data elsewhere and pass a reference to it, or raise the limit"
    )]
    PayloadTooLarge {
        /// The job id (given or generated).
        id: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// An add was sent but no answer came back (the reply timed out or the connection
    /// broke): the jobs may or may not have been added. Adding them again with the same
    /// job ids is safe, as an existing id changes nothing.
    #[error("{}", maybe_added_message(ids, detail))]
    MaybeAdded {
        /// The job ids to add again (one for `add`; all of them, all or none added, for
        /// `add_bulk`). Generated ids are made before sending, so they are known here.
        ids: Vec<String>,
        /// What went wrong.
        detail: String,
    },
    /// A durable add ([`Queue::durable`](crate::Queue::durable)) reached the master but
    /// fewer replicas than asked confirmed it in time: a failover now could lose it.
    /// Adding again with the same ids is safe (an existing id changes nothing) and waits
    /// for the replicas again.
    #[error(
        "jobs {ids:?} were added on the master but only {acked} of {wanted} replicas confirmed \
         them in time; a failover could lose them: add again with the same job ids"
    )]
    NotReplicated {
        /// The job ids added.
        ids: Vec<String>,
        /// Replicas that confirmed.
        acked: u32,
        /// Replicas asked for.
        wanted: u32,
    },
}

fn maybe_added_message(ids: &[String], detail: &str) -> String {
    match ids {
        [id] => format!(
            "job {id} may or may not have been added ({detail}); \
             add it again with job id {id} to be sure (an existing id changes nothing)"
        ),
        _ => format!(
            "{} jobs (ids {} … {}) may or may not have been added, all or none ({detail}); \
             add them again with the same job ids to be sure (an existing id changes nothing)",
            ids.len(),
            ids.first().map(String::as_str).unwrap_or(""),
            ids.last().map(String::as_str).unwrap_or(""),
        ),
    }
}

/// Error codes with which Redis refuses a command because of its own state, not
/// because of the command: out of memory (noeviction), loading its data set, busy with
/// a script, a cluster or failover in progress, a replica asked to write, too few
/// replicas (`min-replicas-to-write`), a failed snapshot (`stop-writes-on-bgsave-error`).
/// The same command may succeed later; a worker keeps an outcome refused this way and
/// writes it again.
pub const REDIS_STATE_CODES: [&str; 9] = [
    "OOM",
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "MASTERDOWN",
    "READONLY",
    "NOREPLICAS",
    "MISCONF",
];

/// True when `e` is a refusal with one of [`REDIS_STATE_CODES`], also when it comes
/// wrapped in a script error (`ERR Error running script … -NOREPLICAS …`, as older
/// servers report a refused `redis.call`).
fn is_redis_state(e: &redis::RedisError) -> bool {
    if e.code().is_some_and(|c| REDIS_STATE_CODES.contains(&c)) {
        return true;
    }
    let text = e.to_string();
    REDIS_STATE_CODES
        .iter()
        .any(|c| text.contains(&format!("-{c} ")))
}

/// How the connect errors that waiting will not fix begin (see `conn::connector`).
/// "the sentinels know no such master" is not one: sentinels say it during a failover.
pub(crate) const MISCONFIGURED: [&str; 2] = ["authentication failed", "TLS handshake failed"];

/// Result with baton's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The error as a refusal says it to a person: an [`Error::Invalid`]'s message
    /// without the "invalid argument: " prefix (the page, the API's reply or the CLI
    /// already says it was refused), anything else as it displays.
    pub fn reason(&self) -> String {
        match self {
            Error::Invalid(m) => m.clone(),
            e => e.to_string(),
        }
    }

    /// True when the error is about reaching Redis (worth retrying later) rather than
    /// about the request itself.
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Unavailable { .. } | Error::Connect { .. } | Error::MaybeAdded { .. } => true,
            Error::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
            }
            _ => false,
        }
    }

    /// True when trying the same write later may succeed: connection trouble, or a
    /// refusal for Redis's own state ([`REDIS_STATE_CODES`]: out of memory, loading,
    /// busy, failing over, too few replicas, a failed snapshot). A worker keeps an
    /// outcome and retries it on these: they say nothing about the job.
    pub fn is_transient(&self) -> bool {
        if self.is_connection() {
            return true;
        }
        match self {
            Error::Redis(e) => is_redis_state(e),
            _ => false,
        }
    }

    /// True for a connect error that waiting will not fix: authentication, TLS
    /// certificates.
    pub fn is_misconfiguration(&self) -> bool {
        matches!(self, Error::Connect { reason, .. } if MISCONFIGURED.iter().any(|p| reason.starts_with(p)))
    }

    /// True when the server answered that it is not (or no longer) the master: the
    /// connection must be made again (under Sentinel, asking the sentinels again).
    pub fn is_failover(&self) -> bool {
        matches!(self, Error::Redis(e) if matches!(e.code(), Some("READONLY" | "MASTERDOWN"))
            || e.to_string().contains("UNBLOCKED"))
    }

    /// Maps a `{code, state}` reply of a single-job script onto a result.
    pub(crate) fn from_code(
        code: i64,
        state: String,
        queue: &str,
        id: &str,
        op: &'static str,
    ) -> Result<i64> {
        match code {
            c if c > 0 => Ok(c),
            -1 => Err(Error::NotFound {
                queue: queue.into(),
                id: id.into(),
            }),
            _ => Err(Error::InvalidState {
                id: id.into(),
                state,
                op,
            }),
        }
    }
}
