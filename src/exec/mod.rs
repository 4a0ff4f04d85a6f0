//! The exec worker's handler: runs a command per job (any language).
//!
//! # The contract with the command
//!
//! Per attempt, [`ExecHandler`] starts `program args…` as a child process in a process
//! group of its own (so a signal to the worker is not a signal to its jobs, and a job's
//! whole tree can be stopped at once), with:
//!
//! - **stdin**: the job's payload as one line of JSON, then end of file;
//! - **environment**: the worker's, plus `BATON_JOB_ID`, `BATON_JOB_NAME`, `BATON_QUEUE`,
//!   `BATON_ATTEMPT` (from 1), `BATON_ATTEMPTS` (attempts allowed in all) and
//!   `BATON_TOKEN` (this attempt's fencing token: it grows with every claim, so a command
//!   that writes elsewhere can refuse a write older than one it has already seen);
//! - **stdout**: the result. The last non-blank line is kept (only that one: stdout is
//!   otherwise drained and dropped, so memory stays bounded); if it parses as JSON, that
//!   value is the job's result, otherwise the line itself, as a JSON string, is. No
//!   output at all gives `null`. A last line over [`MAX_RESULT_BYTES`] is dropped (result
//!   `null`, with a note in the job log);
//! - **stderr**: the job's log. Each line becomes a log line of the job (`baton job`
//!   shows them), at most [`MAX_LOG_LINE_BYTES`] each (longer lines are cut) and
//!   [`MAX_LOG_LINES_PER_ATTEMPT`] per attempt, written to Redis one at a time at no more
//!   than [`LOG_LINES_PER_SEC`] lines a second after a burst of [`LOG_BURST`]; lines that
//!   do not fit (a chatty command) are counted and dropped, and a final note says how
//!   many.
//!
//! # Exit status
//!
//! | command ends with            | attempt                                              |
//! |------------------------------|------------------------------------------------------|
//! | exit 0                       | completes with the result above                      |
//! | exit 75 (`EX_TEMPFAIL`)      | fails, retried per the job's attempts and backoff    |
//! | any other exit code `N`      | fails ("command exited with code N"), retried likewise |
//! | death by signal `S`          | fails ("command killed by signal S"), retried likewise |
//!
//! Every failure is retryable: a command that wants no retry should be given
//! `attempts(1)`. Exit 75 is the conventional way to say "temporary, try again" and is
//! reported as such. The last stderr line is appended to a failure's message.
//!
//! Processes the command leaves behind in its process group when it exits are killed
//! (SIGKILL): a job owns everything it started, and nothing outlives it.
//!
//! # Stopping
//!
//! When the attempt is told to stop (cancel, timeout, lost lease, worker shutdown) the
//! whole process group gets SIGTERM; whatever is left of it when the command has exited,
//! or after [`ExecConfig::kill_grace`], gets SIGKILL. The command is then reaped. If the
//! handler itself is dropped (the worker aborts it after its abort grace), the group is
//! SIGKILLed and the command reaped in the background. A command that exits 0 after
//! SIGTERM during a worker shutdown completes its job; otherwise the worker decides the
//! outcome from why it stopped the attempt.
//!
//! Grandchildren that outlive their parent (or that leave the process group) are adopted
//! by the worker, not by init: see [`start_reaper`].
//!
//! # When the worker itself dies
//!
//! On Linux the command is started with a parent-death signal
//! (`prctl(PR_SET_PDEATHSIG, SIGKILL)`): if the worker process is killed (SIGKILL, OOM
//! killer, a crash), the kernel SIGKILLs the command at once, so a job recovered by
//! another worker after its lease does not run twice at the same time. SIGKILL rather
//! than SIGTERM because the point is a guarantee: a command that ignores SIGTERM (as
//! some do) would otherwise run on beside the recovered attempt. What remains open:
//!
//! - **the command's own children** do not inherit the signal (the kernel clears it on
//!   fork): a command that forks and does not `exec` its work keeps those processes
//!   running after the worker died (they are orphans then; a shell that `exec`s its
//!   last command is fine). Commands that fork long-lived workers should set the signal
//!   on them too, or be run under a wrapper that does;
//! - the signal is tied to the worker **thread** that spawned the command, not the
//!   process: commands are spawned from the runtime's worker threads, which live as long
//!   as the worker, so this does not fire early in baton; code that spawns an
//!   [`ExecHandler`] job from a short-lived thread would see its commands killed when
//!   that thread ends;
//! - the kernel clears the signal when the command execs a set-user-ID or set-group-ID
//!   program (or one with file capabilities);
//! - the race between `fork` and `prctl`: a worker that dies in between would leave a
//!   child without the signal. The child checks `getppid()` right after `prctl` and
//!   exits (127, before running the command) if the worker is already gone;
//! - not Linux: no parent-death signal; the command runs until it ends, and the job is
//!   recovered after its lease and may then run twice at once.

mod output;
mod reaper;

use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

use crate::worker::{Handler, HandlerFuture, JobContext, JobError};
use output::{LastLine, LogWriter};
pub use reaper::{reap_orphans, start_reaper};

/// Longest stdout line kept as the result.
pub const MAX_RESULT_BYTES: usize = 1 << 20;
/// Longest stderr line logged; longer lines are cut.
pub const MAX_LOG_LINE_BYTES: usize = 4096;
/// Most stderr lines logged per attempt.
pub const MAX_LOG_LINES_PER_ATTEMPT: usize = 1000;
/// Sustained stderr lines written to Redis per second, per attempt.
pub const LOG_LINES_PER_SEC: u32 = 100;
/// Lines written at once before the rate applies (also the buffer in front of Redis).
pub const LOG_BURST: usize = 100;
/// The exit code that asks for a retry (`EX_TEMPFAIL` from sysexits.h).
pub const EXIT_TEMPFAIL: i32 = 75;

/// How long, after the command exited, its output pipes get to reach end of file (they
/// stay open only if something outside its process group still holds them).
const DRAIN_WAIT: Duration = Duration::from_millis(500);
/// How long buffered log lines get to reach Redis after the command exited.
const LOG_FLUSH_WAIT: Duration = Duration::from_secs(2);
/// The same when the attempt was told to stop (the worker's abort grace is running).
const LOG_FLUSH_WAIT_STOPPED: Duration = Duration::from_millis(250);

/// How to run the command.
#[derive(Debug, Clone)]
pub struct ExecConfig {
    /// Program to run.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Time between SIGTERM and SIGKILL to the child's process group.
    pub kill_grace: Duration,
}

/// Runs `ExecConfig` per job.
#[derive(Debug, Clone)]
pub struct ExecHandler {
    cfg: Arc<ExecConfig>,
}

impl ExecHandler {
    /// A handler that runs `cfg` per job.
    pub fn new(cfg: ExecConfig) -> Self {
        ExecHandler { cfg: Arc::new(cfg) }
    }
}

impl Handler for ExecHandler {
    fn handle(&self, ctx: JobContext) -> HandlerFuture {
        Box::pin(run(self.cfg.clone(), ctx))
    }
}

/// One attempt.
async fn run(cfg: Arc<ExecConfig>, ctx: JobContext) -> Result<Vec<u8>, JobError> {
    let payload: serde_json::Value = ctx.data()?;
    let mut input = serde_json::to_vec(&payload)
        .map_err(|e| JobError::fatal(format!("payload as JSON: {e}")))?;
    input.push(b'\n');

    let mut cmd = Command::new(&cfg.program);
    cmd.args(&cfg.args)
        .env("BATON_JOB_ID", ctx.id())
        .env("BATON_JOB_NAME", ctx.name())
        .env("BATON_QUEUE", ctx.queue())
        .env("BATON_ATTEMPT", ctx.attempt().to_string())
        .env("BATON_ATTEMPTS", ctx.attempts().to_string())
        .env("BATON_TOKEN", ctx.token().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    #[cfg(target_os = "linux")]
    die_with_parent(&mut cmd);
    let mut proc = Proc::spawn(&mut cmd)
        .map_err(|e| JobError::retry(format!("could not start command {:?}: {e}", cfg.program)))?;

    // Everything below is owned by guards: dropping this future stops it all.
    let mut stdin = proc.child.as_mut().and_then(|c| c.stdin.take());
    let _feed = output::Task::spawn(async move {
        if let Some(s) = stdin.as_mut() {
            // A command that does not read its input is fine (EPIPE is ignored).
            let _ = s.write_all(&input).await;
            let _ = s.shutdown().await;
        }
    });
    let stdout = proc
        .child
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("stdout piped");
    let stderr = proc
        .child
        .as_mut()
        .and_then(|c| c.stderr.take())
        .expect("stderr piped");
    let last = LastLine::default();
    let out_reader = output::Task::spawn(output::read_stdout(stdout, last.clone()));
    let logs = LogWriter::start(ctx.clone());
    let err_reader = output::Task::spawn(output::read_stderr(stderr, logs.sender()));

    let stopped = tokio::select! {
        biased;
        _ = proc.exited() => false,
        _ = ctx.cancelled() => true,
    };
    if stopped {
        proc.signal_group(libc::SIGTERM);
        let _ = tokio::time::timeout(cfg.kill_grace, proc.exited()).await;
    }
    // Whatever is left of the group goes now (the command is not reaped yet, so its
    // process group id cannot have been reused).
    proc.signal_group(libc::SIGKILL);
    let status = proc
        .reap()
        .await
        .map_err(|e| JobError::retry(format!("waiting for the command: {e}")))?;

    // Output: the pipes reach end of file once every writer is gone.
    let _ = tokio::time::timeout(DRAIN_WAIT, out_reader.join()).await;
    let _ = tokio::time::timeout(DRAIN_WAIT, err_reader.join()).await;
    let last_err = logs.last_line();
    let result_line = last.take();
    if let output::Last::TooLong = result_line {
        logs.note(format!(
            "[baton] the last stdout line was longer than {MAX_RESULT_BYTES} bytes; result dropped"
        ));
    }
    logs.finish(if stopped {
        LOG_FLUSH_WAIT_STOPPED
    } else {
        LOG_FLUSH_WAIT
    })
    .await;

    let with_stderr = |msg: String| match &last_err {
        Some(l) => format!("{msg}: {l}"),
        None => msg,
    };
    if status.success() {
        let value = result_line.into_value();
        return rmp_serde::to_vec_named(&value)
            .map_err(|e| JobError::fatal(format!("result could not be encoded: {e}")));
    }
    let how = describe(status);
    if stopped {
        return Err(JobError::retry(format!(
            "stopped (cancel, timeout, lost lease or shutdown); {how}"
        )));
    }
    Err(JobError::retry(with_stderr(how)))
}

/// Makes the command die (SIGKILL) when the worker dies; see the module docs for what
/// it does not cover.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    let parent = unsafe { libc::getpid() };
    // SAFETY: between fork and exec only async-signal-safe calls are made (prctl,
    // getppid, _exit), nothing allocates or takes a lock.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The worker died between fork and prctl: the signal will never come.
            if libc::getppid() != parent {
                libc::_exit(127);
            }
            Ok(())
        });
    }
}

/// "command exited with code N" / "command killed by signal S (NAME)".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(EXIT_TEMPFAIL), _) => {
            format!("command asked for a retry (exited with code {EXIT_TEMPFAIL}, EX_TEMPFAIL)")
        }
        (Some(c), _) => format!("command exited with code {c}"),
        (None, Some(s)) => format!("command killed by signal {s} ({})", signal_name(s)),
        (None, None) => format!("command ended with {status}"),
    }
}

fn signal_name(s: i32) -> &'static str {
    match s {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "?",
    }
}

/// A spawned command: registered with the reaper as ours until reaped; if dropped before
/// that, its process group is SIGKILLed and it is reaped in the background.
struct Proc {
    child: Option<Child>,
    pid: i32,
    #[cfg(target_os = "linux")]
    pidfd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> io::Result<Proc> {
        let child = reaper::spawn_registered(cmd)?;
        let pid = child.id().expect("a child not yet waited for has a pid") as i32;
        Ok(Proc {
            child: Some(child),
            pid,
            #[cfg(target_os = "linux")]
            pidfd: open_pidfd(pid),
        })
    }

    /// Resolves once the command has exited, without reaping it.
    async fn exited(&self) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd {
            while let Ok(mut g) = fd.readable().await {
                if reaper::has_exited(self.pid) {
                    return;
                }
                g.clear_ready();
            }
        }
        // No pidfd: poll.
        while !reaper::has_exited(self.pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Signals the command's whole process group (its pgid is its pid). Safe only while
    /// the command is not reaped: until then its pid, hence the group id, is not reused.
    fn signal_group(&self, sig: i32) {
        if self.child.is_some() {
            // ESRCH (nothing left in the group) is fine.
            unsafe { libc::kill(-self.pid, sig) };
        }
    }

    /// Waits for the command and reaps it.
    async fn reap(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.as_mut().expect("not reaped yet").wait().await?;
        self.child = None;
        reaper::unregister(self.pid);
        Ok(status)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The handler was dropped (aborted) before the command was reaped: kill the whole
        // group (not just the command, as kill_on_drop would), then reap it.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        let pid = self.pid;
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    let _ = child.wait().await;
                    reaper::unregister(pid);
                });
            }
            Err(_) => {
                // No runtime: tokio's orphan queue (or the reaper) reaps it.
                drop(child);
                reaper::unregister(pid);
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn open_pidfd(pid: i32) -> Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    // pidfd_open(2), Linux 5.3+: readable once the process has exited (before it is
    // reaped). The fd is close-on-exec.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd is open, and owned by the AsyncFd until it is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .ok()
}
