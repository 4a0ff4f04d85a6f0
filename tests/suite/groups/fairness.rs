//! Turns between groups, per-group concurrency and per-group rate, with worker
//! processes; each on one Redis and on a 3-master cluster.

use std::time::Duration;

use super::procs::{group_of, job, max_overlap, until_completed, Env};

/// One group with a big backlog added first, four small groups after it: with turns,
/// every small group's jobs start among the first few, not after the backlog.
async fn small_groups_are_not_starved(env: Env) {
    let q = env.queue("fair");
    let mut jobs: Vec<_> = (0..30).map(|i| job("big", i, "ok")).collect();
    for g in ["s1", "s2", "s3", "s4"] {
        jobs.extend((0..2).map(|i| job(g, i, "ok")));
    }
    q.add_bulk(&jobs).await.unwrap();
    // One worker process with one slot: the order of starts is the claim order.
    let w = env.worker("fair", 1);
    until_completed(&q, 38).await;
    drop(w);
    let starts: Vec<String> = env
        .ledger()
        .into_iter()
        .filter(|(e, _)| e == "start")
        .map(|(_, id)| id)
        .collect();
    assert_eq!(starts.len(), 38, "{starts:?}");
    // Turns of five groups: the eight small jobs are done in the first two rounds
    // (ten starts); FIFO would start them after all thirty big ones.
    let last_small = starts.iter().rposition(|id| group_of(id) != "big").unwrap();
    assert!(
        last_small < 10,
        "the last small group's job started {}th: {starts:?}",
        last_small + 1
    );
}

/// Per-group concurrency 2 over three worker processes of 4 slots: at most 2 of a group
/// run at once (from the ledger's order), and the room is used.
async fn group_concurrency_is_exact_across_processes(env: Env) {
    let q = env.queue("gcap");
    q.set_group_limits(Some(2), None).await.unwrap();
    let mut jobs = Vec::new();
    for g in ["a", "b", "c"] {
        jobs.extend((0..12).map(|i| job(g, i, "ok")));
    }
    q.add_bulk(&jobs).await.unwrap();
    let ws: Vec<_> = (0..3).map(|_| env.worker("gcap", 4)).collect();
    until_completed(&q, 36).await;
    drop(ws);
    let max = max_overlap(&env.ledger());
    for g in ["a", "b", "c"] {
        let m = max.get(g).copied().unwrap_or(0);
        assert!(m <= 2, "group {g}: {m} ran at once under a cap of 2");
    }
    assert!(
        max.values().any(|m| *m == 2),
        "the groups' room was never used in full: {max:?}"
    );
    let c = q.counts().await.unwrap();
    assert_eq!(c.group_concurrency, Some(2));
    assert_eq!((c.groups_ready, c.groups_limited), (0, 0), "{c:?}");
}

/// Per-group rate 2 per 700 ms: from the jobs' start times (Redis clock, as claimed),
/// any 2N+1 consecutive starts of a group span at least one window (fixed windows: at
/// most N in one, N in the next).
async fn group_rate_spreads_each_groups_starts(env: Env) {
    let q = env.queue("grate");
    let window = Duration::from_millis(700);
    q.set_group_limits(None, Some((2, window))).await.unwrap();
    let mut jobs = Vec::new();
    for g in ["a", "b"] {
        jobs.extend((0..7).map(|i| job(g, i, "ok")));
    }
    q.add_bulk(&jobs).await.unwrap();
    let ws: Vec<_> = (0..2).map(|_| env.worker("grate", 8)).collect();
    until_completed(&q, 14).await;
    drop(ws);
    for g in ["a", "b"] {
        let mut t = Vec::new();
        for i in 0..7 {
            let info = q.job(&format!("{g}.{i}")).await.unwrap().unwrap();
            t.push(info.started_ms.expect("started"));
        }
        t.sort();
        for i in 0..t.len() - 4 {
            assert!(
                t[i + 4] - t[i] >= window.as_millis() as u64,
                "group {g}: 5 starts within {} ms under 2 per 700 ms: {t:?}",
                t[i + 4] - t[i]
            );
        }
        // And it is a limit, not a crawl: a window holds two starts.
        assert!(t.windows(2).any(|w| w[1] - w[0] < 300), "{t:?}");
    }
}

#[tokio::test]
async fn small_groups_are_not_starved_by_a_big_backlog() {
    small_groups_are_not_starved(Env::single()).await;
}

#[tokio::test]
async fn group_concurrency_holds_across_worker_processes() {
    group_concurrency_is_exact_across_processes(Env::single()).await;
}

#[tokio::test]
async fn group_rate_limits_each_groups_starts() {
    group_rate_spreads_each_groups_starts(Env::single()).await;
}

#[tokio::test]
async fn cluster_small_groups_are_not_starved() {
    small_groups_are_not_starved(Env::cluster()).await;
}

#[tokio::test]
async fn cluster_group_concurrency_holds() {
    group_concurrency_is_exact_across_processes(Env::cluster()).await;
}

#[tokio::test]
async fn cluster_group_rate_limits_each_group() {
    group_rate_spreads_each_groups_starts(Env::cluster()).await;
}
