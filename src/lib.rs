//! baton: a durable job queue for Rust on Redis.
//!
//! Producers add jobs with [`Queue`]; workers ([`Worker`]) claim them under a lease
//! that a heartbeat renews, run them, and write the outcome with a fencing token, so a
//! worker that lost its lease can never overwrite another's result. Jobs whose worker
//! died are recovered by the sweeper in every worker. A running job can be cancelled
//! from any process; a shutting-down worker hands its unfinished jobs back.
//!
//! Delivery is at-least-once: a handler may run more than once for one job (after a
//! crash or a lost lease), but an outcome is written at most once per attempt, and a
//! cancelled job never ends any other way.
//!
//! # Layout
//! - [`keys`]: every Redis key name, hash-tagged per queue.
//! - `scripts` (private) with `lua/`: one Lua script per state transition; the one place that
//!   knows each script's KEYS and ARGV.
//! - [`queue`]: the producer and admin API.
//! - [`job`]: job options, states, what is read back.
//! - [`worker`]: claim loop, processor, acker, heartbeat, sweeper, cancel listener,
//!   shutdown sequence.
//! - [`config`]: the start-up check of the Redis server.
//! - [`crypto`]: payload encryption at rest: the keyring and the envelope.
//! - [`conn`]: where Redis is ([`conn::RedisConfig`]: one server, Sentinel, Cluster, TLS)
//!   and the connections made for it (shared, blocking, pub/sub).
//! - [`metrics`]: metric names and the Prometheus recorder.
//! - [`exec`]: the handler that runs a command per job (`baton worker --exec`).
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` and the `baton serve` API.
//! - [`telemetry`]: logging set-up.
//! - [`validate`]: the one set of rules for queue names, job ids and job names.
#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod crypto;
pub mod error;
pub mod exec;
pub mod http;
pub mod job;
pub mod keys;
pub mod metrics;
pub mod queue;
pub(crate) mod scripts;
pub mod telemetry;
pub mod validate;
pub mod worker;

pub use error::{Error, Result};
pub use job::{Backoff, Counts, JobInfo, JobOptions, JobState, Retention};
pub use queue::{Added, Cancelled, NewJob, Queue};
pub use worker::{
    handler_fn, Handler, JobContext, JobError, ShutdownHandle, Worker, WorkerBuilder, WorkerOptions,
};
