//! `GET /ui/queues/{queue}`: one queue, a tab per state, a page of jobs at a time.
//!
//! Each page reads the counts, one range of ids (LRANGE/ZRANGE with offset and limit)
//! and one HMGET per listed job: the same cost on a queue of ten jobs or ten million.
//! "Find by id" reads that one job. "Filter by name" cannot use an index (there is
//! none by name), so it looks at the next [`NAME_WINDOW`] jobs of the state from the
//! page's offset and says which range it looked at; "next" moves the window on.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, count, csrf_field, enc, when, Page};
use super::session::Viewer;
use super::{UiState, NAME_WINDOW};
use crate::job::{Counts, JobState};
use crate::queue::JobSummary;

/// Jobs per page unless asked otherwise, and the most a page shows.
const PAGE: usize = 50;
const MAX_PAGE: usize = 500;

/// The query of the queue page.
#[derive(Debug, Default, Deserialize)]
pub(super) struct QueueQuery {
    state: Option<String>,
    offset: Option<usize>,
    size: Option<usize>,
    /// Show only jobs whose name contains this (within a window, see the module doc).
    name: Option<String>,
    /// Go to this job.
    find: Option<String>,
    part: Option<String>,
}

/// What one state's tab lists.
struct Listing {
    jobs: Vec<(JobSummary, Option<u64>)>,
    /// With a name filter: how many ids were looked at.
    scanned: Option<usize>,
}

/// The actions that apply to jobs in `state`: (action, button label, dangerous).
pub(super) fn actions_for(state: JobState) -> &'static [(&'static str, &'static str, bool)] {
    match state {
        JobState::Waiting => &[("cancel", "Cancel", true), ("remove", "Remove", true)],
        JobState::Delayed => &[
            ("promote", "Run now", false),
            ("cancel", "Cancel", true),
            ("remove", "Remove", true),
        ],
        JobState::Active | JobState::WaitingChildren => &[("cancel", "Cancel", true)],
        JobState::Completed => &[("remove", "Remove", true)],
        JobState::Failed | JobState::Cancelled => {
            &[("retry", "Retry", false), ("remove", "Remove", true)]
        }
    }
}

async fn listing(
    s: &UiState,
    queue: &str,
    state: JobState,
    offset: usize,
    size: usize,
    name: Option<&str>,
) -> crate::Result<Listing> {
    let q = s.queue(queue);
    let window = if name.is_some() { NAME_WINDOW } else { size };
    let (ids, due): (Vec<String>, Vec<Option<u64>>) = if state == JobState::Delayed {
        q.list_due(offset, window)
            .await?
            .into_iter()
            .map(|(id, at)| (id, Some(at)))
            .unzip()
    } else {
        let ids = q.list(state, offset, window).await?;
        let n = ids.len();
        (ids, vec![None; n])
    };
    let scanned = name.map(|_| ids.len());
    let jobs = q
        .summaries(&ids)
        .await?
        .into_iter()
        .zip(due)
        .filter_map(|(sum, due)| Some((sum?, due)))
        .filter(|(sum, _)| name.is_none_or(|n| sum.name.contains(n)))
        .take(size)
        .collect();
    Ok(Listing { jobs, scanned })
}

fn tab_url(queue: &str, state: JobState) -> String {
    format!("/ui/queues/{}?state={}", enc(queue), state.as_str())
}

#[allow(clippy::too_many_arguments)]
fn body(
    v: &Viewer,
    queue: &str,
    counts: &Counts,
    state: JobState,
    offset: usize,
    size: usize,
    name: Option<&str>,
    list: &Listing,
    scheds: &[crate::schedule::SchedulerInfo],
    events: &[crate::queue::Event],
    now: u64,
) -> Markup {
    let total = counts.get(state);
    let action_url = format!("/ui/queues/{}/actions", enc(queue));
    let here = format!(
        "{}&offset={offset}&size={size}{}",
        tab_url(queue, state),
        name.map(|n| format!("&name={}", enc(n)))
            .unwrap_or_default()
    );
    let acts = actions_for(state);
    html! {
        h1 {
            "Queue " span.mono { (queue) }
            @if counts.paused { " " span.badge.paused { "paused" } }
        }
        @if v.can_act { (super::limits::form(&action_url, &here, counts, v)) }
        div.bar {
            @if v.can_act {
                form.inline method="post" action=(action_url) {
                    (csrf_field(v))
                    @if counts.paused {
                        button type="submit" name="action" value="resume" { "Resume queue" }
                    } @else {
                        button type="submit" name="action" value="pause" { "Pause queue" }
                    }
                }
            }
            @if v.can_act {
                a.button #add-job-link href={ "/ui/queues/" (enc(queue)) "/add" } { "Add a job" }
                a.button #add-flow-link href={ "/ui/queues/" (enc(queue)) "/flow" } { "Add a flow" }
            }
            form.inline method="get" action={ "/ui/queues/" (enc(queue)) } role="search" {
                input type="text" name="find" placeholder="job id" aria-label="Find a job by id";
                button type="submit" { "Find" }
            }
            form.inline method="get" action={ "/ui/queues/" (enc(queue)) } {
                input type="hidden" name="state" value=(state.as_str());
                input type="text" name="name" value=[name] placeholder="name contains" aria-label="Filter by name";
                button type="submit" { "Filter" }
                @if name.is_some() { " " a href=(tab_url(queue, state)) { "clear" } }
            }
        }
        nav.tabs {
            @for st in JobState::ALL {
                a.current[st == state] href=(tab_url(queue, st)) data-state=(st.as_str()) {
                    (st.as_str()) " " span.badge.{ "state-" (st.as_str()) } { (count(counts.get(st))) }
                }
            }
        }
        @if let (Some(n), Some(scanned)) = (name, list.scanned) {
            p.muted #filter-note {
                "Name filter \u{201c}" (n) "\u{201d}: looked at " (state.as_str()) " jobs "
                (count(offset as u64 + 1)) "–" (count((offset + scanned) as u64)) " of " (count(total))
                " (" (NAME_WINDOW) " at a time; there is no index by name), found " (list.jobs.len()) "."
            }
        }
        @if list.jobs.is_empty() {
            p.muted #empty { "No " (state.as_str()) " jobs" @if offset > 0 { " from here on" } "." }
        } @else {
            form #bulk method="post" action=(action_url) {
                (csrf_field(v))
                input type="hidden" name="state" value=(state.as_str());
                input type="hidden" name="back" value=(here);
                table #jobs {
                    thead { tr {
                        @if v.can_act { th { input type="checkbox" data-select-all aria-label="Tick all on this page"; } }
                        th { "Id" } th { "Name" } th.num { "Attempt" } th { "Created" }
                        th { (match state {
                            JobState::Waiting => "Waiting for",
                            JobState::Delayed => "Due",
                            JobState::Active => "Started",
                            _ => "Finished",
                        }) }
                        th { "Error" }
                    } }
                    tbody {
                        @for (j, due) in &list.jobs {
                            tr data-id=(j.id) {
                                @if v.can_act { td { input type="checkbox" name="ids" value=(j.id) aria-label={ "select " (j.id) }; } }
                                td.mono { a href={ "/ui/queues/" (enc(queue)) "/jobs/" (enc(&j.id)) } { (j.id) } }
                                td { (j.name) }
                                td.num { (j.attempt) }
                                td { (when(j.created_ms, now)) }
                                td { @match state {
                                    JobState::Waiting => (layout::span(now.saturating_sub(j.created_ms))),
                                    JobState::Delayed => @if let Some(d) = due { (when(*d, now)) },
                                    JobState::Active => @if let Some(t) = j.started_ms { (when(t, now)) },
                                    _ => @if let Some(t) = j.finished_ms { (when(t, now)) },
                                } }
                                td.err { @if v.hide_payloads { @if j.error.is_some() { span.muted { "hidden" } } } @else { (j.error.as_deref().unwrap_or("")) } }
                            }
                        }
                    }
                }
                @if v.can_act {
                    div.bar #bulk-actions {
                        "Ticked jobs: "
                        @for (action, label, _) in acts {
                            button type="submit" name="action" value=(action) { (label) }
                        }
                    }
                }
            }
        }
        div.pager {
            @let step = if name.is_some() { NAME_WINDOW } else { size };
            @if offset > 0 {
                a #prev href={ (tab_url(queue, state)) "&offset=" (offset.saturating_sub(step)) "&size=" (size) (name.map(|n| format!("&name={}", enc(n))).unwrap_or_default()) } { "← previous" }
            }
            span.muted {
                @if name.is_none() && !list.jobs.is_empty() {
                    (count(offset as u64 + 1)) "–" (count((offset + list.jobs.len()) as u64)) " of " (count(total))
                }
            }
            @if (offset + step) < total as usize {
                a #next href={ (tab_url(queue, state)) "&offset=" (offset + step) "&size=" (size) (name.map(|n| format!("&name={}", enc(n))).unwrap_or_default()) } { "next →" }
            }
        }
        @if v.can_act && total > 0 {
            h2 { "Every " (state.as_str()) " job" }
            form #all method="post" action=(action_url) {
                (csrf_field(v))
                input type="hidden" name="state" value=(state.as_str());
                input type="hidden" name="scope" value="all";
                input type="hidden" name="back" value=(tab_url(queue, state));
                div.bar {
                    @for (action, label, _) in acts {
                        button type="submit" name="action" value=(action) { (label) " all " (count(total)) }
                    }
                    span.muted { "in batches of " (super::bulk::BATCH) ", up to " (count(super::bulk::MAX_PER_REQUEST as u64)) " per press, with progress shown" }
                }
            }
            @if state.is_finished() {
                form #clean method="post" action=(action_url) {
                    (csrf_field(v))
                    input type="hidden" name="state" value=(state.as_str());
                    input type="hidden" name="back" value=(tab_url(queue, state));
                    div.bar {
                        label for="older_than" { "Delete " (state.as_str()) " jobs finished more than" }
                        select #older_than name="older_than" {
                            option value="0s" { "any time" }
                            option value="1h" { "1 hour" }
                            option value="1d" selected { "1 day" }
                            option value="7d" { "7 days" }
                        }
                        " ago "
                        button.danger type="submit" name="action" value="clean" { "Clean" }
                    }
                }
            }
        }
        (super::schedulers::section(queue, scheds, now, v.can_act.then_some(v)))
        (super::events::section(queue, counts.events, events, v, &here, now))
    }
}

/// `GET /ui/queues/{queue}`.
pub(super) async fn page(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Path(queue): Path<String>,
    Query(q): Query<QueueQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = crate::validate::queue_name(&queue) {
        return layout::fail(e);
    }
    let handle = s.queue(&queue);
    if let Some(id) = q.find.as_deref().map(str::trim).filter(|i| !i.is_empty()) {
        let found = match crate::validate::job_id(id) {
            Ok(()) => handle.summaries(&[id.to_string()]).await,
            Err(e) => Err(e),
        };
        return match found {
            Ok(v) if v.first().is_some_and(|s| s.is_some()) => {
                Redirect::to(&format!("/ui/queues/{}/jobs/{}", enc(&queue), enc(id)))
                    .into_response()
            }
            Ok(_) => layout::redirect_with_flash(
                &format!("/ui/queues/{}", enc(&queue)),
                &format!("error: no job {id:?} in queue {queue}"),
            ),
            Err(e) => layout::fail(e),
        };
    }
    let state = match q.state.as_deref() {
        None => JobState::Waiting,
        Some(st) => match JobState::parse(st) {
            Some(st) => st,
            None => {
                return layout::error_page(
                    axum::http::StatusCode::BAD_REQUEST,
                    "Unknown state",
                    &format!("unknown state {st:?}"),
                )
            }
        },
    };
    let offset = q.offset.unwrap_or(0).min(1 << 40);
    let size = q.size.unwrap_or(PAGE).clamp(1, MAX_PAGE);
    let name = q.name.as_deref().filter(|n| !n.is_empty());
    let now = layout::now_ms();
    let (counts, list, scheds) = match futures::try_join!(
        handle.counts(),
        listing(&s, &queue, state, offset, size, name),
        handle.schedulers()
    ) {
        Ok(x) => x,
        Err(e) => return layout::fail(e),
    };
    // Only while the stream is on: off, the page reads nothing of it.
    let events = match counts.events {
        Some(_) => match super::events::recent(&s.conn, &handle).await {
            Ok(e) => e,
            Err(e) => return layout::fail(e),
        },
        None => Vec::new(),
    };
    let b = body(
        &v, &queue, &counts, state, offset, size, name, &list, &scheds, &events, now,
    );
    if q.part.as_deref() == Some("live") {
        return layout::part(b);
    }
    let live = format!(
        "{}&offset={offset}&size={size}{}&part=live",
        tab_url(&queue, state),
        name.map(|n| format!("&name={}", enc(n)))
            .unwrap_or_default()
    );
    Page::new(format!("{queue} · {state}"), &v, b)
        .live(live)
        .flash_from(&headers)
        .into_response()
}
