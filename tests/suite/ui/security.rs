//! Read-only mode, read-only tokens, CSRF, the login cookie and the security headers;
//! the form pages and the events actions gated like every action.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use baton::{JobOptions, JobState, Queue};
use reqwest::StatusCode;
use serde_json::json;

use super::browser::Browser;
use super::server::Serve;
use super::{flaky_worker, log_in, once, state_of, ADMIN, LIMIT, READER};
use crate::common::{start, wait_until, RedisServer};

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

/// The new forms and actions are gated like every other: a reader gets no link and a
/// 403 for the form and its post; a post without the CSRF token is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forms_refuse_readers_and_forged_posts() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "gated").unwrap();
    q.add("x", &json!({}), JobOptions::default()).await.unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let s = Serve::start(
        &redis.url(),
        &[("BATON_API_TOKEN", ADMIN), ("BATON_API_READ_TOKEN", READER)],
        &[],
    )
    .await;
    let session = |token: &'static str| {
        let (http, s) = (&http, &s);
        async move {
            let r = http
                .post(s.url("/ui/login"))
                .form(&[("token", token), ("next", "/")])
                .send()
                .await
                .unwrap();
            let set = r.headers()["set-cookie"].to_str().unwrap();
            let cookie = set.split(';').next().unwrap().to_string();
            let page = http
                .get(s.url("/ui/queues/gated"))
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
            (cookie, csrf, page)
        }
    };
    let (cookie, csrf, page) = session(READER).await;
    for absent in [
        "add-job-link",
        "add-flow-link",
        "new-scheduler",
        "events-form",
    ] {
        assert!(!page.contains(absent), "a reader sees no {absent}");
    }
    for path in [
        "/ui/queues/gated/add",
        "/ui/queues/gated/flow",
        "/ui/queues/gated/scheduler",
    ] {
        let r = http
            .get(s.url(path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "GET {path}");
    }
    let posts: [(&str, Vec<(&str, &str)>); 4] = [
        ("/ui/queues/gated/add", vec![("name", "x"), ("data", "{}")]),
        (
            "/ui/queues/gated/flow",
            vec![("flow", r#"{"name": "p", "children": [{"name": "c"}]}"#)],
        ),
        (
            "/ui/queues/gated/scheduler",
            vec![("id", "s"), ("every", "1m")],
        ),
        (
            "/ui/queues/gated/actions",
            vec![("action", "events_on"), ("max_len", "100")],
        ),
    ];
    let send = |path: &'static str,
                form: Vec<(&'static str, &'static str)>,
                cookie: String,
                csrf: Option<String>| {
        let http = &http;
        let url = s.url(path);
        async move {
            let mut form: Vec<(&str, String)> =
                form.into_iter().map(|(k, v)| (k, v.to_string())).collect();
            if let Some(c) = csrf {
                form.push(("csrf", c));
            }
            http.post(url)
                .header("cookie", cookie)
                .form(&form)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for (path, form) in &posts {
        let st = send(path, form.clone(), cookie.clone(), Some(csrf.clone())).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "a reader's POST {path}");
    }
    // An admin without the CSRF token: refused too; with it, the same posts work.
    let (cookie, csrf, page) = session(ADMIN).await;
    assert!(page.contains("add-job-link") && page.contains("events-form"));
    for (path, form) in &posts {
        let st = send(path, form.clone(), cookie.clone(), None).await;
        assert_eq!(st, StatusCode::FORBIDDEN, "no CSRF token: POST {path}");
    }
    let c = q.counts().await.unwrap();
    assert_eq!(
        (c.waiting, c.waiting_children, c.events),
        (1, 0, None),
        "nothing done"
    );
    assert!(q.schedulers().await.unwrap().is_empty());
    for (path, form) in &posts {
        let st = send(path, form.clone(), cookie.clone(), Some(csrf.clone())).await;
        assert_eq!(st, StatusCode::SEE_OTHER, "admin POST {path}");
    }
    let c = q.counts().await.unwrap();
    // The job, and the flow's child (its parent waits for it).
    assert_eq!(
        (c.waiting, c.waiting_children, c.events),
        (2 + 1, 1, Some(100))
    );
    assert_eq!(q.schedulers().await.unwrap().len(), 1);
}
