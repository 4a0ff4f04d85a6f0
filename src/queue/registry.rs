//! The queue-name registry, so that listing queues does not SCAN the keyspace.
//!
//! SET [`Keys::QUEUES`] holds every queue's name. It is a global key: on a Cluster it
//! lives in a slot of its own, not a queue's, so it is written with a command of its own
//! (SADD), never inside a queue script. A process adds a queue once (cached per Redis
//! endpoint and queue, see [`ensure`]): on its first add through a [`Queue`] handle, at
//! worker start and at a scheduler upsert, never per job.
//!
//! Queues made before the registry existed have only their keys. So listing
//! ([`Queue::discover`]) also SCANs for meta keys until one full scan has merged what it
//! found into the registry and set [`Keys::QUEUES_SCANNED`]; after that the registry
//! alone answers. A queue made later by an older baton (a rolling upgrade) is found by
//! an explicit [`Queue::rescan`] (`baton stats --rescan`, `baton serve --rescan`).

use std::collections::{BTreeSet, HashSet};
use std::sync::{LazyLock, Mutex};

use super::Queue;
use crate::conn::SharedConn;
use crate::error::Result;
use crate::keys::Keys;

/// (Redis endpoint, queue) pairs this process has added to the registry.
static REGISTERED: LazyLock<Mutex<HashSet<(String, String)>>> = LazyLock::new(Default::default);

/// Adds `queue` to the registry unless this process already did (one SADD per process,
/// Redis endpoint and queue). A failure is returned and not cached: the next call tries
/// again.
pub(crate) async fn ensure(conn: &SharedConn, queue: &str) -> Result<()> {
    let key = (conn.connector().endpoint().to_string(), queue.to_string());
    if REGISTERED.lock().unwrap().contains(&key) {
        return Ok(());
    }
    let mut c = conn.get().await?;
    let _: i64 = redis::cmd("SADD")
        .arg(Keys::QUEUES)
        .arg(queue)
        .query_async(&mut c)
        .await?;
    REGISTERED.lock().unwrap().insert(key);
    Ok(())
}

/// Like [`ensure`], bounded by the producer timeout, and only logged when it fails (for
/// callers whose own work must go on: an add, a worker starting, a scheduler upsert;
/// the next of them tries again).
pub(crate) async fn ensure_or_warn(conn: &SharedConn, queue: &str) {
    match tokio::time::timeout(crate::conn::PRODUCER_TIMEOUT, ensure(conn, queue)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(queue, error = %e, "could not add the queue to the registry"),
        Err(_) => tracing::warn!(
            queue,
            "could not add the queue to the registry: no reply in time"
        ),
    }
}

/// The registry's names (those [`crate::validate::queue_name`] accepts), and whether a
/// full scan has merged older queues into it.
async fn read(conn: &SharedConn) -> Result<(BTreeSet<String>, bool)> {
    let mut c = conn.get().await?;
    // Two keys in two slots on a Cluster: two commands, not one pipeline.
    let names: Vec<String> = redis::cmd("SMEMBERS")
        .arg(Keys::QUEUES)
        .query_async(&mut c)
        .await?;
    let scanned: Option<String> = redis::cmd("GET")
        .arg(Keys::QUEUES_SCANNED)
        .query_async(&mut c)
        .await?;
    let names = names
        .into_iter()
        // A name no entry point accepts (written by hand) is not a queue baton serves.
        .filter(|q| crate::validate::queue_name(q).is_ok())
        .collect();
    Ok((names, scanned.is_some()))
}

/// Every queue whose meta key exists, on every master.
async fn scan(conn: &SharedConn) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let mut scan = crate::conn::MasterScan::new(conn.connector(), Keys::META_PATTERN, 1000).await?;
    while let Some(keys) = scan.next_page().await? {
        names.extend(
            keys.iter()
                .filter_map(|k| Keys::queue_from_meta_key(k))
                .filter(|q| crate::validate::queue_name(q).is_ok())
                .map(String::from),
        );
    }
    Ok(names)
}

impl Queue {
    /// Adds this queue to the queue-name registry now (once per process; adds, workers
    /// and scheduler upserts do it by themselves).
    pub async fn register(&self) -> Result<()> {
        self.bounded(ensure(&self.conn, self.name())).await
    }

    /// Names of every queue in this Redis, sorted: the registry (see the module
    /// `registry`), plus, until a full scan has been merged into it once, a SCAN for
    /// meta keys on every master (then merged). Names that
    /// [`crate::validate::queue_name`] refuses are left out.
    pub async fn discover(conn: &SharedConn) -> Result<Vec<String>> {
        let (names, scanned) = read(conn).await?;
        if scanned {
            return Ok(names.into_iter().collect());
        }
        Queue::rescan(conn).await
    }

    /// The registry's names and whether they are known to be every queue (a full scan
    /// has been merged); reads two keys, whatever the size of the keyspace.
    pub async fn registered(conn: &SharedConn) -> Result<(Vec<String>, bool)> {
        let (names, scanned) = read(conn).await?;
        Ok((names.into_iter().collect(), scanned))
    }

    /// SCANs every master for queues (their meta keys), adds those found to the
    /// registry, marks the registry as merged, and returns every queue. Its cost grows
    /// with the keyspace: for the first listing after an upgrade and for queues made by
    /// an older baton since.
    pub async fn rescan(conn: &SharedConn) -> Result<Vec<String>> {
        let found = scan(conn).await?;
        let mut c = conn.get().await?;
        let list: Vec<&String> = found.iter().collect();
        for chunk in list.chunks(1000) {
            let _: i64 = redis::cmd("SADD")
                .arg(Keys::QUEUES)
                .arg(chunk)
                .query_async(&mut c)
                .await?;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let _: () = redis::cmd("SET")
            .arg(Keys::QUEUES_SCANNED)
            .arg(now)
            .query_async(&mut c)
            .await?;
        let (mut names, _) = read(conn).await?;
        names.extend(found);
        Ok(names.into_iter().collect())
    }
}
