//! `baton uncompact QUEUE`: before older workers run on a queue again (a rollback),
//! its compact jobs get hashes of their own and no more are made (docs/leases.md).

use std::process::ExitCode;

use baton::conn::SharedConn;
use baton::Result;

/// Expands the queue's compact jobs and shuts their gate; prints how many.
pub async fn run(conn: &SharedConn, name: &str) -> Result<ExitCode> {
    let n = super::admin::queue(conn, name)?.uncompact().await?;
    println!(
        "{n} compact jobs of {name} expanded; none is made until a worker of this version beats"
    );
    Ok(ExitCode::SUCCESS)
}
