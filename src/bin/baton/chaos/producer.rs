//! The producer side of a chaos run: adds jobs at a steady pace straight to Redis (not
//! through the proxy), retries an add that failed with the same id until it is
//! acknowledged, cancels some jobs and plants corrupt records. It remembers what each
//! job is expected to end as.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use baton::{Backoff, Cancelled, Error, JobOptions, Queue, Retention};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;

/// What a job was made to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Runs and completes.
    Ok,
    /// Fails every attempt (ends `failed`).
    Doomed,
    /// Its record was made corrupt while it was delayed (ends `failed`, reason says so).
    Corrupt,
}

/// What the producer knows about one job.
#[derive(Debug, Clone)]
pub struct Expect {
    /// Its queue (an index into the run's queues).
    pub queue: usize,
    /// What it was made to do.
    pub kind: Kind,
    /// When its add was acknowledged (None: never acknowledged, it may still exist).
    pub acked: Option<Instant>,
    /// A cancel was acknowledged (`Now` or `Requested`): it must end `cancelled`.
    pub cancelled: bool,
    /// A cancel was sent but its answer was lost: `cancelled` or its normal end.
    pub maybe_cancelled: bool,
    /// The corruption may or may not have been written.
    pub maybe_corrupt: bool,
}

/// Every job the producer tried to add, by id.
pub type Book = Arc<Mutex<BTreeMap<String, Expect>>>;

/// Producer settings.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// Jobs added per second.
    pub rate: u32,
    /// Chance that a job is doomed.
    pub doomed: f64,
    /// Chance per add of also cancelling an earlier job.
    pub cancel: f64,
    /// Longest run time of a job.
    pub max_run: Duration,
}

/// Adds jobs round-robin over `qs` until `stop`; returns how many adds failed and were
/// retried.
pub async fn run(
    qs: Vec<Queue>,
    book: Book,
    pace: Pace,
    seed: u64,
    stop: CancellationToken,
) -> u64 {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_0001);
    let mut retried = 0;
    let gap = Duration::from_secs_f64(1.0 / pace.rate.max(1) as f64);
    let mut n = 0u64;
    while !stop.is_cancelled() {
        n += 1;
        let id = format!("j{n}");
        let kind = if rng.random_bool(pace.doomed) {
            Kind::Doomed
        } else {
            Kind::Ok
        };
        let name = match kind {
            Kind::Doomed => "doom-0".to_string(),
            _ => format!(
                "ok-{:.2}",
                rng.random_range(0.0..pace.max_run.as_secs_f64())
            ),
        };
        let qi = n as usize % qs.len();
        book.lock().unwrap().insert(id.clone(), expect(qi, kind));
        let opts = options(&id, kind, Duration::ZERO);
        retried += add_until_acked(&qs[qi], &book, &id, &name, opts, &stop).await;
        if rng.random_bool(pace.cancel) && n > 5 {
            let victim = format!("j{}", n - rng.random_range(1..5));
            let vq = book.lock().unwrap().get(&victim).map(|e| e.queue);
            if let Some(vq) = vq {
                cancel(&qs[vq], &book, &victim).await;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(gap) => {}
        }
    }
    retried
}

fn expect(queue: usize, kind: Kind) -> Expect {
    Expect {
        queue,
        kind,
        acked: None,
        cancelled: false,
        maybe_cancelled: false,
        maybe_corrupt: false,
    }
}

fn options(id: &str, kind: Kind, delay: Duration) -> JobOptions {
    JobOptions::default()
        .job_id(id)
        .delay(delay)
        .attempts(if kind == Kind::Doomed { 2 } else { 5 })
        .backoff(Backoff::Fixed {
            delay: Duration::from_millis(200),
        })
        .keep_completed(Retention::all())
        .keep_failed(Retention::all())
}

/// Adds with the same id until acknowledged (safe: an id that exists changes nothing)
/// or until `stop` plus a grace of 30 s. Returns the failed tries.
async fn add_until_acked(
    q: &Queue,
    book: &Book,
    id: &str,
    name: &str,
    opts: JobOptions,
    stop: &CancellationToken,
) -> u64 {
    let mut failed = 0;
    let mut give_up: Option<Instant> = None;
    loop {
        match q
            .add(name, &serde_json::json!({"n": id}), opts.clone())
            .await
        {
            Ok(_) => {
                if let Some(e) = book.lock().unwrap().get_mut(id) {
                    e.acked = Some(Instant::now());
                }
                return failed;
            }
            Err(e) => {
                failed += 1;
                tracing::debug!(id, error = %e, "add failed; retrying with the same id");
            }
        }
        if stop.is_cancelled() {
            let t = *give_up.get_or_insert_with(|| Instant::now() + Duration::from_secs(30));
            if Instant::now() > t {
                return failed;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn cancel(q: &Queue, book: &Book, id: &str) {
    let r = q.cancel(id).await;
    let mut b = book.lock().unwrap();
    let Some(e) = b.get_mut(id) else { return };
    match r {
        Ok(Cancelled::Now) | Ok(Cancelled::Requested) => e.cancelled = true,
        // Already finished, or unknown (its add not yet through): nothing changes.
        Err(Error::InvalidState { .. }) | Err(Error::NotFound { .. }) => {}
        Err(_) => e.maybe_cancelled = true,
    }
}

/// Adds one delayed job and, while it is still delayed, writes a non-numeric `attempt`
/// into its record, the way a bad migration or a hand edit would.
pub async fn plant_corrupt(
    qs: &[Queue],
    qi: usize,
    book: &Book,
    id: &str,
    redis: &super::server::ChaosRedis,
) {
    let q = &qs[qi];
    book.lock()
        .unwrap()
        .insert(id.to_string(), expect(qi, Kind::Ok));
    let opts = options(id, Kind::Ok, Duration::from_millis(1500));
    if q.add("ok-0.05", &serde_json::json!({"n": id}), opts)
        .await
        .is_err()
    {
        // Left as a plain job that may or may not exist.
        return;
    }
    if let Some(e) = book.lock().unwrap().get_mut(id) {
        e.acked = Some(Instant::now());
    }
    let key = baton::keys::Keys::new(q.name()).job(id);
    let script = "if redis.call('HGET', KEYS[1], 'state') == 'delayed' then \
                  redis.call('HSET', KEYS[1], 'attempt', 'abc') return 1 end return 0";
    let r = async {
        let v: redis::Value = redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(&key)
            .query_async(&mut redis.conn().await?)
            .await?;
        Ok::<_, Error>(v)
    }
    .await;
    let mut b = book.lock().unwrap();
    let e = b.get_mut(id).expect("just inserted");
    match r {
        Ok(redis::Value::Int(1)) => e.kind = Kind::Corrupt,
        Ok(_) => {}
        Err(_) => e.maybe_corrupt = true,
    }
}
