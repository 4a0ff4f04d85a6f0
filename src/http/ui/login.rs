//! The login form and log-out: a token (checked as the API checks a bearer token)
//! becomes a session cookie; see `session` for what the cookie holds.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{form_pairs, Page};
use super::session::{cross_site, is_https, refuse, set_cookie, Level, Session, SESSION_SECS};
use super::UiState;
use crate::http::api::Access;

/// The query of the login form.
#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    next: Option<String>,
}

/// Only a path on this server: no scheme, no other host (`//evil`, `/\evil`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\") => {
            n.to_string()
        }
        _ => "/".into(),
    }
}

fn login_page(next: &str, problem: Option<&str>) -> maud::Markup {
    html! {
        section.login {
            h1 { "Log in to baton" }
            p { "Give the API token (BATON_API_TOKEN) or a read-only token (BATON_API_READ_TOKEN)." }
            @if let Some(p) = problem { p.flash.error role="alert" { (p) } }
            form method="post" action="/ui/login" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                button type="submit" { "Log in" }
            }
        }
    }
}

/// `GET /ui/login`.
pub(super) async fn login_form(State(s): State<UiState>, q: Query<LoginQuery>) -> Response {
    if !s.tokens.any() {
        return Redirect::to("/").into_response();
    }
    let next = safe_next(q.next.as_deref());
    Page::bare("Log in", login_page(&next, None)).into_response()
}

/// `POST /ui/login`: checks the token, sets the session cookie.
pub(super) async fn login(State(s): State<UiState>, headers: HeaderMap, body: Bytes) -> Response {
    if !s.tokens.any() {
        return Redirect::to("/").into_response();
    }
    if cross_site(&headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site.",
        );
    }
    let pairs = form_pairs(&body);
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let next = safe_next(field("next"));
    let level = match s
        .tokens
        .access(field("token").unwrap_or("").trim().as_bytes())
    {
        Access::Admin => Level::Admin,
        Access::Read => Level::Read,
        // The form again with the problem (200, as form logins answer: a 401 would
        // need a WWW-Authenticate scheme the browser does not speak).
        Access::Nothing => {
            return Page::bare("Log in", login_page(&next, Some("Wrong token."))).into_response()
        }
    };
    let session = Session::new(level);
    let mut resp = Redirect::to(&next).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            &session.cookie_value(&s.key),
            SESSION_SECS,
            is_https(&headers),
        ),
    );
    resp
}

/// `POST /ui/logout`: clears the cookie.
pub(super) async fn logout(State(s): State<UiState>) -> Response {
    let target = if s.tokens.any() { "/ui/login" } else { "/" };
    let mut resp = Redirect::to(target).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, set_cookie("", 0, false));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(
            safe_next(Some("/ui/queues/a?state=failed")),
            "/ui/queues/a?state=failed"
        );
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
