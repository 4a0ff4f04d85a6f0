//! `baton uncompact QUEUE`: before older workers run on a queue again (a rollback),
//! its compact jobs get hashes of their own and no more are made (docs/leases.md);
//! `--reopen` lets them be made again.

use std::process::ExitCode;

use baton::conn::SharedConn;
use baton::Result;
use clap::Args;

/// `baton uncompact`.
#[derive(Debug, Args)]
pub struct UncompactArgs {
    /// Queue.
    queue: String,
    /// Undo it: let compact jobs be made again (the workers' heartbeats decide, as
    /// before), expanding nothing.
    #[arg(long)]
    reopen: bool,
}

/// Expands the queue's compact jobs and shuts their gate for good, or reopens it;
/// prints what it did.
pub async fn run(conn: &SharedConn, a: &UncompactArgs) -> Result<ExitCode> {
    let (q, name) = (super::admin::queue(conn, &a.queue)?, &a.queue);
    if a.reopen {
        q.reopen_compact().await?;
        println!(
            "compact jobs of {name} may be made again once every registered worker takes them"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let n = q.uncompact().await?;
    println!(
        "{n} compact jobs of {name} expanded; none is made until `baton uncompact {name} --reopen`"
    );
    Ok(ExitCode::SUCCESS)
}
