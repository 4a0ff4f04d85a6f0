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
use super::claimer::{Claimer, QueueOrder};
use super::heartbeat::Heartbeat;
use super::inflight::StopReason;
use super::lane::Lane;
use super::supervisor::{InjectedFault, Supervisor};
use super::sweeper::Sweeper;
use super::{canceller, Shared, ShutdownHandle};
use crate::error::Result;

/// One queue of a worker, as the worker's life sees it.
pub(crate) struct LaneParts {
    pub shared: Arc<Shared>,
    pub outcomes: mpsc::UnboundedReceiver<Pending>,
    pub weight: u32,
}

/// Waits for Redis, checks it, runs every loop, and on the graceful signal shuts down.
///
/// Every queue (lane) has its own cancel listener, heartbeat, sweeper and acker; one
/// claim loop serves them all from one concurrency budget.
pub(crate) async fn start_and_run(
    lanes: Vec<LaneParts>,
    order: QueueOrder,
    signals: ShutdownHandle,
    fault: Option<InjectedFault>,
) -> Result<()> {
    let first = lanes[0].shared.clone();
    if !wait_for_fit_redis(&first, &signals.graceful).await? {
        return Ok(());
    }
    let queues: Vec<String> = lanes
        .iter()
        .map(|l| l.shared.keys.queue().to_string())
        .collect();
    let q = queues.join(",");
    for l in &lanes {
        crate::metrics::register_queue(l.shared.keys.queue());
        l.shared.metrics();
    }
    tracing::info!(queue = %q, worker = %first.id, concurrency = first.opts.concurrency, "worker started");

    let background = CancellationToken::new();
    let acker_stop = CancellationToken::new();
    let claim_stop = CancellationToken::new();
    let sup = Supervisor::new(fault);
    let mut tasks = Vec::new();
    let mut ackers = Vec::new();
    let mut claim_lanes = Vec::new();
    let mut ready = Vec::new();
    for l in lanes {
        let shared = l.shared;
        let cancel_ready = CancellationToken::new();
        let lq = shared.keys.queue().to_string();
        tasks.push(sup.spawn(
            &lq,
            "canceller",
            background.clone(),
            canceller::run(shared.clone(), background.clone(), cancel_ready.clone()),
        ));
        ready.push(cancel_ready);
        let heartbeat = Heartbeat::new(shared.clone());
        if let Err(e) = heartbeat.tick().await {
            tracing::warn!(queue = shared.keys.queue(), error = %e, "first heartbeat failed");
        }
        tasks.push(sup.spawn(
            &lq,
            "heartbeat",
            background.clone(),
            heartbeat.run(background.clone()),
        ));
        tasks.push(sup.spawn(
            &lq,
            "sweeper",
            background.clone(),
            Sweeper::new(shared.clone()).run(background.clone()),
        ));
        ackers.push((
            shared.clone(),
            sup.spawn(
                &lq,
                "acker",
                acker_stop.clone(),
                Acker::new(shared.clone(), l.outcomes).run(acker_stop.clone()),
            ),
        ));
        claim_lanes.push(Lane::new(shared, l.weight));
    }
    // Do not claim before cancels can be heard (bounded: the heartbeat is the backstop).
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        futures::future::join_all(ready.iter().map(|r| r.cancelled())),
    )
    .await;
    let slots = Arc::new(Semaphore::new(first.opts.concurrency));
    let claimer = sup.spawn(
        &q,
        "claimer",
        claim_stop.clone(),
        Claimer::new(claim_lanes, slots, order).run(claim_stop.clone()),
    );
    let all: Vec<Arc<Shared>> = ackers.iter().map(|(s, _)| s.clone()).collect();
    let running = || all.iter().map(|s| s.inflight.running()).sum::<usize>();

    tokio::select! {
        _ = signals.graceful.cancelled() => {}
        // A loop died: no waiting for in-flight jobs, whose leases may go unrenewed.
        _ = sup.failed.cancelled() => signals.shutdown_now(),
    }
    tracing::info!(queue = %q, worker = %first.id, in_flight = running(), "shutting down: claiming stopped");

    // 1. Stop claiming.
    claim_stop.cancel();
    let _ = claimer.done.await;
    // 2. Let in-flight jobs finish, up to the shutdown timeout.
    for s in &all {
        s.tracker.close();
    }
    let drained = futures::future::join_all(all.iter().map(|s| s.tracker.wait()));
    tokio::select! {
        _ = drained => {}
        _ = tokio::time::sleep(first.opts.shutdown_timeout) => {
            tracing::warn!(queue = %q, in_flight = running(), "shutdown timeout reached; stopping in-flight jobs");
        }
        _ = signals.force.cancelled() => {
            tracing::warn!(queue = %q, in_flight = running(), "second signal: stopping in-flight jobs now");
        }
    }
    // 3 and 4. Tell the rest to stop; each processor aborts its handler after the grace
    // and hands the job back.
    for s in &all {
        s.inflight.stop_all(StopReason::Shutdown);
    }
    futures::future::join_all(all.iter().map(|s| s.tracker.wait())).await;
    // 5. Write every outcome.
    acker_stop.cancel();
    let deadline = tokio::time::Instant::now() + first.opts.lease;
    for (shared, mut acker) in ackers {
        if tokio::time::timeout_at(deadline, &mut acker.done)
            .await
            .is_err()
        {
            acker.abort.abort();
            tracing::error!(queue = shared.keys.queue(), held = shared.inflight.len(),
                "outcomes could not be written before the leases expire; the sweeper will recover those jobs");
        }
    }
    // 6. Stop the background loops and deregister.
    background.cancel();
    for t in tasks {
        let _ = t.done.await;
    }
    for s in &all {
        deregister(s).await;
    }
    if let Some(why) = sup.failure() {
        tracing::error!(queue = %q, worker = %first.id, %why, "worker stopped after a failure");
        return Err(crate::Error::WorkerFailed(why));
    }
    tracing::info!(queue = %q, worker = %first.id, "worker stopped");
    Ok(())
}

/// Waits (with backoff, forever) until Redis answers, then checks it is fit. Returns
/// false if shutdown was asked for while waiting.
async fn wait_for_fit_redis(shared: &Shared, stop: &CancellationToken) -> Result<bool> {
    let mut backoff = ReconnectBackoff::default();
    loop {
        let attempt = crate::config::check_all(shared.conn.connector());
        match attempt.await {
            Ok(report) if report.is_fit() => {
                if let Some(full) = &report.memory_full {
                    tracing::warn!(%full, "redis is full: no job is claimed until memory frees");
                }
                return Ok(true);
            }
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
