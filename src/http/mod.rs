//! HTTP: the operations endpoints every worker serves (`/metrics`, `/healthz`,
//! `/readyz`) and the `baton serve` API.

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// Serves `/metrics`, `/healthz` and `/readyz` on `addr` until `stop` fires.
pub async fn serve_ops(addr: SocketAddr, redis_url: String, stop: CancellationToken) -> Result<()> {
    let _ = (addr, redis_url, stop);
    todo!("ops server")
}

/// What `baton serve` needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Redis URL.
    pub redis_url: String,
    /// Listen address.
    pub listen: SocketAddr,
    /// Bearer token required on `/v1` routes (from `BATON_API_TOKEN`).
    pub token: Option<String>,
}

/// Runs the HTTP API until `stop` fires.
pub async fn serve(cfg: ServeConfig, stop: CancellationToken) -> Result<()> {
    let _ = (cfg, stop);
    todo!("api server")
}
