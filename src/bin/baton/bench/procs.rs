//! The worker processes of a bench phase: `baton bench-worker` children of this very
//! binary, started and made ready (connected, built) before the clock starts, then told
//! to go, sampled through `/proc` while they run, and stopped gracefully so each
//! reports what it handled. Killed on drop, so an error leaves no process behind.

use std::process::Stdio;

use baton::{Error, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::probe::{process_cpu_s, process_rss_kib};

/// Running `bench-worker` processes.
pub struct WorkerProcs {
    children: Vec<Child>,
    stdin: Vec<ChildStdin>,
    stdout: Vec<Lines<BufReader<ChildStdout>>>,
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Invalid(format!("bench worker process: {what}: {e}"))
}

impl WorkerProcs {
    /// Starts `n` processes, each serving every queue in `queues` with `concurrency`,
    /// and waits until each has printed `ready`. `conn_args` are the connection options
    /// (`--redis-url …`) the children need.
    pub async fn start(
        conn_args: &[String],
        queues: &[String],
        n: usize,
        concurrency: usize,
        record_latency: bool,
    ) -> Result<WorkerProcs> {
        let exe = std::env::current_exe().map_err(io("own path"))?;
        let mut me = WorkerProcs {
            children: Vec::new(),
            stdin: Vec::new(),
            stdout: Vec::new(),
        };
        for _ in 0..n {
            let mut cmd = Command::new(&exe);
            cmd.args(conn_args)
                .arg("bench-worker")
                .arg("--queue")
                .arg(queues.join(","))
                .arg("--concurrency")
                .arg(concurrency.to_string())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true);
            if record_latency {
                cmd.arg("--record-latency");
            }
            let mut child = cmd.spawn().map_err(io("spawn"))?;
            me.stdin.push(child.stdin.take().expect("piped"));
            me.stdout
                .push(BufReader::new(child.stdout.take().expect("piped")).lines());
            me.children.push(child);
        }
        for out in &mut me.stdout {
            match out.next_line().await.map_err(io("read"))? {
                Some(l) if l.trim() == "ready" => {}
                other => {
                    return Err(Error::Invalid(format!(
                    "bench worker process did not get ready (said {other:?}); see its error above"
                )))
                }
            }
        }
        Ok(me)
    }

    /// Lets every process start its workers.
    pub async fn go(&mut self) -> Result<()> {
        for s in &mut self.stdin {
            s.write_all(b"go\n").await.map_err(io("write"))?;
            s.flush().await.map_err(io("write"))?;
        }
        Ok(())
    }

    fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.children.iter().filter_map(|c| c.id())
    }

    /// CPU seconds (user + sys) used so far by all the processes together.
    pub fn cpu_s(&self) -> Result<f64> {
        self.pids().map(process_cpu_s).sum()
    }

    /// The largest resident memory of any one process now, KiB.
    pub fn max_rss_kib(&self) -> Result<u64> {
        self.pids()
            .map(process_rss_kib)
            .try_fold(0, |m, r| r.map(|r| m.max(r)))
    }

    /// Closes their stdin (a graceful shutdown), collects each one's JSON report and
    /// checks that each exited well.
    pub async fn stop(mut self) -> Result<Vec<serde_json::Value>> {
        self.stdin.clear();
        let mut reports = Vec::new();
        for out in &mut self.stdout {
            let line = out
                .next_line()
                .await
                .map_err(io("read"))?
                .unwrap_or_default();
            reports.push(serde_json::from_str(&line).map_err(|e| {
                Error::Invalid(format!("bench worker process report {line:?}: {e}"))
            })?);
        }
        for c in &mut self.children {
            let st = c.wait().await.map_err(io("wait"))?;
            if !st.success() {
                return Err(Error::Invalid(format!("bench worker process exited {st}")));
            }
        }
        Ok(reports)
    }
}
