//! What upserts, downtime, limit, end and remove do, with workers in this process.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::common::{start, wait_until, RedisServer};
use baton::{handler_fn, JobContext, JobError, Queue, SchedulerInfo, Worker};
use redis::Commands;
use serde_json::{json, Value};

use super::{every, ids_of, recording_worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upsert_changes_the_next_run_without_a_duplicate() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "up").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ws = [
        start(recording_worker(&redis.url(), "up", seen.clone())),
        start(recording_worker(&redis.url(), "up", seen.clone())),
    ];
    // Setting the same definition again and again changes nothing.
    for _ in 0..5 {
        q.upsert_scheduler("s", &every(1, json!({"v": 1})))
            .await
            .unwrap();
    }
    wait_until(Duration::from_secs(20), "3 runs of v1", || async {
        ids_of(&seen, "s").len() >= 3
    })
    .await;
    let changed = q
        .upsert_scheduler("s", &every(2, json!({"v": 2})))
        .await
        .unwrap();
    let next = changed.next_run_ms.unwrap();
    assert_eq!(
        next % 2000,
        0,
        "the new rule decides the next run: {changed:?}"
    );
    assert!(next > changed.updated_ms - 1000, "{changed:?}");
    wait_until(Duration::from_secs(20), "3 runs of v2", || async {
        ids_of(&seen, "s")
            .iter()
            .filter(|(_, d)| d["v"] == 2)
            .count()
            >= 3
    })
    .await;
    for w in ws {
        w.stop().await;
    }
    let runs = ids_of(&seen, "s");
    let ticks: Vec<u64> = runs.iter().map(|(t, _)| *t).collect();
    let mut unique = ticks.clone();
    unique.dedup();
    assert_eq!(unique, ticks, "a tick ran twice: {runs:?}");
    for (t, d) in &runs {
        if d["v"] == 1 {
            // The upsert read the clock a few ms before its script took back the job of
            // a tick not yet come; a tick due in between stays (it had come).
            assert!(
                *t <= changed.updated_ms + 100,
                "an old-rule job ran for a tick after the upsert: {t} > {}",
                changed.updated_ms
            );
            assert_eq!(t % 1000, 0);
        } else {
            assert_eq!(t % 2000, 0, "a new-rule job off its rule: {t}");
        }
    }
    let v2: Vec<u64> = runs
        .iter()
        .filter(|(_, d)| d["v"] == 2)
        .map(|(t, _)| *t)
        .collect();
    assert!(v2.windows(2).all(|w| w[1] - w[0] == 2000), "{v2:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_downtime_a_missed_tick_runs_once() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "down").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let w = start(recording_worker(&redis.url(), "down", seen.clone()));
    q.upsert_scheduler("s", &every(1, json!(null)))
        .await
        .unwrap();
    wait_until(Duration::from_secs(20), "2 runs", || async {
        ids_of(&seen, "s").len() >= 2
    })
    .await;
    w.stop().await;
    let before = q.scheduler("s").await.unwrap().unwrap();
    // No worker for at least four ticks.
    let down_since = before.last_run_ms.unwrap();
    wait_until(
        Duration::from_secs(20),
        "four ticks without a worker",
        || {
            let q = q.clone();
            async move {
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_millis() as u64;
                let _ = q.counts().await;
                now > down_since + 5000
            }
        },
    )
    .await;
    let back_at = before.last_run_ms.unwrap() + 5000;
    let w = start(recording_worker(&redis.url(), "down", seen.clone()));
    wait_until(
        Duration::from_secs(20),
        "2 runs after the restart",
        || async {
            ids_of(&seen, "s")
                .iter()
                .filter(|(t, _)| *t > back_at)
                .count()
                >= 2
        },
    )
    .await;
    w.stop().await;
    let runs: Vec<u64> = ids_of(&seen, "s").iter().map(|(t, _)| *t).collect();
    let mut unique = runs.clone();
    unique.dedup();
    assert_eq!(unique, runs, "a tick ran twice");
    // Ticks during the downtime: the one fired before it (waiting in the delayed set)
    // and one collapsed late run; not one per missed tick.
    let missed: Vec<u64> = runs
        .iter()
        .copied()
        .filter(|t| *t > down_since && *t <= back_at)
        .collect();
    assert!(
        !missed.is_empty() && missed.len() <= 2,
        "ticks run for the downtime: {missed:?} (all: {runs:?})"
    );
    let after = q.scheduler("s").await.unwrap().unwrap();
    // Counted: every job run, and the one fired last if it still waits for its tick.
    let counted = after.runs as usize;
    assert!(
        counted == runs.len() || counted == runs.len() + 1,
        "{counted} runs counted, {} run: {after:?}",
        runs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_end_and_remove_stop_a_scheduler() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "bounded").unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let w = start(recording_worker(&redis.url(), "bounded", seen.clone()));
    let now = SystemTime::now();
    q.upsert_scheduler("limited", &every(1, json!(null)).limit(3))
        .await
        .unwrap();
    q.upsert_scheduler(
        "ending",
        &every(1, json!(null)).end(now + Duration::from_millis(2500)),
    )
    .await
    .unwrap();
    q.upsert_scheduler("removed", &every(1, json!(null)))
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        "2 runs of the removed one",
        || async { ids_of(&seen, "removed").len() >= 2 },
    )
    .await;
    assert!(q.remove_scheduler("removed").await.unwrap());
    assert!(!q.remove_scheduler("removed").await.unwrap(), "gone");
    let removed_runs = ids_of(&seen, "removed").len();
    // Its job for a tick not yet come was taken back with it.
    let delayed: Vec<String> = redis
        .conn()
        .zrange("baton:{bounded}:delayed", 0, -1)
        .unwrap();
    assert!(
        delayed.iter().all(|id| !id.starts_with("sched:removed:")),
        "{delayed:?}"
    );
    // A witness ticking on shows the loop kept going meanwhile.
    q.upsert_scheduler("witness", &every(1, json!(null)))
        .await
        .unwrap();
    wait_until(
        Duration::from_secs(20),
        "limited ended, witness ran 4 times",
        || async { ids_of(&seen, "witness").len() >= 4 },
    )
    .await;
    w.stop().await;
    assert_eq!(ids_of(&seen, "limited").len(), 3, "limit 3");
    let ending = ids_of(&seen, "ending");
    let end_ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        + 2500;
    assert!(
        !ending.is_empty() && ending.iter().all(|(t, _)| *t <= end_ms),
        "{ending:?}"
    );
    assert!(
        ids_of(&seen, "removed").len() <= removed_runs + 1,
        "at most the tick already due ran after the remove"
    );
    let all: BTreeMap<String, SchedulerInfo> = q
        .schedulers()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect();
    assert_eq!(all["limited"].next_run_ms, None, "{:?}", all["limited"]);
    assert_eq!(all["limited"].runs, 3);
    assert_eq!(all["ending"].next_run_ms, None);
    assert!(!all.contains_key("removed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_of_several_queues_fires_the_schedulers_of_each() {
    let redis = RedisServer::start();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = seen.clone();
    let w = Worker::builder(redis.url(), "qa")
        .queues(["qa", "qb"])
        .shutdown_timeout(Duration::from_secs(2))
        .build(handler_fn(move |data: Value, ctx: JobContext| {
            let seen = recorded.clone();
            async move {
                seen.lock().unwrap().push((ctx.id().to_string(), data));
                Ok::<_, JobError>(())
            }
        }))
        .unwrap();
    let w = start(w);
    for (queue, id) in [("qa", "sa"), ("qb", "sb")] {
        Queue::connect(redis.url(), queue)
            .unwrap()
            .upsert_scheduler(id, &every(1, json!(queue)))
            .await
            .unwrap();
    }
    wait_until(Duration::from_secs(20), "2 runs on each queue", || async {
        ids_of(&seen, "sa").len() >= 2 && ids_of(&seen, "sb").len() >= 2
    })
    .await;
    w.stop().await;
    assert!(ids_of(&seen, "sa").iter().all(|(_, d)| d == "qa"));
    assert!(ids_of(&seen, "sb").iter().all(|(_, d)| d == "qb"));
}

#[tokio::test]
async fn a_scheduler_with_a_group_makes_jobs_of_that_group() {
    // Each tick's job waits in its group's line and runs under the group's limits, as
    // an added job of the group does.
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "sg").unwrap();
    q.set_group_limits(Some(1), None).await.unwrap();
    let s = every(1, json!({"v": 1})).opts(baton::JobOptions::default().group("tenant-9"));
    q.upsert_scheduler("s", &s).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let w = start(recording_worker(&redis.url(), "sg", seen.clone()));
    wait_until(Duration::from_secs(20), "2 runs", || async {
        ids_of(&seen, "s").len() >= 2
    })
    .await;
    w.stop().await;
    let first = seen.lock().unwrap()[0].0.clone();
    let job = q.job(&first).await.unwrap().unwrap();
    assert_eq!(job.group.as_deref(), Some("tenant-9"), "{job:?}");
    let mut c = redis.conn();
    let meta: Option<String> = c.hget("baton:{sg}:meta", "groups").unwrap();
    assert_eq!(meta.as_deref(), Some("1:0:0"), "claims look at groups");
}
