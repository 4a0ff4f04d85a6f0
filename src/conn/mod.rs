//! Connections to Redis: [`RedisConfig`] says where Redis is (one server, Sentinel or
//! Cluster, with TLS and ACL users), [`Connector`] makes connections for it, and
//! [`SharedConn`] is the one multiplexed connection that producers and a worker's
//! short commands share. Blocking waits and pub/sub get connections of their own.
//!
//! redis-rs 1.x times replies out after 500 ms by default; every connection made here
//! sets its own limits instead, so a blocking wait never trips the timeout and a
//! producer facing a dead Redis fails within [`PRODUCER_TIMEOUT`].
//!
//! There is no connection pool: a multiplexed connection pipelines concurrent
//! requests over one socket (a cluster connection, over one socket per node), which
//! is the fast path; deadpool-redis's checkout costs a health check (a round trip) per
//! call, and its PING-only recycle check cannot tell that a Sentinel master was
//! demoted. [`SharedConn`] instead drops its connection on a connection error or a
//! failover reply (`READONLY`, `MASTERDOWN`) and makes a new one, asking the sentinels
//! again.

mod client;
mod config;
mod connector;
mod link;
mod scan;
mod sentinel;

use std::sync::Arc;
use std::time::Duration;

pub use config::{redact_url, RedisConfig, Topology};
pub use connector::Connector;
// Not part of the stable API: public for the `baton` binary.
#[doc(hidden)]
pub use scan::MasterScan;
// Not part of the stable API: public for the `baton` binary and the tests.
#[doc(hidden)]
pub use link::RedisConn;

use crate::error::Result;

/// How long a producer waits for a connection or a reply before giving up with a
/// clear error.
pub const PRODUCER_TIMEOUT: Duration = Duration::from_secs(2);

/// How long making a connection may take (TCP, TLS, AUTH, asking the sentinels).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Reply limit on worker connections: scripts over large batches can take a while on
/// a busy server, and a worker would rather wait than retry work that landed.
pub(crate) const WORKER_TIMEOUT: Duration = Duration::from_secs(10);

/// The default Redis URL: `REDIS_URL` or the local default port.
pub fn default_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// One multiplexed connection shared by every caller of a [`Queue`](crate::Queue) or
/// a worker, made on first use.
///
/// After an error that says the connection is broken, or that it reached a server
/// that is no longer the master, the next call makes a new one (asking the sentinels
/// again under Sentinel).
// Not part of the stable API: public for the `baton` binary and the tests.
#[doc(hidden)]
#[derive(Clone)]
pub struct SharedConn {
    connector: Arc<Connector>,
    reply_timeout: Duration,
    /// The connection, and the Sentinel generation it was made under.
    cached: Arc<std::sync::Mutex<Option<(RedisConn, u64)>>>,
    /// One connect at a time: callers that find no connection wait for the same one.
    connecting: Arc<tokio::sync::Mutex<()>>,
    /// Single adds waiting to ride in the next call to their queue (see
    /// `queue::coalesce`): shared by every queue handle on this connection.
    add_lanes: Arc<crate::queue::AddLanes>,
}

impl std::fmt::Debug for SharedConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedConn")
            .field("endpoint", &self.connector.endpoint())
            .finish()
    }
}

impl SharedConn {
    /// Connections from `connector` whose replies may take up to `reply_timeout`.
    pub fn new(connector: Arc<Connector>, reply_timeout: Duration) -> SharedConn {
        SharedConn {
            connector,
            reply_timeout,
            cached: Default::default(),
            connecting: Default::default(),
            add_lanes: Default::default(),
        }
    }

    /// The single adds waiting to be merged, per queue (see `queue::coalesce`).
    pub(crate) fn add_lanes(&self) -> &crate::queue::AddLanes {
        &self.add_lanes
    }

    /// A shared connection for producers ([`PRODUCER_TIMEOUT`] on replies) to `cfg`.
    pub fn producer(cfg: impl Into<RedisConfig>) -> Result<SharedConn> {
        Ok(SharedConn::new(Connector::new(cfg)?, PRODUCER_TIMEOUT))
    }

    /// The connector behind it.
    pub fn connector(&self) -> &Arc<Connector> {
        &self.connector
    }

    /// A handle on the shared connection (cheap clone).
    pub async fn get(&self) -> Result<RedisConn> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = self.current() {
            return Ok(c);
        }
        let generation = self.connector.generation();
        let conn = self.connector.connect(self.reply_timeout).await?;
        *self.cached.lock().unwrap() = Some((conn.clone(), generation));
        Ok(conn)
    }

    /// The cached connection unless the sentinels announced a new master since it was made.
    fn current(&self) -> Option<RedisConn> {
        let mut cached = self.cached.lock().unwrap();
        match cached.as_ref() {
            Some((c, g)) if *g == self.connector.generation() => Some(c.clone()),
            Some(_) => {
                cached.take();
                None
            }
            None => None,
        }
    }

    /// Runs `f` on the shared connection; an error that says the connection is broken
    /// or on the wrong server makes the next call reconnect.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: AsyncFnOnce(&mut RedisConn) -> Result<T>,
    {
        let mut c = self.get().await?;
        let r = f(&mut c).await;
        if let Err(e) = &r {
            if e.is_connection() || e.is_failover() {
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
