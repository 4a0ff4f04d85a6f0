//! `baton events`: turn a queue's events stream on or off, and print its events as JSON
//! lines (once, or following it).

use std::process::ExitCode;
use std::time::Duration;

use baton::conn::SharedConn;
use baton::Result;
use clap::Args;
use serde_json::json;

/// `baton events`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("switch").args(["enable", "disable"])))]
pub struct EventsArgs {
    /// Queue.
    queue: String,
    /// Print the events after this stream id (default: from the oldest kept; with
    /// --follow, from now on).
    #[arg(long)]
    from: Option<String>,
    /// Keep printing events as they come, until Ctrl-C.
    #[arg(long)]
    follow: bool,
    /// Turn the events stream on (capped at --max-len events).
    #[arg(long, conflicts_with_all = ["from", "follow"])]
    enable: bool,
    /// The stream's length cap with --enable (Redis trims approximately).
    #[arg(long, default_value_t = 10_000, requires = "enable")]
    max_len: u64,
    /// Turn the events stream off (the events kept stay readable).
    #[arg(long, conflicts_with_all = ["from", "follow"])]
    disable: bool,
}

pub async fn run(url: &SharedConn, a: EventsArgs) -> Result<ExitCode> {
    let queue = crate::admin::queue(url, &a.queue)?;
    if a.enable || a.disable {
        if a.enable && a.max_len == 0 {
            return Err(baton::Error::Invalid(
                "--max-len must be at least 1 (use --disable to turn the stream off)".into(),
            ));
        }
        queue.set_events(a.enable.then_some(a.max_len)).await?;
        let cap = queue.events_cap().await?;
        println!("{}", json!({"queue": a.queue, "events": cap}));
        return Ok(ExitCode::SUCCESS);
    }
    if !a.follow {
        let mut after = a.from.clone();
        loop {
            let page = queue
                .events(after.as_deref(), baton::queue::EVENTS_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.stream_id.clone());
            for e in &page {
                println!("{}", serde_json::to_string(e).expect("events serialize"));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut f = queue.follow_events(a.from.as_deref()).await?;
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(ExitCode::SUCCESS),
            got = f.next(Duration::from_secs(30)) => {
                for e in got? {
                    println!("{}", serde_json::to_string(&e).expect("events serialize"));
                }
            }
        }
    }
}
