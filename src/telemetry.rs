//! Logging set-up for the binary: human lines or JSON (`--log-format json` or
//! `BATON_LOG_FORMAT=json`), filtered by `RUST_LOG` (default `info`). Every line about
//! a job carries `queue` and `job_id` (the worker wraps each job in a span with both).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls do nothing). `default_level`
/// applies when `RUST_LOG` is not set.
pub fn init_logging(json: bool, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}
