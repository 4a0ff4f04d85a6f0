//! The worker: claims jobs, runs them with bounded concurrency, renews their leases,
//! recovers other workers' stalled jobs, hears cancels, and shuts down gracefully.
//!
//! Inside (private), one background task per concern, each in its own module with a
//! `tick()`: `claimer` (claim + idle block), `acker` (outcome batches), `heartbeat`
//! (lease renewal, lost-lease and cancel detection), `sweeper` (expired leases),
//! `canceller` (cancel messages); `shutdown` holds the shutdown sequence.

pub(crate) mod acker;
pub(crate) mod backoff;
pub(crate) mod canceller;
pub(crate) mod claimer;
mod context;
mod handler;
pub(crate) mod heartbeat;
pub(crate) mod inflight;
pub(crate) mod lane;
mod options;
pub(crate) mod processor;
pub(crate) mod shutdown;
pub(crate) mod supervisor;
pub(crate) mod sweeper;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use claimer::QueueOrder;
pub use context::JobContext;
pub use handler::{handler_fn, Handler, HandlerFuture, JobError, Retry};
pub use options::WorkerOptions;

use crate::error::Result;
use crate::keys::Keys;
use crate::scripts::Claimed;
use acker::Pending;
use inflight::InFlight;

/// What every part of a running worker shares.
pub(crate) struct Shared {
    pub keys: Keys,
    pub conn: crate::conn::SharedConn,
    pub id: String,
    pub opts: WorkerOptions,
    pub handler: Arc<dyn Handler>,
    pub inflight: InFlight,
    pub tracker: TaskTracker,
    outcomes: mpsc::UnboundedSender<Pending>,
    started_ms: u128,
    /// Handlers running now (for the in-flight gauge).
    running: std::sync::atomic::AtomicUsize,
    /// Metric handles, made when the worker starts running.
    metrics: std::sync::OnceLock<crate::metrics::QueueMetrics>,
    /// Decrypts payloads and encrypts results and errors (see [`crate::crypto`]).
    pub keyring: Option<Arc<crate::crypto::Keyring>>,
}

impl Shared {
    /// Registers a claimed job and starts its handler.
    ///
    /// `sent`: when the claim was sent (its lease ends no earlier than `sent + lease`).
    fn start(
        self: &Arc<Self>,
        job: Claimed,
        claim_now_ms: u64,
        sent: tokio::time::Instant,
        permit: OwnedSemaphorePermit,
    ) {
        let (held, replaced) = self
            .inflight
            .insert(&job.id, job.token, sent + self.opts.lease);
        if replaced.is_some() {
            tracing::warn!(queue = %self.keys.queue(), job_id = %job.id, "an older attempt held here lost its lease; stopping it");
            self.metrics().lock_lost.increment(1);
        }
        self.report_in_flight(1);
        let shared = self.clone();
        let span = tracing::info_span!("job", queue = %self.keys.queue(), job_id = %job.id, attempt = job.attempt);
        self.tracker.spawn(tracing::Instrument::instrument(
            processor::process(shared, job, held, claim_now_ms, permit),
            span,
        ));
    }

    /// Counts a handler in (+1) or out (-1) and sets the in-flight gauge.
    fn report_in_flight(&self, delta: isize) {
        let now = if delta > 0 {
            self.running
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                + 1
        } else {
            self.running
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed)
                - 1
        };
        self.metrics().in_flight.set(now as f64);
    }

    /// This worker's metric handles.
    fn metrics(&self) -> &crate::metrics::QueueMetrics {
        self.metrics
            .get_or_init(|| crate::metrics::QueueMetrics::new(self.keys.queue(), &self.id))
    }

    /// Hands an outcome to the acker, its result or error text encrypted when this
    /// worker holds keys (a hand-back's value is not stored, so it stays as it is).
    async fn outcome(&self, mut p: Pending) {
        if p.0.kind != crate::scripts::Kind::HandBack {
            p.0.value =
                crate::crypto::seal(self.keyring.as_deref(), std::mem::take(&mut p.0.value));
        }
        if let Err(e) = self.outcomes.send(p) {
            tracing::error!(job_id = %e.0 .0.id, "outcome writer has stopped; the job will be recovered when its lease expires");
        }
    }

    /// This worker's self-description for `baton workers`.
    fn description(&self, held: usize) -> String {
        serde_json::json!({
            "host": hostname(),
            "pid": std::process::id(),
            "concurrency": self.opts.concurrency,
            "in_flight": held,
            "started_ms": self.started_ms,
        })
        .to_string()
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        })
}

/// Builds a [`Worker`]. Method names follow [`WorkerOptions`]' fields.
#[derive(Debug, Clone)]
pub struct WorkerBuilder {
    redis: crate::conn::RedisConfig,
    /// The queues served, in order, with their weights.
    queues: Vec<(String, u32)>,
    order: QueueOrder,
    opts: WorkerOptions,
    fault: Option<supervisor::InjectedFault>,
    keyring: Option<Arc<crate::crypto::Keyring>>,
}

macro_rules! setter {
    ($name:ident, $t:ty, $doc:literal) => {
        #[doc = $doc]
        pub fn $name(mut self, v: $t) -> Self {
            self.opts.$name = v;
            self
        }
    };
}

impl WorkerBuilder {
    setter!(concurrency, usize, "Jobs run at once (at least 1).");
    setter!(
        lease,
        Duration,
        "Lease length; the heartbeat follows at a third of it unless set."
    );
    setter!(heartbeat, Duration, "Lease renewal interval.");
    setter!(
        stalled_interval,
        Duration,
        "How often to look for expired leases."
    );
    setter!(max_stalled, u32, "Recoveries allowed before a job fails.");
    setter!(
        shutdown_timeout,
        Duration,
        "Time in-flight jobs get to finish at shutdown."
    );
    setter!(
        abort_grace,
        Duration,
        "Time a told-to-stop handler gets before it is aborted."
    );
    setter!(
        idle_block,
        Duration,
        "Longest idle block before looking again."
    );

    /// Default per-attempt timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.opts.timeout = Some(t);
        self
    }

    /// Runs on a Redis without noeviction or AOF anyway (development only; logs a warning).
    pub fn allow_unfit_redis(mut self) -> Self {
        self.opts.check_redis = false;
        self
    }

    /// Serves these queues (replacing the one given to [`Worker::builder`]) from one
    /// concurrency budget, in strict order: a queue gets slots only when the queues
    /// before it have no work.
    pub fn queues<S: Into<String>>(mut self, queues: impl IntoIterator<Item = S>) -> Self {
        self.queues = queues.into_iter().map(|q| (q.into(), 1)).collect();
        self.order = QueueOrder::Strict;
        self
    }

    /// Serves these queues from one concurrency budget, sharing slots by weight: under
    /// load a queue of weight 5 gets about five times the slots of one of weight 1.
    pub fn weighted_queues<S: Into<String>>(
        mut self,
        queues: impl IntoIterator<Item = (S, u32)>,
    ) -> Self {
        self.queues = queues
            .into_iter()
            .map(|(q, w)| (q.into(), w.max(1)))
            .collect();
        self.order = QueueOrder::Weighted;
        self
    }

    /// Decrypts payloads encrypted with any of `keyring`'s keys and encrypts results
    /// and error texts with its first key (see [`crate::crypto`]). Plaintext payloads
    /// (added before encryption was turned on) still run. A job encrypted with a key
    /// not held, or one whose ciphertext does not authenticate, fails at once with no
    /// retry and a reason that says so; the worker goes on.
    pub fn encryption(mut self, keyring: Arc<crate::crypto::Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Fault injection for tests: the named background loop panics `after` start.
    #[doc(hidden)]
    pub fn inject_fault(mut self, task: &'static str, after: Duration) -> Self {
        self.fault = Some(supervisor::InjectedFault { task, after });
        self
    }

    /// The options so far.
    pub fn options(&self) -> &WorkerOptions {
        &self.opts
    }

    /// Sets all options at once.
    pub fn with_options(mut self, opts: WorkerOptions) -> Self {
        self.opts = opts;
        self
    }

    /// The worker, with `handler`.
    pub fn build<H: Handler>(self, handler: H) -> Result<Worker> {
        self.build_arc(Arc::new(handler))
    }

    /// The worker, with a shared handler.
    pub fn build_arc(self, handler: Arc<dyn Handler>) -> Result<Worker> {
        let mut opts = self.opts.resolved()?;
        opts.concurrency = opts.concurrency.max(1);
        if self.queues.is_empty() {
            return Err(crate::Error::Invalid(
                "a worker needs at least one queue".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (q, _) in &self.queues {
            crate::validate::queue_name(q)?;
            if !seen.insert(q.as_str()) {
                return Err(crate::Error::Invalid(format!(
                    "queue {q:?} is listed twice"
                )));
            }
        }
        let connector = crate::conn::Connector::new(self.redis)?;
        let conn = crate::conn::SharedConn::new(connector, crate::conn::WORKER_TIMEOUT);
        let id = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let started_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let mut lanes = Vec::new();
        for (queue, weight) in self.queues {
            let (tx, rx) = mpsc::unbounded_channel();
            let shared = Arc::new(Shared {
                keys: Keys::new(&queue),
                conn: conn.clone(),
                id: id.clone(),
                opts: opts.clone(),
                handler: handler.clone(),
                inflight: InFlight::default(),
                tracker: TaskTracker::new(),
                outcomes: tx,
                running: Default::default(),
                metrics: Default::default(),
                started_ms,
                keyring: self.keyring.clone(),
            });
            lanes.push(shutdown::LaneParts {
                shared,
                outcomes: rx,
                weight,
            });
        }
        Ok(Worker {
            shared: lanes[0].shared.clone(),
            lanes: Some(lanes),
            order: self.order,
            fault: self.fault,
            signals: ShutdownHandle::default(),
        })
    }
}

/// Asks a running worker to shut down. Cloneable; from any task.
#[derive(Debug, Clone, Default)]
pub struct ShutdownHandle {
    graceful: CancellationToken,
    force: CancellationToken,
}

impl ShutdownHandle {
    /// Starts the graceful shutdown: the worker stops claiming, lets in-flight jobs
    /// finish within `shutdown_timeout`, then stops them and hands them back. A second
    /// call skips the wait for in-flight jobs.
    pub fn shutdown(&self) {
        if self.graceful.is_cancelled() {
            self.force.cancel();
        }
        self.graceful.cancel();
    }
    /// Shuts down without waiting for in-flight jobs: stops them now and hands them back.
    pub fn shutdown_now(&self) {
        self.graceful.cancel();
        self.force.cancel();
    }
}

/// A worker of one queue, or of several sharing one concurrency budget.
pub struct Worker {
    /// The first queue's part (id and options are the same for every queue).
    shared: Arc<Shared>,
    lanes: Option<Vec<shutdown::LaneParts>>,
    order: QueueOrder,
    signals: ShutdownHandle,
    fault: Option<supervisor::InjectedFault>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.shared.keys.queue())
            .field("queues", &self.queues())
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Worker {
    /// A builder for a worker of `queue` at `redis` (a URL, or a
    /// [`RedisConfig`](crate::conn::RedisConfig) for TLS files, Sentinel or Cluster).
    pub fn builder(redis: impl Into<crate::conn::RedisConfig>, queue: &str) -> WorkerBuilder {
        WorkerBuilder {
            redis: redis.into(),
            queues: vec![(queue.to_string(), 1)],
            order: QueueOrder::Strict,
            opts: WorkerOptions::default(),
            fault: None,
            keyring: None,
        }
    }

    /// The queues this worker serves, in order.
    pub fn queues(&self) -> Vec<String> {
        match &self.lanes {
            Some(l) => l
                .iter()
                .map(|l| l.shared.keys.queue().to_string())
                .collect(),
            None => vec![self.shared.keys.queue().to_string()],
        }
    }

    /// This worker's id (as in `baton workers` and the job's `worker` field).
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The options in force.
    pub fn options(&self) -> &WorkerOptions {
        &self.shared.opts
    }

    /// A handle that shuts this worker down.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.signals.clone()
    }

    /// Starts the graceful shutdown (same as [`ShutdownHandle::shutdown`]).
    pub fn shutdown(&self) {
        self.signals.shutdown();
    }

    /// Runs until shut down via a [`ShutdownHandle`]. Fails only at start-up, when
    /// Redis is unfit (see `baton check`); an unreachable Redis is waited for.
    pub async fn run(mut self) -> Result<()> {
        shutdown::start_and_run(
            self.lanes.take().expect("run once"),
            self.order,
            self.signals.clone(),
            self.fault.take(),
        )
        .await
    }

    /// Runs until SIGINT or SIGTERM, then shuts down gracefully; a second signal skips
    /// the wait for in-flight jobs.
    pub async fn run_until_signal(self) -> Result<()> {
        let handle = self.shutdown_handle();
        let listener = tokio::spawn(shutdown::forward_signals(handle));
        let r = self.run().await;
        listener.abort();
        r
    }
}
