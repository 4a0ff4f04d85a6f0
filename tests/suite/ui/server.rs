//! `baton serve` as a child process for the dashboard tests.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{baton_bin, free_port, ChildGuard};

/// A running `baton serve`; killed on drop.
pub struct Serve {
    _child: ChildGuard,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Serve {
    /// `baton serve` on a free loopback port over `redis`, with `env` (tokens) and
    /// `args` (`--read-only`); returns once `/healthz` answers.
    pub async fn start(redis: &str, env: &[(&str, &str)], args: &[&str]) -> Serve {
        Serve::start_with(&["--redis-url".to_string(), redis.to_string()], env, args).await
    }

    /// `baton serve` with connection arguments `conn` (`--cluster-nodes a,b,c`).
    pub async fn start_with(conn: &[String], env: &[(&str, &str)], args: &[&str]) -> Serve {
        let port = free_port();
        let mut cmd = Command::new(baton_bin());
        cmd.args(conn)
            .args(["serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env_remove("BATON_API_TOKEN")
            .env_remove("BATON_API_READ_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = ChildGuard(cmd.spawn().expect("start baton serve"));
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let http = reqwest::Client::new();
        while !http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "baton serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Serve {
            _child: child,
            base,
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
