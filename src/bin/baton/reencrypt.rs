//! `baton reencrypt QUEUE`: rewrites every job's data, result and error under the first
//! key of `--encryption-key-file`, so the keys below it can be retired.
//!
//! Rotation, step by step: put the new key first in the key file (the old one below
//! it) and roll it out to every worker, producer and `baton serve`; run this; when it
//! reports nothing undecryptable, drop the old key. Safe to run while workers run, and
//! to run again: each value is rewritten only if it has not changed since it was read.

use std::process::ExitCode;

use baton::conn::SharedConn;
use baton::{Error, Queue, Result};
use clap::Args;

/// `baton reencrypt`.
#[derive(Debug, Args)]
pub struct ReencryptArgs {
    /// Queue.
    queue: String,
    /// Jobs read and rewritten per round trip (1 to 1000).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

pub async fn run(conn: &SharedConn, a: ReencryptArgs) -> Result<ExitCode> {
    baton::validate::queue_name(&a.queue)?;
    let keys = crate::crypto_args::keyring().ok_or_else(|| {
        Error::Invalid(
            "reencrypt needs the keys: give --encryption-key-file (or BATON_ENCRYPTION_KEY_FILE), \
             the new key first"
                .into(),
        )
    })?;
    let current = keys.current().to_string();
    let q = Queue::with_conn(conn.clone(), &a.queue).with_encryption(keys);
    let r = q.reencrypt(a.batch).await?;
    if a.json {
        let mut v = serde_json::to_value(&r).expect("a report serializes");
        v["queue"] = a.queue.clone().into();
        v["key"] = current.into();
        println!("{v}");
    } else {
        println!(
            "{}: {} jobs looked at, {} values rewritten under key {current}, {} changed meanwhile, {} undecryptable",
            a.queue, r.jobs, r.rewritten, r.changed, r.undecryptable
        );
        if r.changed > 0 {
            println!("run it again to pick up the values that changed meanwhile");
        }
        if r.undecryptable > 0 {
            println!("values that did not decrypt were left as they are (see the log): keep the keys they need");
        }
    }
    Ok(if r.undecryptable > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
