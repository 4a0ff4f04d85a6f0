//! Who is looking, and what they may do: the session cookie, the login form, CSRF.
//!
//! - With tokens set (log-in and log-out: `login`) (`BATON_API_TOKEN`, `BATON_API_READ_TOKEN`), a page without a valid
//!   session redirects to the login form; the token given there (checked as the API
//!   checks a bearer token) becomes a session cookie `baton_session`: HttpOnly,
//!   SameSite=Strict, 12 hours. The cookie holds no token: a random session id, the
//!   access level, the issue time and an HMAC-SHA256 over them, keyed by material
//!   derived from every token ([`Tokens::session_secret`](super::Tokens::session_secret)).
//! - Without tokens (loopback only, as for the API) nobody logs in: the first page
//!   view gets a session anyway, under a random per-process key, because CSRF needs one.
//! - Every POST must carry `csrf`, an HMAC of the session id (so it is different per
//!   session and cannot be guessed across sites), must not come from another origin
//!   (`Origin`, `Sec-Fetch-Site`), and must come from a viewer allowed to act.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ring::hmac;

use super::layout::{self, form_pairs};
use super::UiState;

/// The session cookie's name.
pub(super) const COOKIE: &str = "baton_session";
/// How long a session lasts, in seconds.
pub(super) const SESSION_SECS: u64 = 12 * 3600;

/// The key that signs sessions and CSRF tokens.
pub(crate) struct SessionKey(hmac::Key);

impl SessionKey {
    /// From token-derived material, or random (no tokens: sessions last as long as the
    /// process).
    pub fn new(material: Option<Vec<u8>>) -> SessionKey {
        let bytes = match material {
            Some(m) => ring::digest::digest(&ring::digest::SHA256, &m)
                .as_ref()
                .to_vec(),
            None => random_bytes::<32>().to_vec(),
        };
        SessionKey(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
    }

    fn sign(&self, what: &str) -> String {
        B64.encode(hmac::sign(&self.0, what.as_bytes()).as_ref())
    }

    fn verify(&self, what: &str, mac: &str) -> bool {
        B64.decode(mac)
            .is_ok_and(|m| hmac::verify(&self.0, what.as_bytes(), &m).is_ok())
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .expect("the system's random source works");
    b
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Level {
    Admin,
    Read,
}

impl Level {
    fn tag(self) -> &'static str {
        match self {
            Level::Admin => "a",
            Level::Read => "r",
        }
    }
}

/// A verified session.
pub(super) struct Session {
    sid: String,
    level: Level,
}

impl Session {
    pub(super) fn cookie_value(&self, key: &SessionKey) -> String {
        let body = format!("{}.{}.{}", self.sid, self.level.tag(), now_secs());
        format!("{body}.{}", key.sign(&format!("session|{body}")))
    }

    fn parse(value: &str, key: &SessionKey) -> Option<Session> {
        let (body, mac) = value.rsplit_once('.')?;
        if !key.verify(&format!("session|{body}"), mac) {
            return None;
        }
        let mut it = body.split('.');
        let (sid, level, issued) = (it.next()?, it.next()?, it.next()?);
        let issued: u64 = issued.parse().ok()?;
        if now_secs().saturating_sub(issued) > SESSION_SECS {
            return None;
        }
        let level = match level {
            "a" => Level::Admin,
            "r" => Level::Read,
            _ => return None,
        };
        Some(Session {
            sid: sid.to_string(),
            level,
        })
    }

    pub(super) fn new(level: Level) -> Session {
        Session {
            sid: B64.encode(random_bytes::<16>()),
            level,
        }
    }
}

/// The viewer of a page, as the gate found them (a request extension).
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// May use actions.
    pub can_act: bool,
    /// Why not, when not.
    pub read_only_why: Option<&'static str>,
    /// Logged in with a token (so there is a log-out button).
    pub logged_in: bool,
    /// Payloads, results, errors, steps and logs are hidden from this viewer.
    pub hide_payloads: bool,
    /// The CSRF token every form of this viewer's pages carries.
    pub csrf: String,
}

fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub(super) fn set_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie values are base64 and digits")
}

/// Behind a TLS-terminating proxy the cookie is marked Secure.
pub(super) fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// Refuses a request sent from another site. Browsers say where a request comes from
/// in `Sec-Fetch-Site` (trusted when present: `same-origin`, or `none` for one the user
/// made); older ones only in `Origin`, whose host must then be this request's `Host`
/// (`Origin: null`, which a page without referrers sends, is let through to the CSRF
/// check, which still applies to every post).
pub(super) fn cross_site(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = text("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    let Some(origin) = text(header::ORIGIN.as_str()) else {
        return false;
    };
    if origin == "null" {
        return false;
    }
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    origin_host.is_none() || origin_host != text(header::HOST.as_str())
}

pub(super) fn refuse(status: StatusCode, title: &str, why: &str) -> Response {
    layout::error_page(status, title, why)
}

/// The middleware on every dashboard page and action.
pub(super) async fn gate(State(s): State<UiState>, req: Request, next: Next) -> Response {
    let session = read_cookie(req.headers(), COOKIE).and_then(|v| Session::parse(&v, &s.key));
    let posting = req.method() == Method::POST;
    let (session, fresh) = match session {
        Some(sess) => (sess, false),
        None if s.tokens.any() => {
            if posting {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "Not logged in",
                    "Your session has ended. Log in again, then repeat the action.",
                );
            }
            let here = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let next: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
            return Redirect::to(&format!("/ui/login?next={next}")).into_response();
        }
        None if posting => {
            return refuse(
                StatusCode::FORBIDDEN,
                "No session",
                "This form came without a session. Reload the page, then repeat the action.",
            )
        }
        None => (Session::new(Level::Admin), true),
    };
    let csrf = s.key.sign(&format!("csrf|{}", session.sid));
    // Read-token-only servers have nobody who may act.
    let read_only_why = if s.read_only {
        Some("this server is read-only (baton serve --read-only)")
    } else if session.level == Level::Read {
        Some("you are logged in with a read-only token")
    } else {
        None
    };
    let viewer = Viewer {
        can_act: read_only_why.is_none(),
        read_only_why,
        logged_in: s.tokens.any(),
        hide_payloads: read_only_why.is_some() && s.hide_from_readers,
        csrf: csrf.clone(),
    };
    let req = if posting {
        let is_logout = req.uri().path() == "/ui/logout";
        if cross_site(req.headers()) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was sent from another site.",
            );
        }
        if let (false, Some(why)) = (is_logout, read_only_why) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Read-only",
                &format!("Refused: {why}."),
            );
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, crate::http::MAX_BODY_BYTES).await else {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "The form was larger than the server accepts.",
            );
        };
        let given = form_pairs(&bytes)
            .into_iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v)
            .unwrap_or_default();
        if !s.key.verify(&format!("csrf|{}", session.sid), &given) {
            return refuse(
                StatusCode::FORBIDDEN,
                "Refused",
                "The form's CSRF token is missing or wrong. Reload the page, then repeat the action.",
            );
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let secure = is_https(req.headers());
    let mut req = req;
    req.extensions_mut().insert(viewer);
    let mut resp = next.run(req).await;
    if fresh {
        resp.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&session.cookie_value(&s.key), SESSION_SECS, secure),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_verify_and_forgeries_do_not() {
        let key = SessionKey::new(Some(b"material".to_vec()));
        let s = Session::new(Level::Read);
        let v = s.cookie_value(&key);
        let back = Session::parse(&v, &key).expect("verifies");
        assert_eq!(
            (back.sid.as_str(), back.level),
            (s.sid.as_str(), Level::Read)
        );
        // Raising the level breaks the MAC.
        let forged = v.replacen(".r.", ".a.", 1);
        assert!(Session::parse(&forged, &key).is_none());
        // Another key (other tokens) does not accept it.
        assert!(Session::parse(&v, &SessionKey::new(Some(b"other".to_vec()))).is_none());
        assert!(Session::parse("garbage", &key).is_none());
    }

    #[test]
    fn other_origins_are_cross_site() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert!(!cross_site(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(!cross_site(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(cross_site(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!cross_site(&h), "the browser's word is taken");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&h));
    }
}
