//! Logging set-up for the binary: human lines or JSON (`--log-format json` or
//! `BATON_LOG_FORMAT=json`), filtered by `RUST_LOG` (default `info`). Every line about
//! a job carries `queue` and `job_id` (the worker wraps each job in a span with both).
//! Text lines are coloured only when stderr is a terminal. Spans go to an OTLP
//! collector too with the `otlp` feature (see [`init_logging`]).

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls do nothing). `default_level`
/// applies when `RUST_LOG` is not set. With the `otlp` feature and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans
/// are also exported over OTLP/HTTP; call [`shutdown`] before exiting to flush them.
pub fn init_logging(json: bool, default_level: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Two layer values, one of them None: each is typed for its own place in the stack.
    let text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_ansi(colour())
            .with_writer(std::io::stderr)
    });
    let json = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json)
        .with(otlp::layer())
        .try_init();
}

/// Flushes and stops the span exporter, if one was started.
pub fn shutdown() {
    otlp::shutdown();
}

#[cfg(feature = "otlp")]
mod otlp {
    use std::sync::OnceLock;

    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;

    static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

    /// The OpenTelemetry layer, when an OTLP endpoint is configured in the environment
    /// (the exporter reads the standard `OTEL_EXPORTER_OTLP_*` variables itself, the
    /// SDK `OTEL_SERVICE_NAME`). An exporter that cannot be built is reported and
    /// skipped: logging must not fail because tracing cannot.
    pub fn layer<S>() -> Option<impl tracing_subscriber::Layer<S>>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            return None;
        }
        let exporter = match opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
        {
            Ok(e) => e,
            Err(e) => {
                eprintln!("warning: OTLP span export is off: {e}");
                return None;
            }
        };
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build();
        let tracer = provider.tracer("baton");
        let _ = PROVIDER.set(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    pub fn shutdown() {
        if let Some(p) = PROVIDER.get() {
            let _ = p.shutdown();
        }
    }
}

#[cfg(not(feature = "otlp"))]
mod otlp {
    /// No exporter without the `otlp` feature.
    pub fn layer() -> Option<tracing_subscriber::layer::Identity> {
        None
    }

    pub fn shutdown() {}
}

/// Colours only on a terminal: in a pipe, a file or a log collector (`kubectl logs`,
/// journald) escape codes are noise that breaks `grep` and log parsers. `NO_COLOR`
/// (<https://no-color.org>) turns them off on a terminal too.
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
