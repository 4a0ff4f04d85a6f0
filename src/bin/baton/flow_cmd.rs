//! `baton add-flow`: a flow (a parent and its children, nested) from a JSON file, read
//! by [`baton::validate::flow`] as the HTTP API reads `POST /v1/queues/{q}/flows`.

use std::process::ExitCode;

use baton::conn::SharedConn;
use baton::{Error, FlowAdded, Result};
use clap::Args;

/// `baton add-flow QUEUE [FILE]`.
#[derive(Debug, Args)]
pub struct AddFlowArgs {
    /// Queue of the root job (children default to their parent's queue).
    queue: String,
    /// JSON file with the flow (`-` for stdin): a job (`name`, `data`, the options of
    /// `baton add` as JSON fields) with `children` (jobs of the same shape), each
    /// child optionally with `queue` and `on_failure` ("fail-parent" or "ignore").
    #[arg(default_value = "-")]
    file: String,
    /// Print the jobs added as one JSON object.
    #[arg(long)]
    json: bool,
    /// Wait this long for the root job to end: print its result, and exit 0 completed,
    /// 3 failed, 4 cancelled, 124 still running.
    #[arg(long, value_parser = humantime::parse_duration)]
    wait: Option<std::time::Duration>,
    /// The producer's W3C trace context for every job of the flow (also read from
    /// `TRACEPARENT` in the environment).
    #[arg(long, env = "TRACEPARENT")]
    traceparent: Option<String>,
}

pub async fn add_flow(url: &SharedConn, a: AddFlowArgs) -> Result<ExitCode> {
    let queue = crate::admin::queue(url, &a.queue)?;
    let text = crate::add::read_input(&a.file)?;
    let mut v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Invalid(format!("{}: {e}", a.file)))?;
    if let Some(t) = &a.traceparent {
        baton::validate::set_trace(&mut v, t);
    }
    let flow = baton::validate::flow(v)
        .map_err(|e| Error::Invalid(format!("{}: {}", a.file, e.reason())))?;
    let added = queue.add_flow(&flow).await?;
    if a.json {
        println!("{}", serde_json::to_string(&added).expect("serializes"));
    } else {
        if !added.added {
            println!("the flow of {} exists already; nothing changed", added.id);
        }
        print_tree(&added, 0);
    }
    match a.wait {
        Some(w) => crate::add::waited(&queue, &added.id, w, a.json).await,
        None => Ok(ExitCode::SUCCESS),
    }
}

fn print_tree(f: &FlowAdded, depth: usize) {
    println!("{}{}/{}", "  ".repeat(depth), f.queue, f.id);
    for c in &f.children {
        print_tree(c, depth + 1);
    }
}
