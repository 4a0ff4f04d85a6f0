//! Connections to Redis: the pool that producers and workers share for short commands,
//! and the dedicated connections that must never be pooled (blocking waits, pub/sub).
//!
//! redis-rs 1.x times replies out after 500 ms by default; every connection made here
//! sets its own limits instead, so a blocking wait never trips the timeout and a
//! producer facing a dead Redis fails within [`PRODUCER_TIMEOUT`].

use std::time::Duration;

use deadpool_redis::{Manager, Pool, Runtime};
use redis::AsyncConnectionConfig;

use crate::error::{Error, Result};

/// How long a producer waits to connect, for a pooled connection, or for a reply
/// before giving up with a clear error.
pub const PRODUCER_TIMEOUT: Duration = Duration::from_secs(2);

/// Reply limit on worker connections: scripts over large batches can take a while on
/// a busy server, and a worker would rather wait than retry work that landed.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(10);

/// The default Redis URL: `REDIS_URL` or the local default port.
pub fn default_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// A pool of multiplexed connections whose every step (connect, wait for a slot,
/// reply) is bounded by `timeout`.
pub fn pool(url: &str, timeout: Duration, max_size: usize) -> Result<Pool> {
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let manager = Manager::new_with_config(url, cfg)?;
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .map_err(|e| Error::Invalid(format!("redis pool: {e}")))
}

/// A connection of its own for blocking commands (BLPOP): its reply limit is the
/// longest block plus `slack`, so a healthy block never times out but a dead server
/// is noticed.
pub async fn dedicated(
    url: &str,
    longest_block: Duration,
) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PRODUCER_TIMEOUT))
        .set_response_timeout(Some(longest_block + Duration::from_secs(5)));
    Ok(client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await?)
}

/// A pub/sub connection of its own (connecting bounded by [`PRODUCER_TIMEOUT`]).
pub async fn pubsub(url: &str) -> Result<redis::aio::PubSub> {
    let client = redis::Client::open(url)?;
    match tokio::time::timeout(PRODUCER_TIMEOUT, client.get_async_pubsub()).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(Error::Unavailable {
            timeout: PRODUCER_TIMEOUT,
            detail: "pub/sub connect timed out".into(),
        }),
    }
}

/// One multiplexed connection shared by every caller of a [`Queue`](crate::Queue) or
/// a worker, made by the pool and kept out of it.
///
/// A multiplexed connection pipelines concurrent requests over one socket, so sharing
/// it is the fast path; checking a connection out of deadpool-redis instead costs a
/// health check (UNWATCH + PING: a round trip and two Redis commands) on every call,
/// which doubled the commands of an idle worker and of single adds. After an error
/// that says the connection is broken, the next call makes a new one through the pool
/// (with the pool's connect timeout).
#[derive(Clone)]
pub struct SharedConn {
    pool: Pool,
    cached: std::sync::Arc<std::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
}

impl SharedConn {
    /// Connections from `pool`.
    pub fn new(pool: Pool) -> SharedConn {
        SharedConn {
            pool,
            cached: Default::default(),
        }
    }

    /// The pool behind it.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A handle on the shared connection (cheap clone).
    pub async fn get(&self) -> Result<redis::aio::MultiplexedConnection> {
        if let Some(c) = self.cached.lock().unwrap().as_ref() {
            return Ok(c.clone());
        }
        let conn = deadpool_redis::Connection::take(self.pool.get().await?);
        *self.cached.lock().unwrap() = Some(conn.clone());
        Ok(conn)
    }

    /// Runs `f` on the shared connection; a connection error makes the next call reconnect.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: AsyncFnOnce(&mut redis::aio::MultiplexedConnection) -> Result<T>,
    {
        let mut c = self.get().await?;
        let r = f(&mut c).await;
        if let Err(e) = &r {
            if e.is_connection() {
                self.invalidate();
            }
        }
        r
    }

    /// Drops the shared connection; the next call makes a new one.
    pub fn invalidate(&self) {
        self.cached.lock().unwrap().take();
    }
}
