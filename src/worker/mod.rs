//! The worker: claims jobs, runs them with bounded concurrency, renews their leases,
//! recovers other workers' stalled jobs, hears cancels, and shuts down gracefully.
//!
//! Inside (private), one background task per concern, each in its own module with a
//! `tick()`: `claimer` (claim + idle block), `acker` (outcome batches), `heartbeat`
//! (lease renewal, lost-lease and cancel detection), `sweeper` (expired leases),
//! `scheduler` (job schedulers' ticks), `canceller` (cancel messages); `processor` runs one job; `shutdown` holds the
//! shutdown sequence. Each takes its own small params struct, made in `parts` when the
//! worker starts, rather than one struct they all reach into.

pub(crate) mod acker;
pub(crate) mod backoff;
mod builder;
pub(crate) mod canceller;
pub(crate) mod claimer;
mod context;
mod handler;
pub(crate) mod heartbeat;
pub(crate) mod inflight;
pub(crate) mod lane;
mod options;
mod parts;
pub(crate) mod processor;
pub(crate) mod scheduler;
pub(crate) mod shutdown;
pub(crate) mod supervisor;
pub(crate) mod sweeper;

use tokio_util::sync::CancellationToken;

pub use builder::WorkerBuilder;
pub use context::JobContext;
pub use handler::{handler_fn, Handler, HandlerFuture, JobError, Retry};
pub use options::WorkerOptions;

use crate::error::Result;
use parts::Parts;

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
    /// What the builder made; the loops are built from it when the worker runs.
    parts: Parts,
    signals: ShutdownHandle,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.parts.queues[0].0.queue())
            .field("queues", &self.queues())
            .field("id", &self.parts.id)
            .finish()
    }
}

impl Worker {
    /// A builder for a worker of `queue` at `redis` (a URL, or a
    /// [`RedisConfig`](crate::conn::RedisConfig) for TLS files, Sentinel or Cluster).
    pub fn builder(redis: impl Into<crate::conn::RedisConfig>, queue: &str) -> WorkerBuilder {
        WorkerBuilder::new(redis.into(), queue)
    }

    /// A worker made of `parts` (see [`WorkerBuilder::build_arc`]).
    fn new(parts: Parts) -> Worker {
        Worker {
            parts,
            signals: ShutdownHandle::default(),
        }
    }

    /// The queues this worker serves, in order.
    pub fn queues(&self) -> Vec<String> {
        self.parts
            .queues
            .iter()
            .map(|(k, _)| k.queue().to_string())
            .collect()
    }

    /// This worker's id (as in `baton workers` and the job's `worker` field).
    pub fn id(&self) -> &str {
        &self.parts.id
    }

    /// The options in force.
    pub fn options(&self) -> &WorkerOptions {
        &self.parts.opts
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
    pub async fn run(self) -> Result<()> {
        shutdown::start_and_run(self.parts, self.signals).await
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
