//! The start-up check: is this Redis fit to hold jobs that must not be lost?
//!
//! A Redis that evicts keys under memory pressure, or that keeps nothing on disk, drops
//! jobs silently. Workers and `baton check` refuse such a server and say what to change.
//! Managed services often disable CONFIG; then the same facts are read from INFO.

use redis::aio::ConnectionLike;

use crate::error::{Error, Result};

/// One setting that is wrong, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The server it was found on (`host:port`), when the deployment has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The setting's name.
    pub setting: String,
    /// What the server has.
    pub found: String,
    /// What it needs.
    pub wanted: String,
    /// How to fix it.
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = self
            .node
            .as_deref()
            .map(|n| format!(" on {n}"))
            .unwrap_or_default();
        write!(
            f,
            "- {}{on} is {:?}, needs {:?}: {}",
            self.setting, self.found, self.wanted, self.fix
        )
    }
}

/// What the check found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// `redis_version` from INFO.
    pub version: String,
    /// Where the settings were read: "CONFIG" or "INFO" (CONFIG disabled).
    pub source: &'static str,
    /// What is wrong; empty when fit.
    pub problems: Vec<Problem>,
    /// Set while a server is at `maxmemory`: it refuses every write (so baton claims
    /// nothing and writes no outcome) until memory frees. Redis's state, not a setting
    /// to fix, so not a problem: workers wait it out, `/readyz` says not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_full: Option<String>,
}

impl Report {
    /// True when nothing is wrong.
    pub fn is_fit(&self) -> bool {
        self.problems.is_empty()
    }
    /// The problems as one message, one line each.
    pub fn message(&self) -> String {
        self.problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }
    /// Ok when fit, else [`Error::UnfitRedis`] naming every problem and its fix.
    pub fn into_result(self) -> Result<Report> {
        if self.is_fit() {
            Ok(self)
        } else {
            Err(Error::UnfitRedis(self.message()))
        }
    }
}

/// Checks every server of the deployment that can be seen: the one server, the
/// Sentinel master, or every master and replica of a cluster. Each problem names its
/// node when there are several; the version reported is the lowest found.
pub async fn check_all(connector: &crate::conn::Connector) -> Result<Report> {
    let nodes = connector.nodes().await?;
    let many = nodes.len() > 1;
    let mut all: Option<Report> = None;
    for node in nodes {
        let mut c = node.connect().await?;
        let mut r = check(&mut c).await?;
        if many {
            for p in &mut r.problems {
                p.node = Some(node.address.clone());
            }
            if let Some(full) = &mut r.memory_full {
                *full = format!("{full} (on {})", node.address);
            }
        }
        all = Some(match all {
            None => r,
            Some(mut acc) => {
                if !version_at_least(&r.version, parse_version(&acc.version)) {
                    acc.version = r.version;
                }
                acc.problems.extend(r.problems);
                acc.memory_full = acc.memory_full.or(r.memory_full);
                if r.source == "INFO" {
                    acc.source = "INFO";
                }
                acc
            }
        });
    }
    all.ok_or_else(|| Error::Invalid(format!("no Redis server found at {}", connector.endpoint())))
}

fn parse_version(v: &str) -> (u32, u32) {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Reads the server's version, eviction policy and AOF setting.
pub async fn check<C: ConnectionLike + Send>(conn: &mut C) -> Result<Report> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .arg("persistence")
        .arg("memory")
        .query_async(conn)
        .await?;
    let field = |name: &str| -> Option<String> {
        info.lines().find_map(|l| {
            l.strip_prefix(name)?
                .strip_prefix(':')
                .map(|v| v.trim().to_string())
        })
    };
    let version = field("redis_version").unwrap_or_default();
    let mut problems = Vec::new();
    if !version_at_least(&version, (7, 0)) {
        problems.push(Problem {
            node: None,
            setting: "redis_version".into(),
            found: version.clone(),
            wanted: ">= 7.0".into(),
            fix: "upgrade Redis to 7.0 or later (baton's scripts declare Redis 7 script flags, so a server at maxmemory refuses them whole, and cancels use sharded pub/sub on a cluster)".into(),
        });
    }
    let config: redis::RedisResult<Vec<String>> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .arg("appendonly")
        .query_async(conn)
        .await;
    let (policy, aof, source) = match config {
        Ok(pairs) if !pairs.is_empty() => {
            let get = |k: &str| {
                pairs
                    .chunks(2)
                    .find(|c| c[0] == k)
                    .map(|c| c[1].clone())
                    .unwrap_or_default()
            };
            (get("maxmemory-policy"), get("appendonly"), "CONFIG")
        }
        _ => {
            let aof = if field("aof_enabled").as_deref() == Some("1") {
                "yes"
            } else {
                "no"
            };
            (
                field("maxmemory_policy").unwrap_or_default(),
                aof.to_string(),
                "INFO",
            )
        }
    };
    if policy != "noeviction" {
        problems.push(Problem {
            node: None,
            setting: "maxmemory-policy".into(),
            found: policy,
            wanted: "noeviction".into(),
            fix: "run `CONFIG SET maxmemory-policy noeviction` and put `maxmemory-policy noeviction` in redis.conf (an evicting Redis deletes queued jobs silently)".into(),
        });
    }
    if aof != "yes" {
        problems.push(Problem {
            node: None,
            setting: "appendonly".into(),
            found: aof,
            wanted: "yes".into(),
            fix: "run `CONFIG SET appendonly yes` and put `appendonly yes` (with `appendfsync everysec`) in redis.conf (without AOF a restart loses every job since the last snapshot)".into(),
        });
    }
    let bytes = |name: &str| field(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (used, max) = (bytes("used_memory"), bytes("maxmemory"));
    let memory_full = (max > 0 && used >= max).then(|| {
        format!("used_memory {used} has reached maxmemory {max}: Redis refuses writes until memory frees")
    });
    Ok(Report {
        version,
        source,
        problems,
        memory_full,
    })
}

fn version_at_least(v: &str, wanted: (u32, u32)) -> bool {
    parse_version(v) >= wanted
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_compare() {
        assert!(super::version_at_least("7.0.15", (7, 0)));
        assert!(super::version_at_least("7.2.4", (7, 0)));
        assert!(!super::version_at_least("6.2.14", (7, 0)));
        assert!(!super::version_at_least("", (7, 0)));
    }
}
