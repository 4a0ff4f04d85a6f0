//! A claim whose reply is lost after the script ran: a TCP proxy between worker and
//! Redis cuts the connection the moment the claim reply (carrying the job) comes back.
//! The worker must hand that job back and run it at once, not after its lease expires.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{start, wait_until, RedisServer};
use baton::{handler_fn, JobError, JobOptions, JobState, Queue, Worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Forwards to `upstream`; while `armed`, a server→client chunk containing `marker`
/// is swallowed and the connection cut (once).
async fn cutting_proxy(upstream: u16, marker: &'static [u8], armed: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let armed = armed.clone();
            tokio::spawn(async move {
                let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let chunk = &buf[..n];
                    if chunk.windows(marker.len()).any(|w| w == marker)
                        && armed.swap(false, Ordering::SeqCst)
                    {
                        break; // reply lost: drop both directions
                    }
                    if cw.write_all(chunk).await.is_err() {
                        break;
                    }
                }
                up.abort();
            });
        }
    });
    port
}

#[tokio::test]
async fn a_lost_claim_reply_does_not_wait_for_the_lease() {
    let redis = RedisServer::start();
    let armed = Arc::new(AtomicBool::new(true));
    let port = cutting_proxy(redis.port, b"CUT-ME", armed.clone()).await;
    let via_proxy = format!("redis://127.0.0.1:{port}");
    let q = Queue::connect(redis.url(), "lost").unwrap();
    let w = Worker::builder(&via_proxy, "lost")
        .lease(Duration::from_secs(20))
        .stalled_interval(Duration::from_secs(20))
        .build(handler_fn(|_: u8, _ctx| async {
            Ok::<_, JobError>("done")
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(10), "worker up", || async {
        !q.workers().await.unwrap().is_empty()
    })
    .await;
    let t = Instant::now();
    let a = q.add("CUT-ME", &1u8, JobOptions::default()).await.unwrap();
    wait_until(
        Duration::from_secs(8),
        "job completed well before its 20 s lease",
        || async { q.job(&a.id).await.unwrap().unwrap().state == JobState::Completed },
    )
    .await;
    eprintln!(
        "completed {:?} after add, despite the lost claim reply",
        t.elapsed()
    );
    assert!(
        !armed.load(Ordering::SeqCst),
        "the proxy did cut a claim reply"
    );
    let j = q.job(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (j.attempt, j.stalled),
        (1, 0),
        "handed back, not recovered as stalled"
    );
    run.stop().await;
}
