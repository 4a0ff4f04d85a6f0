//! The dashboard's schedulers (queue page section, a scheduler's job), a bulk action on
//! thousands of jobs with its progress page, and the dashboard on a 3-master cluster.

use std::time::Duration;

use baton::conn::RedisConfig;
use baton::{JobOptions, JobState, NewJob, Queue, Repeat, Scheduler};
use serde_json::{json, Value};

use super::browser::Browser;
use super::server::Serve;
use super::{state_of, LIMIT};
use crate::common::{wait_until, RedisServer};
use crate::topology::{ClusterOptions, RedisCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedulers_on_the_queue_page_and_their_jobs() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "reports").unwrap();
    let info = q
        .upsert_scheduler(
            "nightly:eu",
            &Scheduler::new(
                Repeat::every(Duration::from_secs(1)),
                "report",
                json!({"r": 1}),
            ),
        )
        .await
        .unwrap();
    let tick = info
        .last_run_ms
        .expect("a first tick within the look-ahead fires at the upsert");
    let id = baton::schedule::job_id("nightly:eu", tick);
    assert!(
        q.job(&id).await.unwrap().is_some(),
        "the scheduler's job {id}"
    );
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/ui/queues/reports")).await;
    let row = "#scheduler-list tr[data-scheduler='nightly:eu']";
    assert!(b
        .text(&format!("{row} td.mono"))
        .await
        .contains("nightly:eu"));
    assert!(
        b.text(row).await.contains("every 1s"),
        "{}",
        b.text(row).await
    );
    assert!(!b.text(&format!("{row} td.next")).await.contains("ended"));
    b.screenshot("queue-schedulers").await;
    b.goto(&s.url(&format!("/ui/queues/reports/jobs/{}", urlencode(&id))))
        .await;
    assert!(b.text("#job-scheduler").await.starts_with("nightly:eu"));
    b.click("#job-scheduler a").await;
    assert!(b.path().await.starts_with("/ui/queues/reports"));
    assert!(b.has(row).await);
    // A job that is not a scheduler's says nothing about one.
    let plain = q
        .add("x", &json!({}), JobOptions::default())
        .await
        .unwrap()
        .id;
    b.goto(&s.url(&format!("/ui/queues/reports/jobs/{plain}")))
        .await;
    assert!(!b.has("#job-scheduler").await);
    // Removed from the queue page, after a confirmation.
    b.goto(&s.url("/ui/queues/reports")).await;
    b.click(&format!("{row} button[value=remove_scheduler]"))
        .await;
    b.click("#confirm").await;
    wait_until(LIMIT, "the scheduler removed", || async {
        q.schedulers().await.unwrap().is_empty()
    })
    .await;
    b.assert_no_js_errors().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_retry_of_thousands_shows_progress() {
    const N: usize = 3_000;
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "many").unwrap();
    let jobs: Vec<NewJob<Value>> = (0..N).map(|i| NewJob::new("n", json!({"i": i}))).collect();
    let ids: Vec<String> = q
        .add_bulk(&jobs)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    // Cancelled jobs, made without a worker: retry applies to them as to failed ones.
    for id in &ids {
        q.cancel(id).await.unwrap();
    }
    assert_eq!(q.counts().await.unwrap().cancelled, N as u64);
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/ui/queues/many?state=cancelled")).await;
    b.click("#all button[value=retry]").await;
    b.click("#confirm").await;
    // The click returns before the browser has followed the redirect.
    wait_until(LIMIT, "on the bulk progress page", || async {
        b.path().await.starts_with("/ui/queues/many/bulk/")
    })
    .await;
    // Whatever it shows first, it is "queued again X of 3 000" or the end.
    let first = b.text("#bulk-progress").await;
    assert!(
        first.contains(" of 3\u{202f}000 cancelled jobs") || first.starts_with("Done: "),
        "{first}"
    );
    b.screenshot("bulk-progress").await;
    let mut seen = vec![first];
    let deadline = std::time::Instant::now() + LIMIT * 3;
    loop {
        let t = b.text("#bulk-progress").await;
        if seen.last() != Some(&t) {
            seen.push(t.clone());
        }
        if t.starts_with("Done: ") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never done: {seen:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("progress lines seen: {seen:?}");
    assert_eq!(
        seen.last().unwrap(),
        "Done: queued again 3\u{202f}000 jobs",
        "{seen:?}"
    );
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.cancelled), (N as u64, 0));
    b.click("#bulk-back").await;
    assert_eq!(b.path().await, "/ui/queues/many?state=cancelled");
    b.assert_no_js_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_on_a_cluster() {
    let cluster = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas_per_master: 0,
        ..ClusterOptions::default()
    });
    let cfg = RedisConfig::cluster(cluster.seed_urls());
    let names = cluster.queues_on_distinct_masters(3);
    let mut first_ids = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let q = Queue::connect(cfg.clone(), n).unwrap();
        for j in 0..=i {
            let id = q
                .add("c", &json!({"j": j}), JobOptions::default())
                .await
                .unwrap()
                .id;
            if j == 0 {
                first_ids.push(id);
            }
        }
    }
    let conn = vec!["--cluster-nodes".to_string(), cluster.seed_urls().join(",")];
    let s = Serve::start_with(&conn, &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/")).await;
    for (i, n) in names.iter().enumerate() {
        b.wait_text(
            &format!("tr[data-queue='{n}'] td[data-state=waiting]"),
            LIMIT,
            |t| t == (i + 1).to_string(),
        )
        .await;
    }
    b.screenshot("cluster-overview").await;
    let (n, id) = (&names[2], &first_ids[2]);
    b.goto(&s.url(&format!("/ui/queues/{n}"))).await;
    assert!(b.has(&format!("tr[data-id='{id}']")).await);
    b.goto(&s.url(&format!("/ui/queues/{n}/jobs/{id}"))).await;
    assert_eq!(b.text("#job-state").await, "waiting");
    b.click("#job-actions button[value=cancel]").await;
    b.click("#confirm").await;
    let q = Queue::connect(cfg.clone(), n).unwrap();
    wait_until(LIMIT, "cancelled in redis", || async {
        state_of(&q, id).await == Some(JobState::Cancelled)
    })
    .await;
    b.wait_text("#job-state", LIMIT, |t| t == "cancelled").await;
    b.assert_no_js_errors().await;
}

/// The queue page sets what `baton limit` sets: the queue's cap and rate and each
/// group's, shown filled in after; a bad rate is refused with its rule and changes
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_set_from_the_queue_page() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "limited").unwrap();
    q.add("x", &json!({}), JobOptions::default()).await.unwrap();
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/ui/queues/limited")).await;
    // Filled and pressed in one script, so a live refresh cannot come in between.
    let set = |c: &str, r: &str, gc: &str, gr: &str| {
        format!(
            "const f = document.querySelector('#limits form');
             f.concurrency.value = '{c}'; f.rate.value = '{r}';
             f.group_concurrency.value = '{gc}'; f.group_rate.value = '{gr}';
             f.querySelector('button[value=limits]').click(); return true;"
        )
    };
    b.eval(&set("3", "10/1s", "2", "5/1s")).await;
    wait_until(LIMIT, "limits written", || async {
        q.counts().await.unwrap().concurrency == Some(3)
    })
    .await;
    let c = q.counts().await.unwrap();
    assert_eq!(c.rate.map(|r| (r.max, r.per_ms)), Some((10, 1000)));
    assert_eq!(c.group_concurrency, Some(2));
    assert_eq!(c.group_rate.map(|r| (r.max, r.per_ms)), Some((5, 1000)));
    b.wait_text("#limits", LIMIT, |_| true).await;
    let shown = b
        .eval("return document.querySelector('#limits form').rate.value;")
        .await;
    assert_eq!(shown, json!("10/1s"), "the form shows what is set");

    // Emptied: no caps, no rates.
    b.goto(&s.url("/ui/queues/limited")).await;
    b.eval(&set("", "", "", "")).await;
    wait_until(LIMIT, "limits removed", || async {
        let c = q.counts().await.unwrap();
        c.concurrency.is_none() && c.rate.is_none() && c.group_concurrency.is_none()
    })
    .await;
    b.assert_no_js_errors().await;

    // Refused (a 400 page, which the browser logs as a failed load: checked last).
    b.goto(&s.url("/ui/queues/limited")).await;
    b.eval(&set("3", "junk", "", "")).await;
    let said = b.wait_text("body", LIMIT, |t| t.contains("junk")).await;
    assert!(said.contains("N/DURATION"), "{said}");
    let c = q.counts().await.unwrap();
    assert!(
        c.concurrency.is_none() && c.rate.is_none(),
        "nothing written: {c:?}"
    );
}
