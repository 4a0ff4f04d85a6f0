//! The README's Rust example, compiled with the tests so it stays true.
//! Run: `cargo run --example quickstart` against a Redis at REDIS_URL (fit: AOF on,
//! noeviction) — or see `baton demo`, which starts its own.

use std::time::Duration;

use baton::{handler_fn, JobContext, JobError, JobOptions, Queue, Worker};

#[derive(serde::Serialize, serde::Deserialize)]
struct Email {
    to: String,
}

async fn send(_rendered: &str) -> Result<(), String> {
    Ok(())
}

#[tokio::main]
async fn main() -> baton::Result<()> {
    let url = baton::conn::default_url();
    let queue = Queue::connect(&url, "emails")?;
    let added = queue
        .add(
            "welcome",
            &Email {
                to: "a@example.com".into(),
            },
            JobOptions::default()
                .attempts(5)
                .delay(Duration::from_secs(1))
                .job_id("welcome-42"),
        )
        .await?;
    println!("added {} (new: {})", added.id, added.added);

    let worker = Worker::builder(&url, "emails")
        .concurrency(50)
        .lease(Duration::from_secs(30))
        .build(handler_fn(|email: Email, ctx: JobContext| async move {
            // Steps run once per job: on a retry or after a crash, finished steps return
            // their stored result instead of running again.
            let rendered: String = ctx
                .step("render", async { Ok(format!("hi {}", email.to)) })
                .await?;
            ctx.progress(&serde_json::json!({"rendered": true}))
                .await
                .ok();
            tokio::select! {
                _ = ctx.cancelled() => Err(JobError::retry("stopped")), // cancel, timeout, shutdown
                r = send(&rendered) => r.map_err(JobError::retry),
            }
        }))?;
    worker.run_until_signal().await // SIGTERM/SIGINT: graceful shutdown
}
