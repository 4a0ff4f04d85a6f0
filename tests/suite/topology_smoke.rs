//! The topology fixtures work, checked with the plain `redis` crate: TLS (and mutual TLS,
//! and a wrong CA refused), Sentinel failover, Cluster failover. Prints startup and failover
//! times (run with `--nocapture` / nextest `--no-capture` to see them).

use std::time::{Duration, Instant};

use crate::topology::{
    install_crypto_provider, key_slot, ClusterOptions, RedisCluster, SentinelOptions, SentinelSet,
    TlsRedis,
};
use redis::AsyncCommands;

async fn ping(client: &redis::Client) -> redis::RedisResult<String> {
    let mut c = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async(&mut c).await
}

#[tokio::test]
async fn tls_redis_accepts_our_ca_and_refuses_others() {
    install_crypto_provider();
    let t0 = Instant::now();
    let tls = TlsRedis::start();
    println!("TLS redis ready in {:?} (port {})", t0.elapsed(), tls.port);
    assert!(tls.url().starts_with("rediss://baton:s3cret@127.0.0.1:"));
    for p in [
        &tls.ca_cert,
        &tls.other_ca_cert,
        &tls.client_cert,
        &tls.client_key,
    ] {
        assert!(p.exists(), "{}", p.display());
    }
    assert!(tls.pid() > 0);

    // Our CA: SET/GET work (as the ACL user).
    let client = redis::Client::build_with_tls(tls.url(), tls.certificates(false)).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = c.set("k", "v").await.unwrap();
    assert_eq!(c.get::<_, String>("k").await.unwrap(), "v");
    let who: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(who, "baton");
    // Durable settings.
    let cfg: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(cfg[1], "yes");
    // A client certificate is accepted too (optional mode).
    assert_eq!(
        ping(&redis::Client::build_with_tls(tls.url(), tls.certificates(true)).unwrap())
            .await
            .unwrap(),
        "PONG"
    );

    // The wrong CA: the handshake fails.
    let wrong = redis::Client::build_with_tls(tls.url(), tls.tls.wrong_ca_certificates()).unwrap();
    let e = ping(&wrong).await.unwrap_err();
    println!("wrong CA refused: {e}");
    // No credentials: the default user is off.
    let anon =
        redis::Client::build_with_tls(tls.url_without_auth(), tls.certificates(false)).unwrap();
    assert!(ping(&anon).await.is_err());
    // Plain TCP on the TLS port does not get an answer.
    let plain =
        redis::Client::open(format!("redis://baton:s3cret@127.0.0.1:{}", tls.port)).unwrap();
    let r = tokio::time::timeout(Duration::from_secs(5), ping(&plain)).await;
    assert!(
        !matches!(r, Ok(Ok(_))),
        "plain TCP must not work on the TLS port"
    );

    // Kill and restart: the AOF brings the key back.
    let mut tls = tls;
    let _: i64 = redis::cmd("WAIT")
        .arg(0)
        .arg(0)
        .query_async(&mut c)
        .await
        .unwrap();
    let _: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("always")
        .query_async(&mut c)
        .await
        .unwrap();
    let _: () = c.set("k2", "v2").await.unwrap();
    tls.kill();
    tls.restart();
    let mut c = tls
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(c.get::<_, String>("k2").await.unwrap(), "v2");
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_our_ca() {
    install_crypto_provider();
    let t0 = Instant::now();
    let tls = TlsRedis::start_mutual();
    println!("mutual TLS redis ready in {:?}", t0.elapsed());

    let good = redis::Client::build_with_tls(tls.url(), tls.certificates(true)).unwrap();
    let mut c = good.get_multiplexed_async_connection().await.unwrap();
    let _: () = c.set("k", 1).await.unwrap();
    assert_eq!(c.get::<_, i64>("k").await.unwrap(), 1);

    // No client certificate: refused.
    let none = redis::Client::build_with_tls(tls.url(), tls.certificates(false)).unwrap();
    assert!(ping(&none).await.is_err());
    // A client certificate from another CA: refused.
    let foreign =
        redis::Client::build_with_tls(tls.url(), tls.tls.foreign_client_certificates()).unwrap();
    assert!(ping(&foreign).await.is_err());
}

#[tokio::test]
async fn sentinel_fails_over_to_the_replica() {
    let t0 = Instant::now();
    let mut set = SentinelSet::start_with(SentinelOptions {
        data_password: Some("datapw".into()),
        sentinel_password: Some("sentpw".into()),
        ..SentinelOptions::default()
    });
    println!("sentinel set ready in {:?}", t0.elapsed());
    assert_eq!(set.sentinel_addrs().len(), 3);
    let first = set.master_port();
    assert_eq!(first, set.data_ports()[0]);

    let node_info = redis::sentinel::SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(redis::RedisConnectionInfo::default().set_password("datapw"));
    let mut sc = redis::sentinel::SentinelClient::build(
        set.sentinel_urls(),
        set.master_name(),
        Some(node_info),
        redis::sentinel::SentinelServerType::Master,
    )
    .unwrap();
    let mut c = sc.get_async_connection().await.unwrap();
    let _: () = c.set("before", "x").await.unwrap();
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(acked, 1, "the replica has the write");

    let t1 = Instant::now();
    let old = set.kill_master();
    assert_eq!(old, first);
    let new = set.wait_for_failover(old, Duration::from_secs(20)).await;
    let took = t1.elapsed();
    println!("sentinel failover {old} -> {new} in {took:?}");
    assert_ne!(new, old);
    assert!(took < Duration::from_secs(15), "failover took {took:?}");

    // The sentinel client finds the new master; it has the old write and takes new ones.
    let mut c = sc.get_async_connection().await.unwrap();
    let _: () = c.set("after", "y").await.unwrap();
    assert_eq!(c.get::<_, String>("before").await.unwrap(), "x");
    assert_eq!(c.get::<_, String>("after").await.unwrap(), "y");
    assert_eq!(set.master_port(), new);
}

async fn cluster_round_trip(cluster: &mut RedisCluster, label: &str) {
    let names = cluster.queues_on_distinct_masters(3);
    let keys: Vec<String> = names
        .iter()
        .map(|n| format!("baton:{{{n}}}:wait"))
        .collect();
    let owners: Vec<u16> = keys.iter().map(|k| cluster.node_for_key(k)).collect();
    let mut distinct = owners.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "{keys:?} on {owners:?}");
    for k in &keys {
        assert_eq!(cluster.key_slot(k), cluster.server_key_slot(k), "{k}");
    }

    let client = cluster.client();
    let mut c = client.get_async_connection().await.unwrap();
    for (i, k) in keys.iter().enumerate() {
        let _: () = c.set(k, i).await.unwrap();
    }
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.get::<_, usize>(k).await.unwrap(), i);
    }
    // WAIT goes to every master (the reply is the minimum): every write is on a replica.
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(1000)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(acked, 1);

    let victim = owners[0];
    let replica = cluster.replicas_of(victim);
    assert_eq!(replica.len(), 1);
    let t1 = Instant::now();
    cluster.kill_node(victim);
    let new = cluster
        .wait_for_failover_of(victim, Duration::from_secs(20))
        .await;
    let took = t1.elapsed();
    println!("{label}: cluster failover {victim} -> {new} in {took:?}");
    assert_eq!(new, replica[0]);
    assert_eq!(cluster.node_for_key(&keys[0]), new);

    // A fresh client seeded with the survivors reads everything written before.
    let mut c = cluster.client().get_async_connection().await.unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(c.get::<_, usize>(k).await.unwrap(), i, "{k}");
    }
    let _: () = c.set(&keys[0], 42).await.unwrap();
    assert_eq!(c.get::<_, usize>(&keys[0]).await.unwrap(), 42);
}

#[tokio::test]
async fn cluster_fails_over_a_master() {
    let t0 = Instant::now();
    let mut cluster = RedisCluster::start(3, 1);
    println!("cluster 3x1 ready in {:?}", t0.elapsed());
    assert_eq!(cluster.master_ports().len(), 3);
    assert_eq!(cluster.node_urls().len(), 6);
    assert_eq!(key_slot("foo"), 12182);
    assert_eq!(key_slot("{user1000}.following"), key_slot("user1000"));
    cluster_round_trip(&mut cluster, "plain").await;
}

#[tokio::test]
async fn tls_cluster_fails_over_a_master() {
    install_crypto_provider();
    let t0 = Instant::now();
    let mut cluster = RedisCluster::start_with(ClusterOptions {
        tls: true,
        ..ClusterOptions::default()
    });
    println!("TLS cluster 3x1 ready in {:?}", t0.elapsed());
    assert!(cluster.seed_urls()[0].starts_with("rediss://"));
    cluster_round_trip(&mut cluster, "tls").await;
}
