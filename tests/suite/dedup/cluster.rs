//! The dedup scenarios on a 3-master Redis Cluster: every dedup key is under the
//! queue's hash tag, so each script stays in one slot (a cross-slot key would be
//! refused), on whichever shard owns the queue.

use baton::conn::RedisConfig;

use super::scenarios;
use crate::topology::{ClusterOptions, RedisCluster};

#[tokio::test]
async fn dedup_every_mode_on_a_three_master_cluster() {
    let cluster = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas_per_master: 0,
        ..ClusterOptions::default()
    });
    let cfg = RedisConfig::cluster(cluster.seed_urls());
    let names = cluster.queues_on_distinct_masters(3);
    // Each scenario counts jobs of its own queues (the suffixed ones may land on any
    // shard).
    scenarios::simple_mode(cfg.clone(), &names[0]).await;
    scenarios::stale_keys(cfg.clone(), &names[1]).await;
    scenarios::debounce_mode(cfg.clone(), &names[2]).await;
    scenarios::ttl_mode(cfg.clone(), &format!("{}-ttl", names[0])).await;
    scenarios::concurrent_adds(cfg, &names[1]).await;
}
