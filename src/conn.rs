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
pub async fn dedicated(url: &str, longest_block: Duration) -> Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url)?;
    let cfg = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(PRODUCER_TIMEOUT))
        .set_response_timeout(Some(longest_block + Duration::from_secs(5)));
    Ok(client.get_multiplexed_async_connection_with_config(&cfg).await?)
}

/// A pub/sub connection of its own.
pub async fn pubsub(url: &str) -> Result<redis::aio::PubSub> {
    let client = redis::Client::open(url)?;
    Ok(client.get_async_pubsub().await?)
}

/// A pooled connection that a background loop keeps between calls.
///
/// deadpool-redis health-checks a connection on every checkout (UNWATCH + PING: a round
/// trip and two commands), which would double the Redis commands of an idle worker and
/// add to every batch. A loop that keeps its connection skips that; after any error the
/// connection is dropped and the next call takes a fresh one.
pub struct Sticky {
    pool: Pool,
    conn: tokio::sync::Mutex<Option<deadpool_redis::Connection>>,
}

impl Sticky {
    /// A sticky connection from `pool` (taken on first use).
    pub fn new(pool: Pool) -> Sticky {
        Sticky { pool, conn: tokio::sync::Mutex::new(None) }
    }

    /// Runs `f` on the kept connection; an error drops the connection.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: AsyncFnOnce(&mut deadpool_redis::Connection) -> Result<T>,
    {
        let mut slot = self.conn.lock().await;
        if slot.is_none() {
            *slot = Some(self.pool.get().await?);
        }
        let r = f(slot.as_mut().expect("just set")).await;
        if r.is_err() {
            *slot = None;
        }
        r
    }
}
