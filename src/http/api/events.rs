//! `GET /v1/queues/{queue}/events`: the queue's events stream as Server-Sent Events,
//! resumable from the `Last-Event-ID` header or `?from=` (each SSE event's id is its
//! stream id).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::stream::{self, Stream, StreamExt};
use serde::Deserialize;

use super::errors::{fail, ApiError};
use super::extract::QueueName;
use super::ApiState;

/// How long one read of the stream waits before it reads again.
const READ_WAIT: Duration = Duration::from_secs(15);

/// The query of `GET /v1/queues/{queue}/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Events after this stream id (`0`: every event kept); default from now on.
    from: Option<String>,
}

pub(super) async fn events(
    State(s): State<ApiState>,
    QueueName(q): QueueName,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad(format!("bad query: {}", e.body_text())))?;
    // A reconnecting client's Last-Event-ID wins over the ?from= it was opened with.
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let from = last.or(query.from);
    let follower = s
        .queue(&q)
        .follow_events(from.as_deref())
        .await
        .map_err(|e| fail(&q, "events", e))?;
    // Batches of events until a read fails: then one `error` event, and the stream
    // ends (the client reconnects with Last-Event-ID and loses nothing kept).
    let batches = stream::unfold(Some(follower), move |f| async move {
        let mut f = f?;
        match f.next(READ_WAIT).await {
            Ok(events) => {
                let items: Vec<SseEvent> = events
                    .iter()
                    .map(|e| {
                        SseEvent::default()
                            .id(e.stream_id.clone())
                            .event(e.event.clone())
                            .data(serde_json::to_string(e).expect("events serialize"))
                    })
                    .collect();
                Some((items, Some(f)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "events stream read failed");
                let item = SseEvent::default()
                    .event("error")
                    .data(serde_json::json!({ "error": e.to_string() }).to_string());
                Some((vec![item], None))
            }
        }
    });
    let items = batches
        .flat_map(|v| stream::iter(v.into_iter().map(Ok)))
        .take_until(s.stop.clone().cancelled_owned());
    Ok(Sse::new(items).keep_alive(KeepAlive::default()))
}
