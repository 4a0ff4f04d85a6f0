//! A flow on the job page: the parent lists its children with their states and links,
//! a child links back to its parent, and the parent's page follows the children as
//! they end (live refresh).

use std::time::Duration;

use baton::{handler_fn, FlowJob, JobContext, JobError, JobOptions, Queue, Worker};

use super::browser::Browser;
use super::server::Serve;
use super::LIMIT;
use crate::common::{start, RedisServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_parent_shows_its_children_and_a_child_its_parent() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "{r}reports").unwrap();
    let flow = FlowJob::new("summary", &0)
        .opts(JobOptions::default().job_id("month-11").group("tenant-7"))
        .child(FlowJob::new("tally", &1).opts(JobOptions::default().job_id("eu")))
        .child(
            FlowJob::new("tally", &2)
                .queue("{r}slow")
                .opts(JobOptions::default().job_id("us")),
        );
    q.add_flow(&flow).await.unwrap();
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/ui/queues/%7Br%7Dreports/jobs/month-11"))
        .await;
    assert_eq!(b.text("#job-state").await, "waiting-children");
    assert_eq!(b.text("#job-group").await, "tenant-7");
    let rows = "#job-children tr[data-state='pending']";
    assert!(b.has(rows).await);
    assert!(b.text("#job-children").await.contains("{r}slow/us"));
    b.screenshot("job-flow-waiting").await;

    // The children run; the open page follows them without a reload.
    let run = |queue: &str| {
        start(
            Worker::builder(redis.url(), queue)
                .shutdown_timeout(Duration::from_secs(2))
                .build(handler_fn(|n: i64, _ctx: JobContext| async move {
                    Ok::<_, JobError>(n * 100)
                }))
                .unwrap(),
        )
    };
    let (a, c) = (run("{r}reports"), run("{r}slow"));
    b.wait_text("#job-state", LIMIT, |t| t == "completed").await;
    let table = b
        .wait_text("#job-children", LIMIT, |t| !t.contains("pending"))
        .await;
    assert!(
        table.contains("{r}slow/us") && table.contains("200"),
        "{table}"
    );
    b.screenshot("job-flow-done").await;
    b.click("#job-children tr[data-child='us'] a").await;
    assert_eq!(b.path().await, "/ui/queues/%7Br%7Dslow/jobs/us");
    assert_eq!(b.text("#job-parent").await, "{r}reports/month-11");
    b.click("#job-parent a").await;
    assert_eq!(b.path().await, "/ui/queues/%7Br%7Dreports/jobs/month-11");
    b.assert_no_js_errors().await;
    a.stop().await;
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_is_added_from_the_queue_page() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "{m}main").unwrap();
    let s = Serve::start(&redis.url(), &[], &[]).await;
    let b = Browser::start().await;
    b.goto(&s.url("/ui/queues/%7Bm%7Dmain")).await;
    b.click("#add-flow-link").await;
    assert_eq!(b.path().await, "/ui/queues/%7Bm%7Dmain/flow");
    // A refusal says where, keeps what was typed and adds nothing.
    let bad = r#"{"name": "p", "job_id": "p1", "children": [{"name": "a"}, {"data": 1}]}"#;
    b.type_into("#flow", bad).await;
    b.click("#add").await;
    let why = b.wait_text("#form-error", LIMIT, |t| !t.is_empty()).await;
    assert!(why.contains("children[1]: name is required"), "{why}");
    assert!(q.job("p1").await.unwrap().is_none());
    let good = r#"{"name": "p", "job_id": "p1", "children": [
        {"name": "a", "job_id": "k1"}, {"name": "b", "job_id": "k2", "queue": "{m}side"}]}"#;
    b.goto(&s.url("/ui/queues/%7Bm%7Dmain/flow")).await;
    b.type_into("#flow", good).await;
    b.screenshot("add-flow").await;
    b.click("#add").await;
    b.wait_text("#job-state", LIMIT, |t| t == "waiting-children")
        .await;
    assert_eq!(b.path().await, "/ui/queues/%7Bm%7Dmain/jobs/p1");
    assert!(b.text("#job-children").await.contains("{m}side/k2"));
    let side = Queue::connect(redis.url(), "{m}side").unwrap();
    assert_eq!(
        side.job("k2")
            .await
            .unwrap()
            .unwrap()
            .parent
            .unwrap()
            .to_string(),
        "{m}main/p1"
    );
    // The refusal was a 400 page, which the browser logs as a failed load: the page's
    // own error collector must still be empty.
    assert_eq!(
        b.eval("return window.batonErrors").await,
        serde_json::json!([])
    );
}
