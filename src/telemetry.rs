//! Logging set-up for the binary: human lines or JSON (`--log-format json` or
//! `BATON_LOG_FORMAT=json`), filtered by `RUST_LOG` (default `info`). Every line about
//! a job carries `queue` and `job_id` (the worker wraps each job in a span with both).
//! Text lines are coloured only when stderr is a terminal.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls do nothing). `default_level`
/// applies when `RUST_LOG` is not set.
pub fn init_logging(json: bool, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Colours only on a terminal: in a pipe, a file or a log collector (`kubectl logs`,
/// journald) escape codes are noise that breaks `grep` and log parsers. `NO_COLOR`
/// (<https://no-color.org>) turns them off on a terminal too.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
