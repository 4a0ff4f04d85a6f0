//! Runs one claimed job: opens an encrypted payload (see [`crate::crypto`]) but decodes
//! nothing itself (the handler does), enforces the timeout, catches panics, reacts to
//! stop requests, and turns what happened into the outcome the acker writes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::task::TaskTracker;

use super::acker::Pending;
use super::context::JobContext;
use super::handler::{Handler, JobError, Retry};
use super::inflight::{Held, InFlight, StopReason};
use crate::conn::SharedConn;
use crate::crypto::Keyring;
use crate::job::RunOptions;
use crate::keys::Keys;
use crate::metrics::QueueMetrics;
use crate::scripts::{Claimed, Kind, Outcome};

/// Largest result a job may store (MessagePack bytes): results live in Redis's memory,
/// and a write Redis refuses would have to fail the job anyway.
pub const MAX_RESULT_BYTES: usize = 16 << 20;

/// What running one queue's jobs takes, from claim to outcome.
pub(crate) struct ProcessorParams {
    pub keys: Keys,
    /// Handed to each job's [`JobContext`] (progress, logs, steps).
    pub conn: SharedConn,
    pub handler: Arc<dyn Handler>,
    /// Opens payloads; seals results and error texts.
    pub keyring: Option<Arc<Keyring>>,
    /// A claimed job is held until `sent + lease` at the earliest.
    pub lease: Duration,
    /// Default per-attempt timeout (a job's own wins).
    pub timeout: Option<Duration>,
    /// Time a told-to-stop handler gets before it is aborted.
    pub abort_grace: Duration,
    /// Where a started job is registered.
    pub inflight: InFlight,
    /// Tracks job tasks, so shutdown can wait for them.
    pub tracker: TaskTracker,
    pub metrics: QueueMetrics,
    /// Where outcomes go: the acker of this queue.
    pub outcomes: mpsc::UnboundedSender<Pending>,
}

/// Starts and runs one queue's jobs (shared by them all).
pub(crate) struct Processor {
    p: ProcessorParams,
    /// Handlers running now (for the in-flight gauge).
    running: AtomicUsize,
}

impl Processor {
    pub fn new(p: ProcessorParams) -> Arc<Processor> {
        Arc::new(Processor {
            p,
            running: AtomicUsize::new(0),
        })
    }

    /// Registers a claimed job and starts its handler.
    ///
    /// `sent`: when the claim was sent (its lease ends no earlier than `sent + lease`).
    pub fn start(
        self: &Arc<Self>,
        job: Claimed,
        claim_now_ms: u64,
        sent: tokio::time::Instant,
        permit: OwnedSemaphorePermit,
    ) {
        let (held, replaced) = self
            .p
            .inflight
            .insert(&job.id, job.token, sent + self.p.lease);
        if replaced.is_some() {
            tracing::warn!(queue = %self.p.keys.queue(), job_id = %job.id, "an older attempt held here lost its lease; stopping it");
            self.p.metrics.lock_lost.increment(1);
        }
        self.report_in_flight(1);
        let this = self.clone();
        // The options are decoded here, before the span is made, because the span's
        // parent (the producer's trace, carried in them) must be set before it is entered.
        let opts = match &job.corrupt {
            Some(why) => Err(why.clone()),
            None => RunOptions::decode(&job.opts)
                .map_err(|e| format!("job options could not be decoded: {e}")),
        };
        let span = tracing::info_span!("job", queue = %self.p.keys.queue(), job_id = %job.id, attempt = job.attempt, trace_id = tracing::field::Empty);
        if let Some(t) = opts.as_ref().ok().and_then(|o| o.trace) {
            span.record("trace_id", tracing::field::display(t.trace_id_hex()));
            #[cfg(feature = "otel")]
            t.adopt(&span);
        }
        self.p.tracker.spawn(tracing::Instrument::instrument(
            this.process(job, opts, held, claim_now_ms, permit),
            span,
        ));
    }

    /// Counts a handler in (+1) or out (-1) and sets the in-flight gauge.
    fn report_in_flight(&self, delta: isize) {
        let now = if delta > 0 {
            self.running.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.running.fetch_sub(1, Ordering::Relaxed) - 1
        };
        self.p.metrics.in_flight.set(now as f64);
    }

    /// Hands an outcome to the acker, its result or error text encrypted when this
    /// worker holds keys (a hand-back's value is not stored, so it stays as it is).
    async fn outcome(&self, mut pending: Pending) {
        if pending.0.kind != Kind::HandBack {
            pending.0.value = crate::crypto::seal(
                self.p.keyring.as_deref(),
                std::mem::take(&mut pending.0.value),
            );
        }
        if let Err(e) = self.p.outcomes.send(pending) {
            tracing::error!(job_id = %e.0 .0.id, "outcome writer has stopped; the job will be recovered when its lease expires");
        }
    }

    /// Runs `job` to an outcome and hands it to the acker. `permit` is the concurrency
    /// slot; it is released when the handler returns.
    pub async fn process(
        self: Arc<Self>,
        job: Claimed,
        opts: std::result::Result<RunOptions, String>,
        held: Arc<Held>,
        claim_now_ms: u64,
        permit: OwnedSemaphorePermit,
    ) {
        let p = &self.p;
        let queue = p.keys.queue();
        let wait = claim_now_ms.saturating_sub(job.ready_ms) as f64 / 1000.0;
        p.metrics.wait.record(wait);
        let opts: RunOptions = match opts {
            Ok(o) => o,
            Err(e) => {
                drop(permit);
                held.running.store(false, Ordering::Relaxed);
                self.report_in_flight(-1);
                tracing::warn!(queue = %queue, job_id = %job.id, reason = %e, "job failed: its record cannot run");
                self.outcome(Pending::new(
                    &job,
                    Kind::Failed,
                    e.into_bytes(),
                    Duration::ZERO,
                ))
                .await;
                return;
            }
        };
        // A payload this worker cannot decrypt fails for good: another attempt would meet
        // the same missing key or the same damaged bytes.
        let data = match crate::crypto::open(p.keyring.as_deref(), &job.data) {
            Ok(d) => d.into_owned(),
            Err(e) => {
                drop(permit);
                held.running.store(false, Ordering::Relaxed);
                self.report_in_flight(-1);
                let msg = format!("payload {e}");
                tracing::warn!(queue = %queue, job_id = %job.id, reason = %msg, "job failed: payload does not decrypt");
                self.outcome(Pending::new(
                    &job,
                    Kind::Failed,
                    msg.into_bytes(),
                    Duration::ZERO,
                ))
                .await;
                return;
            }
        };
        let timeout = opts.timeout.or(p.timeout);
        let ctx = JobContext::new(
            job.id.clone(),
            job.name.clone(),
            job.attempt,
            opts.attempts,
            job.stalled,
            data,
            job.token,
            held.cancel.clone(),
            p.keys.clone(),
            p.conn.clone(),
            opts.trace,
            p.keyring.clone(),
        );
        let started = Instant::now();
        // The handler is polled right here, in the job's task and span (so its log lines
        // carry queue and job id), not in a task of its own: one task per job, not two
        // (a spawn and its cross-thread wake-ups were a visible share of a busy worker's
        // CPU). Aborting it means no longer polling it and dropping it. Panics are caught
        // at each poll.
        // In a block of its own, so an aborted handler is dropped here, at once.
        let result = {
            let mut handler =
                std::pin::pin!(std::panic::AssertUnwindSafe(p.handler.handle(ctx)).catch_unwind());
            let deadline = async {
                match timeout {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            let finished = tokio::select! {
                r = &mut handler => Some(r),
                _ = deadline => { held.stop(StopReason::Timeout); None }
                _ = held.cancel.cancelled() => None,
            };
            match finished {
                Some(r) => Some(r),
                None => match tokio::time::timeout(p.abort_grace, &mut handler).await {
                    Ok(r) => Some(r),
                    Err(_) => {
                        tracing::warn!(queue = %queue, job_id = %job.id, "handler did not stop within the abort grace; aborting it");
                        None
                    }
                },
            }
        };
        let elapsed = started.elapsed();
        p.metrics.duration.record(elapsed.as_secs_f64());
        held.running.store(false, Ordering::Relaxed);
        self.report_in_flight(-1);
        // A "rate limited" outcome keeps its slot until it is written (below): this
        // worker's next claim must see the hold it sets.
        let limited = matches!(&result, Some(Ok(Err(e))) if matches!(e.retry_choice(), Retry::RateLimited(_)));
        let permit = if limited {
            Some(permit)
        } else {
            drop(permit);
            None
        };

        // Flatten: Ok(Ok(bytes)) success; Ok(Err(e)) handler error; Err(panic); None aborted.
        let result: Result<Vec<u8>, JobError> = match result {
            Some(Ok(Ok(bytes))) if bytes.len() > MAX_RESULT_BYTES => Err(JobError::fatal(format!(
                "result too large to store: {} bytes (the limit is {MAX_RESULT_BYTES})",
                bytes.len()
            ))),
            Some(Ok(Ok(bytes))) => Ok(bytes),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(panic)) => Err(JobError::retry(format!(
                "handler panicked: {}",
                panic_message(&panic)
            ))),
            None => Err(JobError::retry("handler aborted")),
        };
        let (kind, value, delay) = match (held.reason(), result) {
            (Some(StopReason::LeaseLost), _) => {
                // Nothing to write: another worker owns the job now. Counted by the heartbeat.
                p.inflight.remove(&job.id, job.token);
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
        self.outcome(Pending::new(&job, kind, value, delay)).await;
        if let Some(permit) = permit {
            let deadline = Instant::now() + LIMITED_WRITE_WAIT;
            while p.inflight.holds(&job.id, job.token) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            drop(permit);
        }
    }
}

/// How long a "rate limited" outcome keeps its slot at most, waiting to be written.
const LIMITED_WRITE_WAIT: Duration = Duration::from_secs(2);

/// Retry with backoff while attempts remain and the error allows; else fail.
fn failure(opts: &RunOptions, attempt: u32, e: JobError) -> (Kind, Vec<u8>, Duration) {
    let msg = e.message().as_bytes().to_vec();
    match e.retry_choice() {
        Retry::Never => (Kind::Failed, msg, Duration::ZERO),
        // Not an attempt: the attempt count does not stop it.
        Retry::RateLimited(d) => (Kind::RateLimited, msg, d),
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
            forget: job.forget,
        })
    }
}
