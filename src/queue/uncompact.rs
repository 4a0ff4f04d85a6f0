//! Undoing compact jobs (`lua/compact.lua`, `src/job/compact.rs`) for a rollback to a
//! baton from before them: an older worker drops a compact job's id as removed, so
//! before older workers run on a queue again, its compact jobs get hashes of their own
//! and no new one is made (`baton uncompact`, docs/leases.md).

use super::Queue;
use crate::error::Result;
use crate::scripts;

/// Compact jobs looked at per call (one HSCAN page): no call holds Redis for long.
const PAGE: usize = 500;

impl Queue {
    /// Shuts the queue's compact-job gate for good (meta `compact` = `off`: adds make
    /// hashes, and no heartbeat opens it again) and expands every compact job into a
    /// hash of its own; returns how many. Safe to run while producers add and workers
    /// of this version run, and to run again. [`Queue::reopen_compact`] undoes it.
    pub async fn uncompact(&self) -> Result<u64> {
        self.check_name()?;
        let mut cursor = 0;
        let mut total = 0;
        loop {
            let (next, n) = self
                .bounded(async {
                    scripts::uncompact(&mut self.conn().await?, &self.keys, cursor, PAGE).await
                })
                .await?;
            total += n;
            if next == 0 {
                return Ok(total);
            }
            cursor = next;
        }
    }

    /// Lets compact jobs be made again after [`Queue::uncompact`]: deletes the gate's
    /// `off`, so the next add or heartbeat decides it from the registered workers, as
    /// before (an older worker still registered keeps it shut).
    pub async fn reopen_compact(&self) -> Result<()> {
        self.check_name()?;
        self.bounded(async {
            let _: () = redis::cmd("HDEL")
                .arg(self.keys.meta())
                .arg("compact")
                .query_async(&mut self.conn().await?)
                .await?;
            Ok(())
        })
        .await
    }
}
