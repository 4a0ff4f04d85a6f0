//! The `baton serve` HTTP API against real redis-server processes: routes, status
//! codes, auth, the refusal to listen openly without a token, readiness, and the
//! OpenAPI document against the router.

mod auth;
mod bad_input;
mod jobs;
mod ops;
pub(crate) mod support;
