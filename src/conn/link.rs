//! [`RedisConn`], one connection type over a single server and a cluster, and
//! [`Subscription`], a pub/sub listener over either.

use futures::StreamExt;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, PushInfo, PushKind, RedisFuture, RedisResult, Value};

/// A multiplexed connection to one server, or a cluster connection that sends each
/// command to the node owning its key. Cheap to clone (clones share the socket(s)).
#[derive(Clone)]
pub enum RedisConn {
    /// One server (also the Sentinel-resolved master).
    Node(MultiplexedConnection),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Node(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Node(c) => c.req_packed_commands(cmd, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Node(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

impl RedisConn {
    /// Runs `cmd`, which names no key itself (`CLIENT ID`, `CLIENT UNBLOCK`), on the
    /// server that holds `key`: on a cluster, the master of `key`'s slot.
    pub async fn query_at<T: FromRedisValue>(&mut self, cmd: &Cmd, key: &str) -> RedisResult<T> {
        match self {
            RedisConn::Node(c) => cmd.query_async(c).await,
            RedisConn::Cluster(c) => {
                let route = Route::with_key(key, SlotAddr::Master);
                let v = c
                    .route_command(
                        cmd.clone(),
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                Ok(redis::from_redis_value(v)?)
            }
        }
    }

    /// True on a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }
}

/// Messages of one channel, as strings.
pub struct Subscription(Inner);

enum Inner {
    Node(redis::aio::PubSubStream),
    Cluster {
        /// Kept alive: dropping it ends the subscription.
        _conn: ClusterConnection,
        rx: tokio::sync::mpsc::UnboundedReceiver<PushInfo>,
    },
}

impl Subscription {
    pub(crate) fn node(ps: redis::aio::PubSub) -> Subscription {
        Subscription(Inner::Node(ps.into_on_message()))
    }

    pub(crate) fn cluster(
        conn: ClusterConnection,
        rx: tokio::sync::mpsc::UnboundedReceiver<PushInfo>,
    ) -> Subscription {
        Subscription(Inner::Cluster { _conn: conn, rx })
    }

    /// The next message's payload; `None` when the subscription has ended (the
    /// connection closed) and must be made again.
    pub async fn next(&mut self) -> Option<String> {
        match &mut self.0 {
            Inner::Node(s) => s.next().await.map(|m| m.get_payload().unwrap_or_default()),
            Inner::Cluster { rx, .. } => loop {
                let push = rx.recv().await?;
                if matches!(push.kind, PushKind::SMessage | PushKind::Message) {
                    if let Some(v) = push.data.get(1) {
                        return Some(redis::from_redis_value_ref::<String>(v).unwrap_or_default());
                    }
                }
                // Subscribe confirmations and disconnections: redis-rs resubscribes a
                // cluster connection by itself; the heartbeat covers the gap.
            },
        }
    }
}
