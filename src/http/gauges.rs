//! The queue-size gauges: one background task per process (and Redis URL) keeps
//! `baton_queue_jobs{queue,state}` current, so a scrape only renders what is there.
//!
//! Every [`REFRESH`] it reads [`Queue::counts`] (one pipeline) for each known queue.
//! The list of queues comes from [`Queue::discover`]: the queue-name registry (two keys
//! read), plus a SCAN of the keyspace until queues made before the registry have been
//! merged into it once; it runs at start and every [`REDISCOVER`] (on every tick while
//! no queue is known).
//! Failed Redis calls count in `baton_redis_errors_total{queue, op}` with op
//! `discover` (queue `""`) or `counts`.
//!
//! A queue seen for the first time gets its counters registered at zero
//! ([`register_queue`]), so `rate()` and `increase()` see the first job too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::job::JobState;
use crate::metrics as m;
use crate::queue::Queue;

/// How often the gauges are refreshed.
pub const REFRESH: Duration = Duration::from_secs(5);
/// How often the list of queues is rebuilt with a SCAN.
pub const REDISCOVER: Duration = Duration::from_secs(60);

pub use crate::metrics::register_queue;

/// Keeps the refresher alive; the task stops when the last guard is dropped.
pub(crate) struct Refresher {
    url: String,
    stop: CancellationToken,
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.stop.cancel();
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        if running
            .get(&self.url)
            .is_some_and(|w| w.strong_count() == 0)
        {
            running.remove(&self.url);
        }
    }
}

static RUNNING: Mutex<BTreeMap<String, Weak<Refresher>>> = Mutex::new(BTreeMap::new());

/// Starts the refresher for `conn`'s endpoint unless one runs in this process already;
/// either way returns a guard that keeps it running.
pub(crate) fn start(conn: crate::conn::SharedConn) -> Arc<Refresher> {
    let url = conn.connector().endpoint().to_string();
    let url = url.as_str();
    let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = running.get(url).and_then(Weak::upgrade) {
        return r;
    }
    let stop = CancellationToken::new();
    let r = Arc::new(Refresher {
        url: url.to_string(),
        stop: stop.clone(),
    });
    running.insert(url.to_string(), Arc::downgrade(&r));
    tokio::spawn(run(conn, stop));
    r
}

async fn run(conn: crate::conn::SharedConn, stop: CancellationToken) {
    let handle = m::install();
    let mut every = tokio::time::interval(REFRESH);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut discovered: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.cancelled() => return,
        }
        // Bounds the recorder's memory between scrapes (drains histogram samples).
        handle.run_upkeep();
        // While no queue is known yet, look on every tick so the first one shows up soon.
        if known.is_empty() || discovered.is_none_or(|t| t.elapsed() >= REDISCOVER) {
            match Queue::discover(&conn).await {
                Ok(names) => {
                    discovered = Some(Instant::now());
                    let names: BTreeSet<String> = names.into_iter().collect();
                    for gone in known.difference(&names) {
                        // The queue's keys are gone: its jobs are zero, not "last seen".
                        for st in JobState::ALL {
                            metrics::gauge!(m::QUEUE_JOBS, "queue" => gone.clone(), "state" => st.as_str()).set(0.0);
                        }
                    }
                    for new in names.difference(&known) {
                        register_queue(new);
                    }
                    known = names;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing queues for the gauges failed");
                    metrics::counter!(m::REDIS_ERRORS, "queue" => "", "op" => "discover")
                        .increment(1);
                }
            }
        }
        for name in &known {
            if stop.is_cancelled() {
                return;
            }
            refresh_one(&conn, name).await;
        }
    }
}

async fn refresh_one(conn: &crate::conn::SharedConn, name: &str) {
    match Queue::with_conn(conn.clone(), name).counts().await {
        Ok(c) => {
            for st in JobState::ALL {
                metrics::gauge!(m::QUEUE_JOBS, "queue" => name.to_string(), "state" => st.as_str())
                    .set(c.get(st) as f64);
            }
        }
        Err(e) => {
            tracing::warn!(queue = name, error = %e, "reading queue counts for the gauges failed");
            metrics::counter!(m::REDIS_ERRORS, "queue" => name.to_string(), "op" => "counts")
                .increment(1);
        }
    }
}
