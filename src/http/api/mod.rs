//! The `baton serve` JSON API under `/v1`, mounted with the operations endpoints.
//!
//! Every response that is not a success is `{"error": "..."}`:
//! - 400 for a request the client got wrong (malformed JSON, wrong types, unknown
//!   fields, missing `name`, a bad queue name, out-of-range options, unknown state);
//! - 401 without a valid bearer token (when any is configured), 403 for a read-only
//!   token on a route that changes something;
//! - 404 for an unknown job or route, 405 for a wrong method;
//! - 409 when the operation does not apply to the job's state;
//! - 413 for a body over [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) (or a payload over
//!   the library's limit, [`DEFAULT_MAX_PAYLOAD`](crate::queue::DEFAULT_MAX_PAYLOAD),
//!   which is larger, so the body limit is the one met), said the same way: "… is
//!   larger than the limit of N bytes";
//! - 503 (with `Retry-After`) when Redis cannot be reached or refuses. An add that got
//!   no reply answers 503 saying the job "may or may not have been added" and naming
//!   its id (generated ones included): adding again with that `job_id` is safe.
//!
//! Queue names, job ids and job names follow [`crate::validate`], as in the library and
//! the CLI.
//!
//! Adding a job answers 201 when it was added and 200 with `"added": false` when a job
//! with the given `job_id` exists already (then nothing changed).

mod auth;
mod errors;
mod events;
mod extract;
mod flows;
mod handlers;
mod schedulers;
mod validate;

use axum::extract::FromRef;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use super::ops::{self, OpsState};
use crate::queue::Queue;
use auth::require_token;
pub(crate) use auth::{Access, Tokens};
use handlers::{
    add_job, cancel_job, get_job, list_jobs, list_queues, openapi, pause, queue_counts, remove_job,
    resume, retry_job, set_limits,
};
use schedulers::{delete_scheduler, get_scheduler, list_schedulers, put_scheduler};

pub(crate) use errors::{no_method, no_route};
pub use validate::validate_queue_name;

pub use crate::validate::MAX_QUEUE_NAME;
/// Longest `delay_ms` and `timeout_ms`: ten years.
pub const MAX_DURATION_MS: u64 = 10 * 366 * 24 * 3600 * 1000;
/// Largest `limit` of a listing.
pub const MAX_LIST: usize = 1000;

/// The API's own state.
#[derive(Clone)]
pub(crate) struct ApiState {
    conn: crate::conn::SharedConn,
    tokens: Tokens,
    /// Given to every queue handle (see [`Queue::with_encryption`]).
    keyring: Option<std::sync::Arc<crate::crypto::Keyring>>,
    /// `--read-only`: every route that changes something answers 403.
    read_only: bool,
    /// Fires when the server stops: open event streams end then, so a graceful stop
    /// does not wait out the request timeout for them.
    stop: tokio_util::sync::CancellationToken,
}

impl ApiState {
    pub fn new(conn: crate::conn::SharedConn, tokens: Tokens) -> ApiState {
        ApiState {
            conn,
            tokens,
            keyring: None,
            read_only: false,
            stop: Default::default(),
        }
    }

    /// Ends open event streams when `stop` fires.
    pub fn stopping(mut self, stop: tokio_util::sync::CancellationToken) -> ApiState {
        self.stop = stop;
        self
    }

    /// Refuses every route that changes something (`baton serve --read-only`).
    pub fn read_only(mut self, yes: bool) -> ApiState {
        self.read_only = yes;
        self
    }

    /// Encrypts what the API adds and decrypts what it shows.
    pub fn with_encryption(
        mut self,
        keyring: Option<std::sync::Arc<crate::crypto::Keyring>>,
    ) -> ApiState {
        self.keyring = keyring;
        self
    }

    fn queue(&self, name: &str) -> Queue {
        let q = Queue::with_conn(self.conn.clone(), name);
        match &self.keyring {
            Some(k) => q.with_encryption(k.clone()),
            None => q,
        }
    }
}

/// What every handler of `serve` can extract.
#[derive(Clone)]
pub(crate) struct AppState {
    api: ApiState,
    ops: OpsState,
}

impl FromRef<AppState> for OpsState {
    fn from_ref(s: &AppState) -> OpsState {
        s.ops.clone()
    }
}

impl FromRef<AppState> for ApiState {
    fn from_ref(s: &AppState) -> ApiState {
        s.api.clone()
    }
}

/// One route: method, path, whether it needs the token, and its handler.
pub(crate) struct Route {
    pub method: MethodFilter,
    pub path: &'static str,
    pub auth: bool,
    handler: MethodRouter<AppState>,
}

fn r<H, T>(method: MethodFilter, path: &'static str, auth: bool, h: H) -> Route
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    Route {
        method,
        path,
        auth,
        handler: on(method, h),
    }
}

/// Every route of `serve`: the one list both the router and [`super::routes`] read.
pub(crate) fn table() -> Vec<Route> {
    use MethodFilter as M;
    vec![
        r(M::GET, "/metrics", false, ops::metrics),
        r(M::GET, "/healthz", false, ops::healthz),
        r(M::GET, "/readyz", false, ops::readyz),
        r(M::GET, "/openapi.json", false, openapi),
        r(M::GET, "/v1/queues", true, list_queues),
        r(M::GET, "/v1/queues/{queue}", true, queue_counts),
        r(M::POST, "/v1/queues/{queue}/pause", true, pause),
        r(M::POST, "/v1/queues/{queue}/resume", true, resume),
        r(M::POST, "/v1/queues/{queue}/limits", true, set_limits),
        r(
            M::GET,
            "/v1/queues/{queue}/schedulers",
            true,
            list_schedulers,
        ),
        r(
            M::GET,
            "/v1/queues/{queue}/schedulers/{id}",
            true,
            get_scheduler,
        ),
        r(
            M::PUT,
            "/v1/queues/{queue}/schedulers/{id}",
            true,
            put_scheduler,
        ),
        r(
            M::DELETE,
            "/v1/queues/{queue}/schedulers/{id}",
            true,
            delete_scheduler,
        ),
        r(M::GET, "/v1/queues/{queue}/events", true, events::events),
        r(M::POST, "/v1/queues/{queue}/jobs", true, add_job),
        r(M::POST, "/v1/queues/{queue}/flows", true, flows::add_flow),
        r(M::GET, "/v1/queues/{queue}/jobs", true, list_jobs),
        r(M::GET, "/v1/queues/{queue}/jobs/{id}", true, get_job),
        r(M::DELETE, "/v1/queues/{queue}/jobs/{id}", true, remove_job),
        r(
            M::POST,
            "/v1/queues/{queue}/jobs/{id}/cancel",
            true,
            cancel_job,
        ),
        r(
            M::POST,
            "/v1/queues/{queue}/jobs/{id}/retry",
            true,
            retry_job,
        ),
    ]
}

/// The whole `serve` app.
pub(crate) fn router(api: ApiState, ops: OpsState) -> Router {
    let state = AppState { api, ops };
    let (mut open, mut guarded) = (Router::new(), Router::new());
    for route in table() {
        if route.auth {
            guarded = guarded.route(route.path, route.handler);
        } else {
            open = open.route(route.path, route.handler);
        }
    }
    if state.api.read_only {
        guarded = guarded.route_layer(axum::middleware::from_fn(auth::refuse_writes));
    }
    if state.api.tokens.any() {
        guarded = guarded.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_token,
        ));
    }
    open.merge(guarded)
        .fallback(no_route)
        .method_not_allowed_fallback(no_method)
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY_BYTES))
        .with_state(state)
}
