//! A scheduler as stored in `baton:{q}:schedulers` (MessagePack), and the two moves of
//! its state: where it starts after an upsert, and where it goes after a tick fired.

use serde::{Deserialize, Serialize};

use super::plan::Plan;
use super::Repeat;
use crate::error::{Error, Result};
use crate::job::RunOptions;

/// One scheduler: its rule, its job template (exactly the fields `add.lua` writes, the
/// data sealed already when the upserting queue held a keyring), its bounds, and its
/// state (runs so far, the last tick fired). No Lua script reads it: scripts compare
/// it byte for byte (compare-and-set) and store what Rust computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stored {
    pub cron: Option<String>,
    pub tz: Option<String>,
    pub every_ms: Option<u64>,
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    pub run: RunOptions,
    pub priority: u32,
    /// Retention as `add.lua` takes it ("kc:kca:kf:kfa").
    pub keep: String,
    pub start_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub limit: Option<u64>,
    /// Ticks fired so far (jobs added).
    pub runs: u64,
    /// The last tick fired, whose job may still wait for its time.
    pub last_tick: Option<u64>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl Stored {
    pub fn encode(&self) -> Result<Vec<u8>> {
        rmp_serde::to_vec_named(self).map_err(|e| Error::Encode(e.to_string()))
    }

    pub fn decode(bytes: &[u8]) -> Result<Stored> {
        rmp_serde::from_slice(bytes).map_err(|e| Error::Decode(format!("stored scheduler: {e}")))
    }

    /// The repeat rule as given.
    pub fn repeat(&self) -> Repeat {
        match (&self.cron, self.every_ms) {
            (Some(expr), _) => Repeat::Cron {
                expr: expr.clone(),
                tz: self.tz.clone(),
            },
            (None, ms) => Repeat::Every(std::time::Duration::from_millis(ms.unwrap_or(0))),
        }
    }

    pub fn plan(&self) -> Result<Plan> {
        Plan::new(&self.repeat(), self.start_ms)
    }

    /// The job options as stored with each job (`opts`, the compact form
    /// [`RunOptions::encode`](crate::job::RunOptions) writes, as `Queue::add` does).
    pub fn opts_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.run.encode())
    }

    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|l| self.runs >= l)
    }

    fn within_end(&self, t: u64) -> Option<u64> {
        match self.end_ms {
            Some(end) if t > end => None,
            _ => Some(t),
        }
    }

    /// The next tick after an upsert at `now`: the first occurrence at or after now
    /// and the start, and after the last tick already fired (a tick fires once).
    pub fn first_run(&self, plan: &Plan, now: u64) -> Option<u64> {
        if self.limit_reached() {
            return None;
        }
        let mut from = now.max(self.start_ms.unwrap_or(0));
        if let Some(last) = self.last_tick {
            from = from.max(last + 1);
        }
        self.within_end(plan.at_or_after(from)?)
    }

    /// This scheduler after firing `tick` at `now`, and its next tick: the first
    /// occurrence after both, so ticks missed while no worker ran collapse into the
    /// one just fired.
    pub fn fired(&self, plan: &Plan, tick: u64, now: u64) -> (Stored, Option<u64>) {
        let mut after = self.clone();
        after.runs += 1;
        after.last_tick = Some(tick);
        let next = if after.limit_reached() {
            None
        } else {
            plan.after(now.max(tick)).and_then(|t| after.within_end(t))
        };
        (after, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every(secs: u64) -> Stored {
        Stored {
            cron: None,
            tz: None,
            every_ms: Some(secs * 1000),
            name: "n".into(),
            data: vec![0xc0],
            run: RunOptions {
                attempts: 1,
                backoff: Default::default(),
                timeout: None,
                trace: None,
            },
            priority: 0,
            keep: "-1:0:-1:0".into(),
            start_ms: None,
            end_ms: None,
            limit: None,
            runs: 0,
            last_tick: None,
            created_ms: 0,
            updated_ms: 0,
        }
    }

    #[test]
    fn missed_ticks_collapse_into_one() {
        let s = every(1);
        let plan = s.plan().unwrap();
        assert_eq!(s.first_run(&plan, 10_500), Some(11_000));
        // The worker came back at 20.3 s: tick 11 s fires (once), the next is 21 s.
        let (after, next) = s.fired(&plan, 11_000, 20_300);
        assert_eq!(
            (after.runs, after.last_tick, next),
            (1, Some(11_000), Some(21_000))
        );
        // Fired ahead of time (look-ahead): the next follows the tick.
        let (_, next) = s.fired(&plan, 11_000, 10_900);
        assert_eq!(next, Some(12_000));
    }

    #[test]
    fn limit_end_and_start_bound_the_runs() {
        let mut s = every(1);
        s.limit = Some(2);
        let plan = s.plan().unwrap();
        let (s1, n1) = s.fired(&plan, 1_000, 1_000);
        assert_eq!(n1, Some(2_000));
        let (s2, n2) = s1.fired(&plan, 2_000, 2_000);
        assert_eq!((s2.runs, n2), (2, None), "the limit ends it");
        assert_eq!(
            s2.first_run(&plan, 5_000),
            None,
            "an upsert keeps the count"
        );

        let mut s = every(1);
        s.end_ms = Some(3_000);
        let plan = s.plan().unwrap();
        assert_eq!(
            s.fired(&plan, 3_000, 3_000).1,
            None,
            "nothing after the end"
        );
        assert_eq!(
            s.first_run(&plan, 2_500),
            Some(3_000),
            "the end itself runs"
        );

        let mut s = every(10);
        s.start_ms = Some(7_000);
        let plan = s.plan().unwrap();
        assert_eq!(s.first_run(&plan, 0), Some(7_000));
        assert_eq!(
            s.first_run(&plan, 8_000),
            Some(17_000),
            "anchored at the start"
        );
    }

    #[test]
    fn an_upsert_never_fires_a_tick_twice() {
        let mut s = every(1);
        s.last_tick = Some(5_000);
        let plan = s.plan().unwrap();
        assert_eq!(s.first_run(&plan, 4_200), Some(6_000));
    }

    #[test]
    fn the_stored_form_round_trips() {
        let s = every(5);
        assert_eq!(Stored::decode(&s.encode().unwrap()).unwrap(), s);
        assert!(Stored::decode(b"junk").is_err());
    }
}
