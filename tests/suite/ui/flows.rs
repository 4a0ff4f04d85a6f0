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
    b.goto(&s.url("/ui/queues/%7Br%7Dreports/jobs/month-11")).await;
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
    assert!(table.contains("{r}slow/us") && table.contains("200"), "{table}");
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
