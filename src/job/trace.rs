//! The producer's trace context, carried with a job so the worker's job span joins the
//! producer's trace (W3C Trace Context, <https://www.w3.org/TR/trace-context/>).
//!
//! Only `traceparent` is carried (trace id, parent span id, flags), not `tracestate`:
//! it is stored in 25 bytes inside the job's `opts` field, which the claim already reads
//! and the worker already decodes, so carrying it costs no Redis command and no hash
//! field, and the job hash stays a small listpack (a value over 64 bytes would turn it
//! into a hash table). Vendor `tracestate` entries are dropped: say so to anyone who
//! relies on them.
//!
//! Parsing and formatting are written here (the format is four fixed-width hex fields)
//! so the library without default features, which has no OpenTelemetry crates, can still
//! take a `traceparent` string from a caller and store it. With the `otel` feature
//! [`TraceParent::current`] reads the current `tracing` span's OpenTelemetry context and
//! the worker makes it the parent of each job span.

use std::fmt;
use std::str::FromStr;

/// A W3C `traceparent`: the trace a job belongs to and the span that added it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace id (16 bytes, not all zero).
    pub trace_id: [u8; 16],
    /// The producer's span id (8 bytes, not all zero): the parent of the job span.
    pub span_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

/// The stored form's length: version, trace id, span id, flags.
const STORED_LEN: usize = 1 + 16 + 8 + 1;

impl TraceParent {
    /// The stored form: version 0, trace id, span id, flags.
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        let mut b = Vec::with_capacity(STORED_LEN);
        b.push(0);
        b.extend_from_slice(&self.trace_id);
        b.extend_from_slice(&self.span_id);
        b.push(self.flags);
        b
    }

    /// Reads the stored form; anything else is None (a job whose trace context is
    /// unreadable still runs, as a root span).
    pub(crate) fn from_bytes(b: &[u8]) -> Option<TraceParent> {
        if b.len() != STORED_LEN || b[0] != 0 {
            return None;
        }
        let t = TraceParent {
            trace_id: b[1..17].try_into().ok()?,
            span_id: b[17..25].try_into().ok()?,
            flags: b[25],
        };
        t.is_valid().then_some(t)
    }

    /// W3C: an all-zero trace id or span id is invalid.
    fn is_valid(&self) -> bool {
        self.trace_id != [0; 16] && self.span_id != [0; 8]
    }

    /// The trace id as 32 lowercase hex digits (as logs and tracing back ends show it).
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }
}

/// Why a `traceparent` text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent (want 00-<32 hex>-<16 hex>-<2 hex>, ids not all zero): {0}")]
pub struct BadTraceParent(String);

impl FromStr for TraceParent {
    type Err = BadTraceParent;

    /// Reads `00-<trace id>-<span id>-<flags>`. Versions above 00 are read the same way
    /// when they start with those four fields, as the W3C text asks; version ff is
    /// invalid.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadTraceParent(s.chars().take(80).collect());
        let s = s.trim();
        let parts: Vec<&str> = s.splitn(5, '-').collect();
        if parts.len() < 4 {
            return Err(bad());
        }
        let (version, trace, span, flags) = (parts[0], parts[1], parts[2], parts[3]);
        let version = unhex::<1>(version).ok_or_else(bad)?[0];
        if version == 0xff || (version == 0 && parts.len() != 4) {
            return Err(bad());
        }
        let flags = if version == 0 {
            unhex::<1>(flags).ok_or_else(bad)?[0]
        } else {
            unhex::<1>(flags.get(..2).ok_or_else(bad)?).ok_or_else(bad)?[0]
        };
        let t = TraceParent {
            trace_id: unhex::<16>(trace).ok_or_else(bad)?,
            span_id: unhex::<8>(span).ok_or_else(bad)?,
            flags,
        };
        if t.is_valid() {
            Ok(t)
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            self.flags
        )
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Exactly `2 * N` lowercase hex digits (W3C allows no uppercase).
fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceParent;

    impl TraceParent {
        /// The current `tracing` span's OpenTelemetry context, when an OpenTelemetry
        /// layer is installed and the span belongs to a valid trace.
        pub fn current() -> Option<TraceParent> {
            let cx = tracing::Span::current().context();
            let span = cx.span();
            let sc = span.span_context();
            if !sc.is_valid() {
                return None;
            }
            Some(TraceParent {
                trace_id: sc.trace_id().to_bytes(),
                span_id: sc.span_id().to_bytes(),
                flags: sc.trace_flags().to_u8(),
            })
        }

        /// Makes this the (remote) parent of `span`, which must not have been entered
        /// yet. Without an OpenTelemetry layer this does nothing.
        pub(crate) fn adopt(self, span: &tracing::Span) {
            let sc = SpanContext::new(
                TraceId::from_bytes(self.trace_id),
                SpanId::from_bytes(self.span_id),
                TraceFlags::new(self.flags),
                true,
                TraceState::default(),
            );
            let cx = opentelemetry::Context::new().with_remote_span_context(sc);
            let _ = span.set_parent(cx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W3C_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_and_writes_the_w3c_example() {
        let t: TraceParent = W3C_EXAMPLE.parse().unwrap();
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.flags, 1);
        assert_eq!(t.to_string(), W3C_EXAMPLE);
        assert_eq!(TraceParent::from_bytes(&t.to_bytes()), Some(t));
    }

    #[test]
    fn refuses_what_w3c_calls_invalid() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?} was accepted");
        }
        // A later version may append fields.
        let v1: TraceParent = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz"
            .parse()
            .unwrap();
        assert_eq!(v1.flags, 1);
        assert_eq!(TraceParent::from_bytes(&[1; 26]), None);
    }
}
