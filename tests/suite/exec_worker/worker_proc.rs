//! `baton worker --exec` as a child process running tests/fixtures/job.sh.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::baton_bin;

pub(crate) fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/job.sh")
}

/// A running `baton worker --exec`; SIGKILLed on drop if still running (its log is
/// printed then, to help read a failure).
pub(crate) struct WorkerProc {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
    status: Option<ExitStatus>,
}

impl WorkerProc {
    pub(crate) fn start(url: &str, queue: &str, extra: &[&str]) -> WorkerProc {
        Self::start_wrapped(&[], url, queue, extra)
    }

    /// `wrapper` goes before the baton binary (e.g. `unshare --pid --fork`).
    pub(crate) fn start_wrapped(
        wrapper: &[&str],
        url: &str,
        queue: &str,
        extra: &[&str],
    ) -> WorkerProc {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("worker.log");
        let mut args: Vec<String> = vec![
            "--redis-url".into(),
            url.into(),
            "worker".into(),
            queue.into(),
        ];
        for a in [
            "--exec",
            "--concurrency",
            "2",
            "--lease",
            "2s",
            "--kill-grace",
            "1s",
            "--stalled-interval",
            "500ms",
        ] {
            args.push(a.into());
        }
        let mut shutdown = "2s";
        let mut i = 0;
        while i < extra.len() {
            if extra[i] == "--shutdown-timeout" {
                shutdown = extra[i + 1];
                i += 2;
                continue;
            }
            args.push(extra[i].into());
            i += 1;
        }
        args.extend(["--shutdown-timeout".into(), shutdown.into()]);
        args.extend(["--".into(), "sh".into(), fixture().display().to_string()]);
        let mut cmd = match wrapper.split_first() {
            Some((prog, rest)) => {
                let mut c = Command::new(prog);
                c.args(rest).arg(baton_bin());
                c
            }
            None => Command::new(baton_bin()),
        };
        cmd.args(&args)
            .env("RUST_LOG", "baton=debug,info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(dir.path().join("worker.log.err")).unwrap());
        let child = cmd.spawn().unwrap();
        WorkerProc {
            child,
            log,
            _dir: dir,
            status: None,
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub(crate) fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.pid(), sig) };
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Waits (deadline) for it to exit.
    pub(crate) async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.try_status() {
                return s;
            }
            if Instant::now() > deadline {
                panic!("worker did not exit within {limit:?}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub(crate) async fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let s = self.wait_exit(Duration::from_secs(10)).await;
        assert!(s.success(), "worker exit status {s}\n{}", self.logs());
    }

    pub(crate) fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        let err = std::fs::read_to_string(self.log.with_extension("log.err")).unwrap_or_default();
        format!("--- worker stdout ---\n{out}\n--- worker stderr ---\n{err}")
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
