//! The one error type of the library, and the mapping of Lua status codes onto it.

use std::time::Duration;

/// Everything that can go wrong calling baton.
#[derive(Debug, thiserror::Error)]
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
    /// An argument was out of range or malformed.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// How the connect errors that waiting will not fix begin (see `conn::connector`).
/// "the sentinels know no such master" is not one: sentinels say it during a failover.
pub(crate) const MISCONFIGURED: [&str; 2] = ["authentication failed", "TLS handshake failed"];

/// Result with baton's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the error is about reaching Redis (worth retrying later) rather than
    /// about the request itself.
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Unavailable { .. } | Error::Connect { .. } => true,
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
    /// server that is out of memory (noeviction), loading, busy with a script, or
    /// failing over. A worker keeps an outcome and retries it on these.
    pub fn is_transient(&self) -> bool {
        if self.is_connection() {
            return true;
        }
        match self {
            Error::Redis(e) => matches!(
                e.code(),
                Some(
                    "OOM"
                        | "LOADING"
                        | "BUSY"
                        | "TRYAGAIN"
                        | "MASTERDOWN"
                        | "READONLY"
                        | "CLUSTERDOWN"
                )
            ),
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
