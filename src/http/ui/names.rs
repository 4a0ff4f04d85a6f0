//! The list of queues, from the queue-name registry ([`Queue::registered`]): two keys
//! read, whatever the size of the keyspace. Until the registry is known to hold every
//! queue (no full scan merged into it yet: queues made before the registry), the
//! registry's names are served while one background task scans
//! ([`Queue::rescan`]); only when the registry is empty too does a view wait for that
//! scan. The list is kept for [`FRESH`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::Queue;

/// How long a list of queues is served without reading the registry again.
pub const FRESH: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Known {
    names: Option<(Instant, Vec<String>)>,
    /// A background scan is running.
    scanning: bool,
}

/// The cached list of queue names.
#[derive(Clone, Default)]
pub(crate) struct QueueNames {
    known: Arc<Mutex<Known>>,
}

impl QueueNames {
    /// Reads the list in the background, first scanning the keyspace when `rescan`
    /// (`baton serve --rescan`: queues made by an older baton since the last scan).
    pub fn warm(&self, conn: crate::conn::SharedConn, rescan: bool) {
        let me = self.clone();
        tokio::spawn(async move {
            if rescan {
                me.known.lock().await.scanning = true;
                me.scan(&conn).await;
            }
            let _ = me.get(&conn).await;
        });
    }

    /// Scans (and merges into the registry), then serves what it found.
    async fn scan(&self, conn: &crate::conn::SharedConn) {
        let found = Queue::rescan(conn).await;
        let mut k = self.known.lock().await;
        k.scanning = false;
        match found {
            Ok(n) => k.names = Some((Instant::now(), n)),
            Err(e) => tracing::warn!(error = %e, "dashboard: scanning for queues failed"),
        }
    }

    /// The names, and when they were read.
    pub async fn get(
        &self,
        conn: &crate::conn::SharedConn,
    ) -> crate::Result<(Vec<String>, Instant)> {
        let mut k = self.known.lock().await;
        if let Some((at, names)) = &k.names {
            if at.elapsed() < FRESH {
                return Ok((names.clone(), *at));
            }
        }
        let (names, complete) = match Queue::registered(conn).await {
            Ok(r) => r,
            // Still serve the last list while Redis does not answer.
            Err(e) => match &k.names {
                Some((at, names)) => return Ok((names.clone(), *at)),
                None => return Err(e),
            },
        };
        if complete {
            let at = Instant::now();
            k.names = Some((at, names.clone()));
            return Ok((names, at));
        }
        if names.is_empty() && k.names.is_none() {
            // Nothing to show without a scan: scan now, holding the lock so concurrent
            // first views share it.
            let names = Queue::discover(conn).await?;
            let at = Instant::now();
            k.names = Some((at, names.clone()));
            return Ok((names, at));
        }
        if !k.scanning {
            k.scanning = true;
            let (me, conn) = (self.clone(), conn.clone());
            tokio::spawn(async move { me.scan(&conn).await });
        }
        // The registry's names, with those a scan found before (not yet registered).
        let mut all = names;
        if let Some((_, before)) = &k.names {
            all.extend(before.iter().cloned());
            all.sort();
            all.dedup();
        }
        let at = Instant::now();
        k.names = Some((at, all.clone()));
        Ok((all, at))
    }
}
