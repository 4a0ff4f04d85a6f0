//! The web dashboard of `baton serve`, driven in headless Chromium (chromedriver and
//! `fantoccini`) against a real `baton serve`, real workers and a real redis-server:
//! log in, retry a failed job, cancel a running exec job, bulk retry, read-only mode,
//! live updates, no JavaScript errors, a big queue's page. Each test saves screenshots
//! (see `Browser::screenshot`); `BATON_UI_SCREENSHOTS=$PWD/docs/ui` refreshes the
//! committed ones.

mod big_queue;
mod browser;
mod events_stall;
mod flows;
mod forms;
mod more;
mod security;
pub(crate) mod server;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton::{handler_fn, JobContext, JobError, JobOptions, JobState, NewJob, Queue, Worker};
use serde_json::{json, Value};

use browser::Browser;
use server::Serve;

use crate::common::{baton_bin, start, wait_until, ChildGuard, RedisServer};

pub(crate) const ADMIN: &str = "admin-token-for-the-ui-tests";
pub(crate) const READER: &str = "read-token-for-the-ui-tests";
pub(crate) const LIMIT: Duration = Duration::from_secs(20);

/// A worker whose jobs fail (attempts 1, so they end failed) while `fail` is set.
pub(crate) fn flaky_worker(redis: &str, queue: &str, fail: Arc<AtomicBool>) -> Worker {
    Worker::builder(redis, queue)
        .concurrency(4)
        .lease(Duration::from_secs(2))
        .stalled_interval(Duration::from_millis(200))
        .shutdown_timeout(Duration::from_secs(2))
        .build(handler_fn(move |d: Value, ctx: JobContext| {
            let fail = fail.clone();
            async move {
                ctx.log(&format!("sending to {}", d["to"])).await.ok();
                if fail.load(Ordering::SeqCst) {
                    Err(JobError::retry(
                        "smtp: 554 mailbox unavailable <user@example.com>",
                    ))
                } else {
                    Ok::<_, JobError>(json!({"sent": true}))
                }
            }
        }))
        .unwrap()
}

pub(crate) fn once() -> JobOptions {
    JobOptions::default().attempts(1)
}

pub(crate) async fn state_of(q: &Queue, id: &str) -> Option<JobState> {
    q.job(id).await.unwrap().map(|j| j.state)
}

/// Logs in through the form with `token`; lands on the overview.
pub(crate) async fn log_in(b: &Browser, s: &Serve, token: &str) {
    b.goto(&s.url("/")).await;
    assert!(
        b.path().await.starts_with("/ui/login"),
        "redirected to the login form"
    );
    b.screenshot("login").await;
    b.type_into("#token", "wrong").await;
    b.click("button[type=submit]").await;
    assert_eq!(b.text(".flash.error").await, "Wrong token.");
    b.type_into("#token", token).await;
    b.click("button[type=submit]").await;
    // The click returns before the form's navigation ends on a busy machine.
    crate::common::wait_until(LIMIT, "back on the overview after logging in", || async {
        b.path().await == "/"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_a_failed_job_from_its_page() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "emails").unwrap();
    let fail = Arc::new(AtomicBool::new(true));
    let worker = start(flaky_worker(&redis.url(), "emails", fail.clone()));
    let id = q
        .add(
            "welcome",
            &json!({"to": "ada@example.com", "template": "welcome"}),
            once(),
        )
        .await
        .unwrap()
        .id;
    // Some history for the overview's per-minute figures.
    for i in 0..3 {
        q.add(
            "digest",
            &json!({"to": format!("u{i}@example.com")}),
            once(),
        )
        .await
        .unwrap();
    }
    wait_until(LIMIT, "jobs failed", || async {
        q.counts().await.unwrap().failed == 4
    })
    .await;
    fail.store(false, Ordering::SeqCst);
    q.add("digest", &json!({"to": "ok@example.com"}), once())
        .await
        .unwrap();
    wait_until(LIMIT, "one completed", || async {
        q.counts().await.unwrap().completed == 1
    })
    .await;

    let s = Serve::start(
        &redis.url(),
        &[("BATON_API_TOKEN", ADMIN), ("BATON_API_READ_TOKEN", READER)],
        &[],
    )
    .await;
    let b = Browser::start().await;
    log_in(&b, &s, ADMIN).await;
    // Overview: the queue's failed count, and the worker.
    assert_eq!(
        b.text("tr[data-queue=emails] td[data-state=failed]").await,
        "4"
    );
    assert!(b.text("#workers").await.contains("emails"));
    b.screenshot("overview").await;

    // Queue page, failed tab, then the job.
    b.click("tr[data-queue=emails] td[data-state=failed] a")
        .await;
    assert_eq!(b.path().await, "/ui/queues/emails?state=failed");
    assert!(b
        .text(&format!("tr[data-id='{id}'] td.err"))
        .await
        .contains("554 mailbox unavailable"));
    b.screenshot("queue").await;
    b.click(&format!("tr[data-id='{id}'] a")).await;
    assert_eq!(b.text("#job-state").await, "failed");
    assert!(b
        .text("#job-error")
        .await
        .contains("smtp: 554 mailbox unavailable <user@example.com>"));
    assert!(b
        .text("#job-errors tbody tr[data-attempt='1']")
        .await
        .contains("smtp: 554 mailbox unavailable"));
    assert!(b
        .text("#job-data")
        .await
        .contains("\"template\": \"welcome\""));
    assert!(b
        .text("#job-logs")
        .await
        .contains("sending to \"ada@example.com\""));
    b.screenshot("job-failed").await;

    // Retry, confirm, and watch it complete without reloading.
    b.click("#job-actions button[value=retry]").await;
    assert!(b
        .text("#question")
        .await
        .starts_with(&format!("Retry job {id} of queue emails")));
    b.screenshot("confirm").await;
    b.click("#confirm").await;
    assert!(b.text("#flash").await.contains("queued again"));
    b.wait_text("#job-state", LIMIT, |t| t == "completed").await;
    assert_eq!(state_of(&q, &id).await, Some(JobState::Completed));
    assert_eq!(
        q.job(&id).await.unwrap().unwrap().result,
        Some(json!({"sent": true}))
    );
    b.screenshot("job-completed").await;
    b.assert_no_js_errors().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_a_running_exec_job_from_its_page() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "exports").unwrap();
    let _worker = ChildGuard(
        std::process::Command::new(baton_bin())
            .args([
                "--redis-url",
                &redis.url(),
                "worker",
                "exports",
                "--exec",
                "--kill-grace",
                "1s",
                "--shutdown-timeout",
                "2s",
                "--",
                "sleep",
                "600",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let id = q
        .add("export", &json!({"table": "orders"}), once())
        .await
        .unwrap()
        .id;
    wait_until(LIMIT, "job running", || async {
        state_of(&q, &id).await == Some(JobState::Active)
    })
    .await;

    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url(&format!("/ui/queues/exports/jobs/{id}")))
        .await;
    assert_eq!(b.text("#job-state").await, "active");
    assert!(
        !b.has("#job-actions button[value=retry]").await,
        "no retry on a running job"
    );
    b.screenshot("job-active").await;
    b.click("#job-actions button[value=cancel]").await;
    b.click("#confirm").await;
    assert!(
        b.text("#flash").await.contains("cancel sent"),
        "{}",
        b.text("#flash").await
    );
    wait_until(LIMIT, "job cancelled in redis", || async {
        state_of(&q, &id).await == Some(JobState::Cancelled)
    })
    .await;
    b.wait_text("#job-state", LIMIT, |t| t == "cancelled").await;
    b.assert_no_js_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_retry_ticked_then_every_failed_job() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "bulk").unwrap();
    let fail = Arc::new(AtomicBool::new(true));
    let worker = start(flaky_worker(&redis.url(), "bulk", fail.clone()));
    let jobs: Vec<NewJob<Value>> = (0..30)
        .map(|i| {
            NewJob::new("notify", json!({"to": format!("user{i}@example.com")})).with_opts(once())
        })
        .collect();
    q.add_bulk(&jobs).await.unwrap();
    wait_until(LIMIT, "30 failed", || async {
        q.counts().await.unwrap().failed == 30
    })
    .await;
    fail.store(false, Ordering::SeqCst);

    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/ui/queues/bulk?state=failed")).await;
    // Two ticked jobs first.
    let rows = b
        .client()
        .find_all(fantoccini::Locator::Css("#jobs tbody input[name=ids]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 30);
    b.click("#jobs tbody tr:nth-child(1) input[name=ids]").await;
    b.click("#jobs tbody tr:nth-child(2) input[name=ids]").await;
    b.click("#bulk-actions button[value=retry]").await;
    assert!(b
        .text("#question")
        .await
        .starts_with("Retry 2 ticked failed jobs"));
    b.click("#confirm").await;
    assert!(
        b.text("#flash").await.contains("queued again 2 jobs"),
        "{}",
        b.text("#flash").await
    );
    wait_until(LIMIT, "2 completed", || async {
        q.counts().await.unwrap().completed == 2
    })
    .await;

    // Then every failed job left.
    b.wait_text(".tabs a[data-state=failed] .badge", LIMIT, |t| t == "28")
        .await;
    b.click("#all button[value=retry]").await;
    assert!(b
        .text("#question")
        .await
        .contains("every failed job of queue bulk (28 now)"));
    b.click("#confirm").await;
    // The server runs it and the progress page follows it to the end. The click
    // returns before the browser has followed the redirect.
    wait_until(LIMIT, "on the bulk progress page", || async {
        b.path().await.starts_with("/ui/queues/bulk/bulk/")
    })
    .await;
    b.wait_text("#bulk-progress", LIMIT, |t| {
        t.starts_with("Done: queued again 28 jobs")
    })
    .await;
    wait_until(LIMIT, "30 completed", || async {
        q.counts().await.unwrap().completed == 30
    })
    .await;
    assert_eq!(q.counts().await.unwrap().failed, 0);
    b.click("#bulk-back").await;
    b.wait_text(".tabs a[data-state=completed] .badge", LIMIT, |t| t == "30")
        .await;
    b.assert_no_js_errors().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_update_live_without_reload() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "live").unwrap();
    q.add(
        "x",
        &json!({"n": "<script>alert(1)</script>"}),
        JobOptions::default(),
    )
    .await
    .unwrap();
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/")).await;
    assert_eq!(
        b.text("tr[data-queue=live] td[data-state=waiting]").await,
        "1"
    );
    let loaded = b.eval("return window.batonLoadedAt").await;
    for i in 0..4 {
        q.add("x", &json!({"n": i}), JobOptions::default())
            .await
            .unwrap();
    }
    b.wait_text("tr[data-queue=live] td[data-state=waiting]", LIMIT, |t| {
        t == "5"
    })
    .await;
    assert_eq!(
        b.eval("return window.batonLoadedAt").await,
        loaded,
        "updated in place, not reloaded"
    );
    assert!(b
        .eval("return document.getElementById('live').dataset.refreshed")
        .await
        .is_string());
    // The queue page too, and the payload with markup in it stays text.
    b.goto(&s.url("/ui/queues/live")).await;
    let first = b.text("#jobs tbody tr:first-child td.mono").await;
    b.goto(&s.url(&format!("/ui/queues/live/jobs/{first}")))
        .await;
    assert!(b
        .text("#job-data")
        .await
        .contains("<script>alert(1)</script>"));
    b.assert_no_js_errors().await;
}
