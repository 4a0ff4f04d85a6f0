//! `baton chaos`: a seeded, bounded fault-injection run against a private Redis, then
//! the invariants checked from Redis and from the ledger the jobs write.

use std::process::ExitCode;

/// Options of a chaos run.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {}

/// Runs it.
pub async fn run(_args: ChaosArgs) -> baton::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
