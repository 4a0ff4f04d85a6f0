//! Metric names and the Prometheus recorder.
//!
//! baton records through the [`metrics`](https://docs.rs/metrics) facade, so an
//! application may install any recorder. `install` (feature `prometheus`) installs
//! baton's Prometheus recorder, the one `/metrics` renders.
//!
//! Every metric baton exports is named here, once, so the Grafana dashboard and the
//! tests can check themselves against [`ALL`]. Counters carry the label `queue`;
//! `baton_queue_jobs` carries `queue` and `state`.

#[cfg(feature = "prometheus")]
use std::sync::OnceLock;

#[cfg(feature = "prometheus")]
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Jobs added to a queue (counter, label `queue`).
pub const JOBS_ENQUEUED: &str = "baton_jobs_enqueued_total";
/// Jobs whose handler succeeded and whose completion landed (counter).
pub const JOBS_COMPLETED: &str = "baton_jobs_completed_total";
/// Jobs that failed for good: last attempt, fatal error, bad payload, too many stalls (counter).
pub const JOBS_FAILED: &str = "baton_jobs_failed_total";
/// Attempts that failed and were scheduled to run again (counter).
pub const JOBS_RETRIED: &str = "baton_jobs_retried_total";
/// Jobs whose lease expired and which the sweeper recovered or failed (counter).
pub const JOBS_STALLED: &str = "baton_jobs_stalled_total";
/// Jobs that ended `cancelled` (counter).
pub const JOBS_CANCELLED: &str = "baton_jobs_cancelled_total";
/// Outcomes or renewals refused because the worker's lease was gone (counter).
pub const JOBS_LOCK_LOST: &str = "baton_jobs_lock_lost_total";
/// Handler run time in seconds (histogram, label `queue`).
pub const JOB_DURATION: &str = "baton_job_duration_seconds";
/// Time from enqueue (or due time) to the start of the attempt, in seconds (histogram).
pub const JOB_WAIT: &str = "baton_job_wait_seconds";
/// Jobs per queue and state as read from Redis (gauge, labels `queue`, `state`).
pub const QUEUE_JOBS: &str = "baton_queue_jobs";
/// Jobs this worker process is running now (gauge, labels `queue`, `worker`).
pub const WORKER_IN_FLIGHT: &str = "baton_worker_in_flight_jobs";
/// Redis calls that failed, by operation (counter, labels `queue`, `op`).
pub const REDIS_ERRORS: &str = "baton_redis_errors_total";
/// A worker's background loop that ended before its shutdown (panicked or returned),
/// which stops the worker (counter, labels `queue`, `task`).
pub const WORKER_TASK_FAILURES: &str = "baton_worker_task_failures_total";

/// Every metric name baton exports (the per-queue counters first).
pub const ALL: &[&str] = &[
    JOBS_ENQUEUED,
    JOBS_COMPLETED,
    JOBS_FAILED,
    JOBS_RETRIED,
    JOBS_STALLED,
    JOBS_CANCELLED,
    JOBS_LOCK_LOST,
    JOB_DURATION,
    JOB_WAIT,
    QUEUE_JOBS,
    WORKER_IN_FLIGHT,
    REDIS_ERRORS,
    WORKER_TASK_FAILURES,
];

/// The per-queue counters (label `queue` only): the first seven of [`ALL`].
const QUEUE_COUNTERS: &[&str] = ALL.split_at(7).0;

/// Registers every per-queue counter of `queue` at zero (idempotent). Workers call it
/// at start, the gauge refresher for every queue it finds.
///
/// Prometheus' `rate()` and `increase()` miss the first increment of a series that
/// appears with value 1; a series that exists from the start at 0 does not have that
/// problem, and dashboards show 0 rather than "no data".
pub fn register_queue(queue: &str) {
    for name in QUEUE_COUNTERS {
        metrics::counter!(*name, "queue" => queue.to_string()).increment(0);
    }
    for task in WORKER_TASKS {
        metrics::counter!(WORKER_TASK_FAILURES, "queue" => queue.to_string(), "task" => *task)
            .increment(0);
    }
    for op in QUEUE_REDIS_OPS {
        metrics::counter!(REDIS_ERRORS, "queue" => queue.to_string(), "op" => *op).increment(0);
    }
}

/// The `op` labels of [`REDIS_ERRORS`] for one queue, registered at zero by
/// [`register_queue`]: the worker's claimer (`wait` for the blocking wait, `claim`,
/// `reconcile`), heartbeat (`renew`), acker (`finish`), sweeper (`sweep`) and
/// scheduler loop (`schedule`), and the
/// gauge refresher's per-queue read (`counts`). A healthy worker then shows 0 errors
/// instead of no series (a dashboard panel reading "No data" looks broken, and
/// `rate()` would miss the first error). A new `op` label belongs here too.
pub const QUEUE_REDIS_OPS: &[&str] = &[
    "wait",
    "claim",
    "reconcile",
    "renew",
    "finish",
    "sweep",
    "schedule",
    "counts",
];

/// The `op` labels of [`REDIS_ERRORS`] that belong to no queue (label `queue=""`): the
/// ops server's queue discovery and `/readyz`. Registered at zero by `install`.
pub const PROCESS_REDIS_OPS: &[&str] = &["discover", "readyz"];

/// The background loops of a worker, as `task` labels of [`WORKER_TASK_FAILURES`].
pub const WORKER_TASKS: &[&str] = &[
    "claimer",
    "acker",
    "heartbeat",
    "sweeper",
    "scheduler",
    "canceller",
];

/// Histogram buckets in seconds, from 1 ms to 1 h.
#[cfg(feature = "prometheus")]
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
    3600.0,
];

#[cfg(feature = "prometheus")]
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
///
/// The handle renders the text exposition for `/metrics`. Calling it again returns the
/// same handle, so the worker and the HTTP API can share one recorder.
#[cfg(feature = "prometheus")]
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Into our recorder even if the host application installed its own.
            metrics::with_local_recorder(&recorder, || {
                for op in PROCESS_REDIS_OPS {
                    metrics::counter!(REDIS_ERRORS, "queue" => "", "op" => *op).increment(0);
                }
            });
            // Another recorder may already be installed (a host application's);
            // then ours still renders what it records through `handle`.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

#[cfg(feature = "prometheus")]
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(JOBS_ENQUEUED, "Jobs added to a queue.");
    describe_counter!(JOBS_COMPLETED, "Jobs completed.");
    describe_counter!(JOBS_FAILED, "Jobs failed for good.");
    describe_counter!(JOBS_RETRIED, "Failed attempts scheduled to run again.");
    describe_counter!(
        JOBS_STALLED,
        "Jobs whose lease expired (recovered or failed)."
    );
    describe_counter!(JOBS_CANCELLED, "Jobs that ended cancelled.");
    describe_counter!(
        JOBS_LOCK_LOST,
        "Outcomes or renewals refused because the lease was lost."
    );
    describe_histogram!(JOB_DURATION, Unit::Seconds, "Handler run time.");
    describe_histogram!(
        JOB_WAIT,
        Unit::Seconds,
        "Time from ready to start of an attempt."
    );
    describe_gauge!(QUEUE_JOBS, "Jobs per queue and state, read from Redis.");
    describe_gauge!(WORKER_IN_FLIGHT, "Jobs this worker process is running.");
    describe_counter!(REDIS_ERRORS, "Redis calls that failed.");
    describe_counter!(
        WORKER_TASK_FAILURES,
        "Worker background loops that ended early (the worker then stops)."
    );
}

/// Handles on one queue's per-job metrics, made once per worker: the macros look a
/// series up by its labels on every call, which is measurable at tens of thousands
/// of jobs a second. Made when the worker starts, so the recorder installed by then
/// (if any) is the one they record into.
#[derive(Clone)]
pub(crate) struct QueueMetrics {
    pub completed: metrics::Counter,
    pub failed: metrics::Counter,
    pub retried: metrics::Counter,
    pub stalled: metrics::Counter,
    pub cancelled: metrics::Counter,
    pub lock_lost: metrics::Counter,
    pub duration: metrics::Histogram,
    pub wait: metrics::Histogram,
    pub in_flight: metrics::Gauge,
}

impl QueueMetrics {
    /// Handles for `queue`, with `worker` labelling the in-flight gauge.
    pub fn new(queue: &str, worker: &str) -> QueueMetrics {
        let q = || queue.to_string();
        QueueMetrics {
            completed: metrics::counter!(JOBS_COMPLETED, "queue" => q()),
            failed: metrics::counter!(JOBS_FAILED, "queue" => q()),
            retried: metrics::counter!(JOBS_RETRIED, "queue" => q()),
            stalled: metrics::counter!(JOBS_STALLED, "queue" => q()),
            cancelled: metrics::counter!(JOBS_CANCELLED, "queue" => q()),
            lock_lost: metrics::counter!(JOBS_LOCK_LOST, "queue" => q()),
            duration: metrics::histogram!(JOB_DURATION, "queue" => q()),
            wait: metrics::histogram!(JOB_WAIT, "queue" => q()),
            in_flight: metrics::gauge!(WORKER_IN_FLIGHT, "queue" => q(), "worker" => worker.to_string()),
        }
    }
}
