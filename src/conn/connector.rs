//! [`Connector`]: turns a [`RedisConfig`] into connections, whatever the topology.
//!
//! - a single server: one `redis::Client` (TLS files applied);
//! - Sentinel: the sentinels are asked for the master on every (re)connect, and the
//!   answer is checked with `ROLE`, so a connection dropped by a failover, or one that
//!   found itself on a demoted master (`READONLY`), comes back on the new master
//!   ([`SharedConn`](super::SharedConn) drops a connection on either);
//! - Cluster: a cluster connection per use, which routes each command and script by its
//!   key's slot and follows `MOVED`/`ASK` after resharding and failover.
//!
//! Every error says which endpoint and what failed, without a password.

use std::sync::{Arc, Once};
use std::time::Duration;

use redis::cluster::ClusterClientBuilder;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ProtocolVersion, TlsCertificates,
};

use super::client::{
    addr_text, connect_error, is_tls, node_client, node_config, parse, read_certs,
    tls_files_without_tls,
};
use super::config::{RedisConfig, Topology};
use super::link::{RedisConn, Subscription};
use super::sentinel::Sentinel;
use super::CONNECT_TIMEOUT;
use crate::error::{Error, Result};

/// Installs rustls's crypto provider (ring) for the process, once. redis-rs brings
/// rustls without choosing a provider; without this a `rediss://` connect panics.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another part of the program installed one first: that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Makes connections for one [`RedisConfig`]. Cheap to share behind an `Arc`.
pub struct Connector {
    cfg: RedisConfig,
    endpoint: String,
    secrets: Vec<String>,
    certs: Option<TlsCertificates>,
    kind: Kind,
}

// One per connector, made once per process: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Node(Client),
    Sentinel(Sentinel),
    Cluster(Vec<ConnectionInfo>),
}

/// One server of the deployment, for the start-up check and key scans.
pub struct Node {
    /// `host:port`.
    pub address: String,
    /// A master (else a replica).
    pub primary: bool,
    client: Client,
}

impl Node {
    /// A plain connection to this one server.
    pub async fn connect(&self) -> Result<redis::aio::MultiplexedConnection> {
        let cfg = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        self.client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await
            .map_err(|e| connect_error(&self.address, &[], e))
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Connector {
    /// Checks `cfg` (URLs parse, TLS files readable) without connecting.
    pub fn new(cfg: impl Into<RedisConfig>) -> Result<Arc<Connector>> {
        let cfg = cfg.into();
        install_crypto_provider();
        let endpoint = cfg.describe();
        let secrets = cfg.secrets();
        let certs = read_certs(&cfg)?;
        let kind = match &cfg.topology {
            Topology::Single { url } => Kind::Node(node_client(
                parse(url)?,
                certs.as_ref(),
                cfg.password_override(),
            )?),
            Topology::Sentinel {
                sentinels,
                master,
                master_url,
            } => Kind::Sentinel(Sentinel::new(
                &cfg,
                sentinels,
                master,
                master_url,
                certs.as_ref(),
            )?),
            Topology::Cluster { nodes } => {
                if nodes.is_empty() {
                    return Err(Error::Invalid(
                        "a cluster needs at least one seed node URL".into(),
                    ));
                }
                let infos = nodes.iter().map(|u| parse(u)).collect::<Result<Vec<_>>>()?;
                if certs.is_some() && !infos.iter().all(is_tls) {
                    return Err(tls_files_without_tls(&endpoint));
                }
                Kind::Cluster(infos)
            }
        };
        Ok(Arc::new(Connector {
            cfg,
            endpoint,
            secrets,
            certs,
            kind,
        }))
    }

    /// The endpoint in words (no passwords).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The config this connector was made from.
    pub fn config(&self) -> &RedisConfig {
        &self.cfg
    }

    /// How many times the sentinels have announced a new master since this connector
    /// was made (always 0 without Sentinel). A connection made under an older number
    /// may be on a demoted master: drop it.
    pub fn generation(&self) -> u64 {
        match &self.kind {
            Kind::Sentinel(s) => s.generation(),
            _ => 0,
        }
    }

    /// Fires on each new master the sentinels announce (never without Sentinel).
    pub fn master_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match &self.kind {
            Kind::Sentinel(s) => Some(s.changes()),
            _ => None,
        }
    }

    /// True on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster(_))
    }

    /// A new connection whose replies may take up to `reply_timeout` (connecting, and
    /// asking the sentinels, are bounded by [`CONNECT_TIMEOUT`]).
    pub async fn connect(&self, reply_timeout: Duration) -> Result<RedisConn> {
        let made = async {
            match &self.kind {
                Kind::Node(client) => Ok(RedisConn::Node(
                    client
                        .get_multiplexed_async_connection_with_config(&node_config(reply_timeout))
                        .await?,
                )),
                Kind::Sentinel(s) => {
                    let client = s.master_client().await?;
                    Ok(RedisConn::Node(
                        client
                            .get_multiplexed_async_connection_with_config(&node_config(
                                reply_timeout,
                            ))
                            .await?,
                    ))
                }
                Kind::Cluster(nodes) => Ok(RedisConn::Cluster(
                    self.cluster_builder(nodes, reply_timeout)
                        .build()?
                        .get_async_connection()
                        .await?,
                )),
            }
        };
        self.bounded(made).await
    }

    /// A subscription to `channel`: plain pub/sub on a single server or the Sentinel
    /// master; sharded pub/sub (`SSUBSCRIBE`, RESP3) on the shard that owns the
    /// channel's hash tag on a cluster, resubscribed by redis-rs after a failover.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription> {
        let made = async {
            let client = match &self.kind {
                Kind::Node(c) => c.clone(),
                Kind::Sentinel(s) => s.master_client().await?,
                Kind::Cluster(nodes) => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
                    let mut conn = self
                        .cluster_builder(nodes, CONNECT_TIMEOUT)
                        .use_protocol(ProtocolVersion::RESP3)
                        .push_sender(tx)
                        .build()?
                        .get_async_connection()
                        .await?;
                    conn.ssubscribe(channel).await?;
                    return Ok(Subscription::cluster(conn, rx));
                }
            };
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(channel).await?;
            Ok(Subscription::node(ps))
        };
        self.bounded(made).await
    }

    /// Every server that can be seen: the one server; the Sentinel master; every
    /// cluster node (masters and replicas) that is not marked failed.
    pub async fn nodes(&self) -> Result<Vec<Node>> {
        match &self.kind {
            Kind::Node(c) => Ok(vec![Node {
                address: addr_text(c.get_connection_info().addr()),
                primary: true,
                client: c.clone(),
            }]),
            Kind::Sentinel(s) => {
                let client = self
                    .bounded(async { s.master_client().await.map_err(Into::into) })
                    .await?;
                Ok(vec![Node {
                    address: addr_text(client.get_connection_info().addr()),
                    primary: true,
                    client,
                }])
            }
            Kind::Cluster(seeds) => {
                let mut conn = self.connect(CONNECT_TIMEOUT).await?;
                let text: String = redis::cmd("CLUSTER")
                    .arg("NODES")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| self.error(e))?;
                let mut out = Vec::new();
                for (host, port, primary) in parse_cluster_nodes(&text) {
                    let addr = match seeds[0].addr() {
                        ConnectionAddr::TcpTls { .. } => ConnectionAddr::TcpTls {
                            host: host.clone(),
                            port,
                            insecure: false,
                            tls_params: None,
                        },
                        _ => ConnectionAddr::Tcp(host.clone(), port),
                    };
                    let info = seeds[0].clone().set_addr(addr);
                    out.push(Node {
                        address: format!("{host}:{port}"),
                        primary,
                        client: node_client(
                            info,
                            self.certs.as_ref(),
                            self.cfg.password_override(),
                        )?,
                    });
                }
                Ok(out)
            }
        }
    }

    fn cluster_builder(
        &self,
        nodes: &[ConnectionInfo],
        reply_timeout: Duration,
    ) -> ClusterClientBuilder {
        let mut b = ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(reply_timeout);
        if let Some(pw) = self.cfg.password_override() {
            b = b.password(pw);
        }
        if let Some(certs) = &self.certs {
            b = b.certs(certs.clone());
        }
        b
    }

    /// Bounds a connect by [`CONNECT_TIMEOUT`] and names the endpoint on failure.
    async fn bounded<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(CONNECT_TIMEOUT + Duration::from_millis(500), f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(Error::Redis(e))) => Err(self.error(e)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Connect {
                endpoint: self.endpoint.clone(),
                reason: format!("timed out after {CONNECT_TIMEOUT:?}"),
            }),
        }
    }

    /// A connect error naming this endpoint.
    pub(crate) fn error(&self, e: redis::RedisError) -> Error {
        connect_error(&self.endpoint, &self.secrets, e)
    }
}

/// `(host, port, is_master)` of every usable node in a `CLUSTER NODES` reply.
fn parse_cluster_nodes(text: &str) -> Vec<(String, u16, bool)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (addr, flags) = (f.get(1)?, f.get(2)?);
            if flags.contains("fail") || flags.contains("noaddr") || flags.contains("handshake") {
                return None;
            }
            let hostport = addr.split(['@', ',']).next()?;
            let (host, port) = hostport.rsplit_once(':')?;
            Some((
                host.to_string(),
                port.parse().ok()?,
                flags.contains("master"),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cluster_nodes_are_parsed() {
        let t = "07c3 127.0.0.1:30004@40004 slave e7d1 0 1 4 connected\n\
                 67ed 127.0.0.1:30002@40002,host master - 0 1 2 connected 5461-10922\n\
                 292f 127.0.0.1:30003@40003 master,fail - 0 1 3 disconnected\n\
                 e7d1 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-5460\n";
        let n = super::parse_cluster_nodes(t);
        assert_eq!(
            n,
            vec![
                ("127.0.0.1".to_string(), 30004, false),
                ("127.0.0.1".to_string(), 30002, true),
                ("127.0.0.1".to_string(), 30001, true),
            ]
        );
    }
}
