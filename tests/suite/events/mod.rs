//! The events stream and waiting for a job's outcome (issue 11, item 5): events read
//! back in the order of each job's life (one worker, several worker processes, a
//! SIGKILLed one), `wait_finished` with the stream on and off, the CLI (`baton events`,
//! `baton add --wait` exit codes), HTTP (SSE, `?wait=`), and a Redis Cluster.

mod cluster;
mod life;
mod surfaces;
mod wait;

use std::time::Duration;

use baton::conn::RedisConfig;
use baton::{handler_fn, Event, JobContext, JobError, Queue, Worker};

/// A worker whose handler does what the payload says:
/// `ok` reports progress 50 then returns `{"done": true}`; `flaky` fails its first
/// attempt (retried after 10 ms) and then does as `ok`; `bad` fails for good with
/// "boom"; `hang` waits until cancelled; `slow` sleeps 50 ms, then as `ok`.
pub(crate) fn worker(redis: impl Into<RedisConfig>, queue: &str) -> baton::WorkerBuilder {
    Worker::builder(redis, queue)
        .concurrency(4)
        .lease(Duration::from_secs(1))
        .heartbeat(Duration::from_millis(250))
        .stalled_interval(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(2))
}

pub(crate) fn handler() -> impl baton::Handler {
    handler_fn(|mode: String, ctx: JobContext| async move {
        match mode.as_str() {
            "bad" => return Err(JobError::fatal("boom")),
            "flaky" if ctx.attempt() == 1 => {
                return Err(JobError::retry_after(
                    "first try",
                    Duration::from_millis(10),
                ))
            }
            "hang" => {
                ctx.cancelled().await;
                return Err(JobError::fatal("stopped"));
            }
            "slow" => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => {}
        }
        ctx.progress(&50)
            .await
            .map_err(|e| JobError::retry(e.to_string()))?;
        Ok(serde_json::json!({"done": true}))
    })
}

/// Every event kept, oldest first.
pub(crate) async fn all_events(q: &Queue) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    loop {
        let after = out.last().map(|e| e.stream_id.clone());
        let page = q.events(after.as_deref(), 1000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// The names of job `id`'s events, in stream order.
pub(crate) fn names_of(events: &[Event], id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.job_id == id)
        .map(|e| e.event.clone())
        .collect()
}

/// The event `name` of job `id`.
pub(crate) fn event<'a>(events: &'a [Event], id: &str, name: &str) -> &'a Event {
    events
        .iter()
        .find(|e| e.job_id == id && e.event == name)
        .unwrap_or_else(|| panic!("no {name} event for {id} in {events:#?}"))
}
