//! The queue page's events box: whether the queue's events stream is on and its cap
//! (the meta field `events` the queue page reads with its counts), a form to turn it on
//! or off ([`Queue::set_events`], what `baton events --enable/--disable` does), and
//! while it is on the last [`SHOWN`] events, newest first.
//!
//! Reading "the last N" costs two bounded reads: XREVRANGE of N+1 entries finds the
//! entry just before the newest N, and [`Queue::events`] reads the N after it (so the
//! events are decoded and decrypted as everywhere else). Nothing is read while the
//! stream is off.

use maud::{html, Markup};

use super::layout::{count, csrf_field, enc, when};
use super::session::Viewer;
use crate::error::{Error, Result};
use crate::queue::{Event, Queue};

/// Events shown.
pub(super) const SHOWN: usize = 20;

/// The cap the form offers when the stream is off (`baton events --enable`'s default).
const DEFAULT_CAP: u64 = 10_000;

/// The last [`SHOWN`] events of `q`, oldest first.
pub(super) async fn recent(conn: &crate::conn::SharedConn, q: &Queue) -> Result<Vec<Event>> {
    let key = q.keys().events();
    let read = conn.run(async |c| {
        let v: Vec<(String, redis::Value)> = redis::cmd("XREVRANGE")
            .arg(&key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(SHOWN + 1)
            .query_async(c)
            .await?;
        Ok(v)
    });
    let newest = match tokio::time::timeout(crate::conn::PRODUCER_TIMEOUT, read).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(Error::Unavailable {
                timeout: crate::conn::PRODUCER_TIMEOUT,
                detail: "no reply from redis in time".into(),
            })
        }
    };
    if newest.is_empty() {
        return Ok(Vec::new());
    }
    // With more than SHOWN entries, read after the one just before the newest SHOWN.
    let after = newest.get(SHOWN).map(|(id, _)| id.as_str());
    q.events(after, SHOWN).await
}

/// When an event happened: the ms part of its stream id (Redis clock).
fn at_ms(e: &Event) -> Option<u64> {
    e.stream_id.split('-').next()?.parse().ok()
}

/// An event's other fields as `key=value` text; payload-like ones hidden from readers
/// when the operator asked so.
fn details(e: &Event, hide: bool) -> String {
    e.fields
        .iter()
        .map(|(k, v)| {
            let shown = match v {
                _ if hide && matches!(k.as_str(), "error" | "result" | "progress") => {
                    "hidden".to_string()
                }
                serde_json::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            format!("{k}={shown}")
        })
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The events box. `cap`: the stream's cap when on; `events`: the last ones, oldest
/// first; `back`: where the form returns to.
pub(super) fn section(
    queue: &str,
    cap: Option<u64>,
    events: &[Event],
    v: &Viewer,
    back: &str,
    now: u64,
) -> Markup {
    let action_url = format!("/ui/queues/{}/actions", enc(queue));
    html! {
        h2 #events { "Events" }
        p #events-state data-on=(cap.is_some()) {
            @match cap {
                Some(n) => { "The events stream is on, keeping about " (count(n)) " events (" code { "baton events " (queue) } " prints them)." }
                None => { "The events stream is off: nothing is recorded. On, each change of a job's state costs one XADD." }
            }
        }
        @if v.can_act {
            form.bar #events-form method="post" action=(action_url) {
                (csrf_field(v))
                input type="hidden" name="back" value=(back);
                label { "Keep about "
                    input type="number" min="1" name="max_len" value=(cap.unwrap_or(DEFAULT_CAP)) aria-label="events kept";
                    " events" }
                button type="submit" name="action" value="events_on" { @if cap.is_some() { "Set cap" } @else { "Turn on" } }
                @if cap.is_some() {
                    button type="submit" name="action" value="events_off" { "Turn off" }
                }
            }
        }
        @if cap.is_some() {
            @if events.is_empty() {
                p.muted #no-events { "No events yet." }
            } @else {
                table #event-list {
                    thead { tr { th { "When" } th { "Event" } th { "Job" } th { "Details" } } }
                    tbody {
                        @for e in events.iter().rev() {
                            tr data-event=(e.event) data-job=(e.job_id) {
                                td { @if let Some(t) = at_ms(e) { (when(t, now)) } }
                                td { span.badge { (e.event) } }
                                td.mono { a href={ "/ui/queues/" (enc(queue)) "/jobs/" (enc(&e.job_id)) } { (e.job_id) } }
                                td.mono.small { (details(e, v.hide_payloads)) }
                            }
                        }
                    }
                }
                p.muted.small { "The last " (SHOWN) " events, newest first." }
            }
        }
    }
}

/// The `events_on` / `events_off` actions: what the page says after.
pub(super) async fn apply(q: &Queue, on: bool, max_len: Option<&str>) -> Result<String> {
    if !on {
        q.set_events(None).await?;
        return Ok(format!(
            "events stream of queue {} off (the events kept stay readable)",
            q.name()
        ));
    }
    let text = max_len.map(str::trim).unwrap_or_default();
    let n: u64 = text.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        Error::Invalid(format!(
            "events kept: a whole number of at least 1, got {text:?} (turn the stream off instead)"
        ))
    })?;
    q.set_events(Some(n)).await?;
    Ok(format!(
        "events stream of queue {} on, keeping about {} events",
        q.name(),
        count(n)
    ))
}
