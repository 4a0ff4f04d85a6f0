//! Progress from the command: a stderr line `BATON_PROGRESS <value>` sets the job's
//! progress (as [`crate::JobContext::progress`] does for a Rust handler) instead of
//! becoming a log line.
//!
//! A line on stderr rather than a file descriptor of its own, because every language
//! and every shell can write one (`echo "BATON_PROGRESS 42" >&2`) and a wrapper script
//! passes it through without plumbing. Values are coalesced: a command may report on
//! every item of a tight loop, and only the latest value matters, so at most one write
//! per [`PROGRESS_INTERVAL`] reaches Redis, and the last value reported always does.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::output::Task;
use crate::worker::JobContext;

/// The prefix of a progress line on stderr (followed by a space and the value).
pub const PROGRESS_PREFIX: &str = "BATON_PROGRESS";
/// Least time between two progress writes of one attempt.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// The progress value of a stderr line, if it is a progress line: the text after the
/// prefix as JSON (`42`, `{"done":3,"total":10}`), or as a string if it is not JSON.
pub(super) fn parse(line: &str) -> Option<serde_json::Value> {
    let rest = line.strip_prefix(PROGRESS_PREFIX)?;
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None; // BATON_PROGRESSIVE is an ordinary line.
    }
    let rest = rest.trim();
    Some(serde_json::from_str(rest).unwrap_or_else(|_| serde_json::Value::String(rest.to_string())))
}

#[derive(Default)]
struct Slot {
    latest: Mutex<Option<serde_json::Value>>,
    wake: Notify,
}

/// Where progress values go (cheap to clone).
#[derive(Clone)]
pub(super) struct ProgressSender(Arc<Slot>);

impl ProgressSender {
    /// Replaces any value not yet written.
    pub fn push(&self, v: serde_json::Value) {
        *self.0.latest.lock().unwrap() = Some(v);
        self.0.wake.notify_one();
    }
}

/// Writes an attempt's progress values to the job, coalesced.
pub(super) struct ProgressWriter {
    slot: Arc<Slot>,
    done: CancellationToken,
    task: Task<()>,
}

impl ProgressWriter {
    pub fn start(ctx: JobContext) -> ProgressWriter {
        let slot = Arc::new(Slot::default());
        let done = CancellationToken::new();
        let task = Task::spawn(write(ctx, slot.clone(), done.clone()));
        ProgressWriter { slot, done, task }
    }

    pub fn sender(&self) -> ProgressSender {
        ProgressSender(self.slot.clone())
    }

    /// Writes the last value reported, if not written yet, for up to `wait`.
    pub async fn finish(self, wait: Duration) {
        self.done.cancel();
        let _ = tokio::time::timeout(wait, self.task.join()).await;
    }
}

async fn write(ctx: JobContext, slot: Arc<Slot>, done: CancellationToken) {
    loop {
        tokio::select! {
            _ = slot.wake.notified() => {}
            _ = done.cancelled() => {}
        }
        let value = slot.latest.lock().unwrap().take();
        if let Some(v) = value {
            match ctx.progress(&v).await {
                Ok(()) => {}
                // Another worker owns the job now: its progress is not ours to write.
                Err(crate::Error::LockLost(_)) => return,
                Err(e) => {
                    tracing::debug!(job_id = ctx.id(), error = %e, "could not write progress");
                }
            }
        }
        if done.is_cancelled() {
            if slot.latest.lock().unwrap().is_none() {
                return;
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(PROGRESS_INTERVAL) => {}
                _ = done.cancelled() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn progress_lines() {
        assert_eq!(parse("BATON_PROGRESS 42"), Some(json!(42)));
        assert_eq!(
            parse("BATON_PROGRESS   {\"done\":3,\"total\":10} "),
            Some(json!({"done": 3, "total": 10}))
        );
        assert_eq!(parse("BATON_PROGRESS resizing"), Some(json!("resizing")));
        assert_eq!(parse("BATON_PROGRESS"), Some(json!("")));
        assert_eq!(parse("BATON_PROGRESSIVE 1"), None);
        assert_eq!(parse("progress 42"), None);
        assert_eq!(parse(" BATON_PROGRESS 42"), None);
    }
}
