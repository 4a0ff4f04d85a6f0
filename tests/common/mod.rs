//! Test support: real `redis-server` processes on free ports in temp dirs, and waiting
//! on conditions with deadlines instead of sleeping.
#![allow(dead_code)]

mod stored;
pub use stored::*;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A private redis-server. Killed on drop.
pub struct RedisServer {
    pub port: u16,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

/// A free loopback port (bind to 0, read it, release it); never 6379 (a developer's own
/// Redis), and never one this process handed out before, so two servers that one test
/// starts at once cannot be given the same port. (Another test process may still take
/// it before it is used: the spawners retry on a new port when the server cannot bind.)
pub fn free_port() -> u16 {
    static GIVEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..10_000 {
        let p = TcpListener::bind("127.0.0.1:0")
            .expect("bind a loopback port")
            .local_addr()
            .unwrap()
            .port();
        if p != 6379 && given.insert(p) {
            return p;
        }
    }
    panic!("no free loopback port left that this process has not handed out already");
}

/// The Debian package that provides `program`, for the install line of a missing one.
fn package_of(program: &str) -> &str {
    match program {
        "redis-cli" => "redis-tools",
        "promtool" => "prometheus",
        "unshare" => "util-linux",
        "chromedriver" => "chromium-driver",
        other => other,
    }
}

/// The error for a prerequisite that is not installed: a test without it must fail, not
/// pass having checked nothing.
pub fn missing_program(program: &str) -> ! {
    panic!(
        "{program} not found: install it with `sudo apt-get install -y {}`",
        package_of(program)
    )
}

/// Panics (see [`missing_program`]) unless `program` is an executable file on `PATH`;
/// returns its path.
pub fn require_program(program: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| missing_program(program))
}

/// `Command::spawn` that names the install line when the program is missing.
pub fn spawn_program(cmd: &mut Command) -> Child {
    match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            missing_program(&cmd.get_program().to_string_lossy())
        }
        Err(e) => panic!("spawn {:?}: {e}", cmd.get_program()),
    }
}

impl RedisServer {
    /// A durable server: AOF on, fsync every second, noeviction.
    pub fn start() -> RedisServer {
        Self::start_with(&[
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--maxmemory-policy",
            "noeviction",
        ])
    }

    /// A server with the given extra arguments (e.g. a deliberately wrong config).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RedisServer {
            port: 0,
            dir,
            args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
        };
        // A server that cannot start (another test process took the port in between)
        // is tried again on another port, never on the same one.
        for _ in 0..20 {
            if s.try_spawn_on(free_port()) {
                return s;
            }
        }
        panic!("redis-server did not start on any of 20 ports");
    }

    /// Starts the server on `port` (a restart: it must be this port), retrying while the
    /// old one's port lingers.
    fn spawn_on(&mut self, port: u16) {
        for _ in 0..20 {
            if self.try_spawn_on(port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {port}");
    }

    fn try_spawn_on(&mut self, port: u16) -> bool {
        let child = spawn_program(
            Command::new("redis-server")
                .arg("--port")
                .arg(port.to_string())
                .arg("--bind")
                .arg("127.0.0.1")
                .arg("--dir")
                .arg(self.dir.path())
                .arg("--save")
                .arg("")
                .args(&self.args)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        self.child = Some(child);
        self.port = port;
        if self.wait_ready(Duration::from_secs(10)) {
            return true;
        }
        self.kill();
        false
    }

    /// True once the server answers, and it is ours (not another test's server that took
    /// the port in the meantime).
    fn wait_ready(&mut self, limit: Duration) -> bool {
        let Some(pid) = self.child.as_ref().map(|c| c.id().to_string()) else {
            return false;
        };
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            if let Ok(c) = redis::Client::open(self.url()) {
                if let Ok(mut conn) = c.get_connection_with_timeout(Duration::from_millis(200)) {
                    if let Ok(info) = redis::cmd("INFO").arg("server").query::<String>(&mut conn) {
                        let answering = info.lines().find_map(|l| l.strip_prefix("process_id:"));
                        // PING also waits out the loading of the AOF (INFO does not).
                        if answering.map(str::trim) == Some(pid.as_str())
                            && redis::cmd("PING").query::<String>(&mut conn).is_ok()
                        {
                            return true;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server (nothing flushed beyond what AOF already has).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and dir (AOF replayed).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn_on(port);
    }

    /// A synchronous connection for assertions.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// (used_cpu_user + used_cpu_sys) in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let info: String = redis::cmd("INFO")
            .arg("cpu")
            .query(&mut self.conn())
            .unwrap();
        let get = |k: &str| -> f64 {
            info.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':')?.trim().parse().ok())
                .unwrap_or(0.0)
        };
        get("used_cpu_user") + get("used_cpu_sys")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `cond` until it is true or `limit` passes; panics with `what` on timeout.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The path of the built `baton` binary.
pub fn baton_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_baton"))
}

/// Sends `sig` to `pid`.
pub fn signal(pid: u32, sig: i32) {
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

impl RedisServer {
    /// The server's pid (for SIGSTOP/SIGCONT chaos).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Stops the server cleanly (SIGTERM: the AOF is flushed) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), libc::SIGTERM);
            let _ = c.wait();
        }
    }

    /// Starts a stopped server again on the same port and dir.
    pub fn start_again(&mut self) {
        let port = self.port;
        self.spawn_on(port);
    }
}

/// A child process that is SIGKILLed when dropped, so a failing test leaks no worker.
pub struct ChildGuard(pub Child);

impl std::ops::Deref for ChildGuard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// This test binary run again as a child process running one named test, with `env`.
/// The child test checks `BATON_CHILD` and does its part; the parent kills it at will.
pub fn spawn_child_test(test_name: &str, env: &[(&str, String)]) -> ChildGuard {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.arg("--exact")
        .arg(test_name)
        .arg("--nocapture")
        .arg("--test-threads=1");
    cmd.env("BATON_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    ChildGuard(cmd.spawn().unwrap())
}

/// A worker running in a task of this test.
pub struct Running {
    /// Its shutdown handle.
    pub handle: baton::ShutdownHandle,
    task: tokio::task::JoinHandle<baton::Result<()>>,
}

/// Runs `worker` in a task.
pub fn start(worker: baton::Worker) -> Running {
    Running {
        handle: worker.shutdown_handle(),
        task: tokio::spawn(worker.run()),
    }
}

impl Running {
    /// Shuts the worker down gracefully and waits until it has stopped cleanly.
    pub async fn stop(self) {
        self.handle.shutdown();
        self.task
            .await
            .expect("worker task")
            .expect("worker ran cleanly");
    }

    /// True once the worker's run has returned.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_never_hands_out_a_port_twice() {
        let mut seen = BTreeSet::new();
        for _ in 0..2000 {
            let p = free_port();
            assert!(seen.insert(p), "port {p} handed out twice");
            assert_ne!(p, 6379);
        }
    }

    #[test]
    #[should_panic(
        expected = "baton-no-such-program not found: install it with `sudo apt-get install -y"
    )]
    fn a_missing_program_fails_the_test() {
        require_program("baton-no-such-program");
    }

    #[test]
    fn a_present_program_is_found() {
        assert!(require_program("sh").is_file());
    }
}
