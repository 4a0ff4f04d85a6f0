//! Durable adds: an add that returns only once replicas have the job (`WAIT`).
//!
//! Redis replicates asynchronously, so a job the master acknowledged can be lost if
//! the master dies (or is demoted) before its replicas have it. With
//! [`Queue::durable`], every add is followed by `WAIT n timeout` on the same
//! connection, which returns once `n` replicas have every write this connection made;
//! fewer in time is [`Error::NotReplicated`] (the job was added on the master; adding
//! again with the same id is safe). `WAIT` holds the connection until the replicas
//! answer, so a durable queue handle gets a connection of its own and its adds go one
//! replication round trip at a time: use `add_bulk` for volume.

use std::time::Duration;

use super::Queue;
use crate::conn::{RedisConn, SharedConn};
use crate::error::{Error, Result};
use crate::scripts::NewJobArgs;

/// How many replicas an add waits for, and how long.
#[derive(Debug, Clone, Copy)]
pub(super) struct Durable {
    pub replicas: u32,
    pub timeout: Duration,
}

impl Queue {
    /// Every add returns only once `replicas` replicas have the job, or fails with
    /// [`Error::NotReplicated`] after `timeout`. The handle gets a connection of its
    /// own (`WAIT` holds the connection it runs on). `replicas` 0 turns it off.
    pub fn durable(mut self, replicas: u32, timeout: Duration) -> Queue {
        if replicas == 0 {
            self.durable = None;
            return self;
        }
        let own = SharedConn::new(
            self.conn.connector().clone(),
            crate::conn::PRODUCER_TIMEOUT + timeout,
        );
        self.conn = own;
        self.durable = Some(Durable { replicas, timeout });
        self
    }

    /// After an add on `c`: waits for the replicas when the queue is durable.
    pub(super) async fn wait_replicated(
        &self,
        c: &mut RedisConn,
        args: &[NewJobArgs],
    ) -> Result<()> {
        let Some(d) = self.durable else {
            return Ok(());
        };
        let mut wait = redis::cmd("WAIT");
        wait.arg(d.replicas).arg(d.timeout.as_millis() as u64);
        // On a cluster, to the master that took the add (the queue's slot).
        let acked: i64 = c.query_at(&wait, &self.keys.wait()).await?;
        if acked < d.replicas as i64 {
            return Err(Error::NotReplicated {
                ids: args.iter().map(|a| a.id.clone()).collect(),
                acked: acked.max(0) as u32,
                wanted: d.replicas,
            });
        }
        Ok(())
    }
}
