//! Most integration tests, in one test binary: each test binary links the whole crate
//! and its dependencies, and on two cores linking thirty of them took minutes of CI
//! time. Tests still run one process each under nextest.
//!
//! New test files go here as modules (a file next to this one and a `mod` line below).

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/failover.rs"]
mod failover;
#[path = "../common/topology.rs"]
mod topology;

mod basic;
mod bench_smoke;
mod busy_port;
mod chaos;
mod cli;
mod cli_output;
mod cluster;
mod compact_jobs;
mod compact_upgrade;
mod contract;
mod dashboard;
mod dedup;
mod defects;
mod deploy_files;
mod encryption;
mod error_history;
mod events;
mod exec_contract;
mod exec_worker;
mod flow_control;
mod flows;
mod forgettable;
mod groups;
mod http_api;
mod http_hardening;
mod job_keys;
mod job_spec;
mod leases;
mod lifecycle;
mod lost_reply;
mod many_queues;
mod merged_adds;
mod metrics_exposition;
mod oom;
mod queue_registry;
mod recovery;
mod redis_cluster;
mod redis_outage;
mod review_regressions;
mod schedulers;
mod scripts_eval;
mod self_fencing;
mod sentinel;
mod signals;
mod supervision;
mod tls;
mod topology_smoke;
mod trace_context;
mod ui;
