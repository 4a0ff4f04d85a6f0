//! Bearer-token authentication of the `/v1` routes: an admin token for everything,
//! read-only tokens for `GET`.
//!
//! Tokens are compared with `subtle` (constant time in the bytes compared, so a wrong
//! guess does not reveal how many leading bytes were right), and every configured
//! token is compared on each request, so which one matched does not show in the time.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{Choice, ConstantTimeEq};

use super::errors::ApiError;
use super::ApiState;

/// The tokens the API accepts. Empty tokens count as none.
#[derive(Clone, Default)]
pub(crate) struct Tokens {
    admin: Option<Arc<str>>,
    read: Arc<[Arc<str>]>,
}

/// What a presented token may do.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Admin,
    Read,
    Nothing,
}

impl Tokens {
    pub fn new(admin: Option<String>, read: Vec<String>) -> Tokens {
        Tokens {
            admin: admin.filter(|t| !t.is_empty()).map(Arc::from),
            read: read
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(Arc::from)
                .collect(),
        }
    }

    /// True when any token is set: the `/v1` routes then require one.
    pub fn any(&self) -> bool {
        self.admin.is_some() || !self.read.is_empty()
    }

    /// For the start-up log line, without the tokens themselves.
    pub fn describe(&self) -> String {
        match (self.admin.is_some(), self.read.len()) {
            (false, 0) => "none (loopback only)".into(),
            (true, 0) => "admin token".into(),
            (a, n) => format!(
                "{}{n} read-only token{}",
                if a { "admin token and " } else { "" },
                if n == 1 { "" } else { "s" }
            ),
        }
    }

    /// The dashboard's session key material when any token is set: derived from every
    /// token (the admin one included), so replicas with the same tokens accept each
    /// other's sessions, changing a token ends every session, and a read-only token's
    /// holder cannot compute it.
    pub fn session_secret(&self) -> Option<Vec<u8>> {
        if !self.any() {
            return None;
        }
        let mut material = b"baton dashboard session v1".to_vec();
        for t in self.admin.iter().chain(self.read.iter()) {
            material.push(0);
            material.extend_from_slice(t.as_bytes());
        }
        Some(material)
    }

    /// What the presented token `given` may do.
    pub(crate) fn access(&self, given: &[u8]) -> Access {
        let admin = match &self.admin {
            Some(t) => given.ct_eq(t.as_bytes()),
            None => Choice::from(0),
        };
        let read = self
            .read
            .iter()
            .fold(Choice::from(0), |acc, t| acc | given.ct_eq(t.as_bytes()));
        if bool::from(admin) {
            Access::Admin
        } else if bool::from(read) {
            Access::Read
        } else {
            Access::Nothing
        }
    }
}

/// Whether `method` only reads (a read-only token may use it).
fn reads(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

/// The middleware on every `/v1` route when a token is set: 401 without a valid token,
/// 403 for a read-only token on a route that changes something.
pub(super) async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(given) = given else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing `Authorization: Bearer <token>` header",
        )
        .into_response();
    };
    match s.tokens.access(given.as_bytes()) {
        Access::Admin => next.run(req).await,
        Access::Read if reads(req.method()) => next.run(req).await,
        Access::Read => {
            let method = req.method().as_str();
            let why = if s.tokens.admin.is_some() {
                format!(
                    "this token may only read; {method} needs the admin token (BATON_API_TOKEN)"
                )
            } else {
                format!("this API is read-only: no admin token (BATON_API_TOKEN) is set, so {method} is refused")
            };
            ApiError::new(StatusCode::FORBIDDEN, why).into_response()
        }
        Access::Nothing => {
            ApiError::new(StatusCode::UNAUTHORIZED, "wrong bearer token").into_response()
        }
    }
}

/// The middleware on every `/v1` route under `baton serve --read-only`: 403 to
/// anything but a read, whatever the token.
pub(super) async fn refuse_writes(req: Request, next: Next) -> Response {
    if reads(req.method()) {
        return next.run(req).await;
    }
    let why = format!(
        "this server is read-only (baton serve --read-only): {} is refused",
        req.method()
    );
    ApiError::new(StatusCode::FORBIDDEN, why).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_read_and_wrong_tokens() {
        let t = Tokens::new(Some("admin".into()), vec!["r1".into(), "r2".into()]);
        assert_eq!(t.access(b"admin"), Access::Admin);
        assert_eq!(t.access(b"r1"), Access::Read);
        assert_eq!(t.access(b"r2"), Access::Read);
        assert_eq!(t.access(b"r3"), Access::Nothing);
        assert_eq!(t.access(b"admin2"), Access::Nothing);
        assert_eq!(t.access(b""), Access::Nothing);
        let read_only = Tokens::new(Some(String::new()), vec!["r".into(), String::new()]);
        assert!(read_only.any());
        assert_eq!(read_only.access(b""), Access::Nothing);
        assert_eq!(read_only.access(b"r"), Access::Read);
        assert!(!Tokens::new(None, vec![String::new()]).any());
    }
}
