//! The dashboard's form pages: add a job (read as a `JobRequest`, as `baton add` and the
//! API read it), create and edit a job scheduler (a `SchedulerRequest` given to
//! `Queue::upsert_scheduler`); refusals show the form again and change nothing. Readers
//! and forged posts: `security.rs`.

use baton::{JobOptions, JobState, Queue};
use serde_json::{json, Value};

use super::browser::Browser;
use super::server::Serve;
use super::LIMIT;
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
