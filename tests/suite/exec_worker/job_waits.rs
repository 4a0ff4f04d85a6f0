//! Reading jobs and waiting for their states and the files the fixture writes.

use std::path::Path;
use std::time::Duration;

use baton::{Backoff, JobInfo, JobOptions, JobState, Queue};

use crate::common::wait_until;

pub(crate) async fn job(q: &Queue, id: &str) -> JobInfo {
    q.job(id).await.unwrap().expect("job exists")
}

pub(crate) async fn wait_state(q: &Queue, id: &str, state: JobState, limit: Duration) -> JobInfo {
    let what = format!("job {id} {state}");
    wait_until(limit, &what, || async { job(q, id).await.state == state }).await;
    job(q, id).await
}

pub(crate) async fn wait_file(path: &Path, limit: Duration) -> String {
    let what = format!("{} to exist", path.display());
    wait_until(limit, &what, || async { path.exists() }).await;
    std::fs::read_to_string(path).unwrap()
}

pub(crate) fn fast_retries() -> JobOptions {
    JobOptions::default().backoff(Backoff::Fixed {
        delay: Duration::from_millis(50),
    })
}
