//! What the builder hands a [`Worker`](super::Worker), and the one place where each
//! background loop's params are made from it when the worker starts.
//!
//! No loop sees [`Parts`]: each gets its own small params struct (`HeartbeatParams`,
//! `SweeperParams`, `SchedulerParams`, `AckerParams`, `CancellerParams`, `LaneParams`,
//! `ClaimerParams`, `ProcessorParams`), holding only what it uses, so a reader sees a loop's inputs in
//! its own module and a test can build one loop alone.

use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::task::TaskTracker;

use super::acker::{Acker, AckerParams};
use super::canceller::{Canceller, CancellerParams};
use super::claimer::{Claimer, ClaimerParams, QueueOrder};
use super::heartbeat::{About, Heartbeat, HeartbeatParams};
use super::inflight::InFlight;
use super::lane::{Lane, LaneParams};
use super::processor::{Processor, ProcessorParams};
use super::scheduler::{SchedulerLoop, SchedulerParams};
use super::shutdown::DrainParams;
use super::supervisor::InjectedFault;
use super::sweeper::{Sweeper, SweeperParams};
use super::{Handler, WorkerOptions};
use crate::conn::SharedConn;
use crate::crypto::Keyring;
use crate::keys::Keys;
use crate::metrics::QueueMetrics;

/// A built, not yet started worker: its options checked, its id and its one shared
/// connection made.
pub(crate) struct Parts {
    pub conn: SharedConn,
    /// This worker's id (as in `baton workers`).
    pub id: String,
    /// Resolved: the heartbeat is set, concurrency is at least 1.
    pub opts: WorkerOptions,
    pub handler: Arc<dyn Handler>,
    pub keyring: Option<Arc<Keyring>>,
    /// When the worker was built (milliseconds since the epoch), for `baton workers`.
    pub started_ms: u128,
    /// The queues served, in order, with their weights (at least one).
    pub queues: Vec<(Keys, u32)>,
    pub order: QueueOrder,
    pub fault: Option<InjectedFault>,
}

/// One queue's loops, each built with its own params, ready to run.
pub(crate) struct LaneLoops {
    pub canceller: Canceller,
    pub heartbeat: Heartbeat,
    pub sweeper: Sweeper,
    /// Fires the queue's job schedulers.
    pub scheduler: SchedulerLoop,
    pub acker: Acker,
    /// This queue's part of the claim loop.
    pub lane: Lane,
    /// What the shutdown sequence needs of this queue.
    pub drain: DrainParams,
}

impl Parts {
    /// The loops of the queue `keys`. Makes the queue's metric handles, so call it
    /// when the worker starts: they record into the recorder installed by then.
    pub fn lane(&self, keys: &Keys, weight: u32) -> LaneLoops {
        let metrics = QueueMetrics::new(keys.queue(), &self.id);
        let inflight = InFlight::default();
        let tracker = TaskTracker::new();
        let (outcomes, outcomes_rx) = mpsc::unbounded_channel();
        // The cancel listener hears scheduler changes; the scheduler loop waits on them.
        let schedulers_changed = Arc::new(tokio::sync::Notify::new());
        let processor = Processor::new(ProcessorParams {
            keys: keys.clone(),
            conn: self.conn.clone(),
            handler: self.handler.clone(),
            keyring: self.keyring.clone(),
            lease: self.opts.lease,
            timeout: self.opts.timeout,
            abort_grace: self.opts.abort_grace,
            inflight: inflight.clone(),
            tracker: tracker.clone(),
            metrics: metrics.clone(),
            outcomes: outcomes.clone(),
        });
        LaneLoops {
            canceller: Canceller::new(CancellerParams {
                connector: self.conn.connector().clone(),
                keys: keys.clone(),
                inflight: inflight.clone(),
                schedulers_changed: schedulers_changed.clone(),
            }),
            heartbeat: Heartbeat::new(HeartbeatParams {
                conn: self.conn.clone(),
                keys: keys.clone(),
                worker_id: self.id.clone(),
                lease: self.opts.lease,
                interval: self.opts.heartbeat,
                inflight: inflight.clone(),
                metrics: metrics.clone(),
                about: About {
                    concurrency: self.opts.concurrency,
                    started_ms: self.started_ms,
                },
            }),
            sweeper: Sweeper::new(SweeperParams {
                conn: self.conn.clone(),
                keys: keys.clone(),
                interval: self.opts.stalled_interval,
                max_stalled: self.opts.max_stalled,
                metrics: metrics.clone(),
            }),
            scheduler: SchedulerLoop::new(SchedulerParams {
                conn: self.conn.clone(),
                keys: keys.clone(),
                lookahead: crate::schedule::LOOKAHEAD,
                poll: crate::schedule::POLL,
                changed: schedulers_changed,
            }),
            acker: Acker::new(
                AckerParams {
                    conn: self.conn.clone(),
                    keys: keys.clone(),
                    inflight: inflight.clone(),
                    metrics,
                },
                outcomes_rx,
            ),
            lane: Lane::new(LaneParams {
                conn: self.conn.clone(),
                keys: keys.clone(),
                worker_id: self.id.clone(),
                lease: self.opts.lease,
                idle_block: self.opts.idle_block,
                inflight: inflight.clone(),
                weight,
                processor,
            }),
            drain: DrainParams {
                keys: keys.clone(),
                conn: self.conn.clone(),
                worker_id: self.id.clone(),
                inflight,
                tracker,
                _outcomes: outcomes,
            },
        }
    }

    /// The claim loop over `lanes`, sharing one budget of `concurrency` slots.
    pub fn claimer(&self, lanes: Vec<Lane>) -> Claimer {
        Claimer::new(ClaimerParams {
            lanes,
            slots: Arc::new(Semaphore::new(self.opts.concurrency)),
            order: self.order,
            concurrency: self.opts.concurrency,
            idle_block: self.opts.idle_block,
        })
    }
}
