//! The command's output: stdout's last line (the result) and stderr's lines (the job
//! log), read with bounded memory and written to Redis at a bounded rate.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::progress::ProgressSender;
use super::{
    LOG_BURST, LOG_LINES_PER_SEC, MAX_LOG_LINES_PER_ATTEMPT, MAX_LOG_LINE_BYTES, MAX_RESULT_BYTES,
};
use crate::worker::JobContext;

/// Longest stderr line quoted in a failure's message.
const MAX_QUOTED: usize = 500;

/// A spawned task that is aborted when this is dropped.
pub(super) struct Task<T>(Option<JoinHandle<T>>);

impl<T: Send + 'static> Task<T> {
    pub fn spawn<F: Future<Output = T> + Send + 'static>(f: F) -> Task<T> {
        Task(Some(tokio::spawn(f)))
    }
    /// Waits for it (dropping this future aborts the task).
    pub async fn join(mut self) -> Option<T> {
        self.0.as_mut()?.await.ok()
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// Reads `r` line by line, calling `f(line, cut)` per line (without its `\n` or `\r\n`);
/// a line longer than `max` is cut to `max` bytes and the rest discarded, so memory
/// stays bounded whatever the writer sends. A last line without `\n` counts.
async fn read_lines<R: AsyncRead + Unpin>(r: R, max: usize, mut f: impl FnMut(&[u8], bool)) {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let mut line = Vec::new();
    let mut cut = false;
    let mut pending = false;
    loop {
        let buf = match r.fill_buf().await {
            Ok(b) if !b.is_empty() => b,
            _ => break,
        };
        let nl = buf.iter().position(|&b| b == b'\n');
        let chunk = &buf[..nl.unwrap_or(buf.len())];
        let room = max.saturating_sub(line.len());
        if chunk.len() > room {
            line.extend_from_slice(&chunk[..room]);
            cut = true;
        } else {
            line.extend_from_slice(chunk);
        }
        pending = true;
        let used = nl.map(|i| i + 1).unwrap_or(buf.len());
        r.consume(used);
        if nl.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            f(&line, cut);
            line.clear();
            cut = false;
            pending = false;
        }
    }
    if pending {
        f(&line, cut);
    }
}

/// The last non-blank stdout line.
#[derive(Debug, Default)]
pub(super) enum Last {
    /// No output.
    #[default]
    None,
    /// This line.
    Line(String),
    /// A line over the limit.
    TooLong,
}

impl Last {
    /// The result: the line as JSON if it parses, else as a string; `null` if none.
    pub fn into_value(self) -> serde_json::Value {
        match self {
            Last::Line(l) => serde_json::from_str(&l).unwrap_or(serde_json::Value::String(l)),
            Last::None | Last::TooLong => serde_json::Value::Null,
        }
    }

    /// The delay a rate-limited command asked for: `{"retry_after_ms": N}` or `N`.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        let Last::Line(l) = self else { return None };
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        let ms = v.get("retry_after_ms").unwrap_or(&v).as_u64()?;
        Some(std::time::Duration::from_millis(ms))
    }
}

/// Shared slot for stdout's last line.
#[derive(Debug, Clone, Default)]
pub(super) struct LastLine(Arc<Mutex<Last>>);

impl LastLine {
    pub fn take(&self) -> Last {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// Drains stdout, keeping only its last non-blank line.
pub(super) async fn read_stdout<R: AsyncRead + Unpin>(r: R, last: LastLine) {
    read_lines(r, MAX_RESULT_BYTES, |line, cut| {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return;
        }
        *last.0.lock().unwrap() = if cut {
            Last::TooLong
        } else {
            Last::Line(String::from_utf8_lossy(line).trim().to_string())
        };
    })
    .await
}

/// Turns stderr into log lines, and progress lines into progress (a progress line cut
/// at the length limit is logged instead: half a JSON value is no progress).
pub(super) async fn read_stderr<R: AsyncRead + Unpin>(
    r: R,
    logs: LogSender,
    progress: ProgressSender,
) {
    read_lines(r, MAX_LOG_LINE_BYTES, |line, cut| {
        let mut s = String::from_utf8_lossy(line).into_owned();
        if !cut {
            if let Some(v) = super::progress::parse(&s) {
                progress.push(v);
                return;
            }
        }
        if cut {
            s.push_str(&format!(" … [cut at {MAX_LOG_LINE_BYTES} bytes]"));
        }
        logs.push(s);
    })
    .await
}

struct LogState {
    /// Lines accepted for writing this attempt.
    accepted: AtomicUsize,
    /// Lines dropped (over the per-attempt cap, or the buffer was full).
    dropped: AtomicUsize,
    /// The last non-blank stderr line, shortened, for failure messages.
    last: Mutex<Option<String>>,
    /// Set once the command has exited: flush without the rate limit.
    flushing: AtomicBool,
}

/// Where stderr lines go.
pub(super) struct LogSender {
    tx: mpsc::Sender<String>,
    state: Arc<LogState>,
}

impl LogSender {
    fn push(&self, line: String) {
        if !line.trim().is_empty() {
            *self.state.last.lock().unwrap() = Some(shorten(&line, MAX_QUOTED));
        }
        if self.state.accepted.load(Ordering::Relaxed) >= MAX_LOG_LINES_PER_ATTEMPT {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.tx.try_send(line) {
            Ok(()) => {
                self.state.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.state.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Writes log lines to the job, one at a time, rate-limited.
pub(super) struct LogWriter {
    tx: mpsc::Sender<String>,
    state: Arc<LogState>,
    task: Task<()>,
}

impl LogWriter {
    pub fn start(ctx: JobContext) -> LogWriter {
        let (tx, rx) = mpsc::channel(LOG_BURST);
        let state = Arc::new(LogState {
            accepted: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            last: Mutex::new(None),
            flushing: AtomicBool::new(false),
        });
        let task = Task::spawn(write_logs(ctx, rx, state.clone()));
        LogWriter { tx, state, task }
    }

    pub fn sender(&self) -> LogSender {
        LogSender {
            tx: self.tx.clone(),
            state: self.state.clone(),
        }
    }

    /// The last non-blank stderr line (shortened).
    pub fn last_line(&self) -> Option<String> {
        self.state.last.lock().unwrap().clone()
    }

    /// Notes dropped lines, then lets buffered lines reach Redis, for up to `wait`.
    pub async fn finish(self, wait: Duration) {
        self.state.flushing.store(true, Ordering::Relaxed);
        let LogWriter { tx, state, task } = self;
        let _ = tokio::time::timeout(wait, async move {
            let dropped = state.dropped.load(Ordering::Relaxed);
            if dropped > 0 {
                let _ = tx
                    .send(format!(
                        "[baton] {dropped} stderr lines dropped (at most {MAX_LOG_LINES_PER_ATTEMPT} per attempt, {LOG_LINES_PER_SEC}/s)"
                    ))
                    .await;
            }
            drop(tx);
            task.join().await;
        })
        .await;
    }
}

async fn write_logs(ctx: JobContext, mut rx: mpsc::Receiver<String>, state: Arc<LogState>) {
    let mut bucket = Bucket::new(LOG_BURST as f64, LOG_LINES_PER_SEC as f64);
    let mut failures = 0;
    while let Some(line) = rx.recv().await {
        if !state.flushing.load(Ordering::Relaxed) {
            bucket.take().await;
        }
        match ctx.log(&line).await {
            Ok(()) => failures = 0,
            Err(crate::Error::LockLost(_)) => return,
            Err(e) => {
                failures += 1;
                tracing::debug!(job_id = ctx.id(), error = %e, "could not write a log line");
                if failures >= 3 {
                    tracing::warn!(job_id = ctx.id(), error = %e, "log lines cannot be written; dropping the rest of this attempt's");
                    return;
                }
            }
        }
    }
}

/// A token bucket: `burst` at once, then `rate` a second.
struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    at: Instant,
}

impl Bucket {
    fn new(burst: f64, rate: f64) -> Bucket {
        Bucket {
            tokens: burst,
            burst,
            rate,
            at: Instant::now(),
        }
    }
    async fn take(&mut self) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens < 1.0 {
            tokio::time::sleep(Duration::from_secs_f64((1.0 - self.tokens) / self.rate)).await;
            self.tokens = 1.0;
            self.at = Instant::now();
        }
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines(input: &[u8], max: usize) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        read_lines(input, max, |l, c| {
            out.push((String::from_utf8_lossy(l).into_owned(), c))
        })
        .await;
        out
    }

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        assert_eq!(
            lines(b"a\nbb\r\n\nccc", 10).await,
            vec![
                ("a".into(), false),
                ("bb".into(), false),
                ("".into(), false),
                ("ccc".into(), false)
            ]
        );
        assert_eq!(
            lines(b"abcdef\nxy\n", 3).await,
            vec![("abc".into(), true), ("xy".into(), false)]
        );
        let big = vec![b'x'; 200_000];
        let got = lines(&big, 4096).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.len(), 4096);
        assert!(got[0].1);
        assert!(lines(b"", 10).await.is_empty());
    }

    #[test]
    fn result_values() {
        assert_eq!(
            Last::Line("{\"a\":1}".into()).into_value(),
            serde_json::json!({"a": 1})
        );
        assert_eq!(
            Last::Line("done".into()).into_value(),
            serde_json::json!("done")
        );
        assert_eq!(Last::None.into_value(), serde_json::Value::Null);
        assert_eq!(Last::TooLong.into_value(), serde_json::Value::Null);
    }

    #[test]
    fn shorten_respects_char_boundaries() {
        assert_eq!(shorten("héllo", 2), "h…");
        assert_eq!(shorten("abc", 5), "abc");
    }
}
