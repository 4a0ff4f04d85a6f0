//! `GET/POST /ui/queues/{queue}/add`: add a job from the browser, as `baton add` and
//! `POST /v1/queues/{queue}/jobs` do. The form's fields become a
//! [`JobRequest`](crate::validate::JobRequest), the one reader of a new job's options,
//! so the page takes the same names, units and limits as the CLI and the API; then the
//! job is added through [`Queue::add`](crate::Queue::add) and the browser goes to its
//! page.
//!
//! The form has a page of its own, not a box on the queue page: the queue page's live
//! refresh would replace a half-typed payload.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;

use super::fields::{self, Fields};
use super::layout::{self, csrf_field, enc, redirect_with_flash, Page};
use super::session::Viewer;
use super::UiState;
use crate::error::Error;
use crate::job::JobOptions;
use crate::validate::JobRequest;

/// The form's fields as a [`JobRequest`], every option checked as the library checks
/// it: the job's name, payload and options, or why not.
fn read(f: &Fields) -> Result<(String, serde_json::Value, JobOptions), String> {
    let Some(name) = f.opt("name") else {
        return Err("give the job a name (what kind of work it is)".into());
    };
    let data = f.json("data", "the payload")?;
    let req = JobRequest {
        name: Some(name.clone()),
        job_id: f.opt("job_id"),
        delay: f.opt("delay"),
        priority: f.whole("priority", "priority")?,
        attempts: f.whole("attempts", "attempts")?,
        group: f.opt("group"),
        backoff: f.opt("backoff"),
        timeout: f.opt("timeout"),
        dedup: f.opt("dedup"),
        dedup_ttl: f.opt("dedup_ttl"),
        debounce: f.opt("debounce"),
        ..JobRequest::default()
    };
    let opts = req.options().map_err(|e| e.reason())?;
    Ok((name, data, opts))
}

/// The form, filled with `f`, with `why` it was refused.
fn form_page(
    v: &Viewer,
    queue: &str,
    f: &Fields,
    why: Option<&str>,
    status: StatusCode,
) -> Response {
    let post_to = format!("/ui/queues/{}/add", enc(queue));
    // Placeholders show what an empty field leaves.
    let defaults = JobOptions::default();
    let body = html! {
        h1 { "Add a job to " a.mono href={ "/ui/queues/" (enc(queue)) } { (queue) } }
        (fields::error(why))
        form.fields #add-job method="post" action=(post_to) {
            (csrf_field(v))
            (fields::text(f, "name", "Name", "send-email", "what kind of work: workers pick their handler by it"))
            (fields::json_area(f, "data", "Payload", "{\"to\": \"ada@example.com\"}"))
            (fields::text(f, "delay", "Delay", "none", "run no earlier than this from now (30s, 5m)"))
            (fields::text(f, "priority", "Priority", "none", "1 is the highest, larger numbers lower"))
            (fields::text(f, "attempts", "Attempts", &defaults.attempts.to_string(), "in all (1 = no retry)"))
            (fields::text(f, "group", "Group", "", "jobs of one group share the group's limits"))
            (fields::text(f, "job_id", "Job id", "generated", "your own id: adding an existing one changes nothing"))
            (fields::text(f, "dedup", "Dedup key", "", "while a job added with it stands, adds with it add nothing"))
            (fields::text(f, "dedup_ttl", "… for", "", "ttl mode: ignore adds with the key this long (1h)"))
            (fields::text(f, "debounce", "… or debounce", "", "run this long after the last add with the key, with its payload (5s)"))
            (fields::text(f, "backoff", "Backoff", "exponential:1s:10m", "between attempts: fixed:5s or exponential:1s[:10m]"))
            (fields::text(f, "timeout", "Timeout", "none", "limit on one attempt's run time (30s)"))
            div.bar.span {
                button.primary #add type="submit" { "Add job" }
                a href={ "/ui/queues/" (enc(queue)) } { "Cancel" }
            }
        }
        p.muted.small { "The same options as " code { "baton add" } " and the API's " code { "POST /v1/queues/{queue}/jobs" } "; empty fields keep their defaults." }
    };
    let mut resp = Page::new(format!("Add a job · {queue}"), v, body).into_response();
    *resp.status_mut() = status;
    resp
}

/// The page a read-only viewer gets instead of a form.
pub(super) fn read_only(v: &Viewer) -> Response {
    layout::error_page(
        StatusCode::FORBIDDEN,
        "Read-only",
        &format!("Refused: {}.", v.read_only_why.unwrap_or("read-only")),
    )
}

/// `GET /ui/queues/{queue}/add`: the empty form.
pub(super) async fn page(Extension(v): Extension<Viewer>, Path(queue): Path<String>) -> Response {
    if let Err(e) = crate::validate::queue_name(&queue) {
        return layout::fail(e);
    }
    if !v.can_act {
        return read_only(&v);
    }
    form_page(&v, &queue, &Fields::default(), None, StatusCode::OK)
}

/// `POST /ui/queues/{queue}/add`: adds the job and goes to its page; a refusal shows
/// the form again with what was typed (status 400, nothing added).
pub(super) async fn add(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Path(queue): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(e) = crate::validate::queue_name(&queue) {
        return layout::fail(e);
    }
    let f = Fields::parse(&body);
    let (name, data, opts) = match read(&f) {
        Ok(x) => x,
        Err(why) => return form_page(&v, &queue, &f, Some(&why), StatusCode::BAD_REQUEST),
    };
    match s.queue(&queue).add(&name, &data, opts).await {
        Ok(a) => {
            let said = if a.deduplicated {
                format!("job {} stands under this dedup key: nothing added", a.id)
            } else if !a.added {
                format!("job {} already existed: nothing changed", a.id)
            } else {
                format!("job {} added", a.id)
            };
            let to = format!("/ui/queues/{}/jobs/{}", enc(&queue), enc(&a.id));
            redirect_with_flash(&to, &said)
        }
        Err(e @ (Error::Invalid(_) | Error::Encode(_) | Error::PayloadTooLarge { .. })) => {
            form_page(&v, &queue, &f, Some(&e.reason()), StatusCode::BAD_REQUEST)
        }
        Err(e) => layout::fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_as_a_job_request() {
        let f = Fields::parse(
            b"name=mail&data=%7B%22to%22%3A1%7D&priority=2&attempts=3&delay=5s&group=&dedup=k&dedup_ttl=1h",
        );
        let (name, data, o) = read(&f).unwrap();
        assert_eq!(
            (name.as_str(), data),
            ("mail", serde_json::json!({"to": 1}))
        );
        assert_eq!((o.priority, o.attempts), (2, 3));
        assert_eq!(o.delay, std::time::Duration::from_secs(5));
        assert!(o.group.is_none() && o.dedup.is_some());
        let why = |b: &[u8]| read(&Fields::parse(b)).unwrap_err();
        assert!(why(b"data=1").contains("name"));
        assert!(why(b"name=x&data=%7Bnope").contains("not valid JSON"));
        assert!(why(b"name=x&attempts=two").contains("attempts"));
        assert!(why(b"name=x&debounce=5s").contains("dedup key"));
        assert!(why(b"name=x&delay=soon").contains("not a duration"));
    }
}
