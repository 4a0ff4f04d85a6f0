//! Job schedulers (issue 11.1): one job per tick however many worker processes run,
//! upserts that change the next run without a duplicate, missed ticks collapsing after
//! downtime, start/end/limit, remove, on one server and on a 3-master cluster, and the
//! CLI and HTTP round trips. (Next-run computation across DST is unit-tested in
//! `src/schedule/plan.rs`.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::common::{baton_bin, signal, start, wait_until, ChildGuard, RedisServer};
use baton::conn::RedisConfig;
use baton::{
    handler_fn, JobContext, JobError, JobOptions, Queue, Repeat, Scheduler, SchedulerInfo, Worker,
};
use redis::Commands;
use serde_json::{json, Value};

/// A file each job appends `<job id> <start ms>` to, from several worker processes.
struct Ledger {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Ledger {
    fn new() -> Ledger {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        std::fs::write(&path, "").unwrap();
        Ledger { _dir: dir, path }
    }

    /// (job id, start ms) per line, in the order written.
    fn entries(&self) -> Vec<(String, u64)> {
        std::fs::read_to_string(&self.path)
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (id, ms) = l.split_once(' ')?;
                Some((id.to_string(), ms.trim().parse().ok()?))
            })
            .collect()
    }
}

/// The tick of a scheduler's job id `sched:<scheduler>:<tick>`.
fn tick_of(id: &str, scheduler: &str) -> Option<u64> {
    id.strip_prefix(&format!("sched:{scheduler}:"))?
        .parse()
        .ok()
}

/// `baton worker QUEUE --exec` appending to the ledger, as a process of its own.
fn worker_process(conn: &[String], queue: &str, ledger: &Path) -> ChildGuard {
    ChildGuard(
        Command::new(baton_bin())
            .args(conn)
            .args(["worker", queue, "--shutdown-timeout", "2s", "--exec", "--"])
            .args(["sh", "-c", r#"echo "$BATON_JOB_ID $(date +%s%3N)" >> "$0""#])
            .arg(ledger)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// SIGTERM, then wait (bounded; the guard kills whatever is left).
fn stop_all(workers: Vec<ChildGuard>) {
    for w in &workers {
        signal(w.id(), libc::SIGTERM);
    }
    for mut w in workers {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while w.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Every tick once, consecutive, none started before its time.
fn assert_every_tick_once(entries: &[(String, u64)], scheduler: &str, every_ms: u64) -> Vec<u64> {
    let mut by_id: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, _) in entries {
        *by_id.entry(id).or_default() += 1;
    }
    let doubled: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "ticks run more than once: {doubled:?}");
    let mut ticks: Vec<u64> = entries
        .iter()
        .map(|(id, started)| {
            let t = tick_of(id, scheduler).unwrap_or_else(|| panic!("unexpected job id {id}"));
            assert!(*started >= t, "{id} started at {started}, before its tick");
            t
        })
        .collect();
    ticks.sort();
    for w in ticks.windows(2) {
        assert_eq!(
            w[1] - w[0],
            every_ms,
            "a tick is missing between {} and {}",
            w[0],
            w[1]
        );
    }
    ticks
}

/// Three worker processes, one scheduler ticking every second: at least `n` ticks, each
/// run once, none missing.
async fn many_workers_one_job_per_tick(conn: Vec<String>, cfg: RedisConfig, n: usize) {
    let q = Queue::connect(cfg, "ticks").unwrap();
    let ledger = Ledger::new();
    let workers: Vec<_> = (0..3)
        .map(|_| worker_process(&conn, "ticks", &ledger.path))
        .collect();
    let s = Scheduler::new(Repeat::cron("*/1 * * * * *"), "tick", json!({"k": 1}))
        .opts(JobOptions::default().attempts(1));
    let info = q.upsert_scheduler("every-second", &s).await.unwrap();
    assert!(info.next_run_ms.is_some(), "{info:?}");
    wait_until(
        Duration::from_secs(60),
        &format!("{n} ticks in the ledger"),
        || async { ledger.entries().len() >= n },
    )
    .await;
    assert!(q.remove_scheduler("every-second").await.unwrap());
    // Whatever was already due runs; then nothing more comes.
    wait_until(
        Duration::from_secs(10),
        "the last ticks finished",
        || async {
            let c = q.counts().await.unwrap();
            c.waiting + c.delayed + c.active == 0
        },
    )
    .await;
    stop_all(workers);
    let entries = ledger.entries();
    let ticks = assert_every_tick_once(&entries, "every-second", 1000);
    assert!(ticks.len() >= n, "{} ticks", ticks.len());
    let counts = q.counts().await.unwrap();
    assert_eq!(counts.completed as usize, entries.len(), "{counts:?}");
    // Measured, not asserted: how long after its tick each job started (exec start-up
    // included).
    let mut late: Vec<u64> = entries
        .iter()
        .map(|(id, started)| started - tick_of(id, "every-second").unwrap())
        .collect();
    late.sort();
    eprintln!(
        "{} ticks; start after tick: median {} ms, max {} ms",
        late.len(),
        late[late.len() / 2],
        late[late.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_run_each_tick_exactly_once() {
    let redis = RedisServer::start();
    let conn = vec!["--redis-url".to_string(), redis.url()];
    many_workers_one_job_per_tick(conn, redis.url().into(), 11).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_run_each_tick_exactly_once_on_a_cluster() {
    let cluster = crate::topology::RedisCluster::start(3, 0);
    let conn = vec!["--cluster-nodes".to_string(), cluster.seed_urls().join(",")];
    many_workers_one_job_per_tick(conn, RedisConfig::cluster(cluster.seed_urls()), 10).await;
}

/// A worker in this process recording (job id, payload) of every job it runs.
fn recording_worker(redis: &str, queue: &str, seen: Arc<Mutex<Vec<(String, Value)>>>) -> Worker {
    Worker::builder(redis, queue)
        .concurrency(4)
        .shutdown_timeout(Duration::from_secs(2))
        .build(handler_fn(move |data: Value, ctx: JobContext| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push((ctx.id().to_string(), data));
                Ok::<_, JobError>(())
            }
        }))
        .unwrap()
}

fn ids_of(seen: &Mutex<Vec<(String, Value)>>, scheduler: &str) -> Vec<(u64, Value)> {
    let mut v: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(id, d)| Some((tick_of(id, scheduler)?, d.clone())))
        .collect();
    v.sort_by_key(|(t, _)| *t);
    v
}

fn every(secs: u64, data: Value) -> Scheduler<Value> {
    Scheduler::new(Repeat::every(Duration::from_secs(secs)), "job", data)
}

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
async fn a_tick_writes_the_job_as_add_does_and_seals_its_data() {
    let redis = RedisServer::start();
    let keys =
        baton::crypto::Keyring::parse("k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
    let q = Queue::connect(redis.url(), "fields")
        .unwrap()
        .with_encryption(Arc::new(keys));
    let opts = JobOptions::default()
        .priority(7)
        .attempts(2)
        .keep_completed(baton::Retention::last(5));
    // No worker runs: the first tick, 1.5 s ahead (inside the look-ahead), is fired by
    // the upsert itself, as a delayed job.
    let s = Scheduler::new(
        Repeat::every(Duration::from_secs(1)),
        "hourly",
        json!({"a": 1}),
    )
    .opts(opts.clone())
    .start(SystemTime::now() + Duration::from_millis(1500));
    let info = q.upsert_scheduler("h", &s).await.unwrap();
    let fired = info.last_run_ms.expect("the first tick fired on upsert");
    assert_eq!(
        info.next_run_ms,
        Some(fired),
        "the waiting job's tick is the next run"
    );
    let added = q
        .add(
            "hourly",
            &json!({"a": 1}),
            opts.clone()
                .job_id("by-add")
                .delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    assert!(added.added);
    let mut c = redis.conn();
    let by_tick: BTreeMap<String, Vec<u8>> = c
        .hgetall(format!("baton:{{fields}}:job:sched:h:{fired}"))
        .unwrap();
    let by_add: BTreeMap<String, Vec<u8>> = c.hgetall("baton:{fields}:job:by-add").unwrap();
    assert_eq!(
        by_tick.keys().collect::<Vec<_>>(),
        by_add.keys().collect::<Vec<_>>(),
        "the same fields"
    );
    for f in ["name", "opts", "keep", "pri"] {
        assert_eq!(by_tick[f], by_add[f], "field {f}");
    }
    assert_eq!(by_tick["data"][0], 0xC1, "the data is sealed");
    let job = q.job(&format!("sched:h:{fired}")).await.unwrap().unwrap();
    assert_eq!(job.data, json!({"a": 1}));
    assert_eq!(q.schedulers().await.unwrap()[0].data, json!({"a": 1}));
    // Without the key, the listing says so instead of failing.
    let plain = Queue::connect(redis.url(), "fields").unwrap();
    assert!(plain.schedulers().await.unwrap()[0]
        .data
        .to_string()
        .contains("encrypted"));
}

#[tokio::test]
async fn bad_definitions_are_refused_with_a_reason() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "bad").unwrap();
    let refuse = |s: Scheduler<Value>, id: &'static str| {
        let q = q.clone();
        async move { q.upsert_scheduler(id, &s).await.unwrap_err().to_string() }
    };
    let e = refuse(
        Scheduler::new(Repeat::cron("61 * * * *"), "n", json!(0)),
        "a",
    )
    .await;
    assert!(e.contains("not valid"), "{e}");
    let e = refuse(
        Scheduler::new(Repeat::cron_in("* * * * *", "Nowhere/City"), "n", json!(0)),
        "a",
    )
    .await;
    assert!(e.contains("unknown time zone"), "{e}");
    let e = refuse(
        every(1, json!(0)).opts(JobOptions::default().job_id("x")),
        "a",
    )
    .await;
    assert!(e.contains("job_id"), "{e}");
    let e = refuse(
        every(1, json!(0)).opts(JobOptions::default().delay(Duration::from_secs(1))),
        "a",
    )
    .await;
    assert!(e.contains("delay"), "{e}");
    let e = refuse(
        every(1, json!(0)).end(SystemTime::now() - Duration::from_secs(60)),
        "a",
    )
    .await;
    assert!(e.contains("never run"), "{e}");
    let e = refuse(every(1, json!(0)), "a{b}").await;
    assert!(e.contains("scheduler id"), "{e}");
    let e = refuse(every(1, json!(0)).limit(0), "a").await;
    assert!(e.contains("limit"), "{e}");
    assert!(
        q.schedulers().await.unwrap().is_empty(),
        "nothing was stored"
    );
}

fn cli(redis: &RedisServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(baton_bin())
        .args(["--redis-url", &redis.url()])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_sets_lists_and_removes_schedulers() {
    let redis = RedisServer::start();
    let (ok, out, err) = cli(
        &redis,
        &[
            "schedule",
            "set",
            "cq",
            "report",
            "--cron",
            "0 0 9 * * MON-FRI",
            "--tz",
            "Europe/Berlin",
            "--name",
            "report",
            "--data",
            r#"{"to":"ops"}"#,
            "--attempts",
            "2",
            "--limit",
            "10",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let set: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(set["cron"], "0 0 9 * * MON-FRI");
    assert_eq!(set["tz"], "Europe/Berlin");
    assert_eq!(set["data"], json!({"to": "ops"}));
    assert_eq!(
        (set["attempts"].clone(), set["limit"].clone()),
        (json!(2), json!(10))
    );
    assert!(set["next_run_ms"].as_u64().is_some(), "{set}");
    let (ok, out, err) = cli(&redis, &["schedule", "set", "cq", "tidy", "--every", "30s"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("every 30s") && out.contains("next run"),
        "{out}"
    );
    let (_, out, _) = cli(&redis, &["schedule", "list", "cq", "--json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = list["schedulers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["report", "tidy"]);
    assert!(list["schedulers"][1]["next_run_ms"].as_u64().is_some());
    assert_eq!(
        list["schedulers"][1]["name"], "tidy",
        "named after the scheduler"
    );
    let (_, table, _) = cli(&redis, &["schedule", "list", "cq"]);
    assert!(
        table.contains("cron 0 0 9 * * MON-FRI (Europe/Berlin)"),
        "{table}"
    );
    assert!(table.contains("0/10"), "runs of the limit: {table}");

    for (args, want) in [
        (
            vec!["--cron", "* * * * *", "--every", "1s"],
            "cannot be used with",
        ),
        (vec!["--cron", "not cron"], "not valid"),
        (vec!["--every", "1s", "--delay", "5s"], "leave delay out"),
        (vec!["--every", "100ms"], "at least 1s"),
        (vec!["--every", "1s", "--data", "{"], "not valid JSON"),
        (vec![], "required"),
    ] {
        let mut a = vec!["schedule", "set", "cq", "x"];
        a.extend(args.iter());
        let (ok, _, err) = cli(&redis, &a);
        assert!(!ok && err.contains(want), "{args:?}: {err}");
    }

    let (ok, out, _) = cli(&redis, &["schedule", "remove", "cq", "tidy", "--json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["removed"],
        true
    );
    let (ok, out, _) = cli(&redis, &["schedule", "remove", "cq", "tidy"]);
    assert!(ok && out.contains("no scheduler tidy"), "{out}");
    let q = Queue::connect(redis.url(), "cq").unwrap();
    assert_eq!(q.schedulers().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_http_api_puts_gets_lists_and_deletes_schedulers() {
    use reqwest::{Method, StatusCode};
    let redis = RedisServer::start();
    let api = crate::http_api::support::Api::start(&redis.url(), None).await;
    let path = "/v1/queues/hq/schedulers/nightly";
    let (st, body) = api
        .call(
            Method::PUT,
            path,
            Some(
                json!({"cron": "0 30 2 * * *", "tz": "Europe/Berlin", "name": "n",
                        "data": {"x": 1}, "priority": 3, "limit": 5}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "nightly");
    assert_eq!(body["priority"], 3);
    assert!(body["next_run_ms"].as_u64().is_some(), "{body}");
    let (st, one) = api.call(Method::GET, path, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["data"], json!({"x": 1}));
    let (st, list) = api
        .call(Method::GET, "/v1/queues/hq/schedulers", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["schedulers"].as_array().unwrap().len(), 1, "{list}");
    for (bad, want) in [
        (json!({"every": "1s", "cron": "* * * * *"}), "not both"),
        (json!({"every": "soon"}), "not a duration"),
        (json!({"every": "1s", "job_id": "x"}), "job_id"),
        (json!({"every": "1s", "colour": 1}), "colour"),
    ] {
        let (st, body) = api.call(Method::PUT, path, Some(bad.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(want),
            "{bad}: {body}"
        );
    }
    let (st, _) = api.call(Method::DELETE, path, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = api.call(Method::DELETE, path, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    let (st, _) = api.call(Method::GET, path, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    api.stop().await;
}
