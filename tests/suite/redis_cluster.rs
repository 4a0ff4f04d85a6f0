//! baton on a real Redis Cluster (three masters, made with `redis-cli --cluster
//! create`): queues spread over every shard; add, process, cancel a running job
//! (sharded pub/sub), stalled recovery, retry and pause on each; discovery and the
//! start-up check see every node; a master SIGKILLed under load fails over to its
//! replica and nothing replicated is lost.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::{baton_bin, start, wait_until, ChildGuard};
use crate::failover::{
    ledger_in, ledger_runs, replication_fence, settle, spawn_exec_worker, wait_for_resume, Producer,
};
use crate::topology::{ClusterOptions, RedisCluster};
use baton::conn::RedisConfig;
use baton::{handler_fn, JobContext, JobError, JobOptions, JobState, Queue, Worker};

fn cluster_args(c: &RedisCluster) -> Vec<String> {
    vec!["--cluster-nodes".into(), c.seed_urls().join(",")]
}

#[tokio::test]
async fn every_operation_works_on_queues_spread_over_three_shards() {
    let cluster = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas_per_master: 0,
        ..ClusterOptions::default()
    });
    let cfg = RedisConfig::cluster(cluster.seed_urls());
    let names = cluster.queues_on_distinct_masters(3);
    let owners: HashSet<u16> = names
        .iter()
        .map(|n| cluster.node_for_key(&format!("baton:{{{n}}}:wait")))
        .collect();
    assert_eq!(owners.len(), 3, "one queue per shard");

    let mut runs = Vec::new();
    let mut queues = Vec::new();
    for name in &names {
        let q = Queue::connect(cfg.clone(), name).unwrap();
        for i in 0..20u32 {
            q.add("n", &i, JobOptions::default()).await.unwrap();
        }
        let flaky = q
            .add(
                "f",
                &1000u32,
                JobOptions::default()
                    .attempts(2)
                    .backoff(baton::Backoff::Fixed {
                        delay: Duration::from_millis(50),
                    }),
            )
            .await
            .unwrap();
        let failing = q
            .add("x", &2000u32, JobOptions::default().attempts(1))
            .await
            .unwrap();
        let w = Worker::builder(cfg.clone(), name)
            // A long lease: the heartbeat (a third of it) cannot be what delivers the cancel.
            .lease(Duration::from_secs(30))
            .build(handler_fn(|n: u32, ctx: JobContext| async move {
                ctx.step("s", async { Ok(n) }).await?;
                match n {
                    1000 if ctx.attempt() == 1 => Err(JobError::retry("once")),
                    2000 => Err(JobError::fatal("no")),
                    3000 => {
                        ctx.cancelled().await;
                        Ok(n)
                    }
                    _ => Ok(n),
                }
            }))
            .unwrap();
        runs.push(start(w));
        queues.push((q, flaky.id, failing.id));
    }
    for (q, flaky, failing) in &queues {
        wait_until(Duration::from_secs(20), "first jobs done", || async {
            let c = q.counts().await.unwrap();
            c.completed == 21 && c.failed == 1
        })
        .await;
        assert_eq!(q.job(flaky).await.unwrap().unwrap().attempt, 2);
        // Retry the failed job: it fails again (fatal), once more.
        q.retry(failing).await.unwrap();
        // A running job cancelled: delivered by sharded pub/sub, well before a heartbeat.
        let running = q.add("r", &3000u32, JobOptions::default()).await.unwrap();
        wait_until(Duration::from_secs(10), "job running", || async {
            q.job(&running.id).await.unwrap().unwrap().state == JobState::Active
        })
        .await;
        let asked = Instant::now();
        q.cancel(&running.id).await.unwrap();
        wait_until(Duration::from_secs(5), "cancelled", || async {
            q.job(&running.id).await.unwrap().unwrap().state == JobState::Cancelled
        })
        .await;
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "cancel took {:?}",
            asked.elapsed()
        );
        // Pause holds new jobs; resume releases them.
        q.pause().await.unwrap();
        let held = q.add("n", &7u32, JobOptions::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            q.job(&held.id).await.unwrap().unwrap().state,
            JobState::Waiting
        );
        q.resume().await.unwrap();
        wait_until(Duration::from_secs(10), "resumed job done", || async {
            q.job(&held.id).await.unwrap().unwrap().state == JobState::Completed
        })
        .await;
        assert_eq!(q.counts().await.unwrap().failed, 1);
    }
    for r in runs {
        r.stop().await;
    }

    // Stalled recovery: a worker process dies (SIGKILL) holding a job; another worker
    // on the cluster recovers it after the lease.
    let q0 = &queues[0].0;
    let stuck = q0.add("slow", &5u32, JobOptions::default()).await.unwrap();
    let mut dying = ChildGuard(
        std::process::Command::new(baton_bin())
            .args(cluster_args(&cluster))
            .args([
                "worker",
                &names[0],
                "--lease",
                "1s",
                "--exec",
                "--",
                "sh",
                "-c",
                "exec sleep 3",
            ])
            .env_remove("REDIS_URL")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(Duration::from_secs(10), "slow job claimed", || async {
        q0.job(&stuck.id).await.unwrap().unwrap().state == JobState::Active
    })
    .await;
    dying.kill().unwrap();
    let _ = dying.wait();
    let w = Worker::builder(cfg.clone(), &names[0])
        .stalled_interval(Duration::from_millis(200))
        .build(handler_fn(|n: u32, _ctx: JobContext| async move { Ok(n) }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(15), "stalled job recovered", || async {
        let j = q0.job(&stuck.id).await.unwrap().unwrap();
        j.state == JobState::Completed && j.stalled == 1
    })
    .await;
    run.stop().await;

    // The CLI sees every queue on every shard, and checks every node.
    let out = std::process::Command::new(baton_bin())
        .args(cluster_args(&cluster))
        .args(["stats", "--json"])
        .env_remove("REDIS_URL")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen: HashSet<String> = v["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["queue"].as_str().unwrap().to_string())
        .collect();
    for n in &names {
        assert!(seen.contains(n), "{n} missing from {v}");
    }
    let check = |expect_ok: bool| {
        let out = std::process::Command::new(baton_bin())
            .args(cluster_args(&cluster))
            .arg("check")
            .env_remove("REDIS_URL")
            .output()
            .unwrap();
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    check(true);
    let bad = cluster.master_ports()[1];
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{bad}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("no")
        .query(&mut c)
        .unwrap();
    let text = check(false);
    assert!(
        text.contains(&format!("appendonly on 127.0.0.1:{bad}")),
        "{text}"
    );
}

#[tokio::test]
async fn work_follows_a_cluster_failover_and_nothing_replicated_is_lost() {
    let mut cluster = RedisCluster::start(3, 1);
    let cfg = RedisConfig::cluster(cluster.seed_urls());
    let names = cluster.queues_on_distinct_masters(3);
    let dir = tempfile::tempdir().unwrap();
    let ledger = ledger_in(dir.path());
    let _workers: Vec<ChildGuard> = names
        .iter()
        .map(|n| spawn_exec_worker(&cluster_args(&cluster), n, &ledger))
        .collect();
    let producer = Producer::start(cfg.clone(), names.clone(), Duration::from_millis(4));
    let qs: Vec<Queue> = names
        .iter()
        .map(|n| Queue::connect(cfg.clone(), n).unwrap())
        .collect();
    wait_until(
        Duration::from_secs(30),
        "jobs completed on every shard",
        || async {
            let mut ok = true;
            for q in &qs {
                ok &= q.counts().await.map(|c| c.completed >= 30).unwrap_or(false);
            }
            ok
        },
    )
    .await;
    let victim = cluster.node_for_key(&format!("baton:{{{}}}:wait", names[0]));
    let fence = replication_fence(
        &format!("redis://127.0.0.1:{victim}"),
        &format!("baton:{{{}}}:fence", names[0]),
    )
    .await;
    let killed_at = Instant::now();
    cluster.kill_node(victim);
    let promoted = cluster
        .wait_for_failover_of(victim, Duration::from_secs(30))
        .await;
    let promoted_after = killed_at.elapsed();
    assert_ne!(promoted, victim);
    let resumed = wait_for_resume(&producer, &ledger, killed_at, Some(names[0].as_str())).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let acked = producer.stop().await;
    let lost_in_window = settle(&acked, &qs, |a| a.queue == names[0] && a.at >= fence).await;
    let reran = ledger_runs(&ledger).values().filter(|n| **n > 1).count();
    let replicated = acked.iter().filter(|a| a.at < fence).count();
    println!(
        "cluster failover: {} jobs acknowledged over 3 shards ({replicated} before the fence, 0 of them lost), \
         {lost_in_window} acknowledged in the replication window and lost, {reran} ran more than once; \
         replica promoted {promoted_after:?} after the kill, the shard's work resumed {resumed:?} after the kill",
        acked.len()
    );
}

#[tokio::test]
async fn one_worker_serves_queues_on_every_shard() {
    let cluster = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas_per_master: 0,
        ..ClusterOptions::default()
    });
    let cfg = RedisConfig::cluster(cluster.seed_urls());
    let names = cluster.queues_on_distinct_masters(3);
    let w = Worker::builder(cfg.clone(), &names[0])
        .weighted_queues(names.iter().map(|n| (n.clone(), 1)))
        .idle_block(Duration::from_secs(30))
        .build(handler_fn(|n: u32, _ctx: JobContext| async move { Ok(n) }))
        .unwrap();
    let run = start(w);
    let qs: Vec<Queue> = names
        .iter()
        .map(|n| Queue::connect(cfg.clone(), n).unwrap())
        .collect();
    for q in &qs {
        for i in 0..30u32 {
            q.add("n", &i, JobOptions::default()).await.unwrap();
        }
    }
    for q in &qs {
        wait_until(
            Duration::from_secs(20),
            "every shard's queue drained",
            || async { q.counts().await.unwrap().completed == 30 },
        )
        .await;
    }
    // Idle now, blocking on three shards at once: each queue's add wakes it.
    for q in &qs {
        let t = Instant::now();
        let j = q.add("n", &1u32, JobOptions::default()).await.unwrap();
        wait_until(Duration::from_secs(5), "woken by its shard", || async {
            q.job(&j.id).await.unwrap().unwrap().state == JobState::Completed
        })
        .await;
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    }
    run.stop().await;
}

/// Moves `slot` from the master on `from` to the master on `to` while clients use it:
/// IMPORTING/MIGRATING, MIGRATE the keys in batches, then SETSLOT NODE on every master
/// (the steps `redis-cli --cluster reshard` takes, for one chosen slot).
fn migrate_slot(masters: &[u16], slot: u16, from: u16, to: u16) -> usize {
    let conn = |port: u16| {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap()
    };
    let (mut src, mut dst) = (conn(from), conn(to));
    let id = |c: &mut redis::Connection| -> String {
        redis::cmd("CLUSTER").arg("MYID").query(c).unwrap()
    };
    let (src_id, dst_id) = (id(&mut src), id(&mut dst));
    let setslot = |c: &mut redis::Connection, how: &str, node: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(how)
            .arg(node)
            .query(c)
            .unwrap();
    };
    setslot(&mut dst, "IMPORTING", &src_id);
    setslot(&mut src, "MIGRATING", &dst_id);
    let mut moved = 0;
    loop {
        let keys: Vec<String> = redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(slot)
            .arg(100)
            .query(&mut src)
            .unwrap();
        if keys.is_empty() {
            break;
        }
        moved += keys.len();
        let _: () = redis::cmd("MIGRATE")
            .arg("127.0.0.1")
            .arg(to)
            .arg("")
            .arg(0)
            .arg(5000)
            .arg("KEYS")
            .arg(&keys)
            .query(&mut src)
            .unwrap();
    }
    for port in masters {
        setslot(&mut conn(*port), "NODE", &dst_id);
    }
    moved
}

#[tokio::test]
async fn a_queue_keeps_working_while_its_slot_moves_to_another_shard() {
    let cluster = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas_per_master: 0,
        ..ClusterOptions::default()
    });
    let cfg = RedisConfig::cluster(cluster.seed_urls());
    let name = cluster.queues_on_distinct_masters(1).remove(0);
    let key = format!("baton:{{{name}}}:wait");
    let slot = cluster.key_slot(&key);
    let from = cluster.node_for_slot(slot);
    let to = *cluster.master_ports().iter().find(|p| **p != from).unwrap();
    let w = Worker::builder(cfg.clone(), &name)
        .concurrency(10)
        .build(handler_fn(
            |_: serde_json::Value, _ctx: JobContext| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok(())
            },
        ))
        .unwrap();
    let run = start(w);
    let producer = Producer::start(cfg.clone(), vec![name.clone()], Duration::from_millis(4));
    let q = Queue::connect(cfg.clone(), &name).unwrap();
    wait_until(
        Duration::from_secs(20),
        "jobs flowing before the move",
        || async { q.counts().await.map(|c| c.completed >= 50).unwrap_or(false) },
    )
    .await;
    let masters = cluster.master_ports();
    // On a thread of its own: the worker and producer go on meanwhile.
    let keys_moved = tokio::task::spawn_blocking(move || migrate_slot(&masters, slot, from, to))
        .await
        .unwrap();
    assert_eq!(cluster.node_for_slot(slot), to, "the slot moved");
    // Work goes on after the move: jobs added now complete.
    let moved_at = Instant::now();
    let after = loop {
        let acked = producer.acked();
        let late: Vec<_> = acked.iter().filter(|a| a.at > moved_at).take(20).collect();
        let mut done = 0;
        for a in &late {
            if matches!(q.job(&a.id).await, Ok(Some(j)) if j.state == JobState::Completed) {
                done += 1;
            }
        }
        if done >= 20 {
            break moved_at.elapsed();
        }
        assert!(
            moved_at.elapsed() < Duration::from_secs(30),
            "work stopped after the move"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let acked = producer.stop().await;
    let lost = settle(&acked, std::slice::from_ref(&q), |_| false).await;
    assert_eq!(lost, 0);
    run.stop().await;
    println!(
        "slot {slot} moved from :{from} to :{to} ({keys_moved} keys) under load: {} jobs, none lost or failed; 20 jobs added after the move done {after:?} later",
        acked.len()
    );
}
