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
//!   that writes elsewhere can refuse a write older than one it has already seen), and
//!   `TRACEPARENT` (W3C) when the job carries a trace: the job span's context, or the
//!   producer's when no OpenTelemetry layer is installed, so a traced command joins
//!   the trace; and for a flow's parent ([`crate::FlowJob`]) `BATON_CHILDREN`, its
//!   children as a JSON array of `{"queue", "id", "state", "result" | "error"}`
//!   (`state` `completed`, or `failed` under `on_failure: ignore`); over
//!   [`MAX_CHILDREN_ENV`] bytes the job fails for good, since the kernel refuses a
//!   longer environment string (keep large results elsewhere and return a reference);
//! - **stdout**: the result. The last non-blank line is kept (only that one: stdout is
//!   otherwise drained and dropped, so memory stays bounded); if it parses as JSON, that
//!   value is the job's result, otherwise the line itself, as a JSON string, is. No
//!   output at all gives `null`. A last line over [`MAX_RESULT_BYTES`] fails the job
//!   for good, as a Rust handler's oversized result does (below);
//! - **stderr**: the job's log. A line `BATON_PROGRESS <value>` ([`PROGRESS_PREFIX`])
//!   sets the job's progress instead, as `JobContext::progress` does: the value is
//!   parsed as JSON (`BATON_PROGRESS 42`, `BATON_PROGRESS {"done":3,"total":10}`), or
//!   kept as a string if it is not JSON; the latest value is written at most every
//!   [`PROGRESS_INTERVAL`], and the last one reported always lands (a progress line
//!   over [`MAX_LOG_LINE_BYTES`] is logged instead: half a value is none). Every other line
//!   becomes a log line of the job (`baton job` shows them), at most [`MAX_LOG_LINE_BYTES`] each (longer lines are cut) and
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
//! | exit 0, last line too long   | fails for good: "result too large to store", no retry |
//! | exit 65 (`EX_DATAERR`)       | fails for good: no retry, whatever attempts are left |
//! | exit 75 (`EX_TEMPFAIL`)      | fails, retried per the job's attempts and backoff    |
//! | exit 76 ([`EXIT_RATE_LIMITED`]) | "rate limited, retry after D": back in delayed for D, no attempt consumed, its group (or the queue) held for D |
//! | any other exit code `N`      | fails ("command exited with code N"), retried likewise |
//! | death by signal `S`          | fails ("command killed by signal S"), retried likewise |
//!
//! Exit 76 takes D from the last stdout line: `{"retry_after_ms": N}` or a bare number
//! of milliseconds; without one, [`DEFAULT_RETRY_AFTER`]. (76 because 75 already meant
//! "retry with backoff" before; 76 is `EX_PROTOCOL` in sysexits.h, "the remote system
//! returned something that was not possible during a protocol exchange", close enough
//! to "the service said 429".)
//!
//! The last stderr line is appended to a failure's message. Retrying is the default
//! because most failures of a command (a crash, an uncaught exception, exit 1, a
//! network error) are worth another attempt; exit 75 says so explicitly and is reported
//! as such. [`EXIT_FATAL`] is 65, `EX_DATAERR` from sysexits.h ("the input data was
//! incorrect"): the input is the payload, and a payload the command cannot process will
//! not improve on a retry. A sysexits code rather than 1 or 2 because those are what
//! interpreters and shells exit with on any error (a Python traceback, a usage error),
//! which must keep retrying; and rather than 78 (`EX_CONFIG`) because a configuration
//! error of one worker may well not recur on another. An oversized result fails for
//! good for the same reason (the same command prints the same line again), and fails
//! rather than completing with `null` because a completed job tells its reader that
//! the work succeeded: a result silently replaced by nothing is a lost result.
//!
//! A command that cannot be started at all (not found, not executable) would fail every
//! job it is given, each burning its attempts: `baton worker` checks it with
//! [`resolve_program`] before its first claim and refuses to start, naming the command
//! and what is wrong; code that builds an [`ExecHandler`] itself should do the same.
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

mod command;
mod output;
mod proc;
mod progress;
mod reaper;
mod status;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::worker::{Handler, HandlerFuture, JobContext, JobError};
pub use command::resolve_program;
use output::{LastLine, LogWriter};
use proc::Proc;
use progress::ProgressWriter;
pub use progress::{PROGRESS_INTERVAL, PROGRESS_PREFIX};
pub use reaper::start_reaper;
// Not part of the stable API: public for the `baton` binary and the tests.
#[doc(hidden)]
pub use reaper::reap_orphans;

/// Longest stdout line kept as the result; a longer last line fails the job. Smaller
/// than the library's limit on a result because the line is held in memory per running
/// command, as it is read.
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
/// The exit code that says "rate limited, retry after D" (see the module docs).
pub const EXIT_RATE_LIMITED: i32 = 76;
/// D for [`EXIT_RATE_LIMITED`] when the command printed none.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);
/// The exit code that fails the job for good, whatever attempts are left (`EX_DATAERR`
/// from sysexits.h: the input, that is the payload, was wrong; see the module docs for
/// why this code).
pub const EXIT_FATAL: i32 = 65;

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

/// The longest `BATON_CHILDREN` (bytes): Linux refuses one environment string over
/// 128 KiB (`MAX_ARG_STRLEN`).
pub const MAX_CHILDREN_ENV: usize = 120 * 1024;

/// A flow parent's children as `BATON_CHILDREN` (None for a job without children).
async fn children_env(ctx: &JobContext) -> Result<Option<String>, JobError> {
    let kids = ctx
        .children()
        .await
        .map_err(|e| JobError::retry(format!("reading the job's children: {e}")))?;
    if kids.is_empty() {
        return Ok(None);
    }
    let info: Vec<crate::ChildInfo> = kids.into_iter().map(Into::into).collect();
    let json = serde_json::to_string(&info).expect("children serialize");
    if json.len() > MAX_CHILDREN_ENV {
        return Err(JobError::fatal(format!(
            "the children's results take {} bytes as JSON, over the {MAX_CHILDREN_ENV} \
             BATON_CHILDREN can hold: keep large results elsewhere and return a reference",
            json.len()
        )));
    }
    Ok(Some(json))
}

/// One attempt.
async fn run(cfg: Arc<ExecConfig>, ctx: JobContext) -> Result<Vec<u8>, JobError> {
    let payload: serde_json::Value = ctx.data()?;
    let mut input = serde_json::to_vec(&payload)
        .map_err(|e| JobError::fatal(format!("payload as JSON: {e}")))?;
    input.push(b'\n');
    let children = children_env(&ctx).await?;

    let mut cmd = Command::new(&cfg.program);
    cmd.args(&cfg.args)
        .env("BATON_JOB_ID", ctx.id())
        .env("BATON_JOB_NAME", ctx.name())
        .env("BATON_QUEUE", ctx.queue())
        .env("BATON_ATTEMPT", ctx.attempt().to_string())
        .env("BATON_ATTEMPTS", ctx.attempts().to_string())
        .env("BATON_TOKEN", ctx.token().to_string())
        .env_remove("TRACEPARENT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    // The command continues the job's trace (OpenTelemetry's environment carrier).
    if let Some(t) = ctx.outgoing_trace() {
        cmd.env("TRACEPARENT", t.to_string());
    }
    cmd.env_remove("BATON_CHILDREN");
    if let Some(c) = children {
        cmd.env("BATON_CHILDREN", c);
    }
    #[cfg(target_os = "linux")]
    proc::die_with_parent(&mut cmd);
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
    let progress = ProgressWriter::start(ctx.clone());
    let err_reader = output::Task::spawn(output::read_stderr(
        stderr,
        logs.sender(),
        progress.sender(),
    ));

    let stopped = tokio::select! {
        biased;
        _ = proc.exited() => false,
        _ = ctx.cancelled() => true,
    };
    if stopped {
        proc.signal_group(nix::sys::signal::Signal::SIGTERM);
        let _ = tokio::time::timeout(cfg.kill_grace, proc.exited()).await;
    }
    // Whatever is left of the group goes now (the command is not reaped yet, so its
    // process group id cannot have been reused).
    proc.signal_group(nix::sys::signal::Signal::SIGKILL);
    let status = proc
        .reap()
        .await
        .map_err(|e| JobError::retry(format!("waiting for the command: {e}")))?;

    // Output: the pipes reach end of file once every writer is gone.
    let _ = tokio::time::timeout(DRAIN_WAIT, out_reader.join()).await;
    let _ = tokio::time::timeout(DRAIN_WAIT, err_reader.join()).await;
    let last_err = logs.last_line();
    let result_line = last.take();
    let flush = if stopped {
        LOG_FLUSH_WAIT_STOPPED
    } else {
        LOG_FLUSH_WAIT
    };
    tokio::join!(logs.finish(flush), progress.finish(flush));

    if !stopped && status.code() == Some(EXIT_RATE_LIMITED) {
        return Err(JobError::rate_limited(
            result_line.retry_after().unwrap_or(DEFAULT_RETRY_AFTER),
        ));
    }
    if !status.success() {
        return Err(status::failure(status, stopped, last_err.as_deref()));
    }
    if let output::Last::TooLong = result_line {
        // As for a Rust handler's result over its limit: the job fails, for good (the
        // same command would print the same line again). Completing it with no result
        // would tell whoever reads it that the work succeeded and produced nothing.
        return Err(JobError::fatal(format!(
            "result too large to store: the last stdout line is over {MAX_RESULT_BYTES} bytes (the limit for an exec result)"
        )));
    }
    rmp_serde::to_vec_named(&result_line.into_value())
        .map_err(|e| JobError::fatal(format!("result could not be encoded: {e}")))
}
