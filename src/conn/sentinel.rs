//! Sentinel: the master is asked of the sentinels on every (re)connect, and a watcher
//! subscribed to `+switch-master` on the sentinels counts each announced failover, so
//! connections made before it are dropped at once.
//!
//! redis-rs does not follow `+switch-master` itself. Without the watcher, a graceful
//! failover (`SENTINEL FAILOVER`, or a master that was only cut off) leaves clients
//! writing to the old master until Sentinel reconfigures it (measured: ~11 s), and
//! everything written there in that time is lost when it resyncs as a replica.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisResult,
    TlsCertificates, TlsMode,
};
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::client::{is_tls, parse, tls_files_without_tls};
use super::config::{redact_url, RedisConfig};
use super::CONNECT_TIMEOUT;
use crate::error::{Error, Result};

/// A Sentinel-monitored master.
pub(super) struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    master: String,
    /// One client per sentinel, for the `+switch-master` watcher.
    sentinels: Vec<Client>,
    switch: Arc<watch::Sender<u64>>,
    /// The master the last `+switch-master` named (host, port). Sentinels learn of a
    /// failover at different moments, and the old master still says it is master until
    /// it is reconfigured, so asking the sentinels right after an announcement can lead
    /// straight back to the old master: the announced address is tried first.
    announced: Arc<std::sync::Mutex<Option<(String, u16)>>>,
    /// How to reach a master: everything but its address.
    master_info: ConnectionInfo,
    master_tls: bool,
    certs: Option<TlsCertificates>,
    /// Stops the watcher when the connector is dropped.
    watcher: OnceLock<DropGuard>,
}

impl Sentinel {
    /// Master credentials, database and TLS from `master_url`; the sentinels' TLS and
    /// credentials from their own URLs and the sentinel password.
    pub fn new(
        cfg: &RedisConfig,
        sentinels: &[String],
        master: &str,
        master_url: &str,
        certs: Option<&TlsCertificates>,
    ) -> Result<Sentinel> {
        if sentinels.is_empty() || master.is_empty() {
            return Err(Error::Invalid(
                "Sentinel needs at least one sentinel address and the master's name".into(),
            ));
        }
        let mut addrs = Vec::new();
        let mut watch_clients = Vec::new();
        let mut sentinel_tls = false;
        let mut sentinel_user = None;
        let mut sentinel_pw = None;
        for s in sentinels {
            let url = if s.contains("://") {
                s.clone()
            } else {
                format!("redis://{s}")
            };
            let mut info = parse(&url)?;
            sentinel_tls |= is_tls(&info);
            sentinel_user = sentinel_user.or(info.redis_settings().username().map(String::from));
            sentinel_pw = sentinel_pw.or(info.redis_settings().password().map(String::from));
            addrs.push(info.addr().clone());
            if let Some(pw) = cfg.sentinel_password_value() {
                let r = info.redis_settings().clone().set_password(pw);
                info = info.set_redis_settings(r);
            }
            watch_clients.push(match certs {
                Some(c) if is_tls(&info) => Client::build_with_tls(info, c.clone())?,
                _ => Client::open(info)?,
            });
        }
        let m = url::Url::parse(master_url).map_err(|e| {
            Error::Invalid(format!(
                "master URL {} did not parse: {e}",
                redact_url(master_url)
            ))
        })?;
        let master_tls = match m.scheme() {
            "redis" => false,
            "rediss" => true,
            other => {
                return Err(Error::Invalid(format!(
                    "master URL scheme {other:?}: use redis:// or rediss://"
                )))
            }
        };
        let db: i64 = match m.path().trim_start_matches('/') {
            "" => 0,
            d => d.parse().map_err(|_| {
                Error::Invalid(format!("master URL database {d:?} is not a number"))
            })?,
        };
        let mut settings = RedisConnectionInfo::default().set_db(db);
        if !m.username().is_empty() {
            settings = settings.set_username(decode(m.username()));
        }
        if let Some(pw) = cfg
            .password_override()
            .map(String::from)
            .or(m.password().map(decode))
        {
            settings = settings.set_password(pw);
        }
        let master_info = "redis://127.0.0.1:6379"
            .into_connection_info()?
            .set_redis_settings(settings);
        let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)?
            .set_client_to_redis_db(db);
        if !m.username().is_empty() {
            b = b.set_client_to_redis_username(decode(m.username()));
        }
        if let Some(pw) = cfg
            .password_override()
            .map(String::from)
            .or(m.password().map(decode))
        {
            b = b.set_client_to_redis_password(pw);
        }
        if master_tls {
            b = b.set_client_to_redis_tls_mode(TlsMode::Secure);
            if let Some(c) = certs {
                b = b.set_client_to_redis_certificates(c.clone());
            }
        } else if certs.is_some() && !sentinel_tls {
            return Err(tls_files_without_tls(&cfg.describe()));
        }
        if sentinel_tls {
            b = b.set_client_to_sentinel_tls_mode(TlsMode::Secure);
            if let Some(c) = certs {
                b = b.set_client_to_sentinel_certificates(c.clone());
            }
        }
        if let Some(u) = sentinel_user {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(pw) = cfg
            .sentinel_password_value()
            .map(String::from)
            .or(sentinel_pw)
        {
            b = b.set_client_to_sentinel_password(pw);
        }
        Ok(Sentinel {
            client: tokio::sync::Mutex::new(b.build()?),
            master: master.to_string(),
            sentinels: watch_clients,
            switch: Arc::new(watch::channel(0).0),
            announced: Default::default(),
            master_info,
            master_tls,
            certs: certs.cloned(),
            watcher: OnceLock::new(),
        })
    }

    /// A client for the current master (asked of the sentinels, its role checked).
    /// Starts the `+switch-master` watcher on first use.
    pub async fn master_client(&self) -> RedisResult<Client> {
        self.watcher.get_or_init(|| {
            let stop = CancellationToken::new();
            tokio::spawn(watch_switches(
                self.sentinels.clone(),
                self.master.clone(),
                self.switch.clone(),
                self.announced.clone(),
                stop.clone(),
            ));
            stop.drop_guard()
        });
        let announced = self.announced.lock().unwrap().clone();
        if let Some((host, port)) = announced {
            match self.verified_master(&host, port).await {
                Ok(client) => return Ok(client),
                Err(e) => {
                    tracing::debug!(error = %e, %host, port, "the announced master is not (or no longer) master; asking the sentinels");
                    self.announced.lock().unwrap().take();
                }
            }
        }
        self.client.lock().await.async_get_client().await
    }

    /// A client for `host:port` if that server says it is a master.
    async fn verified_master(&self, host: &str, port: u16) -> RedisResult<Client> {
        let addr = if self.master_tls {
            ConnectionAddr::TcpTls {
                host: host.to_string(),
                port,
                insecure: false,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(host.to_string(), port)
        };
        let info = self.master_info.clone().set_addr(addr);
        let client = match &self.certs {
            Some(c) if self.master_tls => Client::build_with_tls(info, c.clone())?,
            _ => Client::open(info)?,
        };
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CONNECT_TIMEOUT));
        let mut c = client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut c).await?;
        match role.first() {
            Some(v)
                if redis::from_redis_value_ref::<String>(v).ok().as_deref() == Some("master") =>
            {
                Ok(client)
            }
            _ => Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "not a master",
            ))),
        }
    }

    /// Failovers announced so far.
    pub fn generation(&self) -> u64 {
        *self.switch.borrow()
    }

    /// Fires on each announced failover.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.switch.subscribe()
    }
}

/// Listens for `+switch-master` of `master` on one sentinel after another, and bumps
/// the generation on each (and after losing a sentinel, since a switch may have been
/// missed meanwhile).
async fn watch_switches(
    sentinels: Vec<Client>,
    master: String,
    switch: Arc<watch::Sender<u64>>,
    announced: Arc<std::sync::Mutex<Option<(String, u16)>>>,
    stop: CancellationToken,
) {
    let bump = |why: &str| {
        switch.send_modify(|g| *g += 1);
        tracing::info!(master = %master, why, "dropping connections to the old master");
    };
    let mut lost = false;
    for client in sentinels.iter().cycle() {
        let subscribed = async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe("+switch-master").await?;
            Ok::<_, redis::RedisError>(ps)
        };
        let ps = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, subscribed) => r,
            _ = stop.cancelled() => return,
        };
        let Ok(Ok(ps)) = ps else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                _ = stop.cancelled() => return,
            }
        };
        if lost {
            announced.lock().unwrap().take();
            bump("reconnected to a sentinel; a switch may have been missed");
        }
        let mut messages = ps.into_on_message();
        loop {
            let msg = tokio::select! {
                m = messages.next() => m,
                _ = stop.cancelled() => return,
            };
            let Some(msg) = msg else { break };
            let text: String = msg.get_payload().unwrap_or_default();
            // "<name> <old-ip> <old-port> <new-ip> <new-port>"
            let f: Vec<&str> = text.split_whitespace().collect();
            if f.first() == Some(&master.as_str()) {
                if let (Some(host), Some(Ok(port))) = (f.get(3), f.get(4).map(|p| p.parse::<u16>()))
                {
                    *announced.lock().unwrap() = Some((host.to_string(), port));
                }
                bump("the sentinels announced a new master");
            }
        }
        lost = true;
    }
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}
