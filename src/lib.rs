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
//! - [`queue`]: the producer and admin API ([`Queue`]).
//! - [`job`]: job options, states, what is read back.
//! - [`schedule`]: job schedulers (cron or interval), set with
//!   [`Queue::upsert_scheduler`] and fired by every worker.
//! - [`worker`]: the worker ([`Worker`], [`WorkerBuilder`]) and what a handler sees
//!   ([`JobContext`], [`JobError`]).
//! - [`conn`]: where Redis is ([`conn::RedisConfig`]: one server, Sentinel, Cluster, TLS).
//! - [`config`]: the start-up check of the Redis server.
//! - [`crypto`]: payload encryption at rest: the keyring and the envelope.
//! - [`metrics`]: metric names and (feature `prometheus`) the Prometheus recorder
//!   (`metrics::install`).
//! - [`validate`]: the one set of rules for queue names, job ids and job names.
//! - `exec` (feature `exec`): the handler that runs a command per job (`baton worker --exec`).
//! - `http` (feature `http`): `/metrics`, `/healthz`, `/readyz` and the `baton serve` API.
//!
//! Internal: `scripts` with `lua/` (one Lua script per state transition), `keys` (every
//! Redis key name, hash-tagged per queue) and `telemetry` (the binary's logging).
//!
//! # Cargo features
//! All on by default; the `baton` binary needs all of them.
//! - `prometheus`: `metrics::install` (metrics-exporter-prometheus). Without it,
//!   baton still records through the `metrics` facade into whatever recorder the
//!   application installs.
//! - `http` (implies `prometheus`): the `http` module (axum, hyper, tower, subtle).
//! - `exec`: the `exec` module (child processes, nix).
//! - `cli`: what only the binary uses (clap, tracing-subscriber, tempfile).
//!
//! A service that only enqueues, or runs Rust handlers, needs none of them:
//! `baton = { version = "0.1", default-features = false }`.
#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod crypto;
pub mod error;
#[cfg(feature = "exec")]
pub mod exec;
#[cfg(feature = "http")]
pub mod http;
pub mod job;
// Not part of the stable API: public only for the `baton` binary and the tests.
#[doc(hidden)]
pub mod keys;
pub mod metrics;
pub mod queue;
pub mod schedule;
pub(crate) mod scripts;
// Not part of the stable API: the binary's logging set-up, public for it and the tests.
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod telemetry;
pub mod validate;
pub mod worker;

pub use error::{Error, Result};
pub use job::{
    AttemptError, Backoff, BadTraceParent, Child, ChildFailure, ChildInfo, ChildOutcome, Counts,
    Dedup, DedupMode, JobInfo, JobOptions, JobRef, JobState, Rate, Retention, TraceParent,
};
pub use queue::{
    Added, Cancelled, Event, Finished, FlowAdded, FlowJob, JobOutcome, JobSummary, NewJob, Queue,
};
pub use schedule::{Repeat, Scheduler, SchedulerInfo};
pub use worker::{
    handler_fn, Handler, JobContext, JobError, ShutdownHandle, Worker, WorkerBuilder, WorkerOptions,
};
