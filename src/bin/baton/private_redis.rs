//! A private `redis-server` for `baton demo` and `baton bench`: a temp dir, a free
//! loopback port, AOF on and `noeviction` (what production needs), removed on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::{Error, Result};

/// A running private server.
pub struct PrivateRedis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Starts one, or says exactly what to install when `redis-server` is missing.
    pub async fn start() -> Result<PrivateRedis> {
        let dir = tempfile::tempdir().map_err(|e| Error::Invalid(format!("temp dir: {e}")))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| Error::Invalid(format!("no free port: {e}")))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "everysec", "--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Error::Invalid(format!(
                    "cannot start redis-server ({e}). Install it: `sudo apt-get install -y redis-server` \
                     (Debian/Ubuntu), `brew install redis` (macOS), or pass --redis-url to use a running Redis"
                ))
            })?;
        let me = PrivateRedis {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = async {
                let c = redis::Client::open(me.url()).ok()?;
                let mut conn = c.get_multiplexed_async_connection().await.ok()?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .ok()
            };
            if ok.await.is_some() {
                return Ok(me);
            }
            if Instant::now() > deadline {
                return Err(Error::Invalid(
                    "redis-server did not come up within 10 s".into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
