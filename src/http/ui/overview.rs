//! `GET /`: every queue with its counts, throughput and oldest waiting job; every live
//! worker.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, count, csrf_field, enc, span, when, Page};
use super::session::Viewer;
use super::UiState;
use crate::job::{Counts, JobState};
use crate::queue::Finished;
use crate::Result;

/// `?part=live` asks for the live region only.
#[derive(Debug, Deserialize)]
pub(super) struct PartQuery {
    part: Option<String>,
}

impl PartQuery {
    /// True for `?part=live`.
    pub fn part(&self) -> bool {
        self.part.as_deref() == Some("live")
    }
}

/// One queue's line.
struct QueueRow {
    name: String,
    counts: Counts,
    last_hour: Finished,
    oldest_ms: Option<u64>,
}

/// One worker, over every queue it serves.
#[derive(Default)]
struct WorkerRow {
    queues: Vec<String>,
    info: serde_json::Value,
}

async fn queue_row(s: &UiState, name: String, now: u64) -> Result<QueueRow> {
    let q = s.queue(&name);
    let (counts, last_hour, oldest_ms) = futures::try_join!(
        q.counts(),
        q.finished_since(now.saturating_sub(3_600_000)),
        q.oldest_waiting_ms()
    )?;
    Ok(QueueRow {
        name,
        counts,
        last_hour,
        oldest_ms,
    })
}

/// The queues' rows, the workers, and how old the list of queues is.
type Gathered = (
    Vec<QueueRow>,
    BTreeMap<String, WorkerRow>,
    std::time::Duration,
);

async fn gather(s: &UiState, now: u64) -> Result<Gathered> {
    let (names, found_at) = s.names.get(&s.conn).await?;
    let rows =
        futures::future::try_join_all(names.iter().map(|n| queue_row(s, n.clone(), now))).await?;
    let handles: Vec<_> = names.iter().map(|n| s.queue(n)).collect();
    let per_queue = futures::future::try_join_all(handles.iter().map(|q| q.workers())).await?;
    let mut workers: BTreeMap<String, WorkerRow> = BTreeMap::new();
    for (name, list) in names.iter().zip(per_queue) {
        for (id, info) in list {
            let w = workers.entry(id).or_default();
            w.queues.push(name.clone());
            w.info = info;
        }
    }
    Ok((rows, workers, found_at.elapsed()))
}

fn per_min(n: u64) -> String {
    let m = n as f64 / 60.0;
    if m >= 10.0 {
        format!("{m:.0}")
    } else {
        format!("{m:.1}")
    }
}

fn body(v: &Viewer, g: &Gathered, now: u64) -> Markup {
    let (rows, workers, names_age) = g;
    html! {
        h1 { "Queues" }
        @if rows.is_empty() {
            p.muted { "No queues in this Redis yet: add a job (" code { "baton add QUEUE NAME" } ") and it shows here." }
        } @else {
            table #queues {
                thead { tr {
                    th { "Queue" }
                    @for st in JobState::ALL { th.num { (st.as_str()) } }
                    th.num title="completed / failed per minute, over the last hour" { "per min (1 h)" }
                    th.num { "Oldest waiting" }
                    th { "Limits" }
                    th {}
                } }
                tbody {
                    @for r in rows {
                        tr data-queue=(r.name) {
                            td {
                                a href={ "/ui/queues/" (enc(&r.name)) } { (r.name) }
                                @if r.counts.paused { " " span.badge.paused { "paused" } }
                            }
                            @for st in JobState::ALL {
                                td.num data-state=(st.as_str()) {
                                    a href={ "/ui/queues/" (enc(&r.name)) "?state=" (st.as_str()) } { (count(r.counts.get(st))) }
                                }
                            }
                            td.num {
                                span title={ (r.last_hour.completed) " completed in the last hour" } { (per_min(r.last_hour.completed)) }
                                " / "
                                span.err title={ (r.last_hour.failed) " failed in the last hour" } { (per_min(r.last_hour.failed)) }
                            }
                            td.num { @match r.oldest_ms { Some(ms) => (span(now.saturating_sub(ms))), None => span.muted { "—" } } }
                            td.muted {
                                @if let Some(c) = r.counts.concurrency { "≤ " (c) " running " }
                                @if let Some(rate) = r.counts.rate { (rate.to_string()) }
                            }
                            td {
                                @if v.can_act {
                                    form.inline method="post" action={ "/ui/queues/" (enc(&r.name)) "/actions" } {
                                        (csrf_field(v))
                                        input type="hidden" name="back" value="/";
                                        @if r.counts.paused {
                                            button type="submit" name="action" value="resume" { "Resume" }
                                        } @else {
                                            button type="submit" name="action" value="pause" { "Pause" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Workers" }
        @if workers.is_empty() {
            p.muted { "No live workers." }
        } @else {
            table #workers {
                thead { tr {
                    th { "Worker" } th { "Host" } th.num { "PID" } th { "Queues" }
                    th.num { "In flight" } th { "Started" } th { "Last heartbeat" }
                } }
                tbody {
                    @for (id, w) in workers {
                        tr {
                            td.mono { (id) }
                            td { (w.info["host"].as_str().unwrap_or("?")) }
                            td.num { (w.info["pid"].as_u64().map(|p| p.to_string()).unwrap_or_default()) }
                            td { @for (i, q) in w.queues.iter().enumerate() {
                                @if i > 0 { ", " }
                                a href={ "/ui/queues/" (enc(q)) } { (q) }
                            } }
                            td.num { (w.info["in_flight"].as_u64().unwrap_or(0)) " / " (w.info["concurrency"].as_u64().unwrap_or(0)) }
                            td { @match w.info["started_ms"].as_u64() { Some(ms) => (when(ms, now)), None => "?" } }
                            td { @match w.info["beat_ms"].as_u64() { Some(ms) => (when(ms, now)), None => span.muted { "alive" } } }
                        }
                    }
                }
            }
        }
        p.muted.small {
            "Updated " (layout::time(now)) " · refreshes every 3 s · the list of queues comes from the queue registry, "
            (span(names_age.as_millis() as u64)) " old (read again after " (super::names::FRESH.as_secs()) " s)"
        }
    }
}

/// `GET /`.
pub(super) async fn page(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Query(q): Query<PartQuery>,
    headers: HeaderMap,
) -> Response {
    let now = layout::now_ms();
    let gathered = match gather(&s, now).await {
        Ok(x) => x,
        Err(e) => return layout::fail(e),
    };
    let b = body(&v, &gathered, now);
    if q.part() {
        return layout::part(b);
    }
    Page::new("Overview", &v, b)
        .live("/?part=live".into())
        .flash_from(&headers)
        .into_response()
}
