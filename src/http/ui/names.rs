//! The list of queues, found by [`Queue::discover`](crate::Queue::discover): a SCAN of
//! the whole keyspace, whose cost grows with every key in Redis (on a million jobs it
//! takes seconds). So the overview does not scan per view: the list is kept for
//! [`FRESH`], and once older it is still served while one background task rebuilds it.
//! Only the first view after start waits for a scan (and start begins one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// How long a list of queues is served without a new scan.
pub const FRESH: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Known {
    names: Option<(Instant, Vec<String>)>,
    refreshing: bool,
}

/// The cached list of queue names.
#[derive(Clone, Default)]
pub(crate) struct QueueNames {
    known: Arc<Mutex<Known>>,
}

impl QueueNames {
    /// Starts the first scan in the background.
    pub fn warm(&self, conn: crate::conn::SharedConn) {
        let me = self.clone();
        tokio::spawn(async move {
            let _ = me.get(&conn).await;
        });
    }

    /// The names, and when they were found.
    pub async fn get(
        &self,
        conn: &crate::conn::SharedConn,
    ) -> crate::Result<(Vec<String>, Instant)> {
        let mut k = self.known.lock().await;
        match &k.names {
            Some((at, names)) if at.elapsed() < FRESH => return Ok((names.clone(), *at)),
            Some((at, names)) => {
                let stale = (names.clone(), *at);
                if !k.refreshing {
                    k.refreshing = true;
                    let (me, conn) = (self.clone(), conn.clone());
                    tokio::spawn(async move {
                        let found = crate::Queue::discover(&conn).await;
                        let mut k = me.known.lock().await;
                        k.refreshing = false;
                        match found {
                            Ok(n) => k.names = Some((Instant::now(), n)),
                            Err(e) => {
                                tracing::warn!(error = %e, "dashboard: queue discovery failed")
                            }
                        }
                    });
                }
                return Ok(stale);
            }
            None => {}
        }
        // Nothing known yet: scan now, holding the lock so concurrent first views
        // share this one scan.
        let names = crate::Queue::discover(conn).await?;
        let at = Instant::now();
        k.names = Some((at, names.clone()));
        Ok((names, at))
    }
}
