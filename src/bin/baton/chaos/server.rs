//! The chaos run's own Redis: one `redis-server`, or a cluster of three masters (no
//! replicas). Each node keeps one port and one data directory for its whole life, so
//! it can be SIGKILLed and started again from its AOF (and, on a cluster, its
//! `nodes.conf`), or SIGSTOPped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::conn::{Connector, RedisConfig, RedisConn};
use baton::{Error, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How the AOF is flushed: `always` (an acknowledged write survives a crash) or
/// `everysec` (up to about a second of acknowledged writes may be lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fsync {
    /// `appendfsync always`.
    Always,
    /// `appendfsync everysec`.
    Everysec,
}

/// One `redis-server` process.
struct Node {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

/// The deployment faults are applied to.
pub struct ChaosRedis {
    nodes: Vec<Node>,
    cluster: bool,
    fsync: Fsync,
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Invalid(format!("no free port: {e}")))
}

impl ChaosRedis {
    /// Starts one server (`cluster = false`) or a three-master cluster, data under `dir`.
    pub async fn start(dir: &Path, fsync: Fsync, cluster: bool) -> Result<ChaosRedis> {
        let mut me = ChaosRedis {
            nodes: Vec::new(),
            cluster,
            fsync,
        };
        for i in 0..if cluster { 3 } else { 1 } {
            let ndir = dir.join(format!("node-{i}"));
            std::fs::create_dir_all(&ndir).map_err(|e| Error::Invalid(format!("{ndir:?}: {e}")))?;
            me.nodes.push(Node {
                child: None,
                port: free_port()?,
                dir: ndir,
            });
        }
        for i in 0..me.nodes.len() {
            me.spawn(i).await?;
        }
        if cluster {
            me.create_cluster().await?;
        }
        Ok(me)
    }

    async fn spawn(&mut self, i: usize) -> Result<()> {
        let fsync = match self.fsync {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
        };
        let n = &self.nodes[i];
        let mut cmd = Command::new("redis-server");
        cmd.args([
            "--port",
            &n.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", fsync])
        .args(["--maxmemory-policy", "noeviction"])
        .arg("--dir")
        .arg(&n.dir);
        if self.cluster {
            cmd.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", "5000"]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::Invalid(format!(
                    "cannot start redis-server ({e}). Install it: `sudo apt-get install -y redis-server`"
                ))
            })?;
        self.nodes[i].child = Some(child);
        self.wait_ready(i, Duration::from_secs(30)).await
    }

    async fn create_cluster(&self) -> Result<()> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["--cluster", "create"])
            .args(self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = cmd.output().map_err(|e| {
            Error::Invalid(format!(
                "redis-cli ({e}) builds the cluster: `sudo apt-get install -y redis-tools`"
            ))
        })?;
        if !out.status.success() {
            return Err(Error::Invalid(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            )));
        }
        self.wait_cluster_ok(Duration::from_secs(30)).await
    }

    /// Waits until every node says `cluster_state:ok` (a no-op for one server).
    pub async fn wait_cluster_ok(&self, limit: Duration) -> Result<()> {
        if !self.cluster {
            return Ok(());
        }
        let deadline = Instant::now() + limit;
        loop {
            let mut ok = true;
            for i in 0..self.nodes.len() {
                let info = self.node_cmd(i, redis::cmd("CLUSTER").arg("INFO")).await;
                ok &= matches!(info, Ok(s) if s.contains("cluster_state:ok"));
            }
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Invalid(
                    "the cluster did not reach cluster_state:ok".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until node `i` answers PING (after a restart: until the AOF is loaded).
    async fn wait_ready(&self, i: usize, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.node_cmd(i, &mut redis::cmd("PING")).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Invalid(format!(
                    "redis-server on port {} did not come up within {limit:?}",
                    self.nodes[i].port
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether it is a cluster.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Node `i`'s address, `127.0.0.1:PORT`.
    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].port)
    }

    /// How clients reach it (the producer and the check: never through the proxy).
    pub fn config(&self) -> RedisConfig {
        if self.cluster {
            RedisConfig::cluster((0..self.len()).map(|i| format!("redis://{}", self.addr(i))))
        } else {
            RedisConfig::url(format!("redis://{}", self.addr(0)))
        }
    }

    /// SIGKILL node `i`: no shutdown, nothing flushed beyond what fsync already did.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again on its port and directory (it reloads its AOF).
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn(i).await?;
        self.wait_cluster_ok(Duration::from_secs(30)).await
    }

    /// Whether node `i` is running.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// SIGSTOP (`stop = true`) or SIGCONT node `i`: connections stay open, nothing answers.
    pub fn freeze(&self, i: usize, stop: bool) {
        if let Some(c) = &self.nodes[i].child {
            let sig = if stop {
                Signal::SIGSTOP
            } else {
                Signal::SIGCONT
            };
            // Our own child, not yet reaped, so its pid is not reused; ESRCH is fine.
            let _ = kill(Pid::from_raw(c.id() as i32), sig);
        }
    }

    /// `CONFIG SET name value` on node `i`.
    pub async fn config_set(&self, i: usize, name: &str, value: &str) -> Result<()> {
        self.node_cmd(i, redis::cmd("CONFIG").arg("SET").arg(name).arg(value))
            .await
            .map(|_| ())
    }

    /// `used_memory` of node `i`.
    pub async fn used_memory(&self, i: usize) -> Result<u64> {
        let info = self.node_cmd(i, redis::cmd("INFO").arg("memory")).await?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:")?.trim().parse().ok())
            .ok_or_else(|| Error::Invalid("INFO memory without used_memory".into()))
    }

    /// A fresh connection to node `i` alone.
    pub async fn node_conn(&self, i: usize) -> Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(format!("redis://{}", self.addr(i)))?;
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        Ok(client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?)
    }

    /// One command on node `i`, its reply as text.
    pub async fn node_cmd(&self, i: usize, cmd: &mut redis::Cmd) -> Result<String> {
        let v: redis::Value = cmd.query_async(&mut self.node_conn(i).await?).await?;
        Ok(match v {
            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            redis::Value::VerbatimString { text, .. } => text,
            redis::Value::SimpleString(s) => s,
            redis::Value::Okay => "OK".into(),
            other => format!("{other:?}"),
        })
    }

    /// A fresh connection that routes by key (a cluster connection on a cluster).
    pub async fn conn(&self) -> Result<RedisConn> {
        Connector::new(self.config())?
            .connect(Duration::from_secs(5))
            .await
    }
}

/// Talks to the deployment without owning its processes (for tasks of their own).
pub struct Probe {
    cfg: RedisConfig,
}

impl Probe {
    /// A probe for `cfg`.
    pub fn new(cfg: RedisConfig) -> Probe {
        Probe { cfg }
    }

    /// A fresh connection that routes by key.
    pub async fn conn(&self) -> Result<RedisConn> {
        Connector::new(self.cfg.clone())?
            .connect(Duration::from_secs(5))
            .await
    }
}

impl Drop for ChaosRedis {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.freeze(i, false);
            self.kill(i);
        }
    }
}
