//! The queue page's events box (the stream turned on and off from the page, its last
//! events listed live), and a job failed by stalling (`max_stalled`): its error enters
//! the error history (`sweep.lua`), and its page shows it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use baton::{handler_fn, JobContext, JobError, JobOptions, JobState, NewJob, Queue, Worker};
use serde_json::{json, Value};

use super::browser::Browser;
use super::server::Serve;
use super::LIMIT;
use crate::common::{spawn_child_test, start, wait_until, RedisServer};

/// Presses the events form's `button` with `max_len` in one script, so a live refresh
/// cannot come in between.
fn press(max_len: &str, button: &str) -> String {
    format!(
        "const f = document.querySelector('#events-form');
         f.noValidate = true; // the server's refusal is tested, not the browser's
         f.max_len.value = '{max_len}';
         f.querySelector('button[value={button}]').click(); return true;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_on_off_and_its_last_events() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "ev").unwrap();
    q.add("before", &json!({}), JobOptions::default())
        .await
        .unwrap();
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/ui/queues/ev")).await;
    assert!(b.text("#events-state").await.contains("is off"));
    assert!(!b.has("#event-list").await);

    // On, capped at 500: the page says so, and lists events as they come.
    b.eval(&press("500", "events_on")).await;
    wait_until(LIMIT, "the stream on in redis", || async {
        q.events_cap().await.unwrap() == Some(500)
    })
    .await;
    let said = b
        .wait_text("#events-state", LIMIT, |t| t.contains("is on"))
        .await;
    assert!(said.contains("about 500 events"), "{said}");
    assert_eq!(b.text("#no-events").await, "No events yet.");
    let loaded = b.eval("return window.batonLoadedAt").await;
    let worker = start(
        Worker::builder(redis.url(), "ev")
            .concurrency(2)
            .build(handler_fn(|d: Value, _ctx: JobContext| async move {
                if d["fail"] == json!(true) {
                    Err(JobError::fatal("no such user"))
                } else {
                    Ok::<_, JobError>(json!({"ok": 1}))
                }
            }))
            .unwrap(),
    );
    // 15 jobs (one failing): 45 events, more than the 20 shown.
    let jobs: Vec<NewJob<Value>> = (0..15)
        .map(|i| NewJob::new("n", json!({"i": i, "fail": i == 14})))
        .collect();
    q.add_bulk(&jobs).await.unwrap();
    wait_until(LIMIT, "all 16 ran", || async {
        let c = q.counts().await.unwrap();
        c.completed + c.failed == 16
    })
    .await;
    worker.stop().await;
    // The live refresh brings them in, newest first, 20 of them.
    let newest = q.events(None, 1000).await.unwrap();
    assert!(newest.len() > 40, "{} events", newest.len());
    let last = newest.last().unwrap();
    let first_row = "#event-list tbody tr:first-child";
    b.wait_text(first_row, LIMIT, |t| t.contains(&last.job_id))
        .await;
    assert_eq!(
        b.eval(&format!(
            "return document.querySelector('{first_row}').dataset.event"
        ))
        .await,
        json!(last.event)
    );
    let rows = b
        .eval("return document.querySelectorAll('#event-list tbody tr').length")
        .await;
    assert_eq!(rows, json!(20));
    assert_eq!(b.eval("return window.batonLoadedAt").await, loaded, "live");
    assert!(b
        .text("#event-list tr[data-event=failed]")
        .await
        .contains("no such user"));
    b.eval("document.getElementById('events').scrollIntoView(); return true;")
        .await;
    b.screenshot("queue-events").await;

    // Off: nothing more is recorded, the list goes.
    b.eval(&press("500", "events_off")).await;
    wait_until(LIMIT, "the stream off in redis", || async {
        q.events_cap().await.unwrap().is_none()
    })
    .await;
    b.wait_text("#events-state", LIMIT, |t| t.contains("is off"))
        .await;
    assert!(!b.has("#event-list").await);
    b.assert_no_js_errors().await;

    // A cap of 0 is refused (a 400 page: checked last), nothing changes.
    b.goto(&s.url("/ui/queues/ev")).await;
    b.eval(&press("0", "events_on")).await;
    let said = b
        .wait_text("body", LIMIT, |t| t.contains("at least 1"))
        .await;
    assert!(said.contains("events kept"), "{said}");
    assert_eq!(q.events_cap().await.unwrap(), None);
}

/// What the child worker (`recovery::child_worker`) wrote: one line per job start.
fn started(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stalled_out_has_its_error_in_the_history() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let q = Queue::connect(redis.url(), "stall").unwrap();
    let id = q
        .add("hang", &"hang", JobOptions::default().attempts(1))
        .await
        .unwrap()
        .id;
    let env = vec![
        ("BATON_URL", redis.url()),
        ("BATON_QUEUE", "stall".to_string()),
        ("BATON_LOG", log.display().to_string()),
    ];
    // A worker process takes the job and is SIGKILLed, twice: the first stall hands
    // the job back (max_stalled is 1), the second fails it.
    for n in 1..=2 {
        let mut child = spawn_child_test("recovery::child_worker", &env);
        wait_until(LIMIT, "a worker process started the job", || async {
            started(&log) == n
        })
        .await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(q.job(&id).await.unwrap().unwrap().state, JobState::Active);
    }
    assert!(
        q.job(&id).await.unwrap().unwrap().errors.is_empty(),
        "a stall that hands the job back writes no error"
    );
    // A live worker's sweep fails it; its handler never runs it.
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    let sweeper = start(
        Worker::builder(redis.url(), "stall")
            .max_stalled(1)
            .stalled_interval(Duration::from_millis(200))
            .build(handler_fn(move |_: String, _ctx: JobContext| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, JobError>(())
                }
            }))
            .unwrap(),
    );
    wait_until(LIMIT, "the job failed as stalled", || async {
        q.job(&id).await.unwrap().unwrap().state == JobState::Failed
    })
    .await;
    sweeper.stop().await;
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let why = "job stalled 2 times (its lease expired; max_stalled is 1)";
    let j = q.job(&id).await.unwrap().unwrap();
    assert_eq!((j.stalled, j.error.as_deref()), (2, Some(why)));
    // The history as stored: one entry, `<attempt>:<ms>:<error>`.
    let mut c = redis.conn();
    let stored: Vec<String> = redis::cmd("LRANGE")
        .arg(format!("baton:{{stall}}:errors:{id}"))
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let (attempt, rest) = stored[0].split_once(':').unwrap();
    let (at, error) = rest.split_once(':').unwrap();
    assert_eq!((attempt, error), ("1", why));
    assert!(at.parse::<u64>().unwrap() >= j.started_ms.unwrap());
    assert_eq!(j.errors.len(), 1);

    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url(&format!("/ui/queues/stall/jobs/{id}"))).await;
    assert_eq!(b.text("#job-state").await, "failed");
    assert_eq!(b.text("#job-error").await, why);
    assert!(b
        .text("#job-errors tbody tr[data-attempt='1']")
        .await
        .contains(why));
    assert!(b.text("dl.facts").await.contains("2 times (lease expired"));
    b.screenshot("job-stalled").await;
    b.assert_no_js_errors().await;
}
