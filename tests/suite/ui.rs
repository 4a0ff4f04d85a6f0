//! The web dashboard of `baton serve`, driven in headless Chromium (chromedriver and
//! `fantoccini`) against a real `baton serve`, real workers and a real redis-server:
//! log in, retry a failed job, cancel a running exec job, bulk retry, read-only mode,
//! live updates, no JavaScript errors, a big queue's page. Each test saves screenshots
//! (see `Browser::screenshot`); `BATON_UI_SCREENSHOTS=$PWD/docs/ui` refreshes the
//! committed ones.

mod browser;
mod server;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::{handler_fn, JobContext, JobError, JobOptions, JobState, NewJob, Queue, Worker};
use reqwest::StatusCode;
use serde_json::{json, Value};

use browser::Browser;
use server::Serve;

use crate::common::{baton_bin, start, wait_until, ChildGuard, RedisServer};

const ADMIN: &str = "admin-token-for-the-ui-tests";
const READER: &str = "read-token-for-the-ui-tests";
const LIMIT: Duration = Duration::from_secs(20);

/// A worker whose jobs fail (attempts 1, so they end failed) while `fail` is set.
fn flaky_worker(redis: &str, queue: &str, fail: Arc<AtomicBool>) -> Worker {
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

fn once() -> JobOptions {
    JobOptions::default().attempts(1)
}

async fn state_of(q: &Queue, id: &str) -> Option<JobState> {
    q.job(id).await.unwrap().map(|j| j.state)
}

/// Logs in through the form with `token`; lands on the overview.
async fn log_in(b: &Browser, s: &Serve, token: &str) {
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
    assert_eq!(b.path().await, "/", "back on the overview after logging in");
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
    assert!(
        b.text("#flash").await.contains("queued again 28 jobs"),
        "{}",
        b.text("#flash").await
    );
    wait_until(LIMIT, "30 completed", || async {
        q.counts().await.unwrap().completed == 30
    })
    .await;
    assert_eq!(q.counts().await.unwrap().failed, 0);
    b.wait_text(".tabs a[data-state=completed] .badge", LIMIT, |t| t == "30")
        .await;
    b.assert_no_js_errors().await;
    worker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_hides_and_refuses_actions() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ro").unwrap();
    let fail = Arc::new(AtomicBool::new(true));
    let worker = start(flaky_worker(&redis.url(), "ro", fail));
    let id = q
        .add("x", &json!({"to": "secret@example.com"}), once())
        .await
        .unwrap()
        .id;
    wait_until(LIMIT, "failed", || async {
        state_of(&q, &id).await == Some(JobState::Failed)
    })
    .await;
    worker.stop().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // --read-only: no action shown, every form refused, the API refuses writes too.
    let s = Serve::start(
        &redis.url(),
        &[("BATON_API_TOKEN", ADMIN)],
        &["--read-only", "--hide-payloads-from-readers"],
    )
    .await;
    let b = Browser::start().await;
    log_in(&b, &s, ADMIN).await;
    assert!(b.has(".badge.readonly").await);
    assert!(!b.has("#queues button").await, "no pause button");
    b.goto(&s.url(&format!("/ui/queues/ro/jobs/{id}"))).await;
    assert_eq!(b.text("#job-state").await, "failed");
    assert!(
        !b.has("#job-actions").await,
        "no actions on a read-only page"
    );
    assert!(
        !b.has("#job-data").await,
        "payload hidden from a read-only viewer"
    );
    b.goto(&s.url("/ui/queues/ro?state=failed")).await;
    assert!(
        !b.has("#all").await && !b.has("#bulk-actions").await && !b.has("input[name=ids]").await
    );
    b.screenshot("read-only").await;
    b.assert_no_js_errors().await;
    let api = http
        .post(s.url(&format!("/v1/queues/ro/jobs/{id}/retry")))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::FORBIDDEN);

    // A read-only token on a server that allows actions: the same.
    let s = Serve::start(
        &redis.url(),
        &[("BATON_API_TOKEN", ADMIN), ("BATON_API_READ_TOKEN", READER)],
        &[],
    )
    .await;
    let b2 = Browser::start().await;
    log_in(&b2, &s, READER).await;
    b2.goto(&s.url(&format!("/ui/queues/ro/jobs/{id}"))).await;
    assert!(!b2.has("#job-actions").await);
    assert!(
        b2.has("#job-data").await,
        "payloads shown unless --hide-payloads-from-readers"
    );
    // A POST with the reader's own session and CSRF token is still refused.
    let cookie = b2.client().get_named_cookie("baton_session").await.unwrap();
    let r = http
        .post(s.url(&format!("/ui/queues/ro/jobs/{id}/actions")))
        .header("cookie", format!("baton_session={}", cookie.value()))
        .form(&[("action", "retry"), ("confirmed", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(state_of(&q, &id).await, Some(JobState::Failed));
    b2.assert_no_js_errors().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_login_and_headers() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "c").unwrap();
    let id = q
        .add(
            "x",
            &json!({}),
            JobOptions::default().delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap()
        .id;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let s = Serve::start(&redis.url(), &[("BATON_API_TOKEN", ADMIN)], &[]).await;
    // Not logged in: pages redirect to the form, posts are refused.
    let r = http.get(s.url("/ui/queues/c")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/ui/login?next=%2Fui%2Fqueues%2Fc");
    let r = http
        .post(s.url("/ui/queues/c/actions"))
        .form(&[("action", "pause")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Log in: the cookie's flags.
    let r = http
        .post(s.url("/ui/login"))
        .form(&[("token", ADMIN), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains(ADMIN), "the cookie holds no token");
    let cookie = set.split(';').next().unwrap().to_string();
    // Every page: a strict CSP, no framing, nosniff.
    let r = http
        .get(s.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // A post without the CSRF token, with a wrong one, or from another origin: refused.
    let post = |form: Vec<(&'static str, String)>| {
        http.post(s.url(&format!("/ui/queues/c/jobs/{id}/actions")))
            .header("cookie", &cookie)
            .form(&form)
            .send()
    };
    let r = post(vec![
        ("action", "promote".into()),
        ("confirmed", "1".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(vec![
        ("action", "promote".into()),
        ("confirmed", "1".into()),
        ("csrf", "AAAA".into()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(state_of(&q, &id).await, Some(JobState::Delayed));
    // With the page's token: the delayed job runs now (waiting; no worker here).
    let page = http
        .get(s.url(&format!("/ui/queues/c/jobs/{id}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = http
        .post(s.url(&format!("/ui/queues/c/jobs/{id}/actions")))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .form(&[("action", "promote"), ("confirmed", "1"), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "another origin");
    let r = post(vec![
        ("action", "promote".into()),
        ("confirmed", "1".into()),
        ("csrf", csrf.clone()),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(state_of(&q, &id).await, Some(JobState::Waiting));
    // The bearer token still works for the API, and the cookie does not.
    let r = http
        .get(s.url("/v1/queues"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = http
        .get(s.url("/v1/queues"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_queue_pages_quickly() {
    const N: usize = 200_000;
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "big").unwrap();
    const BATCH: usize = 1_000;
    for b in 0..N / BATCH {
        // Ids of our own, so that a batch whose reply was lost on this busy machine can
        // be sent again without adding twice.
        let batch: Vec<NewJob<Value>> = (b * BATCH..(b + 1) * BATCH)
            .map(|i| {
                let name = if i % 7 == 0 { "resize" } else { "thumbnail" };
                NewJob::new(name, json!({"image": i}))
                    .with_opts(JobOptions::default().job_id(format!("img-{i}")))
            })
            .collect();
        let mut tries = 0;
        while let Err(e) = q.add_bulk(&batch).await {
            tries += 1;
            assert!(
                tries < 5,
                "add_bulk failed {tries} times: {}",
                e.to_string().chars().take(200).collect::<String>()
            );
        }
    }
    assert_eq!(q.counts().await.unwrap().waiting, N as u64);
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    // The first view after start waits for the first keyspace scan and warms the
    // browser up: not what is measured.
    let t = Instant::now();
    b.goto(&s.url("/")).await;
    let mut timings = vec![("first view after start", t.elapsed())];
    for (what, path) in [
        ("overview", "/".to_string()),
        ("queue, first page", "/ui/queues/big".to_string()),
        (
            "queue, page at 150 000",
            "/ui/queues/big?state=waiting&offset=150000".to_string(),
        ),
        (
            "queue, name filter",
            "/ui/queues/big?state=waiting&name=resize".to_string(),
        ),
    ] {
        let t = Instant::now();
        b.goto(&s.url(&path)).await;
        let took = t.elapsed();
        timings.push((what, took));
        assert!(took < Duration::from_secs(5), "{what} took {took:?}");
    }
    assert_eq!(
        b.text(".pager .muted").await,
        "",
        "a filtered page shows the window note instead"
    );
    assert!(b
        .text("#filter-note")
        .await
        .contains("looked at waiting jobs 1–1\u{202f}000 of 200\u{202f}000"));
    b.goto(&s.url("/ui/queues/big?state=waiting&offset=150000"))
        .await;
    assert!(b
        .text(".pager .muted")
        .await
        .starts_with("150\u{202f}001–150\u{202f}050 of 200\u{202f}000"));
    let id = b.text("#jobs tbody tr td.mono").await;
    let t = Instant::now();
    b.goto(&s.url(&format!("/ui/queues/big/jobs/{id}"))).await;
    timings.push(("job page", t.elapsed()));
    b.goto(&s.url("/ui/queues/big")).await;
    b.screenshot("big-queue").await;
    b.assert_no_js_errors().await;
    eprintln!("dashboard on {N} waiting jobs (debug build, browser navigation): {timings:?}");
}
