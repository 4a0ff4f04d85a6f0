//! The web dashboard of `baton serve`, at `/` and under `/ui/`: server-rendered HTML
//! pages (overview, queue, job) with actions, for an on-call engineer with a browser.
//!
//! - **Rendering**: [`maud`] builds every page; it escapes each value it splices, so no
//!   job name, id, payload or error can inject markup. The one stylesheet and the one
//!   small script are embedded in the binary (`assets/`), no CDN and no build step.
//! - **Reads**: every page costs a bounded number of Redis commands whatever a queue's
//!   size: counts (LLEN/ZCARD), a page of ids (LRANGE/ZRANGE with offset and limit),
//!   one HMGET per listed job, ZCOUNT by finish time for jobs per hour. Nothing scans a
//!   queue: "filter by name" looks only at the next [`NAME_WINDOW`] jobs of the state
//!   from the page's offset, and says so.
//! - **Actions** go through the library ([`crate::Queue`]): retry, cancel, remove, run
//!   a delayed job now, on one job, on ticked jobs or on every job of a state (in
//!   batches run by the server, with a progress page), pause/resume and clean. Each
//!   that destroys first shows a confirmation page. Limits, the events stream and
//!   removing a scheduler are set from the queue page; adding a job (`add_job`) and
//!   creating or editing a job scheduler (`sched_form`) have form pages of their own,
//!   read with the same parsers as the CLI and the API.
//! - **Safety** (`session`): the API's tokens; a login form sets an HttpOnly,
//!   SameSite=Strict session cookie (the API keeps its bearer header); every POST
//!   carries a CSRF token bound to the session; a strict Content-Security-Policy (no
//!   inline script or style), no framing, nosniff. `--read-only` or a read-only token
//!   hides every action and refuses its POST.
//! - **Live**: the script re-fetches the page's live region (`?part=live`, the same
//!   server-rendered HTML) every few seconds, without reloading the page.

mod actions;
mod add_flow;
mod add_job;
mod assets;
mod bulk;
mod events;
mod fields;
mod job_page;
mod layout;
mod limits;
mod login;
mod names;
mod overview;
mod queue_page;
mod sched_form;
mod schedulers;
mod session;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::api::Tokens;
use crate::queue::Queue;

pub(crate) use session::SessionKey;

/// Jobs a name filter looks at, from the page's offset on.
pub const NAME_WINDOW: usize = 1000;

/// What the dashboard's handlers share.
#[derive(Clone)]
pub(crate) struct UiState {
    conn: crate::conn::SharedConn,
    tokens: Tokens,
    keyring: Option<Arc<crate::crypto::Keyring>>,
    /// `--read-only`: nobody may act, whatever their token.
    read_only: bool,
    /// `--hide-payloads-from-readers`: read-only viewers see no payload, result, error
    /// text, steps or logs.
    hide_from_readers: bool,
    key: Arc<SessionKey>,
    names: names::QueueNames,
    /// Bulk actions on every job of a state, running or lately ended.
    runs: bulk::Runs,
}

impl UiState {
    pub fn new(
        conn: crate::conn::SharedConn,
        tokens: Tokens,
        keyring: Option<Arc<crate::crypto::Keyring>>,
        read_only: bool,
        hide_from_readers: bool,
        rescan: bool,
    ) -> UiState {
        let key = Arc::new(SessionKey::new(tokens.session_secret()));
        let names = names::QueueNames::default();
        names.warm(conn.clone(), rescan);
        UiState {
            names,
            runs: bulk::Runs::default(),
            conn,
            tokens,
            keyring,
            read_only,
            hide_from_readers,
            key,
        }
    }

    fn queue(&self, name: &str) -> Queue {
        let q = Queue::with_conn(self.conn.clone(), name);
        match &self.keyring {
            Some(k) => q.with_encryption(k.clone()),
            None => q,
        }
    }
}

/// The dashboard's routes, to be merged with the API's.
pub(crate) fn router(state: UiState) -> Router {
    let gated = Router::new()
        .route("/", get(overview::page))
        .route("/ui/queues/{queue}", get(queue_page::page))
        .route("/ui/queues/{queue}/actions", post(actions::queue_action))
        .route(
            "/ui/queues/{queue}/add",
            get(add_job::page).post(add_job::add),
        )
        .route(
            "/ui/queues/{queue}/flow",
            get(add_flow::page).post(add_flow::add),
        )
        .route(
            "/ui/queues/{queue}/scheduler",
            get(sched_form::page).post(sched_form::save),
        )
        .route("/ui/queues/{queue}/bulk/{run}", get(bulk::progress_page))
        .route("/ui/queues/{queue}/jobs/{id}", get(job_page::page))
        .route(
            "/ui/queues/{queue}/jobs/{id}/actions",
            post(actions::job_action),
        )
        .route("/ui/logout", post(login::logout))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::gate,
        ));
    Router::new()
        .route("/ui/login", get(login::login_form).post(login::login))
        .route("/ui/assets/{file}", get(assets::serve))
        .merge(gated)
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// The Content-Security-Policy of every dashboard response: only this origin's own
/// script and stylesheet, no inline code, no framing, forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the security headers to every dashboard response.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
