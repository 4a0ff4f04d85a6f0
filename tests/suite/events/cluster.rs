//! The events stream and waiting on a Redis Cluster (3 masters): the scripts' XADD
//! lands in the queue's slot, the blocking reads follow it to its shard.

use std::time::Duration;

use super::{all_events, handler, names_of, worker};
use crate::common::start;
use crate::topology::RedisCluster;
use baton::conn::RedisConfig;
use baton::{JobOptions, JobOutcome, Queue};
use serde_json::json;

#[tokio::test]
async fn events_and_waiting_work_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let cfg = RedisConfig::cluster(cluster.seed_urls());
    let names = cluster.queues_on_distinct_masters(2);
    for name in &names {
        let q = Queue::connect(cfg.clone(), name).unwrap();
        // Off first: wait_finished polls.
        let w = start(worker(cfg.clone(), name).build(handler()).unwrap());
        let (_, out) = q
            .add_and_wait("n", &"ok", JobOptions::default(), Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(
            out,
            Some(JobOutcome::Completed {
                result: json!({"done": true})
            })
        );
        q.set_events(Some(1000)).await.unwrap();
        let mut f = q.follow_events(None).await.unwrap();
        let (id, out) = q
            .add_and_wait(
                "n",
                &"flaky",
                JobOptions::default().attempts(2),
                Duration::from_secs(20),
            )
            .await
            .unwrap();
        assert_eq!(
            out,
            Some(JobOutcome::Completed {
                result: json!({"done": true})
            })
        );
        let (bad, out) = q
            .add_and_wait("n", &"bad", JobOptions::default(), Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(
            out,
            Some(JobOutcome::Failed {
                error: "boom".into()
            })
        );
        w.stop().await;
        let ev = all_events(&q).await;
        assert_eq!(
            names_of(&ev, &id),
            [
                "added",
                "active",
                "retried",
                "active",
                "progress",
                "completed"
            ]
        );
        assert_eq!(names_of(&ev, &bad), ["added", "active", "failed"]);
        let followed = f.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!(
            followed.first(),
            ev.first(),
            "the follower starts where it was made"
        );
    }
}
