//! Listens on the queue's cancel channel and stops the handler of a cancelled job the
//! moment the message arrives. Needs a pub/sub connection of its own; reconnects with
//! backoff. A message missed while disconnected is caught by the next heartbeat.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::backoff::ReconnectBackoff;
use super::inflight::StopReason;
use super::Shared;

/// Listens until `stop` fires. `ready` fires once the first subscription is live.
pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken, ready: CancellationToken) {
    let mut backoff = ReconnectBackoff::default();
    let channel = shared.keys.cancel_channel();
    let mut master_changes = shared.conn.connector().master_changes();
    loop {
        let attempt = shared.conn.connector().subscribe(&channel);
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
                            tracing::info!(queue = shared.keys.queue(), "new master announced; subscribing there");
                            break;
                        }
                    };
                    let Some(id) = msg else { break };
                    if let Some(h) = shared.inflight.get(&id) {
                        if h.stop(StopReason::Cancelled) {
                            tracing::info!(queue = shared.keys.queue(), job_id = %id, "cancel received; stopping handler");
                        }
                    }
                }
                tracing::warn!(
                    queue = shared.keys.queue(),
                    "cancel channel closed; reconnecting"
                );
            }
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(queue = shared.keys.queue(), error = %e, retry_in = ?d, "cancel listener cannot connect");
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.cancelled() => return,
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
