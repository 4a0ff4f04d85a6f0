//! The connection flags every subcommand takes, and the [`RedisConfig`] they make.

use std::path::PathBuf;

use baton::conn::RedisConfig;
use baton::{Error, Result};
use clap::Args;

/// Where Redis is: one URL, Sentinel, or Cluster; TLS files; password files.
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Redis URL: redis:// or rediss:// (TLS), with user:password@ for an ACL user and
    /// /N for the database. Under --sentinel, its scheme, user, password and database
    /// apply to the master (its host is ignored).
    #[arg(
        long,
        global = true,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// PEM file of the CA that signed the servers' certificates (else the system roots).
    #[arg(long, global = true, env = "REDIS_CA_CERT")]
    pub redis_ca_cert: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS (with --redis-client-key).
    #[arg(
        long,
        global = true,
        env = "REDIS_CLIENT_CERT",
        requires = "redis_client_key"
    )]
    pub redis_client_cert: Option<PathBuf>,
    /// PEM client key, for mutual TLS (with --redis-client-cert).
    #[arg(
        long,
        global = true,
        env = "REDIS_CLIENT_KEY",
        requires = "redis_client_cert"
    )]
    pub redis_client_key: Option<PathBuf>,
    /// File holding the Redis password (a Kubernetes secret); overrides the URL's.
    #[arg(long, global = true, env = "REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<PathBuf>,
    /// Sentinels, HOST:PORT,HOST:PORT,… (with --sentinel-master).
    #[arg(
        long = "sentinel",
        global = true,
        env = "REDIS_SENTINELS",
        value_delimiter = ','
    )]
    pub sentinels: Vec<String>,
    /// The master's name as the sentinels know it.
    #[arg(long, global = true, env = "REDIS_SENTINEL_MASTER")]
    pub sentinel_master: Option<String>,
    /// File holding the sentinels' own password.
    #[arg(long, global = true, env = "REDIS_SENTINEL_PASSWORD_FILE")]
    pub sentinel_password_file: Option<PathBuf>,
    /// Cluster seed nodes, URL,URL,… (redis:// or rediss://).
    #[arg(
        long,
        global = true,
        env = "REDIS_CLUSTER_NODES",
        value_delimiter = ','
    )]
    pub cluster_nodes: Vec<String>,
}

impl RedisArgs {
    /// The connection description, or a clear error for contradicting flags.
    pub fn config(&self) -> Result<RedisConfig> {
        let sentinels: Vec<&String> = self.sentinels.iter().filter(|s| !s.is_empty()).collect();
        let nodes: Vec<&String> = self
            .cluster_nodes
            .iter()
            .filter(|s| !s.is_empty())
            .collect();
        let mut cfg = match (sentinels.is_empty(), nodes.is_empty()) {
            (false, false) => {
                return Err(Error::Invalid(
                    "--sentinel and --cluster-nodes contradict each other: give one".into(),
                ))
            }
            (false, true) => {
                let master = self.sentinel_master.clone().filter(|m| !m.is_empty()).ok_or_else(|| {
                    Error::Invalid(
                        "--sentinel needs --sentinel-master NAME (REDIS_SENTINEL_MASTER): the name in `sentinel monitor NAME …`".into(),
                    )
                })?;
                RedisConfig::sentinel(sentinels, master).master_url(self.redis_url.clone())
            }
            (true, false) => RedisConfig::cluster(nodes),
            (true, true) => {
                if self
                    .sentinel_master
                    .as_deref()
                    .is_some_and(|m| !m.is_empty())
                {
                    return Err(Error::Invalid(
                        "--sentinel-master needs --sentinel HOST:PORT,… (REDIS_SENTINELS)".into(),
                    ));
                }
                RedisConfig::url(self.redis_url.clone())
            }
        };
        if let Some(ca) = &self.redis_ca_cert {
            cfg = cfg.ca_cert(ca);
        }
        if let (Some(c), Some(k)) = (&self.redis_client_cert, &self.redis_client_key) {
            cfg = cfg.client_cert(c, k);
        }
        if let Some(p) = &self.redis_password_file {
            cfg = cfg.password_file(p)?;
        }
        if let Some(p) = &self.sentinel_password_file {
            cfg = cfg.sentinel_password_file(p)?;
        }
        Ok(cfg)
    }

    /// True when the user named a Redis (any flag or variable); demo and bench start
    /// their own otherwise.
    pub fn given(&self) -> bool {
        !self.sentinels.is_empty()
            || !self.cluster_nodes.is_empty()
            || std::env::args().any(|a| a == "--redis-url" || a.starts_with("--redis-url="))
            || std::env::var("REDIS_URL").is_ok()
    }
}
