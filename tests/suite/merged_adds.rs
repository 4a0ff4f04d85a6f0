//! Single adds merged into one script call (src/queue/coalesce.rs): adds to one queue
//! that arrive while another is on its way ride in the next call, and each caller
//! still gets the answer it would have had alone. `CLIENT PAUSE … WRITE` holds the
//! first add inside Redis, so the ones behind it are sure to queue and ride together.

use std::time::{Duration, Instant};

use crate::common::RedisServer;
use baton::{Dedup, Error, JobOptions, Queue};
use redis::Commands;

/// Calls of `add.lua` so far (EVALSHA, plus the EVAL that loads it once).
fn script_calls(redis: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut redis.conn())
        .unwrap();
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_adds_ride_together_and_each_gets_its_own_answer() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "merged").unwrap();
    // Warm: the script is loaded and the queue registered.
    q.add("warm", &0u32, JobOptions::default()).await.unwrap();
    let before = script_calls(&redis);
    let n = 300;
    let mut tasks = Vec::new();
    for i in 0..n {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            (i, q.add("each", &i, JobOptions::default()).await.unwrap())
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (i, a) = t.await.unwrap();
        assert!(a.added && !a.deduplicated, "{a:?}");
        let job = q.job(&a.id).await.unwrap().expect("the job exists");
        assert_eq!(
            job.data,
            serde_json::json!(i),
            "job {} holds its own payload",
            a.id
        );
        ids.insert(a.id);
    }
    assert_eq!(ids.len(), n as usize, "every caller got its own id");
    assert_eq!(q.counts().await.unwrap().waiting, n as u64 + 1);
    let calls = script_calls(&redis) - before;
    eprintln!("{n} concurrent single adds took {calls} script calls");
    assert!(
        calls >= 1 && calls < n as u64,
        "{calls} calls for {n} adds: none merged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_call_answers_each_job_as_if_it_came_alone() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "same").unwrap();
    q.add("warm", &0u32, JobOptions::default()).await.unwrap();
    let before = script_calls(&redis);
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "600", "WRITE"])
        .query(&mut redis.conn())
        .unwrap();
    // The first add is held inside Redis; the four behind it queue and go as one call.
    let first = tokio::spawn({
        let q = q.clone();
        async move { q.add("first", &1u32, JobOptions::default()).await.unwrap() }
    });
    wait_for_blocked_client(&redis).await;
    let add = |name: &'static str, opts: JobOptions| {
        let q = q.clone();
        tokio::spawn(async move { q.add(name, &2u32, opts).await.unwrap() })
    };
    let same_a = add("same-id", JobOptions::default().job_id("twice"));
    let same_b = add("same-id", JobOptions::default().job_id("twice"));
    let key_a = add("dedup", JobOptions::default().dedup(Dedup::simple("k")));
    let key_b = add("dedup", JobOptions::default().dedup(Dedup::simple("k")));
    let first = first.await.unwrap();
    let (same_a, same_b) = (same_a.await.unwrap(), same_b.await.unwrap());
    let (key_a, key_b) = (key_a.await.unwrap(), key_b.await.unwrap());
    assert!(first.added);
    assert_eq!(
        script_calls(&redis) - before,
        2,
        "the four queued adds went as one call"
    );
    // The tasks may queue in either order. The same id twice: the first in the batch
    // adds it, the second finds it.
    assert!(same_a.added != same_b.added, "{same_a:?} {same_b:?}");
    assert_eq!((same_a.id.as_str(), same_b.id.as_str()), ("twice", "twice"));
    // The same dedup key twice: the second names the job that stands.
    let (stood, absorbed) = if key_a.added {
        (key_a, key_b)
    } else {
        (key_b, key_a)
    };
    assert!(stood.added && !stood.deduplicated, "{stood:?}");
    assert!(!absorbed.added && absorbed.deduplicated, "{absorbed:?}");
    assert_eq!(absorbed.id, stood.id);
    assert_eq!(q.counts().await.unwrap().waiting, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_call_without_a_reply_names_each_caller_its_own_job() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "silent").unwrap();
    q.add("warm", &0u32, JobOptions::default()).await.unwrap();
    // Longer than two producer timeouts: the first add and the batch behind it both
    // go unanswered in time.
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "5000", "WRITE"])
        .query(&mut redis.conn())
        .unwrap();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..5u32 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("job-{i}");
            let r = q
                .add("maybe", &i, JobOptions::default().job_id(id.clone()))
                .await;
            (id, r)
        }));
        if i == 0 {
            wait_for_blocked_client(&redis).await;
        }
    }
    let mut ids = Vec::new();
    for task in tasks {
        let (id, r) = task.await.unwrap();
        match r {
            Err(Error::MaybeAdded { ids, .. }) => assert_eq!(ids, vec![id.clone()]),
            other => panic!("{id}: expected MaybeAdded naming it alone, got {other:?}"),
        }
        ids.push(id);
    }
    eprintln!("all five answered 'maybe added' after {:?}", t.elapsed());
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut redis.conn())
        .unwrap();
    // Adding again with the named ids is safe: each job exists exactly once.
    for id in &ids {
        q.add("maybe", &0u32, JobOptions::default().job_id(id.clone()))
            .await
            .unwrap();
    }
    assert_eq!(q.counts().await.unwrap().waiting, 6);
    let len: u64 = redis.conn().llen("baton:{silent}:wait").unwrap();
    assert_eq!(len, 6, "no id twice in the wait list");
}

/// Waits until a client is held by `CLIENT PAUSE` (Redis counts it as blocked).
async fn wait_for_blocked_client(redis: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query(&mut redis.conn())
            .unwrap();
        let blocked = info
            .lines()
            .find_map(|l| l.strip_prefix("blocked_clients:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if blocked > 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no add held by the pause: {info}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
