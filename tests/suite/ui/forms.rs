//! The dashboard's form pages: add a job (read as a `JobRequest`, as `baton add` and the
//! API read it), create and edit a job scheduler (a `SchedulerRequest` given to
//! `Queue::upsert_scheduler`); refusals show the form again and change nothing; readers
//! and forged posts are refused.

use baton::{JobOptions, JobState, Queue};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::browser::Browser;
use super::server::Serve;
use super::{ADMIN, LIMIT, READER};
use crate::common::{wait_until, RedisServer};

/// Sets the fields of form `css` by name, in one script.
async fn fill(b: &Browser, css: &str, fields: &[(&str, &str)]) {
    let pairs: Value = fields.iter().map(|(k, v)| json!([k, v])).collect();
    let script = format!(
        "const f = document.querySelector('{css}');
         for (const [k, v] of arguments[0]) {{ f.elements[k].value = v; }} return true;"
    );
    b.client().execute(&script, vec![pairs]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_a_job_from_the_queue_page() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "mail").unwrap();
    // A job with a trace context, added by the library: its page shows it.
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = q
        .add(
            "traced",
            &json!({}),
            JobOptions::default().trace(tp.parse().unwrap()),
        )
        .await
        .unwrap()
        .id;
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url(&format!("/ui/queues/mail/jobs/{traced}")))
        .await;
    assert_eq!(b.text("#job-traceparent").await, tp);

    b.goto(&s.url("/ui/queues/mail")).await;
    b.click("#add-job-link").await;
    assert_eq!(b.path().await, "/ui/queues/mail/add");
    b.type_into("#name", "welcome").await;
    b.type_into("#data", r#"{"to": "ada@example.com", "lines": [1, 2]}"#)
        .await;
    fill(
        &b,
        "#add-job",
        &[
            ("priority", "2"),
            ("attempts", "3"),
            ("job_id", "welcome-ada"),
            ("dedup", "ada"),
            ("dedup_ttl", "1h"),
        ],
    )
    .await;
    b.screenshot("add-job").await;
    b.click("#add").await;
    // On the new job's page.
    wait_until(LIMIT, "on the new job's page", || async {
        b.path().await == "/ui/queues/mail/jobs/welcome-ada"
    })
    .await;
    assert_eq!(b.text("#flash").await, "job welcome-ada added");
    assert_eq!(b.text("#job-state").await, "waiting");
    assert!(b.text("#job-data").await.contains("\"ada@example.com\""));
    assert_eq!(b.text("#job-attempt").await, "0 of 3");
    assert!(
        !b.has("#job-traceparent").await,
        "no trace sent, none shown"
    );
    // And in Redis: payload, priority, attempts.
    let j = q
        .job("welcome-ada")
        .await
        .unwrap()
        .expect("the job in redis");
    assert_eq!(j.data, json!({"to": "ada@example.com", "lines": [1, 2]}));
    assert_eq!((j.name.as_str(), j.priority, j.attempts), ("welcome", 2, 3));
    assert_eq!(j.state, JobState::Waiting);

    // One in a group (whose jobs take no priority: the form says so and adds nothing
    // until it is left out)...
    b.goto(&s.url("/ui/queues/mail/add")).await;
    fill(
        &b,
        "#add-job",
        &[
            ("name", "grouped"),
            ("group", "tenant-a"),
            ("priority", "1"),
        ],
    )
    .await;
    b.click("#add").await;
    let why = b.wait_text("#form-error", LIMIT, |t| !t.is_empty()).await;
    assert!(why.contains("cannot have a priority"), "{why}");
    assert_eq!(total(&q).await, 2, "nothing added");
    fill(&b, "#add-job", &[("priority", "")]).await;
    b.click("#add").await;
    b.wait_text("#job-name", LIMIT, |t| t == "grouped").await;
    let c = q.counts().await.unwrap();
    assert_eq!(c.groups_ready, 1, "group tenant-a in line: {c:?}");

    // ...a delayed one, and an add under a dedup key that stands: nothing added.
    b.goto(&s.url("/ui/queues/mail/add")).await;
    fill(
        &b,
        "#add-job",
        &[("name", "later"), ("data", "[]"), ("delay", "1h")],
    )
    .await;
    b.click("#add").await;
    b.wait_text("#job-state", LIMIT, |t| t == "delayed").await;
    let later = b.text("#job-id").await;
    let due = q.job(&later).await.unwrap().unwrap().due_ms.unwrap();
    let in_ms = due.saturating_sub(now_ms());
    assert!(in_ms > 3_500_000 && in_ms <= 3_600_000, "due in {in_ms} ms");
    b.goto(&s.url("/ui/queues/mail/add")).await;
    fill(
        &b,
        "#add-job",
        &[("name", "welcome"), ("data", "{}"), ("dedup", "ada")],
    )
    .await;
    b.click("#add").await;
    let said = b.wait_text("#flash", LIMIT, |t| !t.is_empty()).await;
    assert_eq!(
        said,
        "job welcome-ada stands under this dedup key: nothing added"
    );
    assert_eq!(b.path().await, "/ui/queues/mail/jobs/welcome-ada");
    assert_eq!(total(&q).await, 4);

    // Bad JSON: the form again with what was typed and why; nothing added.
    b.goto(&s.url("/ui/queues/mail/add")).await;
    b.type_into("#name", "broken").await;
    b.type_into("#data", r#"{"to": "bob@example.com",}"#).await;
    b.click("#add").await;
    let why = b.wait_text("#form-error", LIMIT, |t| !t.is_empty()).await;
    assert!(
        why.contains("the payload is not valid JSON") && why.contains("line 1"),
        "{why}"
    );
    let kept = b.eval("return document.getElementById('data').value").await;
    assert_eq!(
        kept,
        json!(r#"{"to": "bob@example.com",}"#),
        "what was typed stays"
    );
    b.screenshot("add-job-refused").await;
    assert_eq!(total(&q).await, 4, "nothing added");
    // The refusals are 400 pages, which the browser logs as failed loads: the page's
    // own error collector must still be empty.
    assert_eq!(b.eval("return window.batonErrors").await, json!([]));
}

/// Jobs of the queue in any state.
async fn total(q: &Queue) -> u64 {
    let c = q.counts().await.unwrap();
    c.waiting + c.delayed + c.active + c.completed + c.failed + c.cancelled
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_edit_a_job_scheduler() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "reports").unwrap();
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/ui/queues/reports")).await;
    b.click("#new-scheduler").await;
    assert_eq!(b.path().await, "/ui/queues/reports/scheduler");
    b.type_into("#id", "nightly").await;
    b.type_into("#cron", "0 3 * * *").await;
    b.type_into("#tz", "Europe/Berlin").await;
    b.type_into("#name", "report").await;
    b.type_into("#data", r#"{"kind": "daily"}"#).await;
    b.screenshot("scheduler-form").await;
    b.click("#save").await;
    // Back on the queue page, at its row, with its next run.
    let row = "#scheduler-list tr[data-scheduler='nightly']";
    let flash = b.wait_text("#flash", LIMIT, |t| !t.is_empty()).await;
    assert!(
        flash.starts_with("job scheduler nightly set; next run "),
        "{flash}"
    );
    assert!(b.path().await.starts_with("/ui/queues/reports"));
    assert!(b.text(row).await.contains("cron 0 3 * * * (Europe/Berlin)"));
    let next = b.text(&format!("{row} td.next")).await;
    assert!(next.starts_with("in "), "next run listed: {next}");
    let info = q.scheduler("nightly").await.unwrap().expect("in redis");
    assert_eq!(
        (info.cron.as_deref(), info.tz.as_deref(), info.name.as_str()),
        (Some("0 3 * * *"), Some("Europe/Berlin"), "report")
    );
    assert_eq!(info.data, json!({"kind": "daily"}));
    let first_next = info.next_run_ms.expect("a next run");

    // Edit: the same form, filled from Redis; the id cannot change.
    b.click(&format!("{row} a.edit")).await;
    assert_eq!(b.path().await, "/ui/queues/reports/scheduler?id=nightly");
    let value = |id: &'static str| {
        let b = &b;
        async move {
            b.eval(&format!("return document.getElementById('{id}').value"))
                .await
        }
    };
    assert_eq!(value("cron").await, json!("0 3 * * *"));
    assert_eq!(value("tz").await, json!("Europe/Berlin"));
    assert!(value("data").await.as_str().unwrap().contains("\"daily\""));
    assert_eq!(
        b.eval("return document.getElementById('id').readOnly")
            .await,
        json!(true)
    );
    b.screenshot("scheduler-edit").await;
    fill(
        &b,
        "#sched-form",
        &[
            ("cron", ""),
            ("tz", ""),
            ("every", "45s"),
            ("data", r#"{"kind": "often"}"#),
        ],
    )
    .await;
    b.click("#save").await;
    b.wait_text(row, LIMIT, |t| t.contains("every 45s")).await;
    let info = q.scheduler("nightly").await.unwrap().unwrap();
    assert_eq!((info.cron, info.every_ms), (None, Some(45_000)));
    assert_eq!(info.data, json!({"kind": "often"}));
    assert_ne!(info.next_run_ms, Some(first_next), "the next run moved");
    assert_eq!(q.schedulers().await.unwrap().len(), 1, "edited, not added");
    b.assert_no_js_errors().await;

    // A bad cron expression, then "create" over an existing id: refused, nothing set.
    // (400 pages: checked last.)
    b.goto(&s.url("/ui/queues/reports/scheduler")).await;
    fill(
        &b,
        "#sched-form",
        &[("id", "broken"), ("cron", "61 * * * *"), ("name", "x")],
    )
    .await;
    b.click("#save").await;
    let why = b.wait_text("#form-error", LIMIT, |t| !t.is_empty()).await;
    assert!(why.contains("cron"), "{why}");
    assert_eq!(
        value("cron").await,
        json!("61 * * * *"),
        "what was typed stays"
    );
    b.screenshot("scheduler-refused").await;
    assert!(q.scheduler("broken").await.unwrap().is_none());
    fill(
        &b,
        "#sched-form",
        &[("id", "nightly"), ("cron", "0 4 * * *")],
    )
    .await;
    b.click("#save").await;
    b.wait_text("#form-error", LIMIT, |t| t.contains("exists already"))
        .await;
    assert_eq!(
        q.scheduler("nightly").await.unwrap().unwrap().every_ms,
        Some(45_000)
    );
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
    for absent in ["add-job-link", "new-scheduler", "events-form"] {
        assert!(!page.contains(absent), "a reader sees no {absent}");
    }
    for path in ["/ui/queues/gated/add", "/ui/queues/gated/scheduler"] {
        let r = http
            .get(s.url(path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "GET {path}");
    }
    let posts: [(&str, Vec<(&str, &str)>); 3] = [
        ("/ui/queues/gated/add", vec![("name", "x"), ("data", "{}")]),
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
    assert_eq!((c.waiting, c.events), (1, None), "nothing done");
    assert!(q.schedulers().await.unwrap().is_empty());
    for (path, form) in &posts {
        let st = send(path, form.clone(), cookie.clone(), Some(csrf.clone())).await;
        assert_eq!(st, StatusCode::SEE_OTHER, "admin POST {path}");
    }
    let c = q.counts().await.unwrap();
    assert_eq!((c.waiting, c.events), (2, Some(100)));
    assert_eq!(q.schedulers().await.unwrap().len(), 1);
}
