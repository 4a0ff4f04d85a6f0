//! The worker processes of a chaos run: real `baton worker --exec` processes (this same
//! binary) behind the proxy, whose command appends "id token" to a ledger when a job's
//! work is done and prints `{"token": T}` as its result.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use baton::{Error, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The job command. A job named `doom-…` fails on purpose; `ok-S` sleeps S seconds,
/// then records its run in the ledger and returns its fencing token.
const SCRIPT: &str = r#"case "$BATON_JOB_NAME" in doom-*) echo "doomed on purpose" >&2; exit 3;; esac
sleep "${BATON_JOB_NAME#ok-}"
echo "$BATON_JOB_ID $BATON_TOKEN" >> "$LEDGER"
echo "{\"token\":$BATON_TOKEN}""#;

/// How the workers are configured.
#[derive(Debug, Clone)]
pub struct WorkerSpec {
    /// Connection flags (`--redis-url` of the proxy, or `--cluster-nodes …`).
    pub conn_args: Vec<String>,
    /// Queues, comma-separated.
    pub queue: String,
    /// Jobs at once per worker.
    pub concurrency: usize,
    /// Lease.
    pub lease: Duration,
    /// How often each sweeps for expired leases.
    pub stalled_interval: Duration,
    /// The ledger file.
    pub ledger: PathBuf,
    /// Where worker logs go (one file per spawn).
    pub log_dir: PathBuf,
}

/// One slot: a process, or nothing while it is down.
struct Slot {
    child: Option<Child>,
    stopped: bool,
}

/// The pool.
pub struct Workers {
    spec: WorkerSpec,
    slots: Vec<Slot>,
    spawned: usize,
}

impl Workers {
    /// Starts `n` workers.
    pub fn start(spec: WorkerSpec, n: usize) -> Result<Workers> {
        let mut me = Workers {
            spec,
            slots: (0..n)
                .map(|_| Slot {
                    child: None,
                    stopped: false,
                })
                .collect(),
            spawned: 0,
        };
        for i in 0..n {
            me.respawn(i)?;
        }
        Ok(me)
    }

    /// How many slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Processes started so far (respawns included).
    pub fn spawned(&self) -> usize {
        self.spawned
    }

    /// Starts slot `i` again if its process is gone.
    pub fn respawn(&mut self, i: usize) -> Result<()> {
        if self.slots[i].child.is_some() {
            return Ok(());
        }
        let s = &self.spec;
        let log = File::create(s.log_dir.join(format!("worker-{}.log", self.spawned)))
            .map_err(|e| Error::Invalid(format!("worker log: {e}")))?;
        let exe =
            std::env::current_exe().map_err(|e| Error::Invalid(format!("own executable: {e}")))?;
        let child = Command::new(exe)
            .args(&s.conn_args)
            .args(["worker", &s.queue, "--exec"])
            .args(["--concurrency", &s.concurrency.to_string()])
            .args(["--lease", &format!("{}ms", s.lease.as_millis())])
            .args([
                "--stalled-interval",
                &format!("{}ms", s.stalled_interval.as_millis()),
            ])
            // Recoveries are the point of the run: a job may stall many times and must
            // still complete.
            .args(["--max-stalled", "1000"])
            .args(["--shutdown-timeout", "5s", "--kill-grace", "1s"])
            .args(["--", "sh", "-c", SCRIPT])
            .env("LEDGER", &s.ledger)
            .env_remove("REDIS_URL")
            .env_remove("REDIS_CLUSTER_NODES")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| Error::Invalid(format!("spawn worker: {e}")))?;
        self.spawned += 1;
        self.slots[i] = Slot {
            child: Some(child),
            stopped: false,
        };
        Ok(())
    }

    fn signal(&self, i: usize, sig: Signal) {
        if let Some(c) = &self.slots[i].child {
            // Our own child, not yet reaped, so its pid is not reused; ESRCH is fine.
            let _ = kill(Pid::from_raw(c.id() as i32), sig);
        }
    }

    /// SIGKILL slot `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, Signal::SIGCONT);
        if let Some(mut c) = self.slots[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM slot `i` and wait for it to hand its jobs back and exit (SIGKILL after
    /// `limit`). Returns whether it exited by itself.
    pub async fn terminate(&mut self, i: usize, limit: Duration) -> bool {
        self.signal(i, Signal::SIGCONT);
        self.signal(i, Signal::SIGTERM);
        let deadline = Instant::now() + limit;
        loop {
            let done = match self.slots[i].child.as_mut() {
                None => return true,
                Some(c) => matches!(c.try_wait(), Ok(Some(_))),
            };
            if done {
                self.slots[i].child = None;
                return true;
            }
            if Instant::now() > deadline {
                self.kill(i);
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGSTOP (`true`) or SIGCONT slot `i`.
    pub fn freeze(&mut self, i: usize, stop: bool) {
        self.signal(
            i,
            if stop {
                Signal::SIGSTOP
            } else {
                Signal::SIGCONT
            },
        );
        self.slots[i].stopped = stop;
    }

    /// Slots whose worker exited by itself (not by our hand), with its status.
    pub fn exited(&mut self) -> Vec<(usize, std::process::ExitStatus)> {
        let mut out = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(c) = s.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    s.child = None;
                    out.push((i, st));
                }
            }
        }
        out
    }

    /// The ledger path.
    pub fn ledger(&self) -> &Path {
        &self.spec.ledger
    }

    /// Stops them all (SIGTERM, then SIGKILL after `limit`).
    pub async fn stop_all(&mut self, limit: Duration) {
        for i in 0..self.slots.len() {
            self.signal(i, Signal::SIGCONT);
            self.signal(i, Signal::SIGTERM);
        }
        for i in 0..self.slots.len() {
            self.terminate(i, limit).await;
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for i in 0..self.slots.len() {
            self.kill(i);
        }
    }
}
