//! Listens on the queue's cancel channel and stops the handler of a cancelled job the
//! moment the message arrives. Needs a pub/sub connection of its own; reconnects with
//! backoff. A message missed while disconnected is caught by the next heartbeat.
//!
//! The same channel carries one other message: an upsert of a job scheduler
//! ([`crate::schedule`]) announces itself with a text that no job id can be, and the
//! listener passes it on to the queue's scheduler loop, which looks again at once.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::backoff::ReconnectBackoff;
use super::inflight::{InFlight, StopReason};
use crate::conn::Connector;
use crate::keys::Keys;

/// What the cancel listener of one queue uses, and nothing else: it subscribes on a
/// connection of its own, so it takes the connector rather than the shared connection.
pub(crate) struct CancellerParams {
    pub connector: Arc<Connector>,
    pub keys: Keys,
    /// Where a cancelled job's handler is found.
    pub inflight: InFlight,
    /// Told when a job scheduler of the queue was set (the scheduler loop waits on it).
    pub schedulers_changed: Arc<tokio::sync::Notify>,
}

/// The cancel listener.
pub(crate) struct Canceller {
    p: CancellerParams,
}

impl Canceller {
    pub fn new(p: CancellerParams) -> Canceller {
        Canceller { p }
    }

    /// One message: a scheduler change wakes the scheduler loop; a cancel stops the
    /// handler of `job_id` if this worker runs it. Returns whether a handler was told to
    /// stop.
    pub fn tick(&self, job_id: &str) -> bool {
        if job_id == crate::schedule::CHANGED {
            self.p.schedulers_changed.notify_one();
            return false;
        }
        let Some(h) = self.p.inflight.get(job_id) else {
            return false;
        };
        let stopped = h.stop(StopReason::Cancelled);
        if stopped {
            tracing::info!(queue = self.p.keys.queue(), job_id = %job_id, "cancel received; stopping handler");
        }
        stopped
    }

    /// Listens until `stop` fires. `ready` fires once the first subscription is live.
    pub async fn run(self, stop: CancellationToken, ready: CancellationToken) {
        let p = &self.p;
        let mut backoff = ReconnectBackoff::default();
        let channel = p.keys.cancel_channel();
        let mut master_changes = p.connector.master_changes();
        loop {
            let attempt = p.connector.subscribe(&channel);
            let limit = crate::conn::PRODUCER_TIMEOUT * 2;
            let ps = tokio::select! {
                r = tokio::time::timeout(limit, attempt) => r.unwrap_or_else(|_| Err(crate::Error::Unavailable {
                    timeout: limit,
                    detail: "subscribing to the cancel channel timed out".into(),
                })),
                _ = stop.cancelled() => return,
            };
            match ps {
                Ok(mut messages) => {
                    backoff.reset();
                    ready.cancel();
                    loop {
                        let msg = tokio::select! {
                            m = messages.next() => m,
                            _ = stop.cancelled() => return,
                            _ = changed(&mut master_changes) => {
                                tracing::info!(queue = p.keys.queue(), "new master announced; subscribing there");
                                break;
                            }
                        };
                        let Some(id) = msg else { break };
                        self.tick(&id);
                    }
                    tracing::warn!(
                        queue = p.keys.queue(),
                        "cancel channel closed; reconnecting"
                    );
                }
                Err(e) => {
                    let d = backoff.next_delay();
                    tracing::warn!(queue = p.keys.queue(), error = %e, retry_in = ?d, "cancel listener cannot connect");
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = stop.cancelled() => return,
                    }
                }
            }
        }
    }
}

/// Resolves when the sentinels announce a new master (never without Sentinel).
async fn changed(rx: &mut Option<tokio::sync::watch::Receiver<u64>>) {
    if let Some(rx) = rx {
        if rx.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending::<()>().await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cancel listener built alone, from its own params (no subscription is made
    /// until it runs).
    #[tokio::test]
    async fn a_cancel_message_stops_only_its_job_and_only_once() {
        let inflight = InFlight::default();
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let (cancelled, _) = inflight.insert("a", 1, until);
        let (other, _) = inflight.insert("b", 2, until);
        let canceller = Canceller::new(CancellerParams {
            connector: Connector::new("redis://127.0.0.1:1").expect("a URL"),
            keys: Keys::new("q"),
            inflight,
            schedulers_changed: Default::default(),
        });
        assert!(canceller.tick("a"));
        assert!(!canceller.tick("a"), "a handler is told to stop once");
        assert!(!canceller.tick("not-held"));
        assert_eq!(cancelled.reason(), Some(StopReason::Cancelled));
        assert!(cancelled.cancel.is_cancelled());
        assert_eq!(other.reason(), None);
    }

    #[tokio::test]
    async fn a_scheduler_change_wakes_the_scheduler_loop_and_stops_nothing() {
        let inflight = InFlight::default();
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        let (held, _) = inflight.insert(crate::schedule::CHANGED, 1, until);
        let changed = Arc::new(tokio::sync::Notify::new());
        let canceller = Canceller::new(CancellerParams {
            connector: Connector::new("redis://127.0.0.1:1").expect("a URL"),
            keys: Keys::new("q"),
            inflight,
            schedulers_changed: changed.clone(),
        });
        assert!(!canceller.tick(crate::schedule::CHANGED));
        assert_eq!(held.reason(), None);
        tokio::time::timeout(std::time::Duration::from_secs(1), changed.notified())
            .await
            .expect("the scheduler loop was told");
    }
}
