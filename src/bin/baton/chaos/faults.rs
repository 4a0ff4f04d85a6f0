//! The faults of a chaos run. Each is applied, held for a random time, and healed before
//! the next one starts, so every fault's effect can be told apart in the worker logs.

use std::time::{Duration, Instant};

use baton::{Queue, Result};
use rand::rngs::StdRng;
use rand::Rng;

use super::producer::{self, Book};
use super::proxy::Proxy;
use super::server::ChaosRedis;
use super::workers::Workers;

/// One kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Fault {
    /// SIGKILL a worker mid-job, start a new one.
    WorkerKill,
    /// SIGTERM a worker (graceful: its jobs handed back), start a new one.
    WorkerTerm,
    /// SIGSTOP a worker past its lease, then SIGCONT (its late outcomes must be refused).
    WorkerStop,
    /// SIGKILL Redis and start it again from its AOF.
    RedisKill,
    /// SIGSTOP Redis past a lease, then SIGCONT.
    RedisStop,
    /// Redis at maxmemory (noeviction): every write refused with OOM.
    Oom,
    /// `min-replicas-to-write 1` with no replica: every write refused with NOREPLICAS.
    NoReplicas,
    /// The proxy forwards nothing (a partition), sometimes past a lease.
    Blackhole,
    /// The proxy holds every chunk 50–300 ms.
    Delay,
    /// The proxy closes every connection at once (replies in flight are lost).
    Cut,
    /// A job's record is made corrupt while it waits.
    Corrupt,
}

impl Fault {
    /// Whether it acts on the proxy (not available on a cluster: clients follow the
    /// addresses the nodes announce, so a proxy cannot sit between them).
    pub fn needs_proxy(self) -> bool {
        matches!(self, Fault::Blackhole | Fault::Delay | Fault::Cut)
    }

    /// Every kind.
    pub const ALL: [Fault; 11] = [
        Fault::WorkerKill,
        Fault::WorkerTerm,
        Fault::WorkerStop,
        Fault::RedisKill,
        Fault::RedisStop,
        Fault::Oom,
        Fault::NoReplicas,
        Fault::Blackhole,
        Fault::Delay,
        Fault::Cut,
        Fault::Corrupt,
    ];

    /// Its name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Fault::WorkerKill => "worker-kill",
            Fault::WorkerTerm => "worker-term",
            Fault::WorkerStop => "worker-stop",
            Fault::RedisKill => "redis-kill",
            Fault::RedisStop => "redis-stop",
            Fault::Oom => "oom",
            Fault::NoReplicas => "no-replicas",
            Fault::Blackhole => "blackhole",
            Fault::Delay => "delay",
            Fault::Cut => "cut",
            Fault::Corrupt => "corrupt",
        }
    }
}

/// What the faults act on.
pub struct Target<'a> {
    /// Redis.
    pub redis: &'a mut ChaosRedis,
    /// The workers.
    pub workers: &'a mut Workers,
    /// The proxy between workers and Redis (none on a cluster).
    pub proxy: Option<&'a Proxy>,
    /// For planting corrupt records.
    pub queues: &'a [Queue],
    /// The producer's book.
    pub book: &'a Book,
    /// The workers' lease.
    pub lease: Duration,
}

fn between(rng: &mut StdRng, lo: Duration, hi: Duration) -> Duration {
    Duration::from_secs_f64(rng.random_range(lo.as_secs_f64()..hi.as_secs_f64()))
}

fn need_proxy(p: Option<&Proxy>) -> Result<&Proxy> {
    p.ok_or_else(|| baton::Error::Invalid("no proxy on a cluster".into()))
}

/// Applies `fault`, holds it, heals it. Returns when a Redis node was killed (for the
/// fsync loss window), if one was. Redis faults pick one node of a cluster at random.
pub async fn apply(
    fault: Fault,
    t: &mut Target<'_>,
    rng: &mut StdRng,
    n: u64,
) -> Result<Option<Instant>> {
    let lease = t.lease;
    let ms = Duration::from_millis;
    let w = rng.random_range(0..t.workers.len());
    let node = rng.random_range(0..t.redis.len());
    let proxy = t.proxy;
    match fault {
        Fault::WorkerKill => {
            t.workers.kill(w);
            tokio::time::sleep(between(rng, ms(0), ms(1000))).await;
            t.workers.respawn(w)?;
        }
        Fault::WorkerTerm => {
            t.workers.terminate(w, Duration::from_secs(10)).await;
            t.workers.respawn(w)?;
        }
        Fault::WorkerStop => {
            t.workers.freeze(w, true);
            tokio::time::sleep(lease + between(rng, ms(200), ms(2000))).await;
            t.workers.freeze(w, false);
        }
        Fault::RedisKill => {
            let at = Instant::now();
            t.redis.kill(node);
            tokio::time::sleep(between(rng, ms(0), ms(1000))).await;
            t.redis.restart(node).await?;
            return Ok(Some(at));
        }
        Fault::RedisStop => {
            t.redis.freeze(node, true);
            tokio::time::sleep(lease + between(rng, ms(0), ms(1500))).await;
            t.redis.freeze(node, false);
        }
        Fault::Oom => {
            let used = t.redis.used_memory(node).await?;
            let low = (used / 2).max(1).to_string();
            t.redis.config_set(node, "maxmemory", &low).await?;
            tokio::time::sleep(between(rng, ms(500), lease * 2)).await;
            t.redis.config_set(node, "maxmemory", "0").await?;
        }
        Fault::NoReplicas => {
            t.redis
                .config_set(node, "min-replicas-to-write", "1")
                .await?;
            tokio::time::sleep(between(rng, ms(500), lease * 2)).await;
            t.redis
                .config_set(node, "min-replicas-to-write", "0")
                .await?;
        }
        Fault::Blackhole => {
            let p = need_proxy(proxy)?;
            p.blackhole();
            tokio::time::sleep(between(rng, ms(300), lease * 2)).await;
            // Bytes were swallowed: no TCP stream survives that, so the partition heals
            // with every connection reset (pass first, so a new connection is not cut
            // half-way through a swallowed request).
            p.pass();
            p.cut_all();
        }
        Fault::Delay => {
            let p = need_proxy(proxy)?;
            p.delay(between(rng, ms(50), ms(300)));
            tokio::time::sleep(between(rng, ms(500), ms(3000))).await;
            p.pass();
        }
        Fault::Cut => need_proxy(proxy)?.cut_all(),
        Fault::Corrupt => {
            let qi = n as usize % t.queues.len();
            producer::plant_corrupt(t.queues, qi, t.book, &format!("x{n}"), t.redis).await;
        }
    }
    Ok(None)
}

/// Undoes whatever a fault interrupted half-way might have left (used before settling).
pub async fn heal_all(t: &mut Target<'_>) -> Result<()> {
    for i in 0..t.redis.len() {
        t.redis.freeze(i, false);
        if !t.redis.is_up(i) || t.redis.node_cmd(i, &mut redis::cmd("PING")).await.is_err() {
            t.redis.restart(i).await?;
        }
        t.redis.config_set(i, "maxmemory", "0").await?;
        t.redis.config_set(i, "min-replicas-to-write", "0").await?;
    }
    t.redis.wait_cluster_ok(Duration::from_secs(30)).await?;
    if let Some(p) = t.proxy {
        p.pass();
    }
    for i in 0..t.workers.len() {
        t.workers.freeze(i, false);
        t.workers.respawn(i)?;
    }
    Ok(())
}
