//! One worker serving several queues from one concurrency budget: strict order, weights,
//! an idle worker woken by any of its queues, shutdown handing back every queue's jobs,
//! the CLI's `worker q1,q2 --queue-weights`, and per-queue metrics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{baton_bin, free_port, start, wait_until, ChildGuard, RedisServer};
use baton::{handler_fn, JobContext, JobOptions, JobState, NewJob, Queue, Worker};

type Seen = Arc<Mutex<Vec<String>>>;

/// A worker over `queues` whose handler records the queue named in each payload.
fn recording(b: baton::WorkerBuilder, seen: &Seen, pause: Duration) -> Worker {
    let seen = seen.clone();
    b.build(handler_fn(move |q: String, _ctx: JobContext| {
        let seen = seen.clone();
        async move {
            tokio::time::sleep(pause).await;
            seen.lock().unwrap().push(q);
            Ok(())
        }
    }))
    .unwrap()
}

async fn fill(url: &str, queue: &str, n: usize) -> Queue {
    let q = Queue::connect(url, queue).unwrap();
    let jobs: Vec<NewJob<String>> = (0..n)
        .map(|_| NewJob::new("n", queue.to_string()))
        .collect();
    q.add_bulk(&jobs).await.unwrap();
    q
}

#[tokio::test]
async fn strict_order_drains_the_first_queue_first() {
    let redis = RedisServer::start();
    let url = redis.url();
    let lo = fill(&url, "lo", 20).await;
    fill(&url, "hi", 20).await;
    let seen: Seen = Default::default();
    let w = recording(
        Worker::builder(&url, "hi")
            .queues(["hi", "lo"])
            .concurrency(2),
        &seen,
        Duration::from_millis(2),
    );
    assert_eq!(w.queues(), vec!["hi", "lo"]);
    let run = start(w);
    wait_until(Duration::from_secs(20), "both queues drained", || async {
        lo.counts().await.unwrap().completed == 20
    })
    .await;
    run.stop().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 40);
    // With two slots, at most one "lo" job can start while the last "hi" ones finish.
    let first_lo = seen.iter().position(|q| q == "lo").unwrap();
    assert!(first_lo >= 19, "lo ran before hi was drained: {seen:?}");
}

#[tokio::test]
async fn weights_share_the_slots_and_starve_no_queue() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = fill(&url, "a", 400).await;
    let b = fill(&url, "b", 400).await;
    let seen: Seen = Default::default();
    let w = recording(
        Worker::builder(&url, "a")
            .weighted_queues([("a", 3), ("b", 1)])
            .concurrency(4),
        &seen,
        Duration::from_millis(1),
    );
    let run = start(w);
    wait_until(Duration::from_secs(30), "200 jobs done", || async {
        seen.lock().unwrap().len() >= 200
    })
    .await;
    run.stop().await;
    let first: Vec<String> = seen.lock().unwrap()[..200].to_vec();
    let share_a = first.iter().filter(|q| *q == "a").count() as f64 / 200.0;
    println!("weighted 3:1 -> share of a in the first 200 jobs: {share_a:.2}");
    assert!(
        (0.6..=0.9).contains(&share_a),
        "a's share {share_a} is far from 3/4"
    );
    assert!(b.counts().await.unwrap().completed > 0);
    assert!(a.counts().await.unwrap().completed > 0);
}

#[tokio::test]
async fn an_idle_worker_wakes_for_any_of_its_queues_and_hands_all_back() {
    let redis = RedisServer::start();
    let url = redis.url();
    let seen: Seen = Default::default();
    let w = recording(
        Worker::builder(&url, "x")
            .queues(["x", "y", "z"])
            // Blocks far longer than the test waits: only a wake-up can start the jobs.
            .idle_block(Duration::from_secs(30))
            .shutdown_timeout(Duration::from_millis(200)),
        &seen,
        Duration::ZERO,
    );
    let run = start(w);
    let z = Queue::connect(&url, "z").unwrap();
    let y = Queue::connect(&url, "y").unwrap();
    // Let the worker reach its idle block (nothing to claim yet).
    wait_until(Duration::from_secs(10), "worker registered", || async {
        !z.workers().await.unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let j = z
        .add("n", &"z".to_string(), JobOptions::default())
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "z's job done", || async {
        z.job(&j.id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    let woke_in = t.elapsed();
    let d = y
        .add(
            "n",
            &"y".to_string(),
            JobOptions::default().delay(Duration::from_millis(300)),
        )
        .await
        .unwrap();
    wait_until(Duration::from_secs(5), "y's delayed job done", || async {
        y.job(&d.id).await.unwrap().unwrap().state == JobState::Completed
    })
    .await;
    println!("idle worker of 3 queues: a job on the third ran {woke_in:?} after its add");
    assert!(woke_in < Duration::from_secs(2), "{woke_in:?}");
    run.stop().await;
}

#[tokio::test]
async fn shutdown_hands_back_the_jobs_of_every_queue() {
    let redis = RedisServer::start();
    let url = redis.url();
    let w = Worker::builder(&url, "p")
        .queues(["p", "r"])
        .concurrency(4)
        .shutdown_timeout(Duration::from_millis(100))
        .abort_grace(Duration::from_millis(100))
        // Never returns: the shutdown must abort it and hand the job back.
        .build(handler_fn(|_: u32, _ctx: JobContext| async move {
            std::future::pending::<()>().await;
            Ok(())
        }))
        .unwrap();
    let run = start(w);
    let p = Queue::connect(&url, "p").unwrap();
    let r = Queue::connect(&url, "r").unwrap();
    let jp = p.add("n", &1u32, JobOptions::default()).await.unwrap();
    let jr = r.add("n", &2u32, JobOptions::default()).await.unwrap();
    wait_until(Duration::from_secs(10), "both running", || async {
        p.job(&jp.id).await.unwrap().unwrap().state == JobState::Active
            && r.job(&jr.id).await.unwrap().unwrap().state == JobState::Active
    })
    .await;
    run.stop().await;
    for (q, id) in [(&p, &jp.id), (&r, &jr.id)] {
        let j = q.job(id).await.unwrap().unwrap();
        assert_eq!(j.state, JobState::Waiting, "{} handed back", q.name());
        assert_eq!(
            (j.attempt, j.stalled),
            (0, 0),
            "no attempt or stall counted: {j:?}"
        );
    }
}

#[tokio::test]
async fn the_cli_serves_several_queues_with_weights_and_labels_metrics_by_queue() {
    let redis = RedisServer::start();
    let url = redis.url();
    let bad = std::process::Command::new(baton_bin())
        .args([
            "--redis-url",
            &url,
            "worker",
            "a,b",
            "--queue-weights",
            "a=2",
            "--exec",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("no weight for queue \"b\""),
        "{err}"
    );

    let a = fill(&url, "a", 5).await;
    let b = fill(&url, "b", 5).await;
    let port = free_port();
    let _worker = ChildGuard(
        std::process::Command::new(baton_bin())
            .args([
                "--redis-url",
                &url,
                "worker",
                "a,b",
                "--queue-weights",
                "a=2,b=1",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--exec", "--", "true"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(15), "both queues drained", || async {
        a.counts().await.unwrap().completed == 5 && b.counts().await.unwrap().completed == 5
    })
    .await;
    // The worker counts a batch once finish.lua's reply is back, a moment after Redis
    // shows the jobs completed: wait for the counters, with a deadline.
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let completed = |body: &str, q: &str| -> Option<String> {
        body.lines()
            .find(|l| {
                l.starts_with("baton_jobs_completed_total") && l.contains(&format!("queue=\"{q}\""))
            })
            .map(str::to_string)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let body = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        let lines: Vec<Option<String>> = ["a", "b"].iter().map(|q| completed(&body, q)).collect();
        if lines
            .iter()
            .all(|l| l.as_deref().is_some_and(|l| l.ends_with(" 5")))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "completed counters of a and b not 5: {lines:?}\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
