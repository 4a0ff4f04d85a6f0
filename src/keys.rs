//! The one place that knows Redis key names.
//!
//! Every key of a queue shares the hash tag `{queue}`, so each script touches a single
//! Redis Cluster slot and a cluster can spread queues over shards. Scripts that need a
//! job's own keys build them from [`Keys::prefix`] plus the job id, which keeps them in
//! the same slot.

/// The key names of one queue.
#[derive(Debug, Clone)]
pub struct Keys {
    queue: String,
    prefix: String,
}

impl Keys {
    /// Keys for `queue`.
    pub fn new(queue: &str) -> Self {
        Self {
            queue: queue.to_string(),
            prefix: format!("baton:{{{queue}}}:"),
        }
    }

    /// The queue name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// `baton:{q}:`, the prefix of every key of the queue. `lua/common.lua`'s
    /// `prefix_of` builds the same from a queue name (flows reach other queues' jobs).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{}", self.prefix, suffix)
    }

    /// LIST of ready job ids (new ids pushed on the left, claims pop from the right).
    pub fn wait(&self) -> String {
        self.key("wait")
    }
    /// ZSET of ready job ids with a priority; score keeps FIFO within a priority.
    pub fn prioritized(&self) -> String {
        self.key("prioritized")
    }
    /// ZSET of job ids by the time (ms) they become ready.
    pub fn delayed(&self) -> String {
        self.key("delayed")
    }
    /// HASH of the compact jobs: job id → `<ts> <keep> <spec>` ([`crate::job`]'s
    /// `Compact`, `lua/compact.lua`): a plain job waiting or running, stored without
    /// a hash of its own. Field `""` (no job id is empty) holds a padding value that
    /// keeps the hash a hash table.
    pub fn jobs(&self) -> String {
        self.key("jobs")
    }
    /// HASH of the outcomes of kept compact completions: job id →
    /// `C<finished>:<lease length>:<lease><result length>:<result>`; the job's value stays
    /// in [`Keys::jobs`] unchanged, and the outcome then the value read as one text is
    /// what [`crate::job::Compact::parse`] takes ([`crate::job::Compact::join`]). Field
    /// `""` holds the same padding as `jobs`.
    pub fn done(&self) -> String {
        self.key("done")
    }
    /// ZSET of claimed job ids by lease deadline (ms): the lease table.
    pub fn active(&self) -> String {
        self.key("active")
    }
    /// HASH of the live leases: job id → `token:attempt:started:worker`, written with
    /// one HSET per claim batch (not into each job's hash: every write command in a
    /// script costs its own AOF propagation). Field `""` (no job id is empty) holds
    /// the last fencing token issued. A job leased before this table existed has its
    /// lease in its own hash instead (`state` = `active`, `token`, `worker`,
    /// `started`); see `lua/common.lua` on leases.
    pub fn leases(&self) -> String {
        self.key("leases")
    }
    /// ZSET of completed job ids by finish time.
    pub fn completed(&self) -> String {
        self.key("completed")
    }
    /// ZSET of failed job ids by finish time.
    pub fn failed(&self) -> String {
        self.key("failed")
    }
    /// ZSET of cancelled job ids by finish time.
    pub fn cancelled(&self) -> String {
        self.key("cancelled")
    }
    /// HASH of queue-wide settings (`paused`, `concurrency`, `rate`, `events`, the
    /// priority sequence).
    pub fn meta(&self) -> String {
        self.key("meta")
    }
    /// STRING: jobs started in the current rate-limit window (meta `rate`), expiring
    /// with the window.
    pub fn limiter(&self) -> String {
        self.key("limiter")
    }
    /// LIST holding at most one wake-up token that idle workers block on.
    pub fn wake(&self) -> String {
        self.key("wake")
    }
    /// STREAM of the queue's job events (added, active, progress, completed, ...),
    /// written by the scripts while meta `events` (its length cap) is set; see
    /// `src/queue/events.rs`.
    pub fn events(&self) -> String {
        self.key("events")
    }
    /// ZSET of live worker ids by heartbeat deadline.
    pub fn workers(&self) -> String {
        self.key("workers")
    }
    /// HASH worker id → JSON description (host, pid, in-flight count).
    pub fn worker_info(&self) -> String {
        self.key("workers:info")
    }
    /// Pub/sub channel on which cancel requests for running jobs are announced.
    pub fn cancel_channel(&self) -> String {
        self.key("cancel")
    }
    /// HASH scheduler id → stored scheduler (MessagePack, see `src/schedule/`).
    pub fn schedulers(&self) -> String {
        self.key("schedulers")
    }
    /// ZSET scheduler id → its next tick (ms); ended schedulers are not in it.
    pub fn sched(&self) -> String {
        self.key("sched")
    }
    /// ZSET group → serve sequence: groups in line to be served (round-robin; see
    /// `lua/common.lua` on groups). The scripts build the group keys from the prefix.
    pub fn groups_ready(&self) -> String {
        self.key("gready")
    }
    /// ZSET group → ms: groups with ready jobs held back until then (out of rate, held).
    pub fn groups_limited(&self) -> String {
        self.key("glimited")
    }
    /// HASH group → its leased jobs.
    pub fn groups_active(&self) -> String {
        self.key("gactive")
    }
    /// HASH group → ms: the group is held until then ("rate limited, retry after").
    pub fn groups_held(&self) -> String {
        self.key("ghold")
    }
    /// LIST of a group's ready job ids.
    pub fn group_wait(&self, group: &str) -> String {
        self.key(&format!("g:{group}:wait"))
    }
    /// STRING: a group's starts in its current rate window (expires with the window).
    pub fn group_limiter(&self, group: &str) -> String {
        self.key(&format!("g:{group}:rl"))
    }
    /// HASH of one job.
    pub fn job(&self, id: &str) -> String {
        self.key(&format!("job:{id}"))
    }
    /// HASH of a job's recorded step results.
    pub fn steps(&self, id: &str) -> String {
        self.key(&format!("steps:{id}"))
    }
    /// LIST of a job's log lines.
    pub fn logs(&self, id: &str) -> String {
        self.key(&format!("logs:{id}"))
    }
    /// LIST of a job's error history, newest first: one entry
    /// `<attempt>:<ms>:<error>` per retried or failed attempt, bounded (finish.lua).
    pub fn errors(&self, id: &str) -> String {
        self.key(&format!("errors:{id}"))
    }
    /// ZSET of the flow parents waiting for their children, by the time each was added.
    pub fn waiting_children(&self) -> String {
        self.key("waiting-children")
    }
    /// The queue name from a `baton:{q}:meta` key, for discovering queues with SCAN.
    pub fn queue_from_meta_key(key: &str) -> Option<&str> {
        key.strip_prefix("baton:{")?.strip_suffix("}:meta")
    }
    /// SET of every queue's name: the queue-name registry (a global key, in a Cluster
    /// slot of its own; see `src/queue/registry.rs`).
    pub const QUEUES: &'static str = "baton:queues";
    /// STRING set (to the time, ms) once a full SCAN for meta keys has merged the
    /// queues made before the registry into [`Keys::QUEUES`].
    pub const QUEUES_SCANNED: &'static str = "baton:queues:scanned";
    /// The lease table's keeper (`lua/lease.lua`, `ACTIVE_KEEPER`): a member of
    /// [`Keys::active`] that is no job (a NUL first, which no job id holds) and never
    /// expires (score +inf), longer than 64 bytes so the ZSET is a skiplist rather than
    /// a listpack, which makes a claim's and a finish's writes cheaper. Counting or
    /// listing `active` leaves it out.
    pub const ACTIVE_KEEPER: &'static str =
        "\0baton: keeps this lease table a skiplist ................................";
    /// SCAN pattern matching the meta key of every queue.
    pub const META_PATTERN: &'static str = "baton:{*}:meta";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_hash_tag() {
        let k = Keys::new("emails");
        assert_eq!(k.wait(), "baton:{emails}:wait");
        assert_eq!(k.job("7"), "baton:{emails}:job:7");
        assert_eq!(k.steps("7"), "baton:{emails}:steps:7");
        // No job id can name another job's keys.
        assert_ne!(k.job("a:steps"), k.steps("a"));
        assert_eq!(Keys::queue_from_meta_key(&k.meta()), Some("emails"));
    }
}
