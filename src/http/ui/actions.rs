//! The dashboard's actions (`POST .../actions`), each through the library: retry,
//! cancel, remove, run now (promote) on one job, on ticked jobs or on every job of a
//! state; pause, resume and clean a queue; set its limits (`limits`); turn its events
//! stream on or off (`events`); remove a job scheduler.
//!
//! Every action but pause/resume answers first with a confirmation page that repeats
//! the form with `confirmed=1`. "Every job of a state" runs in a task of the server in
//! batches (see `bulk`), for at most [`super::bulk::MAX_PER_REQUEST`] jobs per press,
//! with a progress page that refreshes itself; the outcome says how many are left, and
//! the same button goes on. The session gate has already checked the CSRF token, the
//! origin and that this viewer may act.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::html;

use super::bulk::plural;
use super::layout::{self, count, csrf_field, enc, form_pairs, redirect_with_flash, Page};
use super::session::Viewer;
use super::UiState;
use crate::error::Error;
use crate::job::JobState;
use crate::queue::{Cancelled, Queue};

/// Most ticked ids one form may carry.
const MAX_IDS: usize = 1000;

/// A job action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JobAction {
    Retry,
    Cancel,
    Remove,
    Promote,
}

impl JobAction {
    fn parse(s: &str) -> Option<JobAction> {
        Some(match s {
            "retry" => JobAction::Retry,
            "cancel" => JobAction::Cancel,
            "remove" => JobAction::Remove,
            "promote" => JobAction::Promote,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            JobAction::Retry => "retry",
            JobAction::Cancel => "cancel",
            JobAction::Remove => "remove",
            JobAction::Promote => "promote",
        }
    }
    fn verb(self) -> &'static str {
        match self {
            JobAction::Retry => "Retry",
            JobAction::Cancel => "Cancel",
            JobAction::Remove => "Remove (delete for good)",
            JobAction::Promote => "Run now",
        }
    }
    pub(super) fn done(self) -> &'static str {
        match self {
            JobAction::Retry => "queued again",
            JobAction::Cancel => "cancelled",
            JobAction::Remove => "removed",
            JobAction::Promote => "made ready now",
        }
    }
}

/// What one job action did.
pub(super) enum Did {
    Done,
    /// A cancel sent to a running job's worker.
    Requested,
}

pub(super) async fn apply(q: &Queue, action: JobAction, id: &str) -> crate::Result<Did> {
    match action {
        JobAction::Retry => q.retry(id).await.map(|_| Did::Done),
        JobAction::Cancel => q.cancel(id).await.map(|c| match c {
            Cancelled::Now => Did::Done,
            Cancelled::Requested => Did::Requested,
        }),
        JobAction::Remove => q.remove(id).await.map(|_| Did::Done),
        JobAction::Promote => q.promote(id).await.map(|_| Did::Done),
    }
}

/// The fields of a posted form.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn confirmed(&self) -> bool {
        self.get("confirmed") == Some("1")
    }
    /// Where to go afterwards: a path on this server, else `default`.
    fn back(&self, default: String) -> String {
        match self.get("back") {
            Some(b) if b.starts_with('/') && !b.starts_with("//") && !b.starts_with("/\\") => {
                b.to_string()
            }
            _ => default,
        }
    }
}

/// The confirmation page: `question`, and the same form again with `confirmed=1`.
fn confirm(
    v: &Viewer,
    post_to: &str,
    form: &Form,
    question: String,
    yes: &str,
    back: &str,
) -> Response {
    let body = html! {
        section.confirm {
            h1 { "Confirm" }
            p #question { (question) }
            form method="post" action=(post_to) {
                (csrf_field(v))
                @for (k, val) in &form.0 {
                    @if k != "csrf" && k != "confirmed" {
                        input type="hidden" name=(k) value=(val);
                    }
                }
                input type="hidden" name="confirmed" value="1";
                div.bar {
                    button.primary #confirm type="submit" { (yes) }
                    a #cancel-confirm href=(back) { "No, go back" }
                }
            }
        }
    };
    Page::new("Confirm", v, body).into_response()
}

fn bad(why: &str) -> Response {
    layout::error_page(StatusCode::BAD_REQUEST, "Bad request", why)
}

/// `POST /ui/queues/{queue}/jobs/{id}/actions`.
pub(super) async fn job_action(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Path((queue, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form = Form(form_pairs(&body));
    let Some(action) = form.get("action").and_then(JobAction::parse) else {
        return bad("unknown action");
    };
    let job_url = format!("/ui/queues/{}/jobs/{}", enc(&queue), enc(&id));
    if !form.confirmed() {
        let question = format!("{} job {id} of queue {queue}?", action.verb());
        let yes = format!("Yes, {}", action.name());
        return confirm(
            &v,
            &format!("{job_url}/actions"),
            &form,
            question,
            &yes,
            &job_url,
        );
    }
    let q = s.queue(&queue);
    match apply(&q, action, &id).await {
        Ok(Did::Done) if action == JobAction::Remove => redirect_with_flash(
            &format!("/ui/queues/{}", enc(&queue)),
            &format!("job {id} removed"),
        ),
        Ok(Did::Done) => redirect_with_flash(&job_url, &format!("job {id} {}", action.done())),
        Ok(Did::Requested) => redirect_with_flash(
            &job_url,
            &format!("cancel sent to the worker running job {id}; it ends cancelled"),
        ),
        Err(e @ (Error::NotFound { .. } | Error::InvalidState { .. })) => {
            redirect_with_flash(&job_url, &format!("error: {e}"))
        }
        Err(e) => layout::fail(e),
    }
}

/// `POST /ui/queues/{queue}/actions`.
pub(super) async fn queue_action(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Path(queue): Path<String>,
    body: Bytes,
) -> Response {
    if let Err(e) = crate::validate::queue_name(&queue) {
        return layout::fail(e);
    }
    let form = Form(form_pairs(&body));
    let q = s.queue(&queue);
    let queue_url = format!("/ui/queues/{}", enc(&queue));
    let back = form.back(queue_url.clone());
    let post_to = format!("{queue_url}/actions");
    let state = form.get("state").and_then(JobState::parse);
    match form.get("action") {
        Some("pause") => {
            return match q.pause().await {
                Ok(()) => redirect_with_flash(
                    &back,
                    &format!("queue {queue} paused: workers claim nothing new"),
                ),
                Err(e) => layout::fail(e),
            }
        }
        Some("resume") => {
            return match q.resume().await {
                Ok(()) => redirect_with_flash(&back, &format!("queue {queue} resumed")),
                Err(e) => layout::fail(e),
            }
        }
        Some("limits") => {
            return match super::limits::apply(&q, |k| form.get(k).map(String::from)).await {
                Ok(said) => redirect_with_flash(&back, &said),
                Err(e @ Error::Invalid(_)) => bad(&e.to_string()),
                Err(e) => layout::fail(e),
            };
        }
        Some(a @ ("events_on" | "events_off")) => {
            let on = a == "events_on";
            return match super::events::apply(&q, on, form.get("max_len")).await {
                Ok(said) => redirect_with_flash(&back, &said),
                Err(e @ Error::Invalid(_)) => bad(&e.to_string()),
                Err(e) => layout::fail(e),
            };
        }
        Some("remove_scheduler") => {
            let Some(id) = form.get("scheduler") else {
                return bad("remove_scheduler needs the scheduler's id");
            };
            if !form.confirmed() {
                let question = format!(
                    "Remove job scheduler {id} of queue {queue} (and its job for a tick not yet come)?"
                );
                return confirm(&v, &post_to, &form, question, "Yes, remove it", &back);
            }
            return match q.remove_scheduler(id).await {
                Ok(true) => redirect_with_flash(&back, &format!("job scheduler {id} removed")),
                Ok(false) => redirect_with_flash(&back, &format!("no job scheduler {id}")),
                Err(e @ Error::Invalid(_)) => bad(&e.to_string()),
                Err(e) => layout::fail(e),
            };
        }
        Some("clean") => {
            let Some(state) = state.filter(|s| s.is_finished()) else {
                return bad("clean takes completed, failed or cancelled");
            };
            let age = match humantime::parse_duration(form.get("older_than").unwrap_or("0s")) {
                Ok(a) => a,
                Err(e) => return bad(&format!("bad age: {e}")),
            };
            if !form.confirmed() {
                let question = format!(
                    "Delete every {state} job of queue {queue} that finished more than {} ago (up to {})?",
                    humantime::format_duration(age),
                    count(super::bulk::MAX_PER_REQUEST as u64)
                );
                return confirm(&v, &post_to, &form, question, "Yes, delete them", &back);
            }
            return match q.clean(state, age, super::bulk::MAX_PER_REQUEST).await {
                Ok(n) => redirect_with_flash(
                    &back,
                    &format!("deleted {} {state} job{}", count(n), plural(n)),
                ),
                Err(e) => layout::fail(e),
            };
        }
        _ => {}
    }
    let Some(action) = form.get("action").and_then(JobAction::parse) else {
        return bad("unknown action");
    };
    let Some(state) = state else {
        return bad("a bulk action needs the state it applies to");
    };
    if form.get("scope") == Some("all") {
        if !form.confirmed() {
            let total = match q.counts().await {
                Ok(c) => c.get(state),
                Err(e) => return layout::fail(e),
            };
            let question = format!(
                "{} every {state} job of queue {queue} ({} now)?",
                action.verb(),
                count(total)
            );
            let yes = format!("Yes, {} all", action.name());
            return confirm(&v, &post_to, &form, question, &yes, &back);
        }
        return super::bulk::all_of_state(&s, q, action, state).await;
    }
    let ids = form.all("ids");
    if ids.is_empty() {
        return redirect_with_flash(&back, "error: no job ticked");
    }
    if ids.len() > MAX_IDS {
        return bad(&format!("at most {MAX_IDS} ticked jobs at once"));
    }
    if !form.confirmed() {
        let question = format!(
            "{} {} ticked {state} job{} of queue {queue}?",
            action.verb(),
            ids.len(),
            plural(ids.len() as u64)
        );
        let yes = format!("Yes, {} them", action.name());
        return confirm(&v, &post_to, &form, question, &yes, &back);
    }
    let mut tally = super::bulk::Tally::default();
    for id in &ids {
        if let Err(e) = tally.add(apply(&q, action, id).await) {
            return redirect_with_flash(&back, &format!("error after {}: {e}", tally.say(action)));
        }
    }
    redirect_with_flash(&back, &tally.say(action))
}
