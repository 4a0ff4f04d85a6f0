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
//! 6. stop the heartbeat, sweeper, scheduler loop and cancel listener; deregister the
//!    worker.

use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::acker::Pending;
use super::backoff::ReconnectBackoff;
use super::inflight::{InFlight, StopReason};
use super::parts::Parts;
use super::supervisor::Supervisor;
use super::ShutdownHandle;
use crate::conn::{Connector, SharedConn};
use crate::error::Result;
use crate::keys::Keys;

/// What the shutdown sequence needs of one queue: its held jobs to stop, its job tasks
/// to wait for, and where to deregister the worker.
pub(crate) struct DrainParams {
    pub keys: Keys,
    pub conn: SharedConn,
    pub worker_id: String,
    pub inflight: InFlight,
    pub tracker: TaskTracker,
    /// Keeps the acker's channel open until the acker is told to stop: the claim loop
    /// (which owns the job starter and its sender) ends first, and a closed channel
    /// would end the acker early, which the supervisor counts as a failure.
    pub _outcomes: mpsc::UnboundedSender<Pending>,
}

/// Waits for Redis, checks it, builds and runs every loop, and on the graceful signal
/// shuts down.
///
/// Every queue (lane) has its own cancel listener, heartbeat, sweeper, scheduler loop
/// and acker; one
/// claim loop serves them all from one concurrency budget.
pub(crate) async fn start_and_run(parts: Parts, signals: ShutdownHandle) -> Result<()> {
    let fit = wait_for_fit_redis(
        parts.conn.connector(),
        parts.opts.check_redis,
        &signals.graceful,
    );
    if !fit.await? {
        return Ok(());
    }
    let queues: Vec<&str> = parts.queues.iter().map(|(k, _)| k.queue()).collect();
    let q = queues.join(",");
    // Each loop's params, made now so the metric handles use the recorder in place.
    let mut lanes = Vec::new();
    for (keys, weight) in &parts.queues {
        crate::metrics::register_queue(keys.queue());
        lanes.push(parts.lane(keys, *weight));
    }
    let id = parts.id.as_str();
    tracing::info!(queue = %q, worker = %id, concurrency = parts.opts.concurrency, "worker started");

    let background = CancellationToken::new();
    let acker_stop = CancellationToken::new();
    let claim_stop = CancellationToken::new();
    let sup = Supervisor::new(parts.fault.clone());
    let mut tasks = Vec::new();
    let mut ackers = Vec::new();
    let mut drains = Vec::new();
    let mut claim_lanes = Vec::new();
    let mut ready = Vec::new();
    for l in lanes {
        let cancel_ready = CancellationToken::new();
        let lq = l.drain.keys.queue().to_string();
        tasks.push(sup.spawn(
            &lq,
            "canceller",
            background.clone(),
            l.canceller.run(background.clone(), cancel_ready.clone()),
        ));
        ready.push(cancel_ready);
        crate::queue::registry::ensure_or_warn(&parts.conn, &lq).await;
        if let Err(e) = l.heartbeat.tick().await {
            tracing::warn!(queue = lq.as_str(), error = %e, "first heartbeat failed");
        }
        tasks.push(sup.spawn(
            &lq,
            "heartbeat",
            background.clone(),
            l.heartbeat.run(background.clone()),
        ));
        tasks.push(sup.spawn(
            &lq,
            "sweeper",
            background.clone(),
            l.sweeper.run(background.clone()),
        ));
        tasks.push(sup.spawn(
            &lq,
            "scheduler",
            background.clone(),
            l.scheduler.run(background.clone()),
        ));
        ackers.push(sup.spawn(
            &lq,
            "acker",
            acker_stop.clone(),
            l.acker.run(acker_stop.clone()),
        ));
        drains.push(l.drain);
        claim_lanes.push(l.lane);
    }
    // Do not claim before cancels can be heard (bounded: the heartbeat is the backstop).
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        futures::future::join_all(ready.iter().map(|r| r.cancelled())),
    )
    .await;
    let claimer = sup.spawn(
        &q,
        "claimer",
        claim_stop.clone(),
        parts.claimer(claim_lanes).run(claim_stop.clone()),
    );
    let running = || drains.iter().map(|d| d.inflight.running()).sum::<usize>();

    tokio::select! {
        _ = signals.graceful.cancelled() => {}
        // A loop died: no waiting for in-flight jobs, whose leases may go unrenewed.
        _ = sup.failed.cancelled() => signals.shutdown_now(),
    }
    tracing::info!(queue = %q, worker = %id, in_flight = running(), "shutting down: claiming stopped");

    // 1. Stop claiming.
    claim_stop.cancel();
    let _ = claimer.done.await;
    // 2. Let in-flight jobs finish, up to the shutdown timeout.
    for d in &drains {
        d.tracker.close();
    }
    let drained = futures::future::join_all(drains.iter().map(|d| d.tracker.wait()));
    tokio::select! {
        _ = drained => {}
        _ = tokio::time::sleep(parts.opts.shutdown_timeout) => {
            tracing::warn!(queue = %q, in_flight = running(), "shutdown timeout reached; stopping in-flight jobs");
        }
        _ = signals.force.cancelled() => {
            tracing::warn!(queue = %q, in_flight = running(), "second signal: stopping in-flight jobs now");
        }
    }
    // 3 and 4. Tell the rest to stop; each processor aborts its handler after the grace
    // and hands the job back.
    for d in &drains {
        d.inflight.stop_all(StopReason::Shutdown);
    }
    futures::future::join_all(drains.iter().map(|d| d.tracker.wait())).await;
    // 5. Write every outcome.
    acker_stop.cancel();
    let deadline = tokio::time::Instant::now() + parts.opts.lease;
    for (d, mut acker) in drains.iter().zip(ackers) {
        if tokio::time::timeout_at(deadline, &mut acker.done)
            .await
            .is_err()
        {
            acker.abort.abort();
            tracing::error!(queue = d.keys.queue(), held = d.inflight.len(),
                "outcomes could not be written before the leases expire; the sweeper will recover those jobs");
        }
    }
    // 6. Stop the background loops and deregister.
    background.cancel();
    for t in tasks {
        let _ = t.done.await;
    }
    for d in &drains {
        deregister(d).await;
    }
    if let Some(why) = sup.failure() {
        tracing::error!(queue = %q, worker = %id, %why, "worker stopped after a failure");
        return Err(crate::Error::WorkerFailed(why));
    }
    tracing::info!(queue = %q, worker = %id, "worker stopped");
    Ok(())
}

/// Waits (with backoff, forever) until Redis answers, then checks it is fit. Returns
/// false if shutdown was asked for while waiting.
///
/// `check_redis` false (development only) runs on an unfit Redis with a warning.
async fn wait_for_fit_redis(
    connector: &Connector,
    check_redis: bool,
    stop: &CancellationToken,
) -> Result<bool> {
    let mut backoff = ReconnectBackoff::default();
    loop {
        let attempt = crate::config::check_all(connector);
        match attempt.await {
            Ok(report) if report.is_fit() => {
                if let Some(full) = &report.memory_full {
                    tracing::warn!(%full, "redis is full: no job is claimed until memory frees");
                }
                return Ok(true);
            }
            Ok(report) if !check_redis => {
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

/// Takes the worker off the queue's list of workers (`baton workers`).
async fn deregister(d: &DrainParams) {
    let r: Result<()> = async {
        let mut c = d.conn.get().await?;
        let _: () = c.zrem(d.keys.workers(), &d.worker_id).await?;
        let _: () = c.hdel(d.keys.worker_info(), &d.worker_id).await?;
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
