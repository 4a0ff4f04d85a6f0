//! `GET /ui/queues/{queue}/jobs/{id}`: everything about one job, with its actions.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};

use super::layout::{self, csrf_field, enc, pretty, when, Page};
use super::overview::PartQuery;
use super::queue_page::actions_for;
use super::session::Viewer;
use super::UiState;
use crate::job::JobInfo;

/// A live lease entry, a compact job's value, then the job hash's `lease` and `token`
/// fields, as stored.
type StoredLeases = (
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    (Option<Vec<u8>>, Option<u64>),
);

/// The job's fencing token, bounded like every call: its live lease's (the leases
/// hash), else the last one recorded in its hash (field `lease` of a finished job,
/// `token` of a retried one or of a lease from before the leases hash).
async fn fencing_token(s: &UiState, queue: &str, id: &str) -> crate::Result<Option<u64>> {
    let keys = s.queue(queue).keys().clone();
    let read = s.conn.run(async |c| {
        let (live, outcome, compact, (last, t)): StoredLeases = redis::pipe()
            .hget(keys.leases(), id)
            .hget(keys.done(), id)
            .hget(keys.jobs(), id)
            .cmd("HMGET")
            .arg(keys.job(id))
            .arg("lease")
            .arg("token")
            .query_async(c)
            .await?;
        let parse = |v: Option<Vec<u8>>| v.as_deref().and_then(crate::scripts::LeaseEntry::parse);
        // A kept compact completion's last lease is in its outcome (src/job/compact.rs).
        let compact = crate::job::Compact::join(outcome, compact);
        let done = compact.as_deref().and_then(crate::job::Compact::parse);
        let done = done.and_then(|c| c.field("lease")).map(<[u8]>::to_vec);
        Ok(parse(live)
            .or(parse(last))
            .or(parse(done))
            .map(|l| l.token)
            .or(t))
    });
    match tokio::time::timeout(crate::conn::PRODUCER_TIMEOUT, read).await {
        Ok(r) => r,
        Err(_) => Err(crate::Error::Unavailable {
            timeout: crate::conn::PRODUCER_TIMEOUT,
            detail: "no reply from redis in time".into(),
        }),
    }
}

/// The page of job `id` of `queue`.
fn job_href(queue: &str, id: &str) -> String {
    format!("/ui/queues/{}/jobs/{}", enc(queue), enc(id))
}

const HIDDEN: &str = "hidden from read-only viewers (--hide-payloads-from-readers)";

fn body(v: &Viewer, j: &JobInfo, token: Option<u64>, now: u64) -> Markup {
    let q = &j.queue;
    let action_url = format!("/ui/queues/{}/jobs/{}/actions", enc(q), enc(&j.id));
    let state = j.state.as_str();
    html! {
        h1 {
            "Job " span.mono #job-id { (j.id) } " "
            span.badge.{ "state-" (state) } #job-state data-state=(state) { (state) }
            @if j.cancel_requested && !j.state.is_finished() { " " span.badge { "cancel requested" } }
        }
        @if v.can_act {
            form.bar #job-actions method="post" action=(action_url) {
                (csrf_field(v))
                @for (action, label, danger) in actions_for(j.state) {
                    button.danger[*danger] type="submit" name="action" value=(action) { (label) }
                }
            }
        }
        dl.facts {
            dt { "Queue" } dd { a href={ "/ui/queues/" (enc(q)) "?state=" (state) } { (q) } }
            dt { "Name" } dd #job-name { (j.name) }
            dt { "Attempt" } dd #job-attempt { (j.attempt) " of " (j.attempts) }
            @if j.stalled > 0 {
                dt { "Stalled" }
                dd { (j.stalled) " times (lease expired" @if j.state != crate::JobState::Failed { ", recovered" } ")" }
            }
            dt { "Priority" } dd { @if j.priority == 0 { "none" } @else { (j.priority) } }
            @if let Some((sid, tick)) = super::schedulers::of_job(&j.id) {
                dt { "Scheduler" }
                dd #job-scheduler { a.mono href=(super::schedulers::link(q, sid)) { (sid) } " · tick " (when(tick, now)) }
            }
            @if let Some(p) = &j.parent {
                dt { "Parent" }
                dd #job-parent { a.mono href=(job_href(&p.queue, &p.id)) { (p.queue) "/" (p.id) } }
            }
            @if let Some(g) = &j.group { dt { "Group" } dd.mono #job-group { (g) } }
            @if let Some(d) = &j.dedup { dt { "Dedup key" } dd.mono #job-dedup { (d) } }
            @if let Some(t) = &j.traceparent {
                dt { "Trace" } dd.mono #job-traceparent title="W3C traceparent: the trace the producer sent" { (t) }
            }
            dt { "Worker" } dd.mono { (j.worker.as_deref().unwrap_or("—")) }
            dt { "Fencing token" } dd.mono { @match token { Some(t) => (t), None => "—" } }
            dt { "Created" } dd { (when(j.created_ms, now)) }
            @if let Some(d) = j.due_ms { dt { "Delayed until" } dd { (when(d, now)) } }
            @if let Some(t) = j.started_ms { dt { "Started" } dd { (when(t, now)) } }
            @if let Some(t) = j.finished_ms { dt { "Finished" } dd { (when(t, now)) } }
            @if let Some(p) = &j.progress { dt { "Progress" } dd.mono #job-progress { (p.to_string()) } }
        }
        @if let Some(e) = &j.error {
            h2 { "Error" @if let Some(a) = j.error_attempt { " (attempt " (a) ")" } }
            @if v.hide_payloads { p.muted { (HIDDEN) } } @else { pre.error #job-error { (e) } }
        }
        @if !j.errors.is_empty() {
            h2 { "Error of each attempt" }
            @if v.hide_payloads { p.muted { (HIDDEN) } } @else {
                table #job-errors {
                    thead { tr { th { "Attempt" } th { "Ended" } th { "Error" } } }
                    tbody {
                        @for e in &j.errors {
                            tr data-attempt=(e.attempt) {
                                td { (e.attempt) }
                                td { (when(e.at_ms, now)) }
                                td { pre.error { (e.error) } }
                            }
                        }
                    }
                }
                p.muted.small { "Newest first; the last 25 attempts are kept." }
            }
        }
        @if !j.children.is_empty() {
            h2 { "Children" }
            table #job-children {
                thead { tr { th { "Job" } th { "State" } th { "Result or error" } } }
                tbody {
                    @for c in &j.children {
                        tr data-child=(c.id) data-state=(c.state) {
                            td { a.mono href=(job_href(&c.queue, &c.id)) { (c.queue) "/" (c.id) } }
                            td { span.badge.{ "state-" (c.state) } { (c.state) } }
                            td.mono {
                                @if v.hide_payloads && c.state != "pending" { span.muted { "hidden" } }
                                @else if let Some(r) = &c.result { (r.to_string()) }
                                @else if let Some(e) = &c.error { (e) }
                            }
                        }
                    }
                }
            }
            p.muted.small {
                @if j.state == crate::JobState::WaitingChildren { "The job starts once every child is done." }
                @else { "Outcomes as each child ended." }
            }
        }
        h2 { "Payload" }
        @if v.hide_payloads { p.muted { (HIDDEN) } } @else { pre #job-data { (pretty(&j.data)) } }
        @if let Some(r) = &j.result {
            h2 { "Result" }
            @if v.hide_payloads { p.muted { (HIDDEN) } } @else { pre #job-result { (pretty(r)) } }
        }
        @if !j.steps.is_empty() {
            h2 { "Recorded steps" }
            @if v.hide_payloads { p.muted { (HIDDEN) } } @else {
                table #job-steps {
                    thead { tr { th { "Step" } th { "Result" } } }
                    tbody { @for (name, val) in &j.steps { tr { td.mono { (name) } td.mono { (val.to_string()) } } } }
                }
            }
        }
        h2 { "Logs" }
        @if j.logs.is_empty() {
            p.muted { "No log lines." }
        } @else if v.hide_payloads {
            p.muted { (HIDDEN) }
        } @else {
            ol.logs #job-logs {
                @for (line, attempt) in j.logs.iter().zip(&j.log_attempts) {
                    li { @if let Some(a) = attempt { span.muted { "[" (a) "] " } } (line) }
                }
            }
        }
        p.muted.small { "Updated " (layout::time(now)) " · refreshes every 3 s" }
    }
}

/// `GET /ui/queues/{queue}/jobs/{id}`.
pub(super) async fn page(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Path((queue, id)): Path<(String, String)>,
    Query(q): Query<PartQuery>,
    headers: HeaderMap,
) -> Response {
    let handle = s.queue(&queue);
    let (job, token) = match futures::try_join!(handle.job(&id), fencing_token(&s, &queue, &id)) {
        Ok(x) => x,
        Err(e) => return layout::fail(e),
    };
    let Some(job) = job else {
        return layout::error_page(
            StatusCode::NOT_FOUND,
            "No such job",
            &format!(
                "There is no job {id:?} in queue {queue} (removed, or cleaned after it finished)."
            ),
        );
    };
    let b = body(&v, &job, token, layout::now_ms());
    if q.part() {
        return layout::part(b);
    }
    let live = format!("/ui/queues/{}/jobs/{}?part=live", enc(&queue), enc(&id));
    Page::new(format!("Job {id}"), &v, b)
        .live(live)
        .flash_from(&headers)
        .into_response()
}
