//! Production Redis topologies as test fixtures, built from real `redis-server` processes on
//! loopback in temp dirs (no Docker):
//!
//! * [`TlsRedis`]: one TLS-only server (optionally requiring client certificates) with an ACL
//!   user and the `default` user off; certificates made with rcgen ([`TlsMaterial`]).
//! * [`SentinelSet`]: a master, one replica and three sentinels.
//! * [`RedisCluster`]: N masters (3 or more) with R replicas each (usually 0 or 1), plain or TLS.
//!
//! Every data node is durable (`appendonly yes`, `maxmemory-policy noeviction`). Every process
//! is SIGKILLed when its fixture drops (also while a panicking test unwinds, also when a
//! constructor panics half way). Every wait polls a condition against a deadline and panics
//! with a diagnosis (and the tail of the relevant server logs) when the deadline passes.
//!
//! The fixtures drive the servers with `redis-cli` (the same code path for TLS and plain,
//! no client-library state), every call bounded by a timeout so a SIGSTOPped node cannot hang
//! a test. Constructors and queries are blocking (call them before starting workers or from
//! any thread); the long waits that run while the code under test is busy
//! ([`SentinelSet::wait_for_failover`], [`RedisCluster::wait_for_failover_of`]) are async
//! and never block the runtime.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The ACL user that [`TlsRedis`] creates (the `default` user is off).
pub const ACL_USER: &str = "baton";
/// Its password.
pub const ACL_PASS: &str = "s3cret";

/// Durability settings every data node gets.
const DURABLE: [&str; 8] = [
    "--appendonly",
    "yes",
    "--appendfsync",
    "everysec",
    "--maxmemory-policy",
    "noeviction",
    "--save",
    "",
];

/// How long one `redis-cli` call may take before it is killed.
const CLI_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one process gets to answer after it was spawned.
const SPAWN_LIMIT: Duration = Duration::from_secs(10);

/// A free loopback port, never one handed out before in this process (never 6379).
pub use crate::common::free_port;
use crate::common::{missing_program, spawn_program};

/// Installs rustls' ring crypto provider for this process (redis-rs brings rustls without
/// one). Idempotent: an already installed provider is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// ---------------------------------------------------------------------------------------
// redis-cli
// ---------------------------------------------------------------------------------------

/// TLS settings for `redis-cli`.
#[derive(Clone, Debug)]
pub struct CliTls {
    pub ca_cert: PathBuf,
    /// (certificate, key) presented to the server, for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// How to reach a set of servers with `redis-cli`: TLS and credentials.
#[derive(Clone, Debug, Default)]
pub struct Cli {
    pub tls: Option<CliTls>,
    /// ACL user (needs `pass`).
    pub user: Option<String>,
    pub pass: Option<String>,
}

impl Cli {
    /// Plain TCP, no auth.
    pub fn plain() -> Cli {
        Cli::default()
    }

    /// Plain TCP with `AUTH pass` (the `requirepass` style).
    pub fn with_pass(pass: &str) -> Cli {
        Cli {
            pass: Some(pass.to_string()),
            ..Cli::default()
        }
    }

    fn argv(&self, port: u16, args: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "-h".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        v.extend(self.conn_args());
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// The TLS and auth arguments.
    pub fn conn_args(&self) -> Vec<String> {
        let mut v: Vec<String> = vec!["--no-auth-warning".into()];
        if let Some(tls) = &self.tls {
            v.push("--tls".into());
            v.push("--cacert".into());
            v.push(tls.ca_cert.display().to_string());
            if let Some((cert, key)) = &tls.client {
                v.push("--cert".into());
                v.push(cert.display().to_string());
                v.push("--key".into());
                v.push(key.display().to_string());
            }
        }
        if let Some(u) = &self.user {
            v.push("--user".into());
            v.push(u.clone());
        }
        if let Some(p) = &self.pass {
            v.push("--pass".into());
            v.push(p.clone());
        }
        v
    }

    /// Runs one command against `127.0.0.1:port`. `Ok(stdout)` when redis-cli got an answer
    /// (an error *reply* is `Ok("ERR ...")`: redis-cli exits 0 for those); `Err` when it could
    /// not connect or took longer than a few seconds (it is then killed).
    pub fn run(&self, port: u16, args: &[&str]) -> Result<String, String> {
        self.run_argv(self.argv(port, args))
    }

    /// `redis-cli` with exactly these arguments (plus TLS and auth), e.g. `--cluster create`.
    pub fn run_argv(&self, argv: Vec<String>) -> Result<String, String> {
        self.run_argv_timeout(argv, CLI_TIMEOUT)
    }

    fn run_argv_timeout(&self, argv: Vec<String>, limit: Duration) -> Result<String, String> {
        let child = match Command::new("redis-cli")
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => missing_program("redis-cli"),
            Err(e) => return Err(format!("redis-cli: {e}")),
        };
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(limit) {
            Ok(out) => out,
            Err(_) => {
                // The waiting thread still owns the (unreaped) child, so the pid is still ours.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
                let _ = rx.recv();
                return Err(format!("redis-cli {argv:?} timed out after {limit:?}"));
            }
        }
        .map_err(|e| format!("redis-cli: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "redis-cli {:?} failed ({}): {} {}",
                argv,
                out.status,
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// [`Cli::run`] without blocking the async runtime.
    pub async fn run_async(&self, port: u16, args: &[&str]) -> Result<String, String> {
        let argv = self.argv(port, args);
        let fut = tokio::process::Command::new("redis-cli")
            .args(&argv)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(CLI_TIMEOUT, fut).await {
            Err(_) => Err(format!("redis-cli on port {port} timed out")),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => missing_program("redis-cli"),
            Ok(Err(e)) => Err(format!("redis-cli: {e}")),
            Ok(Ok(out)) if out.status.success() => {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            }
            Ok(Ok(out)) => Err(format!(
                "redis-cli on port {port} failed: {}{}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// True when the server on `port` answers PING with PONG.
    pub fn ping(&self, port: u16) -> bool {
        matches!(self.run(port, &["PING"]), Ok(s) if s.trim() == "PONG")
    }

    /// One field of `INFO section` (None when unreachable or absent).
    pub fn info_field(&self, port: u16, section: &str, field: &str) -> Option<String> {
        info_field(&self.run(port, &["INFO", section]).ok()?, field)
    }
}

/// `field:value` from an INFO (or CLUSTER INFO) text.
pub fn info_field(info: &str, field: &str) -> Option<String> {
    info.lines().find_map(|l| {
        l.trim()
            .strip_prefix(field)?
            .strip_prefix(':')
            .map(|v| v.trim().to_string())
    })
}

/// Alternating key/value lines (how redis-cli prints a RESP2 map) as a map.
fn kv_lines(s: &str) -> BTreeMap<String, String> {
    let lines: Vec<&str> = s.lines().map(str::trim).collect();
    lines
        .chunks(2)
        .filter(|c| c.len() == 2)
        .map(|c| (c[0].to_string(), c[1].to_string()))
        .collect()
}

/// The last `n` lines of a log file (for panic messages).
fn log_tail(path: &Path, n: usize) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Polls `cond` every `every` until it returns `Ok`; after `limit` panics with `what` and the
/// last `Err` (the diagnosis).
fn poll<T>(
    limit: Duration,
    every: Duration,
    what: &str,
    mut cond: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match cond() {
            Ok(t) => return t,
            Err(e) if Instant::now() > deadline => {
                panic!("timed out after {limit:?} waiting for {what}: {e}")
            }
            Err(_) => std::thread::sleep(every),
        }
    }
}

// ---------------------------------------------------------------------------------------
// One server process
// ---------------------------------------------------------------------------------------

/// One `redis-server` (data node or sentinel). SIGKILLed on drop.
pub struct Proc {
    pub port: u16,
    /// This process's own directory (AOF, nodes.conf, sentinel.conf, log).
    pub dir: PathBuf,
    pub log: PathBuf,
    argv: Vec<String>,
    child: Option<Child>,
    cli: Cli,
}

impl Proc {
    /// Starts `redis-server make_argv(port)` on a free port in `dir` and waits until it
    /// answers through `cli`; when it exits early (the port was taken in the meantime)
    /// it is retried on another port. `make_argv` must put `--logfile` at `dir/redis.log`
    /// (or the config file must).
    fn start(dir: PathBuf, cli: Cli, mut make_argv: impl FnMut(u16) -> Vec<String>) -> Proc {
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("redis.log");
        let mut p = Proc {
            port: 0,
            dir,
            log,
            argv: vec![],
            child: None,
            cli,
        };
        for _ in 0..20 {
            let port = free_port();
            p.port = port;
            p.argv = make_argv(port);
            if p.spawn() {
                return p;
            }
        }
        panic!(
            "redis-server would not start in {}: {}",
            p.dir.display(),
            log_tail(&p.log, 20)
        );
    }

    /// Spawns the process with the stored argv; true once it answers (INFO reports its pid).
    fn spawn(&mut self) -> bool {
        self.kill();
        let child = spawn_program(
            Command::new("redis-server")
                .args(&self.argv)
                .current_dir(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        self.child = Some(child);
        let deadline = Instant::now() + SPAWN_LIMIT;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            // Our process, not another test's server that took the port in the meantime.
            let pid = self.child.as_ref().map(|c| c.id().to_string());
            if pid.is_some() && self.cli.info_field(self.port, "server", "process_id") == pid {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("process is running").id()
    }

    /// SIGKILL (only what the AOF already has survives) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again: same port, same dir, same arguments.
    pub fn restart(&mut self) {
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            // The port may linger for a moment after the kill; try again shortly.
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "redis-server would not restart on port {}: {}",
            self.port,
            log_tail(&self.log, 20)
        );
    }

    pub fn log_tail(&self, n: usize) -> String {
        log_tail(&self.log, n)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The arguments every data node gets: loopback, its dir, its log, durability.
fn data_node_argv(dir: &Path) -> Vec<String> {
    let mut v = strings(&["--bind", "127.0.0.1", "--dir"]);
    v.push(dir.display().to_string());
    v.push("--logfile".into());
    v.push(dir.join("redis.log").display().to_string());
    v.extend(strings(&DURABLE));
    // A replica's full sync starts at once (the default waits 5 s for more replicas).
    v.extend(strings(&["--repl-diskless-sync-delay", "0"]));
    v
}

// ---------------------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------------------

/// PEM files made with rcgen: a CA, a server certificate for `127.0.0.1`/`localhost` and a
/// client certificate signed by it, and an unrelated second CA with its own client
/// certificate (for wrong-CA tests).
#[derive(Clone, Debug)]
pub struct TlsMaterial {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing the servers use.
    pub other_ca_cert: PathBuf,
    /// A client certificate signed by `other_ca_cert` (a server must refuse it).
    pub other_client_cert: PathBuf,
    pub other_client_key: PathBuf,
}

impl TlsMaterial {
    /// Generates everything and writes it into `dir`.
    pub fn generate(dir: &Path) -> TlsMaterial {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        std::fs::create_dir_all(dir).unwrap();
        let write = |name: &str, pem: String| {
            let p = dir.join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let ca = |cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, cn);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let cert = params.self_signed(&key).unwrap();
            (cert, key)
        };
        let leaf = |cn: &str,
                    sans: Vec<String>,
                    ekus: Vec<ExtendedKeyUsagePurpose>,
                    issuer: &(rcgen::Certificate, KeyPair)| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(sans).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = ekus;
            let cert = params.signed_by(&key, &issuer.0, &issuer.1).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let main_ca = ca("baton test CA");
        let other_ca = ca("baton unrelated CA");
        // The server certificate is also the one the nodes present to each other (cluster bus,
        // replication over TLS), so it is good for client auth too.
        let (server_cert, server_key) = leaf(
            "127.0.0.1",
            vec!["127.0.0.1".into(), "localhost".into()],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            &main_ca,
        );
        let (client_cert, client_key) = leaf(
            "baton-client",
            vec![],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            &main_ca,
        );
        let (other_client_cert, other_client_key) = leaf(
            "stranger",
            vec![],
            vec![ExtendedKeyUsagePurpose::ClientAuth],
            &other_ca,
        );
        TlsMaterial {
            ca_cert: write("ca.crt", main_ca.0.pem()),
            server_cert: write("server.crt", server_cert),
            server_key: write("server.key", server_key),
            client_cert: write("client.crt", client_cert),
            client_key: write("client.key", client_key),
            other_ca_cert: write("other-ca.crt", other_ca.0.pem()),
            other_client_cert: write("other-client.crt", other_client_cert),
            other_client_key: write("other-client.key", other_client_key),
        }
    }

    /// The server-side TLS arguments (`--tls-port` is the caller's).
    pub fn server_args(&self, require_client_cert: bool) -> Vec<String> {
        vec![
            "--tls-cert-file".into(),
            self.server_cert.display().to_string(),
            "--tls-key-file".into(),
            self.server_key.display().to_string(),
            "--tls-ca-cert-file".into(),
            self.ca_cert.display().to_string(),
            "--tls-auth-clients".into(),
            if require_client_cert {
                "yes"
            } else {
                "optional"
            }
            .into(),
        ]
    }

    /// redis-cli settings trusting our CA, presenting the client certificate if `mutual`.
    pub fn cli_tls(&self, mutual: bool) -> CliTls {
        CliTls {
            ca_cert: self.ca_cert.clone(),
            client: mutual.then(|| (self.client_cert.clone(), self.client_key.clone())),
        }
    }

    /// For `redis::Client::build_with_tls`: trusts our CA; presents the client certificate
    /// when `with_client_cert`.
    pub fn certificates(&self, with_client_cert: bool) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: with_client_cert.then(|| redis::ClientTlsConfig {
                client_cert: std::fs::read(&self.client_cert).unwrap(),
                client_key: std::fs::read(&self.client_key).unwrap(),
            }),
            root_cert: Some(std::fs::read(&self.ca_cert).unwrap()),
        }
    }

    /// Trusts the unrelated CA only (connecting must fail).
    pub fn wrong_ca_certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(std::fs::read(&self.other_ca_cert).unwrap()),
        }
    }

    /// Trusts our CA but presents a client certificate signed by the unrelated CA.
    pub fn foreign_client_certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: std::fs::read(&self.other_client_cert).unwrap(),
                client_key: std::fs::read(&self.other_client_key).unwrap(),
            }),
            root_cert: Some(std::fs::read(&self.ca_cert).unwrap()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// TlsRedis
// ---------------------------------------------------------------------------------------

/// Options for [`TlsRedis::start_with`].
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// `tls-auth-clients yes` (mutual TLS) instead of `optional`.
    pub require_client_cert: bool,
    /// More `redis-server` arguments, e.g. `["--maxmemory", "10mb"]`.
    pub extra_args: Vec<String>,
}

/// A TLS-only redis-server (`--port 0`) with the ACL user `baton`/`s3cret` and the `default`
/// user off. Killed on drop.
pub struct TlsRedis {
    /// The TLS port.
    pub port: u16,
    pub ca_cert: PathBuf,
    pub other_ca_cert: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub tls: TlsMaterial,
    pub require_client_cert: bool,
    proc: Proc,
    cli: Cli,
    dir: tempfile::TempDir,
}

impl TlsRedis {
    /// TLS with optional client certificates.
    pub fn start() -> TlsRedis {
        Self::start_with(TlsOptions::default())
    }

    /// Mutual TLS: clients must present a certificate signed by the CA.
    pub fn start_mutual() -> TlsRedis {
        Self::start_with(TlsOptions {
            require_client_cert: true,
            ..TlsOptions::default()
        })
    }

    pub fn start_with(opts: TlsOptions) -> TlsRedis {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsMaterial::generate(&dir.path().join("tls"));
        let cli = Cli {
            tls: Some(tls.cli_tls(opts.require_client_cert)),
            user: Some(ACL_USER.into()),
            pass: Some(ACL_PASS.into()),
        };
        let node_dir = dir.path().join("node");
        let proc = Proc::start(node_dir.clone(), cli.clone(), |port| {
            let mut v = strings(&["--port", "0", "--tls-port"]);
            v.push(port.to_string());
            v.extend(data_node_argv(&node_dir));
            v.extend(tls.server_args(opts.require_client_cert));
            v.extend(strings(&[
                "--user",
                ACL_USER,
                "on",
                &format!(">{ACL_PASS}"),
                "~*",
                "&*",
                "+@all",
                "--user",
                "default",
                "off",
            ]));
            v.extend(opts.extra_args.iter().cloned());
            v
        });
        TlsRedis {
            port: proc.port,
            ca_cert: tls.ca_cert.clone(),
            other_ca_cert: tls.other_ca_cert.clone(),
            client_cert: tls.client_cert.clone(),
            client_key: tls.client_key.clone(),
            tls,
            require_client_cert: opts.require_client_cert,
            proc,
            cli,
            dir,
        }
    }

    /// `rediss://baton:s3cret@127.0.0.1:P/0`.
    pub fn url(&self) -> String {
        format!("rediss://{ACL_USER}:{ACL_PASS}@127.0.0.1:{}/0", self.port)
    }

    /// `rediss://127.0.0.1:P/0` (no credentials: the server must refuse commands).
    pub fn url_without_auth(&self) -> String {
        format!("rediss://127.0.0.1:{}/0", self.port)
    }

    /// For `redis::Client::build_with_tls`: our CA, plus the client cert if `with_client_cert`.
    pub fn certificates(&self, with_client_cert: bool) -> redis::TlsCertificates {
        self.tls.certificates(with_client_cert)
    }

    /// A redis client for `url()` trusting our CA (with the client certificate when the
    /// server requires one). Installs the crypto provider.
    pub fn client(&self) -> redis::Client {
        install_crypto_provider();
        redis::Client::build_with_tls(self.url(), self.certificates(self.require_client_cert))
            .unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// redis-cli settings that reach this server (TLS, ACL user, client cert if required).
    pub fn cli(&self) -> &Cli {
        &self.cli
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Starts it again on the same port and dir (AOF replayed).
    pub fn restart(&mut self) {
        self.proc.restart();
    }

    pub fn data_dir(&self) -> &Path {
        &self.proc.dir
    }

    pub fn log_tail(&self, n: usize) -> String {
        self.proc.log_tail(n)
    }
}

// ---------------------------------------------------------------------------------------
// Sentinel
// ---------------------------------------------------------------------------------------

/// Options for [`SentinelSet::start_with`].
#[derive(Clone, Debug)]
pub struct SentinelOptions {
    pub master_name: String,
    /// `requirepass`/`masterauth` on the data nodes and `sentinel auth-pass` on the sentinels.
    pub data_password: Option<String>,
    /// `requirepass` on the sentinels themselves (they also use it with each other).
    pub sentinel_password: Option<String>,
    pub down_after: Duration,
    pub failover_timeout: Duration,
    /// More `redis-server` arguments for the data nodes.
    pub extra_args: Vec<String>,
}

impl Default for SentinelOptions {
    fn default() -> Self {
        SentinelOptions {
            master_name: "baton-master".into(),
            data_password: None,
            sentinel_password: None,
            down_after: Duration::from_millis(1000),
            failover_timeout: Duration::from_millis(5000),
            extra_args: vec![],
        }
    }
}

/// A master, one replica of it, and three sentinels monitoring it with quorum 2.
/// Killed on drop.
pub struct SentinelSet {
    pub opts: SentinelOptions,
    /// [initial master, initial replica].
    data: Vec<Proc>,
    sentinels: Vec<Proc>,
    data_cli: Cli,
    sentinel_cli: Cli,
    dir: tempfile::TempDir,
}

impl SentinelSet {
    pub fn start() -> SentinelSet {
        Self::start_with(SentinelOptions::default())
    }

    pub fn start_with(opts: SentinelOptions) -> SentinelSet {
        let dir = tempfile::tempdir().unwrap();
        let data_cli = match &opts.data_password {
            Some(p) => Cli::with_pass(p),
            None => Cli::plain(),
        };
        let sentinel_cli = match &opts.sentinel_password {
            Some(p) => Cli::with_pass(p),
            None => Cli::plain(),
        };
        let data_args = |node_dir: &Path, port: u16| {
            let mut v = vec!["--port".to_string(), port.to_string()];
            v.extend(data_node_argv(node_dir));
            if let Some(p) = &opts.data_password {
                v.extend(strings(&["--requirepass", p, "--masterauth", p]));
            }
            v.extend(opts.extra_args.iter().cloned());
            v
        };
        let master_dir = dir.path().join("data-0");
        let master = Proc::start(master_dir.clone(), data_cli.clone(), |port| {
            data_args(&master_dir, port)
        });
        let master_port = master.port;
        let replica_dir = dir.path().join("data-1");
        let replica = Proc::start(replica_dir.clone(), data_cli.clone(), |port| {
            let mut v = data_args(&replica_dir, port);
            v.extend(strings(&[
                "--replicaof",
                "127.0.0.1",
                &master_port.to_string(),
            ]));
            v
        });
        let replica_port = replica.port;
        // Sentinels read the replica list from the master's INFO: start them once it is there.
        poll(
            Duration::from_secs(10),
            Duration::from_millis(10),
            "the replica in sync",
            || match data_cli.info_field(replica_port, "replication", "master_link_status") {
                Some(s) if s == "up" => Ok(()),
                other => Err(format!("link {other:?}; log: {}", replica.log_tail(10))),
            },
        );
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let sdir = dir.path().join(format!("sentinel-{i}"));
            let conf = sdir.join("sentinel.conf");
            let o = &opts;
            let s = Proc::start(sdir.clone(), sentinel_cli.clone(), |port| {
                let name = &o.master_name;
                let mut c = format!(
                    "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {}\nlogfile {}\n\
                     sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {name} {}\n\
                     sentinel failover-timeout {name} {}\n\
                     sentinel parallel-syncs {name} 1\n",
                    sdir.display(),
                    sdir.join("redis.log").display(),
                    o.down_after.as_millis(),
                    o.failover_timeout.as_millis(),
                );
                if let Some(p) = &o.data_password {
                    c.push_str(&format!("sentinel auth-pass {name} {p}\n"));
                }
                if let Some(p) = &o.sentinel_password {
                    c.push_str(&format!("requirepass {p}\n"));
                }
                std::fs::write(&conf, c).unwrap();
                vec![conf.display().to_string(), "--sentinel".into()]
            });
            sentinels.push(s);
        }
        let set = SentinelSet {
            opts,
            data: vec![master, replica],
            sentinels,
            data_cli,
            sentinel_cli,
            dir,
        };
        set.wait_sentinels_ready(Duration::from_secs(20));
        set
    }

    /// Each sentinel sees the master up, knows the replica (connected, link up) and the two
    /// other sentinels.
    fn wait_sentinels_ready(&self, limit: Duration) {
        let replica_port = self.data[1].port.to_string();
        let name = self.opts.master_name.clone();
        poll(limit, Duration::from_millis(20), "sentinels ready", || {
            for s in &self.sentinels {
                let m = kv_lines(
                    &self
                        .sentinel_cli
                        .run(s.port, &["SENTINEL", "MASTER", &name])?,
                );
                if m.get("flags").map(String::as_str) != Some("master")
                    || m.get("num-other-sentinels").map(String::as_str) != Some("2")
                {
                    return Err(format!("sentinel {}: {m:?}", s.port));
                }
                let r = kv_lines(
                    &self
                        .sentinel_cli
                        .run(s.port, &["SENTINEL", "REPLICAS", &name])?,
                );
                if r.get("port") != Some(&replica_port)
                    || r.get("flags").map(String::as_str) != Some("slave")
                    || r.get("master-link-status").map(String::as_str) != Some("ok")
                {
                    return Err(format!("sentinel {} replicas: {r:?}", s.port));
                }
            }
            Ok(())
        });
    }

    pub fn master_name(&self) -> &str {
        &self.opts.master_name
    }

    /// `["127.0.0.1:P", ...]` of the three sentinels.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|s| s.port).collect()
    }

    /// `redis://[:sentinel-password@]127.0.0.1:P` of the three sentinels.
    pub fn sentinel_urls(&self) -> Vec<String> {
        let auth = self
            .opts
            .sentinel_password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        self.sentinels
            .iter()
            .map(|s| format!("redis://{auth}127.0.0.1:{}", s.port))
            .collect()
    }

    /// Ports of the data nodes (initial master first), running or not.
    pub fn data_ports(&self) -> Vec<u16> {
        self.data.iter().map(|d| d.port).collect()
    }

    /// The master's port as the first answering sentinel reports it.
    pub fn master_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|s| self.master_port_per(s.port))
            .expect("no sentinel answered get-master-addr-by-name")
    }

    fn master_port_per(&self, sentinel: u16) -> Option<u16> {
        let out = self
            .sentinel_cli
            .run(
                sentinel,
                &[
                    "SENTINEL",
                    "GET-MASTER-ADDR-BY-NAME",
                    &self.opts.master_name,
                ],
            )
            .ok()?;
        parse_master_addr(&out)
    }

    /// `redis://[:password@]127.0.0.1:P` of the current master.
    pub fn master_url(&self) -> String {
        self.data_url(self.master_port())
    }

    /// `redis://[:password@]127.0.0.1:P` of a data node.
    pub fn data_url(&self, port: u16) -> String {
        let auth = self
            .opts
            .data_password
            .as_ref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        format!("redis://{auth}127.0.0.1:{port}")
    }

    /// SIGKILLs the data node that is currently master; returns its port.
    pub fn kill_master(&mut self) -> u16 {
        let port = self.master_port();
        self.kill_data_node(port);
        port
    }

    /// SIGKILLs a data node by port.
    pub fn kill_data_node(&mut self, port: u16) {
        self.data
            .iter_mut()
            .find(|d| d.port == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
            .kill();
    }

    /// Starts a killed data node again on its port (sentinels turn an old master into a
    /// replica of the new one).
    pub fn restart_data_node(&mut self, port: u16) {
        self.data
            .iter_mut()
            .find(|d| d.port == port)
            .unwrap_or_else(|| panic!("no data node on port {port}"))
            .restart();
    }

    /// PID of a data node.
    pub fn data_pid(&self, port: u16) -> u32 {
        self.data.iter().find(|d| d.port == port).unwrap().pid()
    }

    /// Waits until every sentinel reports a master other than `old_port` (the same one) and
    /// that node says `role:master`; returns its port. Panics after `limit`.
    pub async fn wait_for_failover(&self, old_port: u16, limit: Duration) -> u16 {
        let deadline = Instant::now() + limit;
        let name = self.opts.master_name.clone();
        let mut last: String;
        loop {
            let mut seen = Vec::new();
            for s in &self.sentinels {
                let out = self
                    .sentinel_cli
                    .run_async(s.port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &name])
                    .await;
                seen.push(out.ok().as_deref().and_then(parse_master_addr));
            }
            match seen.first() {
                Some(Some(p)) if *p != old_port && seen.iter().all(|x| *x == Some(*p)) => {
                    let role = self
                        .data_cli
                        .run_async(*p, &["INFO", "replication"])
                        .await
                        .ok()
                        .and_then(|i| info_field(&i, "role"));
                    if role.as_deref() == Some("master") {
                        return *p;
                    }
                    last = format!("sentinels agree on {p}, its role is {role:?}");
                }
                _ => last = format!("sentinels report {seen:?}"),
            }
            if Instant::now() > deadline {
                panic!(
                    "no failover away from {old_port} within {limit:?}: {last}\n{}",
                    self.sentinel_logs(15)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// redis-cli settings for the data nodes / for the sentinels.
    pub fn data_cli(&self) -> &Cli {
        &self.data_cli
    }

    pub fn sentinel_cli(&self) -> &Cli {
        &self.sentinel_cli
    }

    /// The tail of every sentinel's log (for diagnoses).
    pub fn sentinel_logs(&self, n: usize) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("--- sentinel {} ---\n{}", s.port, s.log_tail(n)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn parse_master_addr(out: &str) -> Option<u16> {
    let mut l = out.lines().map(str::trim).filter(|l| !l.is_empty());
    let _ip = l.next()?;
    l.next()?.parse().ok()
}

// ---------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------

/// Options for [`RedisCluster::start_with`].
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub masters: usize,
    /// Replicas per master (0, 1, ...).
    pub replicas_per_master: usize,
    /// TLS everywhere (clients, cluster bus, replication); client certificates optional.
    pub tls: bool,
    /// `cluster-node-timeout`: how soon a dead master is failed over.
    pub node_timeout: Duration,
    /// More `redis-server` arguments for every node.
    pub extra_args: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            masters: 3,
            replicas_per_master: 1,
            tls: false,
            node_timeout: Duration::from_millis(1000),
            extra_args: vec![],
        }
    }
}

/// One line of CLUSTER NODES.
#[derive(Clone, Debug)]
pub struct ClusterNode {
    pub id: String,
    pub port: u16,
    pub flags: Vec<String>,
    /// The master's id, for a replica.
    pub master_id: Option<String>,
    /// Slot ranges (inclusive) served, for a master.
    pub slots: Vec<(u16, u16)>,
}

impl ClusterNode {
    pub fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }
    pub fn is_failed(&self) -> bool {
        self.flags.iter().any(|f| f == "fail" || f == "fail?")
    }
    pub fn owns(&self, slot: u16) -> bool {
        self.slots.iter().any(|&(a, b)| a <= slot && slot <= b)
    }
}

/// Parses CLUSTER NODES.
pub fn parse_cluster_nodes(s: &str) -> Vec<ClusterNode> {
    s.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let addr = f[1].split(['@', ',']).next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => {
                        let a = s.parse().ok()?;
                        Some((a, a))
                    }
                })
                .collect();
            Some(ClusterNode {
                id: f[0].to_string(),
                port,
                flags: f[2].split(',').map(str::to_string).collect(),
                master_id: (f[3] != "-").then(|| f[3].to_string()),
                slots,
            })
        })
        .collect()
}

/// The hash slot of a key (CRC16/XMODEM of the key or its `{hash tag}`, mod 16384).
pub fn key_slot(key: &str) -> u16 {
    fn crc16(data: &[u8]) -> u16 {
        let mut crc: u16 = 0;
        for &b in data {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc
    }
    let k = key.as_bytes();
    if let Some(open) = k.iter().position(|&c| c == b'{') {
        if let Some(len) = k[open + 1..].iter().position(|&c| c == b'}') {
            if len > 0 {
                return crc16(&k[open + 1..open + 1 + len]) & 16383;
            }
        }
    }
    crc16(k) & 16383
}

/// A Redis Cluster of `masters` masters with `replicas_per_master` replicas each, made with
/// `redis-cli --cluster create`. Killed on drop.
pub struct RedisCluster {
    pub opts: ClusterOptions,
    nodes: Vec<Proc>,
    cli: Cli,
    tls: Option<TlsMaterial>,
    /// Slots a node served when [`RedisCluster::kill_node`] killed it.
    killed_slots: BTreeMap<u16, Vec<(u16, u16)>>,
    dir: tempfile::TempDir,
}

impl RedisCluster {
    /// `masters` (>= 3) masters, each with `replicas` replicas; plain TCP.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        Self::start_with(ClusterOptions {
            masters,
            replicas_per_master: replicas,
            ..ClusterOptions::default()
        })
    }

    pub fn start_with(opts: ClusterOptions) -> RedisCluster {
        assert!(
            opts.masters >= 3,
            "redis-cli --cluster create needs 3 masters or more"
        );
        let dir = tempfile::tempdir().unwrap();
        let tls = opts
            .tls
            .then(|| TlsMaterial::generate(&dir.path().join("tls")));
        let cli = Cli {
            tls: tls.as_ref().map(|t| t.cli_tls(false)),
            ..Cli::default()
        };
        let total = opts.masters * (1 + opts.replicas_per_master);
        let mut nodes = Vec::new();
        for i in 0..total {
            let ndir = dir.path().join(format!("node-{i}"));
            let o = &opts;
            let t = tls.as_ref();
            nodes.push(Proc::start(ndir.clone(), cli.clone(), |port| {
                let mut v: Vec<String> = match t {
                    Some(t) => {
                        let mut v = strings(&["--port", "0", "--tls-port", &port.to_string()]);
                        v.extend(t.server_args(false));
                        v.extend(strings(&[
                            "--tls-cluster",
                            "yes",
                            "--tls-replication",
                            "yes",
                        ]));
                        v
                    }
                    None => strings(&["--port", &port.to_string()]),
                };
                v.extend(data_node_argv(&ndir));
                v.extend(strings(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-port",
                    &free_port().to_string(),
                    "--cluster-node-timeout",
                    &o.node_timeout.as_millis().to_string(),
                    // A replica may always take over, however long it was cut off.
                    "--cluster-replica-validity-factor",
                    "0",
                ]));
                v.extend(o.extra_args.iter().cloned());
                v
            }));
        }
        let mut argv = strings(&["--cluster", "create"]);
        argv.extend(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)));
        argv.extend(strings(&[
            "--cluster-replicas",
            &opts.replicas_per_master.to_string(),
            "--cluster-yes",
        ]));
        argv.extend(cli.conn_args());
        if let Err(e) = cli.run_argv_timeout(argv, Duration::from_secs(30)) {
            panic!("redis-cli --cluster create failed: {e}");
        }
        let cluster = RedisCluster {
            opts,
            nodes,
            cli,
            tls,
            killed_slots: BTreeMap::new(),
            dir,
        };
        cluster.wait_ready(Duration::from_secs(20));
        cluster
    }

    /// Waits until every running node says `cluster_state:ok`, knows every node, agrees on
    /// who owns every slot, and every replica has `master_link_status:up`.
    pub fn wait_ready(&self, limit: Duration) {
        poll(limit, Duration::from_millis(20), "cluster ready", || {
            self.check_ready()
        });
    }

    fn check_ready(&self) -> Result<(), String> {
        let mut owners_seen: Option<Vec<(u16, u16, u16)>> = None;
        for n in self.live_ports() {
            let info = self.cli.run(n, &["CLUSTER", "INFO"])?;
            if info_field(&info, "cluster_state").as_deref() != Some("ok") {
                return Err(format!("node {n}: cluster_state not ok"));
            }
            if info_field(&info, "cluster_known_nodes") != Some(self.nodes.len().to_string()) {
                return Err(format!("node {n}: not every node known yet"));
            }
            let view = parse_cluster_nodes(&self.cli.run(n, &["CLUSTER", "NODES"])?);
            let mut owners: Vec<(u16, u16, u16)> = view
                .iter()
                .filter(|x| x.is_master() && !x.is_failed())
                .flat_map(|x| x.slots.iter().map(move |&(a, b)| (a, b, x.port)))
                .collect();
            owners.sort();
            match &owners_seen {
                None => owners_seen = Some(owners),
                Some(o) if *o != owners => {
                    return Err(format!("node {n} disagrees about slot owners"))
                }
                _ => {}
            }
            let me = view
                .iter()
                .find(|x| x.flags.iter().any(|f| f == "myself"))
                .ok_or("no myself line")?;
            if !me.is_master()
                && self
                    .cli
                    .info_field(n, "replication", "master_link_status")
                    .as_deref()
                    != Some("up")
            {
                return Err(format!("replica {n}: link to its master not up"));
            }
        }
        Ok(())
    }

    /// Ports of the running nodes.
    pub fn live_ports(&self) -> Vec<u16> {
        let mut v = Vec::new();
        for n in &self.nodes {
            if !self.killed_slots.contains_key(&n.port) && n.child.is_some() {
                v.push(n.port);
            }
        }
        v
    }

    /// Ports of every node, running or not.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port).collect()
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    /// `redis://127.0.0.1:P` (or `rediss://`) of every node.
    pub fn node_urls(&self) -> Vec<String> {
        let s = self.scheme();
        self.ports()
            .into_iter()
            .map(|p| format!("{s}://127.0.0.1:{p}"))
            .collect()
    }

    /// URLs of the running nodes, to seed a cluster client.
    pub fn seed_urls(&self) -> Vec<String> {
        let s = self.scheme();
        self.live_ports()
            .into_iter()
            .map(|p| format!("{s}://127.0.0.1:{p}"))
            .collect()
    }

    /// The cluster as the first answering running node sees it.
    pub fn topology(&self) -> Vec<ClusterNode> {
        for p in self.live_ports() {
            if let Ok(out) = self.cli.run(p, &["CLUSTER", "NODES"]) {
                let v = parse_cluster_nodes(&out);
                if !v.is_empty() {
                    return v;
                }
            }
        }
        panic!("no cluster node answered CLUSTER NODES");
    }

    /// Ports of the masters serving slots (not failed).
    pub fn master_ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self
            .topology()
            .iter()
            .filter(|n| n.is_master() && !n.is_failed() && !n.slots.is_empty())
            .map(|n| n.port)
            .collect();
        v.sort();
        v
    }

    /// Ports of the replicas of the master on `master_port`.
    pub fn replicas_of(&self, master_port: u16) -> Vec<u16> {
        let t = self.topology();
        let Some(m) = t.iter().find(|n| n.port == master_port) else {
            return vec![];
        };
        t.iter()
            .filter(|n| n.master_id.as_deref() == Some(m.id.as_str()))
            .map(|n| n.port)
            .collect()
    }

    /// Port of the master serving `slot`.
    pub fn node_for_slot(&self, slot: u16) -> u16 {
        self.topology()
            .iter()
            .find(|n| n.is_master() && !n.is_failed() && n.owns(slot))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
            .port
    }

    /// Port of the master serving `key`.
    pub fn node_for_key(&self, key: &str) -> u16 {
        self.node_for_slot(key_slot(key))
    }

    /// The slot of `key` computed locally (see [`key_slot`]).
    pub fn key_slot(&self, key: &str) -> u16 {
        key_slot(key)
    }

    /// The slot of `key` as CLUSTER KEYSLOT says.
    pub fn server_key_slot(&self, key: &str) -> u16 {
        let p = self.live_ports()[0];
        self.cli
            .run(p, &["CLUSTER", "KEYSLOT", key])
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// `n` queue names whose `baton:{name}:wait` keys are served by `n` different masters.
    pub fn queues_on_distinct_masters(&self, n: usize) -> Vec<String> {
        let topo = self.topology();
        let masters = topo
            .iter()
            .filter(|m| m.is_master() && !m.is_failed() && !m.slots.is_empty())
            .count();
        assert!(n <= masters, "only {masters} masters for {n} queues");
        let mut used = Vec::new();
        let mut names = Vec::new();
        for i in 0.. {
            let name = format!("q{i}");
            let slot = key_slot(&format!("baton:{{{name}}}:wait"));
            let owner = topo
                .iter()
                .find(|m| m.is_master() && !m.is_failed() && m.owns(slot))
                .expect("every slot served")
                .port;
            if !used.contains(&owner) {
                used.push(owner);
                names.push(name);
                if names.len() == n {
                    break;
                }
            }
        }
        names
    }

    fn node_mut(&mut self, port: u16) -> &mut Proc {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"))
    }

    /// SIGKILLs a node; remembers the slots it served (for `wait_for_failover_of`).
    pub fn kill_node(&mut self, port: u16) {
        let slots = self
            .topology()
            .into_iter()
            .find(|n| n.port == port)
            .map(|n| n.slots)
            .unwrap_or_default();
        self.node_mut(port).kill();
        self.killed_slots.insert(port, slots);
    }

    /// Starts a killed node again (same port, dir, nodes.conf): it rejoins, as a replica if
    /// it was failed over.
    pub fn restart_node(&mut self, port: u16) {
        self.node_mut(port).restart();
        self.killed_slots.remove(&port);
    }

    /// PID of a node.
    pub fn pid(&self, port: u16) -> u32 {
        self.nodes.iter().find(|n| n.port == port).unwrap().pid()
    }

    /// After [`RedisCluster::kill_node`] of a master: waits until every running node sees the
    /// slots it served owned by one other (non-failed) master and says `cluster_state:ok`;
    /// returns that master's port. Panics after `limit`.
    pub async fn wait_for_failover_of(&self, port: u16, limit: Duration) -> u16 {
        let slots = self
            .killed_slots
            .get(&port)
            .unwrap_or_else(|| panic!("node {port} was not killed with kill_node"))
            .clone();
        assert!(!slots.is_empty(), "node {port} served no slots");
        let deadline = Instant::now() + limit;
        let mut last: String;
        loop {
            match self.failover_state(port, &slots).await {
                Ok(p) => return p,
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .nodes
                    .iter()
                    .map(|n| format!("--- node {} ---\n{}", n.port, n.log_tail(10)))
                    .collect();
                panic!(
                    "no failover of {port} within {limit:?}: {last}\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn failover_state(&self, port: u16, slots: &[(u16, u16)]) -> Result<u16, String> {
        let mut new_owner = None;
        for n in self.live_ports() {
            let info = self.cli.run_async(n, &["CLUSTER", "INFO"]).await?;
            if info_field(&info, "cluster_state").as_deref() != Some("ok") {
                return Err(format!("node {n}: cluster_state not ok"));
            }
            let view = parse_cluster_nodes(&self.cli.run_async(n, &["CLUSTER", "NODES"]).await?);
            for &(a, _) in slots {
                let owner = view
                    .iter()
                    .find(|x| x.is_master() && !x.is_failed() && x.owns(a))
                    .map(|x| x.port);
                match owner {
                    Some(o) if o != port && new_owner.is_none_or(|p| p == o) => new_owner = Some(o),
                    other => return Err(format!("node {n} sees slot {a} on {other:?}")),
                }
            }
        }
        new_owner.ok_or_else(|| "no running node".into())
    }

    /// redis-cli settings that reach the nodes.
    pub fn cli(&self) -> &Cli {
        &self.cli
    }

    pub fn tls(&self) -> Option<&TlsMaterial> {
        self.tls.as_ref()
    }

    /// For a TLS cluster: certificates trusting its CA (no client certificate).
    pub fn certificates(&self) -> Option<redis::TlsCertificates> {
        self.tls.as_ref().map(|t| t.certificates(false))
    }

    /// A `redis::cluster::ClusterClient` seeded with the running nodes (TLS set up if needed).
    pub fn client(&self) -> redis::cluster::ClusterClient {
        let b = redis::cluster::ClusterClient::builder(self.seed_urls());
        let b = match self.certificates() {
            Some(c) => {
                install_crypto_provider();
                b.certs(c)
            }
            None => b,
        };
        b.build().unwrap()
    }
}
