//! Runs one claimed job: opens an encrypted payload (see [`crate::crypto`]) but decodes
//! nothing itself (the handler does), enforces the timeout, catches panics, reacts to
//! stop requests, and turns what happened into the outcome the acker writes.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::OwnedSemaphorePermit;

use super::acker::Pending;
use super::context::JobContext;
use super::handler::{JobError, Retry};
use super::inflight::{Held, StopReason};
use super::Shared;
use crate::job::RunOptions;
use crate::scripts::{Claimed, Kind, Outcome};

/// Largest result a job may store (MessagePack bytes): results live in Redis's memory,
/// and a write Redis refuses would have to fail the job anyway.
pub const MAX_RESULT_BYTES: usize = 16 << 20;

/// Runs `job` to an outcome and hands it to the acker. `permit` is the concurrency
/// slot; it is released when the handler returns.
pub(crate) async fn process(
    shared: Arc<Shared>,
    job: Claimed,
    held: Arc<Held>,
    claim_now_ms: u64,
    permit: OwnedSemaphorePermit,
) {
    let queue = shared.keys.queue();
    let wait = claim_now_ms.saturating_sub(job.ready_ms) as f64 / 1000.0;
    shared.metrics().wait.record(wait);
    let opts: RunOptions = match rmp_serde::from_slice(&job.opts) {
        Ok(o) => o,
        Err(e) => {
            drop(permit);
            held.running.store(false, Ordering::Relaxed);
            shared.report_in_flight(-1);
            let msg = format!("job options could not be decoded: {e}");
            shared
                .outcome(Pending::new(
                    &job,
                    Kind::Failed,
                    msg.into_bytes(),
                    Duration::ZERO,
                ))
                .await;
            return;
        }
    };
    // A payload this worker cannot decrypt fails for good: another attempt would meet
    // the same missing key or the same damaged bytes.
    let data = match crate::crypto::open(shared.keyring.as_deref(), &job.data) {
        Ok(d) => d.into_owned(),
        Err(e) => {
            drop(permit);
            held.running.store(false, Ordering::Relaxed);
            shared.report_in_flight(-1);
            let msg = format!("payload {e}");
            tracing::warn!(queue = %queue, job_id = %job.id, reason = %msg, "job failed: payload does not decrypt");
            shared
                .outcome(Pending::new(
                    &job,
                    Kind::Failed,
                    msg.into_bytes(),
                    Duration::ZERO,
                ))
                .await;
            return;
        }
    };
    let timeout = opts.timeout.or(shared.opts.timeout);
    let ctx = JobContext::new(
        job.id.clone(),
        job.name.clone(),
        job.attempt,
        opts.attempts,
        job.stalled,
        data,
        job.token,
        held.cancel.clone(),
        shared.keys.clone(),
        shared.conn.clone(),
    );
    let started = Instant::now();
    // The handler is polled right here, in the job's task and span (so its log lines
    // carry queue and job id); aborting it means no longer polling it and dropping it.
    // Panics are caught at each poll.
    let mut task = tokio::spawn(tracing::Instrument::in_current_span(
        std::panic::AssertUnwindSafe(shared.handler.handle(ctx)).catch_unwind(),
    ));
    let deadline = async {
        match timeout {
            Some(t) => tokio::time::sleep(t).await,
            None => std::future::pending().await,
        }
    };
    let finished = tokio::select! {
        r = &mut task => Some(r),
        _ = deadline => { held.stop(StopReason::Timeout); None }
        _ = held.cancel.cancelled() => None,
    };
    let result = match finished {
        Some(r) => Some(r),
        None => match tokio::time::timeout(shared.opts.abort_grace, &mut task).await {
            Ok(r) => Some(r),
            Err(_) => {
                tracing::warn!(queue = %queue, job_id = %job.id, "handler did not stop within the abort grace; aborting it");
                task.abort();
                None
            }
        },
    };
    let elapsed = started.elapsed();
    shared.metrics().duration.record(elapsed.as_secs_f64());
    held.running.store(false, Ordering::Relaxed);
    shared.report_in_flight(-1);
    drop(permit);

    // Flatten: Ok(Ok(bytes)) success; Ok(Err(e)) handler error; Err(panic); None aborted.
    let result: Result<Vec<u8>, JobError> = match result {
        Some(Ok(Ok(Ok(bytes)))) if bytes.len() > MAX_RESULT_BYTES => Err(JobError::fatal(format!(
            "result too large to store: {} bytes (the limit is {MAX_RESULT_BYTES})",
            bytes.len()
        ))),
        Some(Ok(Ok(Ok(bytes)))) => Ok(bytes),
        Some(Ok(Ok(Err(e)))) => Err(e),
        Some(Err(_)) => Err(JobError::retry("handler task failed")),
        Some(Ok(Err(panic))) => Err(JobError::retry(format!(
            "handler panicked: {}",
            panic_message(&panic)
        ))),
        None => Err(JobError::retry("handler aborted")),
    };
    let (kind, value, delay) = match (held.reason(), result) {
        (Some(StopReason::LeaseLost), _) => {
            // Nothing to write: another worker owns the job now. Counted by the heartbeat.
            shared.inflight.remove(&job.id, job.token);
            return;
        }
        (Some(StopReason::Cancelled), _) => (
            Kind::Cancelled,
            b"cancelled by request".to_vec(),
            Duration::ZERO,
        ),
        (Some(StopReason::Shutdown), Ok(bytes)) => (Kind::Completed, bytes, Duration::ZERO),
        (Some(StopReason::Shutdown), Err(_)) => (
            Kind::HandBack,
            b"handed back at shutdown".to_vec(),
            Duration::ZERO,
        ),
        (Some(StopReason::Timeout), _) => {
            let t = timeout.unwrap_or_default();
            failure(
                &opts,
                job.attempt,
                JobError::retry(format!("timed out after {t:?}")),
            )
        }
        (None, Ok(bytes)) => (Kind::Completed, bytes, Duration::ZERO),
        (None, Err(e)) => failure(&opts, job.attempt, e),
    };
    if kind != Kind::Completed {
        tracing::info!(queue = %queue, job_id = %job.id, attempt = job.attempt, outcome = ?kind,
            reason = %String::from_utf8_lossy(&value), "attempt did not complete");
    }
    shared.outcome(Pending::new(&job, kind, value, delay)).await;
}

/// Retry with backoff while attempts remain and the error allows; else fail.
fn failure(opts: &RunOptions, attempt: u32, e: JobError) -> (Kind, Vec<u8>, Duration) {
    let msg = e.message().as_bytes().to_vec();
    match e.retry_choice() {
        Retry::Never => (Kind::Failed, msg, Duration::ZERO),
        _ if attempt >= opts.attempts => (Kind::Failed, msg, Duration::ZERO),
        Retry::After(d) => (Kind::Retry, msg, d),
        Retry::Backoff => (Kind::Retry, msg, opts.backoff.delay(attempt)),
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

impl Pending {
    fn new(job: &Claimed, kind: Kind, value: Vec<u8>, delay: Duration) -> Pending {
        Pending(Outcome {
            id: job.id.clone(),
            token: job.token,
            kind,
            value,
            delay,
        })
    }
}
