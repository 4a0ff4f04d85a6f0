//! The report of a chaos run: what was done to it and what the check found.

use std::collections::BTreeMap;

use super::{check, leases};

/// The report of a run.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The seed (rerun with `--seed` for the same fault sequence).
    pub seed: u64,
    /// `appendfsync` of the Redis nodes.
    pub fsync: String,
    /// Seconds of fault injection.
    pub duration_s: f64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// Faults that could not be applied (and were healed instead).
    pub fault_errors: Vec<String>,
    /// Worker processes started, respawns included.
    pub worker_processes: usize,
    /// Workers that exited without being told to (a violation).
    pub unexpected_worker_exits: Vec<String>,
    /// Adds that failed and were retried with the same id.
    pub add_retries: u64,
    /// Seconds the workers took to finish every job after the last fault.
    pub settle_s: f64,
    /// The live lease invariant's samples.
    pub leases: leases::LeaseSamples,
    /// What the final check found.
    pub findings: check::Findings,
    /// Invariants broken, in all (0 = the run passed).
    pub violations: usize,
    /// Where the logs, ledger and AOF were kept (only when something failed).
    pub work_dir: Option<String>,
}

impl Report {
    /// Prints it for a person.
    pub fn print(&self) {
        let r = self;
        let f = &r.findings;
        println!(
            "chaos run: seed {}, appendfsync {}, {:.0} s of faults, settled in {:.1} s",
            r.seed, r.fsync, r.duration_s, r.settle_s
        );
        let faults: Vec<String> = r.faults.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "faults: {} ({} in all)",
            faults.join(", "),
            r.faults.values().sum::<u64>()
        );
        println!(
        "jobs: {} acknowledged, final states {:?}; {} command runs, {} jobs ran more than once; {} adds retried",
        f.acked, f.states, f.runs, f.rerun_jobs, r.add_retries
    );
        println!(
            "worker processes started: {}; lease samples {}, expired leases seen {}",
            r.worker_processes, r.leases.samples, r.leases.expired
        );
        let list = |name: &str, v: &[String]| {
            println!("{name}: {}", v.len());
            for x in v.iter().take(20) {
                println!("  {x}");
            }
        };
        list("lost", &f.lost);
        if !f.lost_in_fsync_window.is_empty() {
            list(
                "  of which in the everysec fsync window",
                &f.lost_in_fsync_window,
            );
        }
        list("stuck", &f.stuck);
        list("wrong state", &f.wrong_state);
        list("bad outcome", &f.bad_outcome);
        list("inconsistent", &f.inconsistent);
        list("unexpected worker exits", &r.unexpected_worker_exits);
        if let Some(m) = &f.stats_mismatch {
            println!("stats mismatch: {m}");
        }
        for e in &r.fault_errors {
            println!("fault not applied: {e}");
        }
        match (&r.work_dir, r.violations) {
            (_, 0) => println!("no violations"),
            (Some(d), v) => println!("VIOLATIONS: {v} (worker logs, ledger and AOF kept in {d})"),
            (None, v) => println!("VIOLATIONS: {v}"),
        }
    }
}
