//! The chaos run's own `redis-server`: one port and one data directory for its whole
//! life, so it can be SIGKILLed and started again from its AOF, or SIGSTOPped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::{Error, Result};

/// How the AOF is flushed: `always` (an acknowledged write survives a crash) or
/// `everysec` (up to about a second of acknowledged writes may be lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fsync {
    /// `appendfsync always`.
    Always,
    /// `appendfsync everysec`.
    Everysec,
}

/// A private Redis that faults can be applied to.
pub struct ChaosRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    fsync: Fsync,
}

impl ChaosRedis {
    /// Starts one on a free loopback port with its data in `dir`.
    pub async fn start(dir: &Path, fsync: Fsync) -> Result<ChaosRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Error::Invalid(format!("no free port: {e}")))?;
        let mut me = ChaosRedis {
            child: None,
            port,
            dir: dir.to_path_buf(),
            fsync,
        };
        me.spawn().await?;
        Ok(me)
    }

    /// A handle that only talks to an already running server at `url` (no process).
    pub fn attach(url: &str) -> ChaosRedis {
        let port = url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or(0);
        ChaosRedis {
            child: None,
            port,
            dir: PathBuf::new(),
            fsync: Fsync::Always,
        }
    }

    async fn spawn(&mut self) -> Result<()> {
        let fsync = match self.fsync {
            Fsync::Always => "always",
            Fsync::Everysec => "everysec",
        };
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", fsync])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::Invalid(format!(
                    "cannot start redis-server ({e}). Install it: `sudo apt-get install -y redis-server`"
                ))
            })?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(30)).await
    }

    /// Waits until it answers PING (after a restart: until the AOF is loaded).
    async fn wait_ready(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.cmd(&mut redis::cmd("PING")).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Invalid(format!(
                    "redis-server on port {} did not come up within {limit:?}",
                    self.port
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// SIGKILL: no shutdown, nothing flushed beyond what the fsync policy already did.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and directory (it reloads its AOF).
    pub async fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn().await
    }

    /// SIGSTOP (`stop = true`) or SIGCONT: frozen, connections stay open, nothing answers.
    pub fn freeze(&self, stop: bool) {
        if let Some(pid) = self.pid() {
            let sig = if stop { libc::SIGSTOP } else { libc::SIGCONT };
            // SAFETY: kill(2) on our own child's pid; no memory is shared.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// `CONFIG SET name value`.
    pub async fn config_set(&self, name: &str, value: &str) -> Result<()> {
        self.cmd(redis::cmd("CONFIG").arg("SET").arg(name).arg(value))
            .await
            .map(|_| ())
    }

    /// `used_memory` from `INFO memory`.
    pub async fn used_memory(&self) -> Result<u64> {
        let info = self.cmd(redis::cmd("INFO").arg("memory")).await?;
        let info = match info {
            redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
            redis::Value::VerbatimString { text, .. } => text,
            other => return Err(Error::Invalid(format!("INFO memory: {other:?}"))),
        };
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:")?.trim().parse().ok())
            .ok_or_else(|| Error::Invalid("INFO memory without used_memory".into()))
    }

    /// A fresh connection (the run's faults break long-lived ones).
    pub async fn conn(&self) -> Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        let cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        Ok(client
            .get_multiplexed_async_connection_with_config(&cfg)
            .await?)
    }

    /// One command on a fresh connection.
    pub async fn cmd(&self, cmd: &mut redis::Cmd) -> Result<redis::Value> {
        Ok(cmd.query_async(&mut self.conn().await?).await?)
    }
}

impl Drop for ChaosRedis {
    fn drop(&mut self) {
        self.freeze(false);
        self.kill();
    }
}
