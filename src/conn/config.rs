//! [`RedisConfig`]: where Redis is and how to reach it. One value for the library, the
//! CLI and the HTTP API: a single server (`redis://`, `rediss://` for TLS), a master
//! found through Sentinel, or a Redis Cluster; TLS files for a private CA and mutual
//! TLS; passwords from files (Kubernetes secrets).
//!
//! Nothing here connects; [`Connector`](super::Connector) does. Every description this
//! module prints hides passwords.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Which Redis deployment to talk to.
#[derive(Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (or a proxy that looks like one): `redis://` or `rediss://`, with
    /// `user:password@` for an ACL user and `/N` for the database.
    Single {
        /// The server's URL.
        url: String,
    },
    /// The master of a Sentinel-monitored group, asked of the sentinels on every
    /// (re)connect, so connections follow a failover.
    Sentinel {
        /// Sentinel addresses, `HOST:PORT` or full URLs.
        sentinels: Vec<String>,
        /// The monitored master's name (`sentinel monitor NAME …`).
        master: String,
        /// Scheme, user, password and database for the master (its host is ignored).
        master_url: String,
    },
    /// A Redis Cluster found from seed nodes; each queue lives on the shard that owns
    /// its hash tag.
    Cluster {
        /// Seed node URLs (`redis://` or `rediss://`, optionally with `user:password@`).
        nodes: Vec<String>,
    },
}

/// How to reach Redis. Build one with [`RedisConfig::url`], [`RedisConfig::sentinel`]
/// or [`RedisConfig::cluster`]; a `&str` or `String` converts into a single-server
/// config, so `Queue::connect("redis://…", "q")` keeps working.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// Which deployment.
    pub topology: Topology,
    /// PEM file of the CA that signed the server certificates (else the system roots).
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate and key, for servers that require mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The password, overriding any in a URL (from `password_file`, or set directly).
    password: Option<String>,
    /// The sentinels' own password (`requirepass` on the sentinels).
    sentinel_password: Option<String>,
}

impl RedisConfig {
    /// One server at `url`.
    pub fn url(url: impl Into<String>) -> RedisConfig {
        RedisConfig::with(Topology::Single { url: url.into() })
    }

    /// The master named `master` as reported by `sentinels` (`HOST:PORT` or URLs).
    /// Use [`RedisConfig::master_url`] for the master's user, password, database or TLS.
    pub fn sentinel<S: Into<String>>(
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> RedisConfig {
        RedisConfig::with(Topology::Sentinel {
            sentinels: sentinels.into_iter().map(Into::into).collect(),
            master: master.into(),
            master_url: "redis://".into(),
        })
    }

    /// A Redis Cluster found from `nodes` (seed URLs).
    pub fn cluster<S: Into<String>>(nodes: impl IntoIterator<Item = S>) -> RedisConfig {
        RedisConfig::with(Topology::Cluster {
            nodes: nodes.into_iter().map(Into::into).collect(),
        })
    }

    fn with(topology: Topology) -> RedisConfig {
        RedisConfig {
            topology,
            ca_cert: None,
            client_cert: None,
            password: None,
            sentinel_password: None,
        }
    }

    /// For Sentinel: the scheme (`rediss://` for TLS), user, password and database used
    /// on the master, as a URL whose host part is ignored (`rediss://app:pw@/2`).
    pub fn master_url(mut self, url: impl Into<String>) -> RedisConfig {
        if let Topology::Sentinel { master_url, .. } = &mut self.topology {
            *master_url = url.into();
        }
        self
    }

    /// Trust the CA in this PEM file (instead of the system's roots).
    pub fn ca_cert(mut self, path: impl Into<PathBuf>) -> RedisConfig {
        self.ca_cert = Some(path.into());
        self
    }

    /// Present this client certificate and key (PEM files): mutual TLS.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> RedisConfig {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// Use this password, whatever a URL says.
    pub fn password(mut self, password: impl Into<String>) -> RedisConfig {
        self.password = Some(password.into());
        self
    }

    /// Read the password from a file (a mounted secret; a trailing newline is ignored).
    pub fn password_file(self, path: impl AsRef<Path>) -> Result<RedisConfig> {
        Ok(self.password(read_secret(path.as_ref(), "password file")?))
    }

    /// The sentinels' own password.
    pub fn sentinel_password(mut self, password: impl Into<String>) -> RedisConfig {
        self.sentinel_password = Some(password.into());
        self
    }

    /// Read the sentinels' password from a file.
    pub fn sentinel_password_file(self, path: impl AsRef<Path>) -> Result<RedisConfig> {
        Ok(self.sentinel_password(read_secret(path.as_ref(), "sentinel password file")?))
    }

    /// The password override, if any.
    pub(crate) fn password_override(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The sentinels' password, if any.
    pub(crate) fn sentinel_password_value(&self) -> Option<&str> {
        self.sentinel_password.as_deref()
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster { .. })
    }

    /// Every secret this config holds (URL passwords included), to scrub from messages.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .password
            .iter()
            .chain(self.sentinel_password.iter())
            .cloned()
            .collect();
        let urls: Vec<&String> = match &self.topology {
            Topology::Single { url } => vec![url],
            Topology::Sentinel {
                sentinels,
                master_url,
                ..
            } => sentinels
                .iter()
                .chain(std::iter::once(master_url))
                .collect(),
            Topology::Cluster { nodes } => nodes.iter().collect(),
        };
        out.extend(urls.into_iter().filter_map(|u| url_password(u)));
        out.retain(|s| !s.is_empty());
        out
    }

    /// The endpoint in words, without passwords: for logs and error messages.
    pub fn describe(&self) -> String {
        match &self.topology {
            Topology::Single { url } => redact_url(url),
            Topology::Sentinel {
                sentinels, master, ..
            } => format!(
                "master {master:?} via sentinels {}",
                sentinels
                    .iter()
                    .map(|s| redact_url(s))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Topology::Cluster { nodes } => format!(
                "cluster via {}",
                nodes
                    .iter()
                    .map(|s| redact_url(s))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("endpoint", &self.describe())
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

impl std::fmt::Display for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl From<&str> for RedisConfig {
    fn from(url: &str) -> Self {
        RedisConfig::url(url)
    }
}

impl From<String> for RedisConfig {
    fn from(url: String) -> Self {
        RedisConfig::url(url)
    }
}

impl From<&String> for RedisConfig {
    fn from(url: &String) -> Self {
        RedisConfig::url(url.as_str())
    }
}

impl From<&RedisConfig> for RedisConfig {
    fn from(c: &RedisConfig) -> Self {
        c.clone()
    }
}

/// Reads a one-line secret; a missing or empty file is an error naming the file.
fn read_secret(path: &Path, what: &str) -> Result<String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| Error::Invalid(format!("cannot read the {what} {}: {e}", path.display())))?;
    let s = s.trim_end_matches(['\n', '\r']).to_string();
    if s.is_empty() {
        return Err(Error::Invalid(format!(
            "the {what} {} is empty",
            path.display()
        )));
    }
    Ok(s)
}

/// The password in `scheme://user:password@host…`, if any.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let (userinfo, _) = rest.split_once('@')?;
    let pw = match userinfo.split_once(':') {
        Some((_, pw)) => pw,
        // `redis://name@host`: a user name alone, nothing secret.
        None => return None,
    };
    Some(percent_decode(pw))
}

/// Minimal %XX decoding, enough to recognise an encoded password in a message.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with any password replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let redacted = match rest.split_once('@') {
        Some((userinfo, host)) if !userinfo.contains('/') => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => rest.to_string(),
        },
        _ => rest.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{redacted}"),
        None => redacted,
    }
}

/// Why `url` is not a Redis URL, in words (the client library only says
/// `InvalidClientConfig`). `e` is the library's error, the last resort.
pub(crate) fn url_problem(url: &str, e: &redis::RedisError) -> String {
    const FORM: &str = "redis://[USER:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS)";
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("it has no scheme; write it as {FORM}");
    };
    if !["redis", "rediss", "valkey", "valkeys", "unix", "redis+unix"].contains(&scheme) {
        return format!(
            "the scheme {scheme:?} is not redis://, rediss:// or unix://; write it as {FORM}"
        );
    }
    if scheme.contains("unix") {
        return format!("{e}");
    }
    let after_user = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let (hostport, db) = after_user.split_once('/').unwrap_or((after_user, ""));
    if hostport.is_empty() {
        return format!("it names no host; write it as {FORM}");
    }
    // `[::1]:6379`: the port follows the closing bracket.
    let port = match hostport.rsplit_once(']') {
        Some((_, p)) => p.strip_prefix(':'),
        None => hostport.rsplit_once(':').map(|(_, p)| p),
    };
    if let Some(p) = port.filter(|p| p.parse::<u16>().map_or(true, |n| n == 0)) {
        return format!("the port {p:?} is not a number from 1 to 65535");
    }
    let db = db.split(['?', '#']).next().unwrap_or("");
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return format!("the database {db:?} is not a number");
    }
    format!("{e}; write it as {FORM}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("rediss://app:s3cr%40t@db.example:6380/2"),
            "rediss://app:***@db.example:6380/2"
        );
        assert_eq!(redact_url("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(redact_url("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact_url("h:26379"), "h:26379");
    }

    #[test]
    fn secrets_are_found_and_never_described() {
        let c = RedisConfig::sentinel(["redis://:sp@h:26379"], "m")
            .master_url("rediss://app:mp%21@/1")
            .password("over");
        let s = c.secrets();
        assert!(s.contains(&"over".to_string()) && s.contains(&"sp".to_string()));
        assert!(s.contains(&"mp!".to_string()), "{s:?}");
        let d = format!("{c} {c:?}");
        for secret in ["over", "sp@", "mp%21"] {
            assert!(!d.contains(secret), "{d}");
        }
    }

    #[test]
    fn password_file_is_trimmed_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2\n").unwrap();
        let c = RedisConfig::url("redis://h").password_file(&p).unwrap();
        assert_eq!(c.password_override(), Some("hunter2"));
        std::fs::write(&p, "\n").unwrap();
        assert!(RedisConfig::url("redis://h").password_file(&p).is_err());
        let e = RedisConfig::url("redis://h")
            .password_file(dir.path().join("missing"))
            .unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
