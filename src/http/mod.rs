//! HTTP: the operations endpoints every worker serves (`/metrics`, `/healthz`,
//! `/readyz`) and the `baton serve` API.
//!
//! - [`serve_ops`]: `/metrics`, `/healthz`, `/readyz` (every worker at `--metrics-addr`).
//! - [`serve`]: the JSON API under `/v1`, plus the same operations endpoints and
//!   `/openapi.json` (the document describing every route, [`OPENAPI`]).
//!
//! Both bind before they do anything else (a taken address is an error naming it, see
//! [`bind`]), and both serve under the same [`Limits`]: a header-read (and idle)
//! timeout, a request timeout, a cap on open connections and a body size limit, so
//! that idle or slow clients cannot hold them hostage.
//!
//! Both start the process's one gauge refresher (`http/gauges.rs`), which keeps
//! `baton_queue_jobs{queue,state}` current every 5 s without any work per scrape.
//!
//! Errors are JSON everywhere: `{"error": "..."}` with a 4xx status for a request the
//! client got wrong, 409 for an operation that does not apply to the job's state, 503
//! when Redis cannot be reached.

mod api;
mod gauges;
mod ops;
mod server;
mod ui;

use std::net::SocketAddr;

use axum::routing::MethodFilter;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

// Not part of the stable API: public for the `baton` binary and the tests.
#[doc(hidden)]
pub use api::{validate_queue_name, MAX_QUEUE_NAME};
// Not part of the stable API: public for the `baton` binary and the tests.
#[doc(hidden)]
pub use gauges::register_queue;
pub use server::{bind, Limits};

/// The OpenAPI 3.1 document of [`serve`]'s routes, as served at `GET /openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest request body the API accepts (larger: 413).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until `stop` fires: [`bind`],
/// then [`serve_ops_on`] with the default [`Limits`].
pub async fn serve_ops(
    addr: SocketAddr,
    redis: impl Into<crate::conn::RedisConfig>,
    stop: CancellationToken,
) -> Result<()> {
    let listener = bind(addr).await?;
    serve_ops_on(listener, redis, Limits::default(), stop).await
}

/// Serves `/metrics`, `/healthz` and `/readyz` on a listener bound beforehand (by
/// [`bind`], so that a worker can refuse to start on a taken address before it claims
/// anything) until `stop` fires.
///
/// Installs the Prometheus recorder (if not yet installed) and starts the gauge
/// refresher for `redis` (one per process and Redis, shared with [`serve`]).
/// Redis need not be reachable at start: `/readyz` says 503 until it is.
pub async fn serve_ops_on(
    listener: TcpListener,
    redis: impl Into<crate::conn::RedisConfig>,
    limits: Limits,
    stop: CancellationToken,
) -> Result<()> {
    let conn = crate::conn::SharedConn::producer(redis)?;
    let state = ops::OpsState::new(conn.clone());
    let _refresher = gauges::start(conn);
    let app = ops::router()
        .with_state(state)
        .fallback(api::no_route)
        .method_not_allowed_fallback(api::no_method);
    server::run(listener, app, &limits, stop).await
}

/// What `baton serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Where Redis is.
    pub redis: crate::conn::RedisConfig,
    /// Listen address.
    pub listen: SocketAddr,
    /// The admin token (from `BATON_API_TOKEN`): bearer token accepted on every `/v1`
    /// route. More tokens, read-only ones, in [`ServeOptions`].
    pub token: Option<String>,
}

/// More of `baton serve`'s settings, apart from [`ServeConfig`] so that adding one does
/// not break code that builds a `ServeConfig`.
#[derive(Clone, Default)]
pub struct ServeOptions {
    /// Read-only bearer tokens (from `BATON_API_READ_TOKEN`, comma-separated): accepted
    /// on `GET` routes; a mutating route answers 403 to them. For dashboards and
    /// scripts that only look.
    pub read_tokens: Vec<String>,
    /// Timeouts and the connection cap.
    pub limits: Limits,
    /// Encrypts the payloads the API adds and decrypts the jobs it shows (see
    /// [`crate::crypto`]); without it, encrypted values show as `"encrypted (key K)"`.
    pub encryption: Option<std::sync::Arc<crate::crypto::Keyring>>,
    /// Nobody may change anything: the API answers 403 to every route but a read, the
    /// dashboard hides its actions and refuses their forms (`baton serve --read-only`).
    pub read_only: bool,
    /// The dashboard shows read-only viewers no payload, result, error text, steps or
    /// logs (`baton serve --hide-payloads-from-readers`).
    pub hide_payloads_from_readers: bool,
    /// Scan the keyspace for queues once at start and add them to the queue-name
    /// registry (`baton serve --rescan`: queues made by an older baton since the last
    /// scan; see [`crate::Queue::rescan`]).
    pub rescan: bool,
}

impl std::fmt::Debug for ServeOptions {
    /// Counts the tokens instead of printing them: options end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("read_tokens", &self.read_tokens.len())
            .field("limits", &self.limits)
            .field("encryption", &self.encryption)
            .field("read_only", &self.read_only)
            .field(
                "hide_payloads_from_readers",
                &self.hide_payloads_from_readers,
            )
            .field("rescan", &self.rescan)
            .finish()
    }
}

/// Runs the HTTP API until `stop` fires, with the default [`ServeOptions`].
pub async fn serve(cfg: ServeConfig, stop: CancellationToken) -> Result<()> {
    serve_with(cfg, ServeOptions::default(), stop).await
}

/// Runs the HTTP API until `stop` fires.
///
/// Refuses to start ([`Error::Invalid`]) when `listen` is not a loopback address and
/// no token is set: an open queue API on the network lets anyone add, cancel and
/// delete jobs. Binds before anything else, so a taken address fails at once.
pub async fn serve_with(
    cfg: ServeConfig,
    opts: ServeOptions,
    stop: CancellationToken,
) -> Result<()> {
    let tokens = api::Tokens::new(cfg.token.clone(), opts.read_tokens);
    check_exposure(cfg.listen, tokens.any())?;
    let listener = bind(cfg.listen).await?;
    let conn = crate::conn::SharedConn::producer(cfg.redis.clone())?;
    let ops_state = ops::OpsState::new(conn.clone());
    let _refresher = gauges::start(conn.clone());
    let auth = tokens.describe();
    let dashboard = ui::router(ui::UiState::new(
        conn.clone(),
        tokens.clone(),
        opts.encryption.clone(),
        opts.read_only,
        opts.hide_payloads_from_readers,
        opts.rescan,
    ));
    let app = api::router(
        api::ApiState::new(conn, tokens)
            .with_encryption(opts.encryption)
            .read_only(opts.read_only)
            .stopping(stop.clone()),
        ops_state,
    )
    .merge(dashboard);
    tracing::info!(listen = %cfg.listen, auth, read_only = opts.read_only, "baton API and dashboard listening");
    server::run(listener, app, &opts.limits, stop).await
}

/// Every route [`serve`] answers, as (method, path) with axum's `{param}` syntax, in
/// the order they are mounted. The OpenAPI document lists exactly these.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    api::table()
        .into_iter()
        .map(|r| (method_name(r.method), r.path))
        .collect()
}

/// The upper-case method name of a single-method filter.
fn method_name(m: MethodFilter) -> &'static str {
    [
        (MethodFilter::GET, "GET"),
        (MethodFilter::POST, "POST"),
        (MethodFilter::PUT, "PUT"),
        (MethodFilter::PATCH, "PATCH"),
        (MethodFilter::DELETE, "DELETE"),
        (MethodFilter::HEAD, "HEAD"),
        (MethodFilter::OPTIONS, "OPTIONS"),
    ]
    .into_iter()
    .find(|(f, _)| *f == m)
    .map(|(_, n)| n)
    .unwrap_or("?")
}

/// Err when listening beyond loopback without any token.
fn check_exposure(listen: SocketAddr, any_token: bool) -> Result<()> {
    if !any_token && !listen.ip().is_loopback() {
        return Err(Error::Invalid(format!(
            "refusing to serve the API on {listen} without a token: anyone who can reach it could add, \
             cancel and delete jobs. Set BATON_API_TOKEN (clients then send `Authorization: Bearer <token>`), \
             or listen on a loopback address such as 127.0.0.1:{}",
            listen.port()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_without_token_is_fine_elsewhere_not() {
        assert!(check_exposure("127.0.0.1:8080".parse().unwrap(), false).is_ok());
        assert!(check_exposure("[::1]:8080".parse().unwrap(), false).is_ok());
        assert!(check_exposure("0.0.0.0:8080".parse().unwrap(), true).is_ok());
        let e = check_exposure("0.0.0.0:8080".parse().unwrap(), false).unwrap_err();
        assert!(
            matches!(e, Error::Invalid(_)) && e.to_string().contains("BATON_API_TOKEN"),
            "{e}"
        );
        assert!(check_exposure("10.1.2.3:80".parse().unwrap(), false).is_err());
    }

    #[test]
    fn openapi_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (m, _) in item.as_object().unwrap() {
                if m != "parameters" {
                    documented.push((m.to_uppercase(), path.clone()));
                }
            }
        }
        let mut routed: Vec<(String, String)> = routes()
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
    }
}
