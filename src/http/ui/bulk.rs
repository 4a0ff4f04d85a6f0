//! Acting on every job of a state: in batches of [`BATCH`] ids (a range from the head
//! of the state's list, never a scan), for at most [`MAX_PER_REQUEST`] jobs or
//! [`TIME_BUDGET`] per request; the outcome says how many were done, skipped and are
//! left, and the same button goes on.

use std::time::{Duration, Instant};

use axum::response::Response;

use super::actions::{apply, Did, JobAction};
use super::layout::{count, redirect_with_flash};
use crate::error::Error;
use crate::job::JobState;
use crate::queue::Queue;

/// Ids per batch when acting on every job of a state.
pub const BATCH: usize = 500;
/// Most jobs one request acts on.
pub const MAX_PER_REQUEST: usize = 50_000;
/// Longest one request spends acting (the server's request timeout is 30 s).
pub const TIME_BUDGET: Duration = Duration::from_secs(15);

/// Tallies of a bulk action.
#[derive(Default)]
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

/// Acts on every job of `state`, a batch at a time, within the request's budget.
pub(super) async fn all_of_state(
    q: &Queue,
    action: JobAction,
    state: JobState,
    back: &str,
) -> Response {
    let started = Instant::now();
    let mut tally = Tally::default();
    // Jobs the action leaves in the state (a cancel sent to a running job, one that
    // could not be acted on) are stepped over, so the next batch starts after them.
    let mut offset = 0usize;
    let mut stopped = false;
    loop {
        let acted = (tally.done + tally.requested + tally.skipped) as usize;
        if acted >= MAX_PER_REQUEST || started.elapsed() >= TIME_BUDGET {
            stopped = true;
            break;
        }
        let ids = match q.list(state, offset, BATCH).await {
            Ok(ids) => ids,
            Err(e) => {
                return redirect_with_flash(
                    back,
                    &format!("error after {}: {e}", tally.say(action)),
                )
            }
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
                return redirect_with_flash(
                    back,
                    &format!("error after {}: {e}", tally.say(action)),
                );
            }
        }
    }
    let mut msg = tally.say(action);
    if stopped {
        let left = q.counts().await.map(|c| c.get(state)).unwrap_or(0);
        msg += &format!(
            "; stopped at this request's limit with {} {state} left: press the button again to go on",
            count(left)
        );
    }
    redirect_with_flash(back, &msg)
}
