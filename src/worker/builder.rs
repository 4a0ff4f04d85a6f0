//! [`WorkerBuilder`]: checks the options and queue names, makes the worker's id and its
//! one shared connection, and hands the rest to [`Worker`] as [`Parts`]; each loop's
//! params are made from those when the worker starts (see `parts`).

use std::sync::Arc;
use std::time::Duration;

use super::claimer::QueueOrder;
use super::parts::Parts;
use super::supervisor::InjectedFault;
use super::{Handler, Worker, WorkerOptions};
use crate::error::Result;
use crate::keys::Keys;

/// Builds a [`Worker`]. Method names follow [`WorkerOptions`]' fields.
#[derive(Debug, Clone)]
pub struct WorkerBuilder {
    redis: crate::conn::RedisConfig,
    /// The queues served, in order, with their weights.
    queues: Vec<(String, u32)>,
    order: QueueOrder,
    opts: WorkerOptions,
    fault: Option<InjectedFault>,
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
        self.fault = Some(InjectedFault { task, after });
        self
    }

    /// A builder for a worker of `queue` at `redis`, with the default options.
    pub(super) fn new(redis: crate::conn::RedisConfig, queue: &str) -> WorkerBuilder {
        WorkerBuilder {
            redis,
            queues: vec![(queue.to_string(), 1)],
            order: QueueOrder::Strict,
            opts: WorkerOptions::default(),
            fault: None,
            keyring: None,
        }
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
        Ok(Worker::new(Parts {
            conn,
            id,
            opts,
            handler,
            keyring: self.keyring,
            started_ms,
            queues: self
                .queues
                .into_iter()
                .map(|(q, w)| (Keys::new(&q), w))
                .collect(),
            order: self.order,
            fault: self.fault,
        }))
    }
}

/// This machine's name, as `baton workers` shows it (and as worker ids start).
pub(super) fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        })
}
