//! A worker cut off from Redis stops its own handlers once their lease may have ended,
//! before another worker recovers the job (issue 8, defect 4): the same job never runs
//! in two places past its lease.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{start, wait_until, RedisServer};
use baton::{handler_fn, JobContext, JobOptions, JobState, Queue, Worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

/// Copies `r` to `w` until `cut` is set; then swallows everything and keeps both open.
async fn pump(mut r: OwnedReadHalf, mut w: OwnedWriteHalf, cut: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Forwards to `upstream` until `cut` is set; from then on forwards nothing in either
/// direction and leaves every connection open: a partition, not a reset.
async fn blackholing_proxy(upstream: u16, cut: Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let cut = cut.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, cut.clone()));
                tokio::spawn(pump(sr, cw, cut));
            });
        }
    });
    port
}

/// (worker, event, when) as the handlers saw them.
type Events = Arc<Mutex<Vec<(&'static str, &'static str, Instant)>>>;

#[tokio::test]
async fn a_cut_off_worker_stops_its_handler_before_another_recovers_the_job() {
    let redis = RedisServer::start();
    let cut = Arc::new(AtomicBool::new(false));
    let port = blackholing_proxy(redis.port, cut.clone()).await;
    let lease = Duration::from_secs(3);
    // (worker, event, when)
    let events: Events = Default::default();
    let handler = |who: &'static str, events: Events| {
        handler_fn(move |_: u32, ctx: JobContext| {
            let events = events.clone();
            async move {
                events.lock().unwrap().push((who, "start", Instant::now()));
                // A 12 s job, unless told to stop.
                tokio::select! {
                    _ = ctx.cancelled() => events.lock().unwrap().push((who, "stopped", Instant::now())),
                    _ = tokio::time::sleep(Duration::from_secs(12)) => events.lock().unwrap().push((who, "finished", Instant::now())),
                }
                Ok(())
            }
        })
    };
    let a = Worker::builder(format!("redis://127.0.0.1:{port}"), "fence")
        .lease(lease)
        .build(handler("a", events.clone()))
        .unwrap();
    let run_a = start(a);
    let q = Queue::connect(redis.url(), "fence").unwrap();
    let job = q.add("n", &1u32, JobOptions::default()).await.unwrap();
    wait_until(Duration::from_secs(10), "a runs the job", || async {
        events.lock().unwrap().iter().any(|e| e.0 == "a")
    })
    .await;
    cut.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();
    let b = Worker::builder(redis.url(), "fence")
        .lease(lease)
        .stalled_interval(Duration::from_millis(100))
        .build(handler("b", events.clone()))
        .unwrap();
    let run_b = start(b);
    wait_until(
        Duration::from_secs(20),
        "b recovers and runs the job",
        || async {
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.0 == "b" && e.1 == "start")
        },
    )
    .await;
    let ev = events.lock().unwrap().clone();
    let a_stopped = ev
        .iter()
        .find(|e| e.0 == "a" && e.1 == "stopped")
        .map(|e| e.2);
    let b_started = ev.iter().find(|e| e.0 == "b" && e.1 == "start").unwrap().2;
    let a_stopped = a_stopped.expect("the cut-off worker never stopped its handler");
    println!(
        "cut-off worker stopped its handler {:?} after the cut (lease {lease:?}); the job was recovered elsewhere after {:?}",
        a_stopped - cut_at,
        b_started - cut_at
    );
    assert!(
        a_stopped <= b_started,
        "two handlers ran the job at once: {ev:?}"
    );
    wait_until(
        Duration::from_secs(20),
        "recovered job completed",
        || async { q.job(&job.id).await.unwrap().unwrap().state == JobState::Completed },
    )
    .await;
    run_b.stop().await;
    // The cut-off worker cannot reach Redis to deregister; stop it without waiting.
    run_a.handle.shutdown_now();
}

/// User + system CPU time of this test process.
fn cpu_time() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A handler already told to stop (here: cancelled) that does not return, on a worker
/// cut off from Redis: its lease lapses but fencing has nothing left to do for it, and
/// the heartbeat must not wake up again and again for that past deadline.
#[tokio::test]
async fn a_stopped_handler_past_its_lease_does_not_spin_the_heartbeat() {
    let redis = RedisServer::start();
    let cut = Arc::new(AtomicBool::new(false));
    let port = blackholing_proxy(redis.port, cut.clone()).await;
    let w = Worker::builder(format!("redis://127.0.0.1:{port}"), "spin")
        .lease(Duration::from_millis(600))
        .abort_grace(Duration::from_secs(60))
        .build(handler_fn(|_: u32, _ctx: JobContext| async move {
            // Ignores its cancellation token.
            std::future::pending::<()>().await;
            Ok(())
        }))
        .unwrap();
    let run = start(w);
    let q = Queue::connect(redis.url(), "spin").unwrap();
    let job = q.add("n", &1u32, JobOptions::default()).await.unwrap();
    wait_until(Duration::from_secs(10), "job running", || async {
        q.job(&job.id).await.unwrap().unwrap().state == JobState::Active
    })
    .await;
    q.cancel(&job.id).await.unwrap();
    // Let the cancel reach the worker (pub/sub or the next heartbeat), then cut it off.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cut.store(true, Ordering::SeqCst);
    // Past the lease, then measure.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (cpu0, t0) = (cpu_time(), Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let share = (cpu_time() - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    println!(
        "CPU used by the cut-off worker's process: {:.0} % of a core",
        share * 100.0
    );
    assert!(
        share < 0.3,
        "the worker spins: {:.0} % of a core",
        share * 100.0
    );
    run.handle.shutdown_now();
}
