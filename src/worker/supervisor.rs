//! Watches a worker's background loops (claimer, acker, heartbeat, sweeper, scheduler,
//! cancel listener). A loop that ends before it was told to stop (it panicked, or returned)
//! would leave the worker claiming jobs it cannot renew or ack; instead the failure is
//! logged, counted in `baton_worker_task_failures_total{queue,task}`, and the worker
//! shuts down (its jobs handed back) and reports the error, so its pod restarts.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::{AbortHandle, JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::metrics as m;

/// A fault to inject (tests only): the named loop panics after the delay.
#[derive(Debug, Clone)]
pub struct InjectedFault {
    /// `claimer`, `acker`, `heartbeat`, `sweeper`, `scheduler` or `canceller`.
    pub task: &'static str,
    /// How long after start.
    pub after: std::time::Duration,
}

/// The loops of one worker.
#[derive(Default)]
pub(crate) struct Supervisor {
    /// Fires when a loop ended early.
    pub failed: CancellationToken,
    first: Arc<Mutex<Option<String>>>,
    fault: Option<InjectedFault>,
}

/// A supervised loop: await `done` for its end; `abort` ends it by force.
pub(crate) struct Supervised {
    pub done: JoinHandle<()>,
    pub abort: AbortHandle,
}

impl Supervisor {
    pub fn new(fault: Option<InjectedFault>) -> Supervisor {
        Supervisor {
            fault,
            ..Default::default()
        }
    }

    /// What ended first, if anything did.
    pub fn failure(&self) -> Option<String> {
        self.first.lock().unwrap().clone()
    }

    /// Spawns `fut` as the loop `task` of `queue`; its end counts as a failure unless
    /// `expected` (the token that tells it to stop) has fired.
    pub fn spawn<F>(
        &self,
        queue: &str,
        task: &'static str,
        expected: CancellationToken,
        fut: F,
    ) -> Supervised
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let inner = match self.fault.clone().filter(|f| f.task == task) {
            Some(f) => tokio::spawn(async move {
                tokio::select! {
                    _ = fut => {}
                    _ = tokio::time::sleep(f.after) => panic!("injected fault in the {task} loop"),
                }
            }),
            None => tokio::spawn(fut),
        };
        let abort = inner.abort_handle();
        let (failed, first, queue) = (self.failed.clone(), self.first.clone(), queue.to_string());
        let done = tokio::spawn(async move {
            let r = inner.await;
            if expected.is_cancelled() {
                return;
            }
            let how = match r {
                Ok(()) => "returned".to_string(),
                Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
                Err(e) => e.to_string(),
            };
            tracing::error!(queue = %queue, task, how = %how,
                "a background loop of the worker ended early; stopping the worker (its jobs are handed back)");
            metrics::counter!(m::WORKER_TASK_FAILURES, "queue" => queue.clone(), "task" => task)
                .increment(1);
            first
                .lock()
                .unwrap()
                .get_or_insert_with(|| format!("the {task} loop of queue {queue} {how}"));
            failed.cancel();
        });
        Supervised { done, abort }
    }
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}
