//! Flows (issue 11.7): a parent starts once all its children are done and reads their
//! results; a child failing for good fails the parent or is ignored, as the flow says;
//! cancelling a parent cancels its unfinished children; children on other queues of the
//! parent's Cluster slot (a common `{tag}` prefix).

mod library;
mod lifecycle;
mod surfaces;

use std::time::Duration;

use baton::conn::RedisConfig;
use baton::{handler_fn, JobContext, JobError, Queue, Worker, WorkerBuilder};

use crate::common::{start, RedisServer, Running};
use crate::topology::RedisCluster;

/// A Redis (one server or a 3-master cluster).
pub(crate) struct Env {
    redis: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
    pub cfg: RedisConfig,
}

impl Env {
    pub(crate) fn single() -> Env {
        let redis = RedisServer::start();
        Env {
            cfg: RedisConfig::from(redis.url()),
            redis: Some(redis),
            _cluster: None,
        }
    }

    pub(crate) fn cluster() -> Env {
        let c = RedisCluster::start(3, 0);
        Env {
            cfg: RedisConfig::cluster(c.seed_urls()),
            redis: None,
            _cluster: Some(c),
        }
    }

    /// The one server's URL.
    pub(crate) fn url(&self) -> String {
        self.redis.as_ref().expect("a single server").url()
    }

    pub(crate) fn queue(&self, name: &str) -> Queue {
        Queue::connect(self.cfg.clone(), name).unwrap()
    }

    fn builder(&self, queue: &str) -> WorkerBuilder {
        Worker::builder(self.cfg.clone(), queue)
            .concurrency(4)
            .lease(Duration::from_secs(2))
            .stalled_interval(Duration::from_millis(200))
            .shutdown_timeout(Duration::from_secs(2))
    }

    /// A worker whose handler returns its payload times ten (a number), fails with
    /// "told to fail" when the payload is negative, and for a job with children returns
    /// the sum of their results.
    pub(crate) fn worker(&self, queue: &str) -> Running {
        let w = self
            .builder(queue)
            .build(handler_fn(|n: i64, ctx: JobContext| async move {
                if n < 0 {
                    return Err(JobError::fatal("told to fail"));
                }
                let kids = ctx
                    .children()
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
                if kids.is_empty() {
                    return Ok(n * 10);
                }
                let results = ctx
                    .children_results::<i64>()
                    .await
                    .map_err(|e| JobError::retry(e.to_string()))?;
                Ok::<_, JobError>(results.values().sum::<i64>())
            }))
            .unwrap();
        start(w)
    }
}
