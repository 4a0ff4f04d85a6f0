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
    /// Shuts the queue's compact-job gate (meta `compact` = `0`: adds make hashes) and
    /// expands every compact job into a hash of its own; returns how many. A worker of
    /// this version opens the gate again at its next heartbeat: stop those first. Safe
    /// to run while producers add, and to run again.
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
}
