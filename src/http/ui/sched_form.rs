//! `GET/POST /ui/queues/{queue}/scheduler`: create or edit a job scheduler from the
//! browser, as `baton schedule set` and `PUT /v1/queues/{queue}/schedulers/{id}` do.
//!
//! The fields become a [`SchedulerRequest`](crate::validate::SchedulerRequest) (the one
//! reader of a scheduler as text: cron with tz, or every; start, end, limit; the job
//! template) and go to [`Queue::upsert_scheduler`](crate::Queue::upsert_scheduler),
//! which checks the rest (the cron expression, the zone, "would never run") before
//! anything is written. Editing is the same form filled from what
//! [`Queue::scheduler`](crate::Queue::scheduler) reads back; saving replaces the
//! scheduler, as an upsert does, keeping its run count and its next tick's job.
//!
//! A page of its own, like adding a job: the queue page's live refresh would replace a
//! half-typed form.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;
use serde::Deserialize;

use super::fields::{self, Fields};
use super::layout::{self, csrf_field, enc, redirect_with_flash, when, Page};
use super::session::Viewer;
use super::UiState;
use crate::error::Error;
use crate::schedule::SchedulerInfo;
use crate::validate::{JobRequest, SchedulerRequest};

/// The query of the form page: the scheduler to edit.
#[derive(Debug, Default, Deserialize)]
pub(super) struct SchedQuery {
    id: Option<String>,
}

/// The form's fields as a [`SchedulerRequest`]: the scheduler's id and what to set.
fn read(f: &Fields) -> Result<(String, SchedulerRequest), String> {
    let Some(id) = f.opt("id") else {
        return Err("give the scheduler an id".into());
    };
    let req = SchedulerRequest {
        cron: f.opt("cron"),
        tz: f.opt("tz"),
        every: f.opt("every"),
        start: f.opt("start"),
        end: f.opt("end"),
        limit: f.whole("limit", "limit")?,
        job: JobRequest {
            name: f.opt("name"),
            data: f.json("data", "the payload")?,
            priority: f.whole("priority", "priority")?,
            attempts: f.whole("attempts", "attempts")?,
            ..JobRequest::default()
        },
    };
    Ok((id, req))
}

/// RFC 3339, as the form reads start and end back.
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The form's fields filled from a stored scheduler. `sealed`: its payload is
/// encrypted and this server has no key, so the payload is left for the viewer to give
/// (saving the placeholder text would overwrite the real payload).
fn prefill(s: &SchedulerInfo, sealed: bool) -> Fields {
    let mut f = Fields::default();
    f.set("id", s.id.clone());
    f.set("editing", "1");
    if let Some(c) = &s.cron {
        f.set("cron", c.clone());
    }
    if let Some(tz) = &s.tz {
        f.set("tz", tz.clone());
    }
    if let Some(ms) = s.every_ms {
        f.set(
            "every",
            humantime::format_duration(Duration::from_millis(ms)).to_string(),
        );
    }
    f.set("name", s.name.clone());
    if !sealed && !s.data.is_null() {
        f.set("data", layout::pretty(&s.data));
    }
    if s.priority > 0 {
        f.set("priority", s.priority.to_string());
    }
    f.set("attempts", s.attempts.to_string());
    if let Some(l) = s.limit {
        f.set("limit", l.to_string());
    }
    if let Some(t) = s.start_ms {
        f.set("start", rfc3339(t));
    }
    if let Some(t) = s.end_ms {
        f.set("end", rfc3339(t));
    }
    f
}

/// The form page: new (no `existing`) or editing, filled with `f`, with `why` it was
/// refused.
fn form_page(
    v: &Viewer,
    queue: &str,
    f: &Fields,
    existing: Option<&SchedulerInfo>,
    sealed: bool,
    why: Option<&str>,
    status: StatusCode,
) -> Response {
    let post_to = format!("/ui/queues/{}/scheduler", enc(queue));
    let editing = f.raw("editing") == "1";
    let now = layout::now_ms();
    let body = html! {
        h1 {
            @if editing { "Edit job scheduler " span.mono { (f.raw("id")) } } @else { "New job scheduler" }
            " · " a.mono href={ "/ui/queues/" (enc(queue)) "#schedulers" } { (queue) }
        }
        @if let Some(s) = existing {
            p.muted #sched-now {
                "Runs so far: " (s.runs) " · next run: "
                @match s.next_run_ms { Some(t) => (when(t, now)), None => "ended" }
            }
        }
        (fields::error(why))
        @if sealed {
            p.flash.error #sealed { "Its payload is encrypted and this server has no key: give the payload again, or it becomes the one typed here." }
        }
        form.fields #sched-form method="post" action=(post_to) {
            (csrf_field(v))
            @if editing {
                input type="hidden" name="editing" value="1";
                label for="id" { "Id" }
                div { input type="text" id="id" name="id" value=(f.raw("id")) readonly; }
            } @else {
                (fields::text(f, "id", "Id", "nightly-report", "its jobs get ids sched:<id>:<tick>"))
            }
            (fields::text(f, "cron", "Cron", "0 3 * * *", "5 fields, or 6 with seconds first; or give every"))
            (fields::text(f, "tz", "Time zone", "UTC", "of the cron expression, an IANA name (Europe/Berlin)"))
            (fields::text(f, "every", "Or every", "", "a fixed interval instead of cron (30s, 5m; at least 1s)"))
            (fields::text(f, "name", "Job name", "the id", "each job's name"))
            (fields::json_area(f, "data", "Payload", "{\"report\": \"daily\"}"))
            (fields::text(f, "priority", "Priority", "none", "each job's: 1 is the highest"))
            (fields::text(f, "attempts", "Attempts", &crate::job::JobOptions::default().attempts.to_string(), "each job's, in all"))
            (fields::text(f, "limit", "Limit", "none", "at most this many jobs in all"))
            (fields::text(f, "start", "Start", "", "no tick before (2026-12-01T08:00:00Z)"))
            (fields::text(f, "end", "End", "", "no tick after"))
            div.bar.span {
                button.primary #save type="submit" { @if editing { "Save" } @else { "Create" } }
                a href={ "/ui/queues/" (enc(queue)) "#schedulers" } { "Cancel" }
            }
        }
        p.muted.small {
            "The same fields as " code { "baton schedule set" } ". Saving replaces the scheduler: "
            "job options not on this form (backoff, timeout, retention) go back to their defaults."
        }
    };
    let title = if editing {
        "Edit job scheduler"
    } else {
        "New job scheduler"
    };
    let mut resp = Page::new(format!("{title} · {queue}"), v, body).into_response();
    *resp.status_mut() = status;
    resp
}

/// Whether a payload read back is the placeholder of an encrypted one this server
/// cannot open.
fn is_sealed(s: &UiState, data: &serde_json::Value) -> bool {
    s.keyring.is_none()
        && data
            .as_str()
            .is_some_and(|t| t.starts_with("encrypted (key "))
}

/// `GET /ui/queues/{queue}/scheduler[?id=…]`: the form, new or filled from scheduler
/// `id` (new with that id when there is none).
pub(super) async fn page(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Path(queue): Path<String>,
    Query(q): Query<SchedQuery>,
) -> Response {
    if let Err(e) = crate::validate::queue_name(&queue) {
        return layout::fail(e);
    }
    if !v.can_act {
        return super::add_job::read_only(&v);
    }
    let Some(id) = q.id.filter(|i| !i.is_empty()) else {
        return form_page(
            &v,
            &queue,
            &Fields::default(),
            None,
            false,
            None,
            StatusCode::OK,
        );
    };
    match s.queue(&queue).scheduler(&id).await {
        Ok(Some(info)) => {
            let sealed = is_sealed(&s, &info.data);
            let f = prefill(&info, sealed);
            form_page(&v, &queue, &f, Some(&info), sealed, None, StatusCode::OK)
        }
        Ok(None) => {
            let mut f = Fields::default();
            f.set("id", id);
            form_page(&v, &queue, &f, None, false, None, StatusCode::OK)
        }
        Err(e @ Error::Invalid(_)) => {
            let why = e.reason();
            form_page(
                &v,
                &queue,
                &Fields::default(),
                None,
                false,
                Some(&why),
                StatusCode::BAD_REQUEST,
            )
        }
        Err(e) => layout::fail(e),
    }
}

/// `POST /ui/queues/{queue}/scheduler`: sets the scheduler and goes to its row on the
/// queue page; a refusal shows the form again with what was typed (400, nothing set).
pub(super) async fn save(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Path(queue): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(e) = crate::validate::queue_name(&queue) {
        return layout::fail(e);
    }
    let f = Fields::parse(&body);
    let refused = |why: &str| {
        form_page(
            &v,
            &queue,
            &f,
            None,
            false,
            Some(why),
            StatusCode::BAD_REQUEST,
        )
    };
    let (id, req) = match read(&f) {
        Ok(x) => x,
        Err(why) => return refused(&why),
    };
    let scheduler = match req.scheduler(&id) {
        Ok(s) => s,
        Err(e) => return refused(&e.reason()),
    };
    let q = s.queue(&queue);
    // "Create" must not silently replace a scheduler of the same id: that is "Edit".
    if f.raw("editing") != "1" {
        match q.scheduler(&id).await {
            Ok(None) => {}
            Ok(Some(_)) => {
                return refused(&format!(
                    "job scheduler {id} exists already: edit it from the queue page instead"
                ))
            }
            Err(e @ Error::Invalid(_)) => return refused(&e.reason()),
            Err(e) => return layout::fail(e),
        }
    }
    match q.upsert_scheduler(&id, &scheduler).await {
        Ok(info) => {
            let next = match info.next_run_ms {
                Some(t) => format!("next run {}", layout::time(t)),
                None => "it has ended".to_string(),
            };
            redirect_with_flash(
                &super::schedulers::link(&queue, &id),
                &format!("job scheduler {id} set; {next}"),
            )
        }
        Err(e @ (Error::Invalid(_) | Error::Encode(_) | Error::PayloadTooLarge { .. })) => {
            refused(&e.reason())
        }
        Err(e) => layout::fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_reads_as_a_scheduler_request() {
        let f = Fields::parse(b"id=nightly&cron=0+3+*+*+*&tz=Europe%2FBerlin&name=report&data=%7B%7D&attempts=2&limit=");
        let (id, req) = read(&f).unwrap();
        assert_eq!(id, "nightly");
        let s = req.scheduler(&id).unwrap();
        assert_eq!(
            s.repeat,
            crate::schedule::Repeat::cron_in("0 3 * * *", "Europe/Berlin")
        );
        assert_eq!(
            (s.name.as_str(), s.opts.attempts, s.limit),
            ("report", 2, None)
        );
        assert!(read(&Fields::parse(b"cron=*")).unwrap_err().contains("id"));
        let both = read(&Fields::parse(b"id=x&cron=*&every=1s")).unwrap().1;
        assert!(both
            .scheduler("x")
            .unwrap_err()
            .to_string()
            .contains("not both"));
    }

    #[test]
    fn an_every_scheduler_fills_the_form_back() {
        let info = SchedulerInfo {
            id: "tidy".into(),
            cron: None,
            tz: None,
            every_ms: Some(90_000),
            name: "tidy".into(),
            data: serde_json::json!({"a": 1}),
            priority: 0,
            attempts: 1,
            start_ms: None,
            end_ms: None,
            limit: Some(4),
            runs: 0,
            last_run_ms: None,
            next_run_ms: None,
            created_ms: 0,
            updated_ms: 0,
        };
        let f = prefill(&info, false);
        assert_eq!(
            (f.raw("every"), f.raw("limit"), f.raw("priority")),
            ("1m 30s", "4", "")
        );
        let (_, req) = read(&f).unwrap();
        let back = req.scheduler("tidy").unwrap();
        assert_eq!(
            back.repeat,
            crate::schedule::Repeat::every(Duration::from_secs(90))
        );
        assert_eq!(prefill(&info, true).raw("data"), "");
    }
}
