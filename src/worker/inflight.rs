//! The jobs this worker holds: what the heartbeat renews, what a cancel message finds,
//! and what shutdown stops. An entry lives from claim until its outcome lands in Redis
//! (or its lease is found lost), so leases stay renewed while an outcome waits to be written.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Why a running handler was told to stop. The first reason wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Someone cancelled the job.
    Cancelled,
    /// The attempt ran past its timeout.
    Timeout,
    /// The lease was lost (expired and taken over, or the job was changed under us).
    LeaseLost,
    /// The worker is shutting down.
    Shutdown,
}

/// One held job.
#[derive(Debug)]
pub(crate) struct Held {
    pub token: u64,
    pub cancel: CancellationToken,
    reason: Mutex<Option<StopReason>>,
    /// False once the handler has returned (the outcome may still be on its way).
    pub running: std::sync::atomic::AtomicBool,
    /// The earliest the lease can end in Redis: when the last claim or renewal that
    /// succeeded was sent, plus the lease (Redis computes the deadline from its own,
    /// later, clock). Past it, the job may be another worker's: self-fencing stops the
    /// handler (see `heartbeat`).
    lease_until: Mutex<tokio::time::Instant>,
}

impl Held {
    /// Tells the handler to stop for `reason`, unless it was already told.
    pub fn stop(&self, reason: StopReason) -> bool {
        let mut r = self.reason.lock().unwrap();
        if r.is_some() {
            return false;
        }
        *r = Some(reason);
        self.cancel.cancel();
        true
    }
    /// When the lease ends at the earliest (see the field).
    pub fn lease_until(&self) -> tokio::time::Instant {
        *self.lease_until.lock().unwrap()
    }

    /// A renewal sent at `sent` succeeded.
    pub fn renewed(&self, sent: tokio::time::Instant, lease: std::time::Duration) {
        let mut u = self.lease_until.lock().unwrap();
        *u = (*u).max(sent + lease);
    }

    /// The reason the handler was told to stop, if it was.
    pub fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap()
    }
}

/// The registry of held jobs.
#[derive(Debug, Clone, Default)]
pub(crate) struct InFlight {
    map: Arc<Mutex<HashMap<String, Arc<Held>>>>,
}

impl InFlight {
    /// Registers a new claim. If this worker still held an older attempt of the same
    /// job (its lease expired, the job was recovered and claimed again here), that
    /// older attempt has lost its lease: it is told to stop, and returned second.
    ///
    /// `lease_until`: when the claim was sent, plus the lease.
    pub fn insert(
        &self,
        id: &str,
        token: u64,
        lease_until: tokio::time::Instant,
    ) -> (Arc<Held>, Option<Arc<Held>>) {
        let held = Arc::new(Held {
            token,
            cancel: CancellationToken::new(),
            reason: Mutex::new(None),
            running: std::sync::atomic::AtomicBool::new(true),
            lease_until: Mutex::new(lease_until),
        });
        let old = self
            .map
            .lock()
            .unwrap()
            .insert(id.to_string(), held.clone());
        if let Some(old) = &old {
            old.stop(StopReason::LeaseLost);
        }
        (held, old)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Held>> {
        self.map.lock().unwrap().get(id).cloned()
    }

    /// Forgets `id` if it is still held with `token`.
    pub fn remove(&self, id: &str, token: u64) {
        let mut m = self.map.lock().unwrap();
        if m.get(id).map(|h| h.token == token).unwrap_or(false) {
            m.remove(id);
        }
    }

    /// True if `id` is held with `token`.
    pub fn holds(&self, id: &str, token: u64) -> bool {
        self.map
            .lock()
            .unwrap()
            .get(id)
            .map(|h| h.token == token)
            .unwrap_or(false)
    }

    /// (id, token) of every held job, for the heartbeat.
    pub fn leases(&self) -> Vec<(String, u64)> {
        self.map
            .lock()
            .unwrap()
            .iter()
            .map(|(id, h)| (id.clone(), h.token))
            .collect()
    }

    /// Every held job whose handler still runs, with its id.
    pub fn running_handles(&self) -> Vec<(String, Arc<Held>)> {
        self.map
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, h)| h.running.load(std::sync::atomic::Ordering::Relaxed))
            .map(|(id, h)| (id.clone(), h.clone()))
            .collect()
    }

    /// Handlers still running.
    pub fn running(&self) -> usize {
        self.map
            .lock()
            .unwrap()
            .values()
            .filter(|h| h.running.load(std::sync::atomic::Ordering::Relaxed))
            .count()
    }

    /// Held jobs (running or with an outcome on its way).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }

    /// Tells every running handler to stop.
    pub fn stop_all(&self, reason: StopReason) {
        for h in self.map.lock().unwrap().values() {
            h.stop(reason);
        }
    }
}
