//! The page shell every dashboard page shares, and small formatting helpers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::session::Viewer;

/// Bumps asset URLs with the version so browsers fetch new ones after an upgrade.
const ASSET_V: &str = env!("CARGO_PKG_VERSION");

/// The cookie carrying the one-line outcome of the last action to the next page.
const FLASH: &str = "baton_flash";

/// A whole page: title, the viewer's bar, and the live region.
pub(super) struct Page {
    title: String,
    body: Markup,
    viewer: Option<Viewer>,
    /// The URL the script re-fetches the live region from (`?part=live`).
    live: Option<String>,
    /// How often the live region is re-fetched (ms; None: the script's default, 3 s).
    period_ms: Option<u64>,
    flash: Option<String>,
}

impl Page {
    /// A page for `viewer`.
    pub fn new(title: impl Into<String>, viewer: &Viewer, body: Markup) -> Page {
        Page {
            title: title.into(),
            body,
            viewer: Some(viewer.clone()),
            live: None,
            period_ms: None,
            flash: None,
        }
    }

    /// A page without a viewer (login, errors).
    pub fn bare(title: impl Into<String>, body: Markup) -> Page {
        Page {
            title: title.into(),
            body,
            viewer: None,
            live: None,
            period_ms: None,
            flash: None,
        }
    }

    /// Refreshes its main region from `url` every few seconds.
    pub fn live(mut self, url: String) -> Page {
        self.live = Some(url);
        self
    }

    /// Refreshes the live region every `ms` instead of every 3 s (a running bulk
    /// action's progress).
    pub fn period_ms(mut self, ms: u64) -> Page {
        self.period_ms = Some(ms);
        self
    }

    /// Shows (and clears) the outcome of the last action, if the request carries one.
    pub fn flash_from(mut self, headers: &HeaderMap) -> Page {
        self.flash = read_flash(headers);
        self
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let v = self.viewer.as_ref();
        let markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (self.title) " · baton" }
                    link rel="icon" type="image/svg+xml" href={ "/ui/assets/favicon.svg?v=" (ASSET_V) };
                    link rel="stylesheet" href={ "/ui/assets/app.css?v=" (ASSET_V) };
                    script src={ "/ui/assets/app.js?v=" (ASSET_V) } defer {}
                }
                body {
                    header.top {
                        a.brand href="/" { "baton" }
                        nav { a href="/" { "Overview" } }
                        span.grow {}
                        @if let Some(v) = v {
                            @if let Some(why) = v.read_only_why {
                                span.badge.readonly title=(why) { "read-only" }
                            }
                            @if v.logged_in {
                                form.inline method="post" action="/ui/logout" {
                                    input type="hidden" name="csrf" value=(v.csrf);
                                    button.link type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                    @if let Some(f) = &self.flash {
                        @let error = f.starts_with("error: ");
                        p.flash.error[error] role="status" #flash { (f) }
                    }
                    main #live data-live=[self.live.as_deref()] data-period=[self.period_ms] {
                        (self.body)
                    }
                }
            }
        };
        let mut resp = Html(markup.into_string()).into_response();
        if self.flash.is_some() {
            resp.headers_mut()
                .append(header::SET_COOKIE, flash_cookie("", 0));
        }
        resp
    }
}

/// Only the live region's HTML (the answer to `?part=live`).
pub(super) fn part(body: Markup) -> Response {
    Html(body.into_string()).into_response()
}

/// An error page with `status`.
pub(super) fn error_page(status: StatusCode, title: &str, why: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p.flash.error role="alert" { (why) }
        p { a href="/" { "Back to the overview" } }
    };
    let mut resp = Page::bare(title, body).into_response();
    *resp.status_mut() = status;
    resp
}

/// A library error as a page: the status the API would answer, the error's text.
pub(super) fn fail(e: crate::Error) -> Response {
    use crate::Error as E;
    let status = match &e {
        E::NotFound { .. } => StatusCode::NOT_FOUND,
        E::InvalidState { .. } | E::LockLost(_) => StatusCode::CONFLICT,
        E::Invalid(_) | E::Encode(_) | E::Decode(_) | E::PayloadTooLarge { .. } => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::SERVICE_UNAVAILABLE,
    };
    if status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(error = %e, "dashboard: redis call failed");
    }
    error_page(status, "Error", &e.to_string())
}

fn flash_cookie(value: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{FLASH}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("baton_flash=; Path=/; Max-Age=0"))
}

/// A redirect to `to` that shows `message` there once.
pub(super) fn redirect_with_flash(to: &str, message: &str) -> Response {
    let encoded: String = url::form_urlencoded::byte_serialize(message.as_bytes()).collect();
    let mut resp = axum::response::Redirect::to(to).into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, flash_cookie(&encoded, 60));
    resp
}

fn read_flash(headers: &HeaderMap) -> Option<String> {
    let raw = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == FLASH)?
        .1;
    let text: String = url::form_urlencoded::parse(format!("m={raw}").as_bytes())
        .next()?
        .1
        .chars()
        .take(500)
        .collect();
    (!text.is_empty()).then_some(text)
}

/// The pairs of a urlencoded form body, repeated names kept.
pub(super) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Now, ms since the epoch (this server's clock).
pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A time as `2026-01-31 12:00:00Z` (UTC).
pub(super) fn time(ms: u64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replacen('T', " ", 1)
}

/// A span as `3m 12s`, two units at most.
pub(super) fn span(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0 if ms > 0 => format!("{ms}ms"),
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

/// A time with how long ago (or how far ahead) it is, in a `<time>` element.
pub(super) fn when(ms: u64, now: u64) -> Markup {
    let rel = if ms <= now {
        format!("{} ago", span(now - ms))
    } else {
        format!("in {}", span(ms - now))
    };
    html! { time datetime=(time(ms)) title=(time(ms)) { (rel) } }
}

/// A number with thin spaces between thousands: 1 000 000.
pub(super) fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

/// JSON, indented, for a `<pre>` (escaped by maud when spliced).
pub(super) fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// A path segment or query value, percent-encoded: every byte but the unreserved
/// ones (queue names and job ids may hold `/`, `?`, `#`, `%`).
pub(super) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The hidden CSRF field every form carries.
pub(super) fn csrf_field(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(250), "250ms");
        assert_eq!(span(61_000), "1m 1s");
        assert_eq!(span(3_600_000 * 25), "1d 1h");
        assert_eq!(count(1_000_000), "1\u{202f}000\u{202f}000");
        assert_eq!(count(999), "999");
        assert_eq!(time(0), "1970-01-01 00:00:00Z");
        assert_eq!(enc("a/b c?%"), "a%2Fb%20c%3F%25");
    }

    #[test]
    fn values_are_escaped() {
        let evil = "<script>alert(1)</script>";
        let m = html! { p { (evil) } };
        assert!(!m.into_string().contains("<script>"));
    }
}
