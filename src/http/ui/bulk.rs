//! Acting on every job of a state: in batches of [`BATCH`] ids (a range from the head
//! of the state's list, never a scan), for at most [`MAX_PER_REQUEST`] jobs per press.
//! The work runs in a task of the server, not in the request: the confirmed form
//! redirects to a progress page (`/ui/queues/{queue}/bulk/{run}`) that refreshes itself
//! and says "queued again 3 000 of 12 000" until the run ends, then how many were done,
//! skipped and are left (the same button goes on).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use maud::html;

use super::actions::{apply, Did, JobAction};
use super::layout::{self, count, enc, Page};
use super::session::Viewer;
use super::UiState;
use crate::error::Error;
use crate::job::JobState;
use crate::queue::Queue;

/// Ids per batch when acting on every job of a state.
pub const BATCH: usize = 500;
/// Most jobs one request acts on.
pub const MAX_PER_REQUEST: usize = 50_000;
/// How long a finished run's outcome stays readable on its progress page.
const KEEP_FINISHED: Duration = Duration::from_secs(600);
/// Most runs remembered at once (older finished ones are forgotten first).
const MAX_RUNS: usize = 100;

/// Tallies of a bulk action.
#[derive(Default, Clone)]
pub(super) struct Tally {
    done: u64,
    requested: u64,
    skipped: u64,
}

impl Tally {
    pub(super) fn add(&mut self, r: crate::Result<Did>) -> crate::Result<()> {
        match r {
            Ok(Did::Done) => self.done += 1,
            Ok(Did::Requested) => self.requested += 1,
            // Moved on or gone since the page was drawn: not an error of the batch.
            Err(Error::NotFound { .. } | Error::InvalidState { .. }) => self.skipped += 1,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn acted(&self) -> u64 {
        self.done + self.requested + self.skipped
    }

    pub(super) fn say(&self, action: JobAction) -> String {
        let mut s = format!(
            "{} {} job{}",
            action.done(),
            count(self.done),
            plural(self.done)
        );
        if self.requested > 0 {
            s += &format!(
                "; cancel sent to {} running job{}",
                count(self.requested),
                plural(self.requested)
            );
        }
        if self.skipped > 0 {
            s += &format!(
                "; skipped {} no longer in a state that allows it",
                count(self.skipped)
            );
        }
        s
    }
}

pub(super) fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// One bulk run, as its progress page shows it.
struct Run {
    queue: String,
    state: JobState,
    action: JobAction,
    /// Jobs in the state when the run began.
    total: u64,
    tally: Tally,
    /// The outcome once the run has ended.
    outcome: Option<String>,
    ended: Option<Instant>,
}

/// The bulk runs of this server, by number.
#[derive(Clone, Default)]
pub(super) struct Runs {
    next: Arc<AtomicU64>,
    runs: Arc<Mutex<HashMap<u64, Run>>>,
}

impl Runs {
    fn start(&self, run: Run) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let mut runs = self.runs.lock().unwrap();
        runs.retain(|_, r| r.ended.is_none_or(|t| t.elapsed() < KEEP_FINISHED));
        while runs.len() >= MAX_RUNS {
            // Forget the oldest finished run (or, all running, the oldest run's page).
            let oldest = runs
                .iter()
                .filter(|(_, r)| r.ended.is_some())
                .map(|(k, _)| *k)
                .min()
                .or_else(|| runs.keys().min().copied());
            match oldest {
                Some(k) => runs.remove(&k),
                None => break,
            };
        }
        runs.insert(n, run);
        n
    }

    fn update(&self, n: u64, f: impl FnOnce(&mut Run)) {
        if let Some(r) = self.runs.lock().unwrap().get_mut(&n) {
            f(r);
        }
    }
}

/// Starts acting on every job of `state` in a task of the server and redirects to the
/// run's progress page.
pub(super) async fn all_of_state(
    s: &UiState,
    q: Queue,
    action: JobAction,
    state: JobState,
) -> Response {
    let total = match q.counts().await {
        Ok(c) => c.get(state),
        Err(e) => return layout::fail(e),
    };
    let n = s.runs.start(Run {
        queue: q.name().to_string(),
        state,
        action,
        total,
        tally: Tally::default(),
        outcome: None,
        ended: None,
    });
    let runs = s.runs.clone();
    let to = format!("/ui/queues/{}/bulk/{n}", enc(q.name()));
    tokio::spawn(async move {
        let outcome = run(&q, action, state, |t| {
            runs.update(n, |r| r.tally = t.clone())
        })
        .await;
        runs.update(n, |r| {
            r.outcome = Some(outcome);
            r.ended = Some(Instant::now());
        });
    });
    Redirect::to(&to).into_response()
}

/// Acts on every job of `state`, a batch at a time, calling `progress` after each
/// batch; returns the outcome to show.
async fn run(q: &Queue, action: JobAction, state: JobState, progress: impl Fn(&Tally)) -> String {
    let mut tally = Tally::default();
    // Jobs the action leaves in the state (a cancel sent to a running job, one that
    // could not be acted on) are stepped over, so the next batch starts after them.
    let mut offset = 0usize;
    let mut stopped = false;
    loop {
        if tally.acted() as usize >= MAX_PER_REQUEST {
            stopped = true;
            break;
        }
        let ids = match q.list(state, offset, BATCH).await {
            Ok(ids) => ids,
            Err(e) => return format!("error after {}: {e}", tally.say(action)),
        };
        if ids.is_empty() {
            break;
        }
        for id in &ids {
            let r = apply(q, action, id).await;
            if !matches!(r, Ok(Did::Done)) {
                offset += 1;
            }
            if let Err(e) = tally.add(r) {
                return format!("error after {}: {e}", tally.say(action));
            }
        }
        progress(&tally);
    }
    let mut msg = tally.say(action);
    if stopped {
        let left = q.counts().await.map(|c| c.get(state)).unwrap_or(0);
        msg += &format!(
            "; stopped at the limit of one press with {} {state} left: press the button again to go on",
            count(left)
        );
    }
    msg
}

/// `GET /ui/queues/{queue}/bulk/{run}`: a run's progress, refreshing itself.
pub(super) async fn progress_page(
    State(s): State<UiState>,
    Extension(v): Extension<Viewer>,
    Path((queue, n)): Path<(String, u64)>,
    axum::extract::Query(q): axum::extract::Query<super::overview::PartQuery>,
) -> Response {
    let b = {
        let runs = s.runs.runs.lock().unwrap();
        let Some(r) = runs.get(&n).filter(|r| r.queue == queue) else {
            return layout::error_page(
                axum::http::StatusCode::NOT_FOUND,
                "No such bulk action",
                "This bulk action is unknown to this server (it ended long ago, or the server restarted).",
            );
        };
        let back = format!("/ui/queues/{}?state={}", enc(&queue), r.state.as_str());
        let acted = r.tally.acted();
        html! {
            h1 { "Every " (r.state.as_str()) " job of " span.mono { (queue) } }
            @match &r.outcome {
                None => p #bulk-progress data-done="false" {
                    (r.action.done()) " " (count(acted)) " of " (count(r.total.max(acted))) " " (r.state.as_str()) " jobs…"
                },
                Some(o) => p #bulk-progress data-done="true" { "Done: " (o) },
            }
            progress max=(r.total.max(acted).max(1)) value=(acted) {}
            p { a #bulk-back href=(back) { "back to the " (r.state.as_str()) " jobs" } }
            p.muted.small { "In batches of " (BATCH) ", at most " (count(MAX_PER_REQUEST as u64)) " jobs per press; this page refreshes every second." }
        }
    };
    if q.part() {
        return layout::part(b);
    }
    let live = format!("/ui/queues/{}/bulk/{n}?part=live", enc(&queue));
    Page::new(format!("{queue} · bulk action"), &v, b)
        .live(live)
        .period_ms(1000)
        .into_response()
}
