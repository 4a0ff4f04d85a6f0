//! A worker's life from start-up to exit, and the shutdown sequence, written down once.
//!
//! Shutdown, in order:
//! 1. stop claiming (the claim loop ends; no new job starts);
//! 2. let in-flight handlers finish, up to `shutdown_timeout` (a second signal, or
//!    [`ShutdownHandle::shutdown_now`](super::ShutdownHandle::shutdown_now), skips this);
//! 3. fire the cancellation token of every handler still running;
//! 4. give them `abort_grace` to return, then abort them; their jobs are handed back
//!    first in line, with no stall counted and no attempt consumed, so another worker
//!    starts them at once;
//! 5. write every outcome (bounded by one lease: past that, the sweeper recovers the job);
//! 6. stop the heartbeat, sweeper and cancel listener; deregister the worker.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::acker::{Acker, Pending};
use super::backoff::ReconnectBackoff;
use super::claimer::Claimer;
use super::heartbeat::Heartbeat;
use super::inflight::StopReason;
use super::sweeper::Sweeper;
use super::{canceller, Shared, ShutdownHandle};
use crate::error::Result;

/// Waits for Redis, checks it, runs every loop, and on the graceful signal shuts down.
pub(crate) async fn start_and_run(
    shared: Arc<Shared>,
    rx: mpsc::UnboundedReceiver<Pending>,
    signals: ShutdownHandle,
) -> Result<()> {
    if !wait_for_fit_redis(&shared, &signals.graceful).await? {
        return Ok(());
    }
    let q = shared.keys.queue().to_string();
    crate::metrics::register_queue(&q);
    shared.metrics();
    tracing::info!(queue = %q, worker = %shared.id, concurrency = shared.opts.concurrency, "worker started");

    let background = CancellationToken::new();
    let acker_stop = CancellationToken::new();
    let claim_stop = CancellationToken::new();
    let cancel_ready = CancellationToken::new();
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(canceller::run(
        shared.clone(),
        background.clone(),
        cancel_ready.clone(),
    )));
    // Do not claim before cancels can be heard (bounded: the heartbeat is the backstop).
    let _ = tokio::time::timeout(Duration::from_secs(2), cancel_ready.cancelled()).await;
    let heartbeat = Heartbeat::new(shared.clone());
    if let Err(e) = heartbeat.tick().await {
        tracing::warn!(queue = %q, error = %e, "first heartbeat failed");
    }
    tasks.push(tokio::spawn(heartbeat.run(background.clone())));
    tasks.push(tokio::spawn(
        Sweeper::new(shared.clone()).run(background.clone()),
    ));
    let mut acker = tokio::spawn(Acker::new(shared.clone(), rx).run(acker_stop.clone()));
    let slots = Arc::new(Semaphore::new(shared.opts.concurrency));
    let claimer = tokio::spawn(Claimer::new(shared.clone(), slots).run(claim_stop.clone()));

    signals.graceful.cancelled().await;
    tracing::info!(queue = %q, worker = %shared.id, in_flight = shared.inflight.running(), "shutting down: claiming stopped");

    // 1. Stop claiming.
    claim_stop.cancel();
    let _ = claimer.await;
    // 2. Let in-flight jobs finish, up to the shutdown timeout.
    shared.tracker.close();
    tokio::select! {
        _ = shared.tracker.wait() => {}
        _ = tokio::time::sleep(shared.opts.shutdown_timeout) => {
            tracing::warn!(queue = %q, in_flight = shared.inflight.running(), "shutdown timeout reached; stopping in-flight jobs");
        }
        _ = signals.force.cancelled() => {
            tracing::warn!(queue = %q, in_flight = shared.inflight.running(), "second signal: stopping in-flight jobs now");
        }
    }
    // 3 and 4. Tell the rest to stop; each processor aborts its handler after the grace
    // and hands the job back.
    shared.inflight.stop_all(StopReason::Shutdown);
    shared.tracker.wait().await;
    // 5. Write every outcome.
    acker_stop.cancel();
    if tokio::time::timeout(shared.opts.lease, &mut acker)
        .await
        .is_err()
    {
        acker.abort();
        tracing::error!(queue = %q, held = shared.inflight.len(),
            "outcomes could not be written before the leases expire; the sweeper will recover those jobs");
    }
    // 6. Stop the background loops and deregister.
    background.cancel();
    for t in tasks {
        let _ = t.await;
    }
    deregister(&shared).await;
    tracing::info!(queue = %q, worker = %shared.id, "worker stopped");
    Ok(())
}

/// Waits (with backoff, forever) until Redis answers, then checks it is fit. Returns
/// false if shutdown was asked for while waiting.
async fn wait_for_fit_redis(shared: &Shared, stop: &CancellationToken) -> Result<bool> {
    let mut backoff = ReconnectBackoff::default();
    loop {
        let attempt = crate::config::check_all(shared.conn.connector());
        match attempt.await {
            Ok(report) if report.is_fit() => return Ok(true),
            Ok(report) if !shared.opts.check_redis => {
                tracing::warn!(problems = %report.message(), "redis is not fit for a durable queue; running anyway because the check is off (development only)");
                return Ok(true);
            }
            Ok(report) => return Err(crate::Error::UnfitRedis(report.message())),
            // A wrong password, CA or master name will not fix itself: say so and stop.
            Err(e) if e.is_misconfiguration() => return Err(e),
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?d, "redis unreachable at start-up; waiting");
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = stop.cancelled() => return Ok(false),
                }
            }
        }
    }
}

async fn deregister(shared: &Shared) {
    let r: Result<()> = async {
        let mut c = shared.conn.get().await?;
        let _: () = c.zrem(shared.keys.workers(), &shared.id).await?;
        let _: () = c.hdel(shared.keys.worker_info(), &shared.id).await?;
        Ok(())
    }
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "could not deregister the worker; its entry lapses with its heartbeat");
    }
}

/// Turns SIGINT/SIGTERM into shutdown calls: the first graceful, the second forced.
pub(crate) async fn forward_signals(handle: ShutdownHandle) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        handle.shutdown();
    }
}
