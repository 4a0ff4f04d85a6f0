//! The accept loop and connection handling both HTTP servers share, hardened so that
//! idle or slow clients cannot hold the process hostage.
//!
//! Before, `axum::serve` accepted every connection and waited for its headers forever:
//! 1 100 connections sending half a request line filled the file-descriptor limit and
//! `/healthz` timed out until the attacker left. Now (see [`Limits`]):
//! - hyper's HTTP/1 header-read timer closes a connection that has not sent a complete
//!   request head in time; hyper restarts the same timer whenever a kept-alive
//!   connection goes idle, so it is the idle timeout too;
//! - a semaphore caps open connections below the descriptor limit; a connection beyond
//!   the cap is closed at once (a clear refusal, and the descriptor is free again);
//! - a tower timeout answers 408 to a request (its body upload included) that takes too
//!   long, and no connection outlives [`Limits::max_connection_age`] (hyper has no write
//!   timeout: a client that never reads its responses would otherwise stall it forever).
//!
//! Only HTTP/1 is served: hyper-util's auto (HTTP/1 + cleartext HTTP/2) builder waits
//! for the first 24 bytes with no timeout, which is the very hold this module prevents,
//! and nothing baton serves needs HTTP/2.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// What every HTTP server of baton allows one client. The defaults suit both the API
/// and the operations endpoints.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a connection may take to send a request's headers, and longest a
    /// kept-alive connection may sit idle between requests (hyper runs one timer for
    /// both). Default 10 s: ample for any real client, Prometheus reconnects for free.
    pub header_read_timeout: Duration,
    /// Longest a request may take from its headers to its response, the body upload
    /// included; then the answer is 408. Default 35 s: a `?wait=` of up to 30 s plus
    /// the read after it (Redis calls give up after 2 s).
    pub request_timeout: Duration,
    /// Connections open at once; a new one beyond this is closed at once. Also kept
    /// below the process's descriptor limit (less a reserve for Redis connections and
    /// job processes). Default 4 096.
    pub max_connections: usize,
    /// Longest any connection lives: then it is closed after its current request, or
    /// [`request_timeout`](Self::request_timeout) later at the most. Default 10 min.
    pub max_connection_age: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(35),
            max_connections: 4096,
            max_connection_age: Duration::from_secs(600),
        }
    }
}

/// Descriptors kept free of HTTP connections: Redis connections, pipes of job
/// processes, log files.
const RESERVED_FDS: u64 = 256;

/// Binds `addr`, so that a caller can fail before doing any work when the address is
/// taken ("cannot listen on 127.0.0.1:9090: address in use").
pub async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Invalid(listen_error(addr, &e)))
}

/// The message for a failed bind, naming the address and, for the usual causes, what
/// it means.
fn listen_error(addr: SocketAddr, e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::AddrInUse => format!(
            "cannot listen on {addr}: address in use (another process holds the port; stop it or pick another address)"
        ),
        ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {addr}: address not available on this host ({e})")
        }
        _ => format!("cannot listen on {addr}: {e}"),
    }
}

/// Serves `app` on `listener` under `limits` until `stop` fires, then lets open
/// requests finish (for at most `request_timeout`).
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    stop: CancellationToken,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Invalid(format!("http listener has no address: {e}")))?;
    let app = with_request_timeout(app, limits.request_timeout);
    let cap = connection_cap(limits.max_connections, raise_fd_limit());
    let slots = Arc::new(Semaphore::new(cap));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shed = Shed::default();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(addr, &e).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            shed.one(addr, cap);
            continue;
        };
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        tokio::spawn(drive(conn, permit, stop.clone(), limits.clone()));
    }
    drop(listener);
    // Every connection task returns its permit within request_timeout of `stop`.
    let _all = slots.acquire_many(cap as u32).await;
    Ok(())
}

type Conn = http1::Connection<TokioIo<TcpStream>, TowerToHyperService<Router>>;

/// Runs one connection to its end, its age limit, or `stop` (then it finishes its
/// current request, within `request_timeout`).
async fn drive(conn: Conn, _slot: OwnedSemaphorePermit, stop: CancellationToken, limits: Limits) {
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => Some(r),
        _ = stop.cancelled() => None,
        _ = tokio::time::sleep(limits.max_connection_age) => None,
    };
    let result = match ended {
        Some(r) => r,
        None => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(limits.request_timeout, conn).await {
                Ok(r) => r,
                Err(_) => return, // dropped: closed
            }
        }
    };
    if let Err(e) = result {
        // Header timeouts and clients that hang up mid-request land here: routine.
        tracing::debug!(error = %e, "http connection ended with an error");
    }
}

/// `app` answering 408 (JSON, like every error) to a request not done within `limit`.
fn with_request_timeout(app: Router, limit: Duration) -> Router {
    app.layer(
        tower::ServiceBuilder::new()
            .layer(HandleErrorLayer::new(
                move |_: tower::BoxError| async move { timed_out(limit) },
            ))
            .timeout(limit),
    )
}

fn timed_out(limit: Duration) -> Response {
    let msg = format!(
        "the request did not complete within {limit:?} (its body came too slowly, or the server stalled); \
         it may or may not have taken effect"
    );
    (
        StatusCode::REQUEST_TIMEOUT,
        Json(serde_json::json!({ "error": msg })),
    )
        .into_response()
}

/// After a failed accept: a client that left before we took it is routine; anything
/// else (out of descriptors) is logged and waited out briefly so the loop cannot spin.
async fn accept_failed(addr: SocketAddr, e: &std::io::Error) {
    if matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted
    ) {
        return;
    }
    tracing::warn!(%addr, error = %e, "http accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// Counts connections closed for want of a slot and says so at most every 10 s.
#[derive(Default)]
struct Shed {
    since_said: u64,
    said_at: Option<Instant>,
}

impl Shed {
    fn one(&mut self, addr: SocketAddr, cap: usize) {
        self.since_said += 1;
        if self
            .said_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(
                %addr, cap, closed = self.since_said,
                "http server at its connection cap: closing new connections until some end"
            );
            self.since_said = 0;
            self.said_at = Some(Instant::now());
        }
    }
}

/// The connection cap: `wanted`, but at most the descriptor limit less the reserve.
fn connection_cap(wanted: usize, fd_limit: u64) -> usize {
    // 2^24 keeps within the semaphore's range whatever the limit says.
    let room = fd_limit.saturating_sub(RESERVED_FDS).clamp(16, 1 << 24);
    wanted.clamp(1, room as usize)
}

/// Raises the soft descriptor limit to the hard one, as Go's runtime does at start (the
/// usual soft default of 1 024 is a relic of `select()`, which baton does not use), and
/// returns the soft limit in force.
fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    // An unlimited hard limit cannot be the soft one (Linux caps it at nr_open).
    let want = hard.min(1 << 20);
    let soft = if soft < want && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
        want
    } else {
        soft
    };
    #[allow(clippy::unnecessary_cast)] // rlim_t is narrower on some targets
    let soft = soft as u64;
    soft
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_stays_below_the_descriptor_limit() {
        assert_eq!(connection_cap(4096, 20_000), 4096);
        assert_eq!(connection_cap(4096, 1024), 768);
        assert_eq!(connection_cap(4096, 100), 16);
        assert_eq!(connection_cap(0, 1024), 1);
    }

    #[test]
    fn busy_address_is_named() {
        let e = std::io::Error::from(ErrorKind::AddrInUse);
        let msg = listen_error("127.0.0.1:9090".parse().unwrap(), &e);
        assert!(
            msg.starts_with("cannot listen on 127.0.0.1:9090: address in use"),
            "{msg}"
        );
    }
}
