//! Every script touches one cluster slot: the whole lifecycle runs on a Redis in
//! cluster mode, which refuses any command or script that crosses slots.

use std::time::Duration;

use crate::common::{start, wait_until, RedisServer};
use baton::{handler_fn, JobContext, JobError, JobOptions, JobState, NewJob, Queue, Worker};

#[tokio::test]
async fn lifecycle_runs_on_a_cluster_mode_redis() {
    let redis = RedisServer::start_with(&[
        "--appendonly",
        "yes",
        "--maxmemory-policy",
        "noeviction",
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
    ]);
    let mut c = redis.conn();
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTSRANGE")
        .arg(0)
        .arg(16383)
        .query(&mut c)
        .unwrap();
    wait_until(Duration::from_secs(10), "cluster state ok", || async {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut redis.conn())
            .unwrap();
        info.contains("cluster_state:ok")
    })
    .await;

    let q = Queue::connect(redis.url(), "clustered").unwrap();
    let jobs: Vec<NewJob<u32>> = (0..20).map(|i| NewJob::new("n", i)).collect();
    q.add_bulk(&jobs).await.unwrap();
    q.add("p", &99u32, JobOptions::default().priority(2))
        .await
        .unwrap();
    q.add(
        "d",
        &98u32,
        JobOptions::default().delay(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let flaky = q
        .add(
            "f",
            &97u32,
            JobOptions::default()
                .attempts(2)
                .backoff(baton::Backoff::Fixed {
                    delay: Duration::from_millis(50),
                }),
        )
        .await
        .unwrap();
    let running = q.add("r", &96u32, JobOptions::default()).await.unwrap();
    let w = Worker::builder(redis.url(), "clustered")
        .lease(Duration::from_millis(900))
        .stalled_interval(Duration::from_millis(100))
        .build(handler_fn(|n: u32, ctx: JobContext| async move {
            ctx.step("s", async { Ok(n) }).await?;
            ctx.log("hello")
                .await
                .map_err(|e| JobError::retry(e.to_string()))?;
            ctx.progress(&n)
                .await
                .map_err(|e| JobError::retry(e.to_string()))?;
            match n {
                97 if ctx.attempt() == 1 => Err(JobError::retry("once")),
                96 => {
                    ctx.cancelled().await;
                    Ok(n)
                }
                _ => Ok(n),
            }
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(10), "job 96 running", || async {
        q.job(&running.id).await.unwrap().unwrap().state == JobState::Active
    })
    .await;
    q.cancel(&running.id).await.unwrap();
    wait_until(Duration::from_secs(10), "all finished", || async {
        let c = q.counts().await.unwrap();
        c.completed == 23 && c.cancelled == 1
    })
    .await;
    assert_eq!(q.job(&flaky.id).await.unwrap().unwrap().attempt, 2);
    run.stop().await;
    assert_eq!(q.list(JobState::Completed, 0, 100).await.unwrap().len(), 23);
}
