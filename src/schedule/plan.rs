//! When a scheduler runs: the occurrences of a cron expression in a time zone (croner
//! over chrono-tz, which handles daylight-saving changes) or of a fixed interval.
//!
//! Pure functions of time in milliseconds since the epoch, so the rules (missed ticks
//! collapse, start/end/limit, DST) are unit-tested here without Redis.

use std::str::FromStr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use super::Repeat;
use crate::error::{Error, Result};

/// The shortest interval, and so the finest tick: one second (cron's finest unit too).
/// Finer ticks would come faster than a worker's scheduler loop reliably looks.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

/// A repeat rule, parsed once.
#[derive(Debug, Clone)]
pub(crate) enum Plan {
    /// A cron expression in a time zone.
    Cron(Box<Cron>, Tz),
    /// Every `ms` milliseconds, on the multiples of `ms` counted from `anchor_ms`.
    Every { ms: u64, anchor_ms: u64 },
}

impl Plan {
    /// Parses `repeat`; `start_ms` anchors an interval (else the Unix epoch, so that an
    /// `every 1m` ticks on whole minutes and re-upserting it keeps the same ticks).
    pub fn new(repeat: &Repeat, start_ms: Option<u64>) -> Result<Plan> {
        match repeat {
            Repeat::Cron { expr, tz } => {
                let cron = Cron::from_str(expr).map_err(|e| {
                    Error::Invalid(format!("cron expression {expr:?} is not valid: {e}"))
                })?;
                let zone = match tz.as_deref() {
                    None => Tz::UTC,
                    Some(name) => parse_tz(name)?,
                };
                Ok(Plan::Cron(Box::new(cron), zone))
            }
            Repeat::Every(d) => {
                if *d < MIN_EVERY || d.subsec_nanos() % 1_000_000 != 0 {
                    return Err(Error::Invalid(format!(
                        "a scheduler's interval must be at least {MIN_EVERY:?} in whole \
                         milliseconds, got {d:?}"
                    )));
                }
                if *d > crate::validate::MAX_DURATION {
                    return Err(Error::Invalid(
                        "a scheduler's interval is longer than ten years".into(),
                    ));
                }
                Ok(Plan::Every {
                    ms: d.as_millis() as u64,
                    anchor_ms: start_ms.unwrap_or(0),
                })
            }
        }
    }

    /// The first occurrence at or after `t` (ms), if there is one.
    pub fn at_or_after(&self, t: u64) -> Option<u64> {
        match self {
            Plan::Every { ms, anchor_ms } => {
                if t <= *anchor_ms {
                    return Some(*anchor_ms);
                }
                let steps = (t - anchor_ms).div_ceil(*ms);
                steps.checked_mul(*ms)?.checked_add(*anchor_ms)
            }
            Plan::Cron(cron, tz) => {
                // Cron's unit is the second: start at the first whole second >= t.
                let secs = i64::try_from(t.div_ceil(1000)).ok()?;
                let from = tz.timestamp_opt(secs, 0).single()?;
                let at = cron.find_next_occurrence(&from, true).ok()?;
                u64::try_from(at.with_timezone(&Utc).timestamp_millis()).ok()
            }
        }
    }

    /// The first occurrence strictly after `t`.
    pub fn after(&self, t: u64) -> Option<u64> {
        self.at_or_after(t.checked_add(1)?)
    }
}

/// An IANA time zone name (`Europe/Berlin`, `UTC`).
fn parse_tz(name: &str) -> Result<Tz> {
    Tz::from_str(name).map_err(|_| {
        Error::Invalid(format!(
            "unknown time zone {name:?}: give an IANA name such as Europe/Berlin or UTC"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    fn cron(expr: &str, tz: &str) -> Plan {
        Plan::new(
            &Repeat::Cron {
                expr: expr.into(),
                tz: Some(tz.into()),
            },
            None,
        )
        .unwrap()
    }

    fn ms(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> u64 {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap();
        tz.from_local_datetime(&naive)
            .earliest()
            .unwrap()
            .timestamp_millis() as u64
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> u64 {
        ms(Tz::UTC, y, mo, d, h, mi, s)
    }

    #[test]
    fn a_seconds_field_is_allowed() {
        let p = cron("*/1 * * * * *", "UTC");
        let t = utc(2026, 1, 1, 0, 0, 0) + 300;
        assert_eq!(p.at_or_after(t), Some(utc(2026, 1, 1, 0, 0, 1)));
        assert_eq!(
            p.after(utc(2026, 1, 1, 0, 0, 1)),
            Some(utc(2026, 1, 1, 0, 0, 2))
        );
        // Five fields: minutes, second 0.
        let p = cron("*/5 * * * *", "UTC");
        assert_eq!(
            p.after(utc(2026, 1, 1, 0, 0, 0)),
            Some(utc(2026, 1, 1, 0, 5, 0))
        );
    }

    #[test]
    fn a_daily_run_keeps_its_local_time_across_dst_in_berlin() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let p = cron("0 0 9 * * *", "Europe/Berlin");
        // Spring forward on Sunday 29 March 2026: 09:00 is 08:00 UTC before, 07:00 after.
        let sat = p.after(utc(2026, 3, 27, 12, 0, 0)).unwrap();
        assert_eq!(sat, utc(2026, 3, 28, 8, 0, 0));
        let sun = p.after(sat).unwrap();
        assert_eq!(sun, utc(2026, 3, 29, 7, 0, 0));
        assert_eq!(sun - sat, 23 * 3600 * 1000, "the short day is 23 hours");
        assert_eq!(sun, ms(berlin, 2026, 3, 29, 9, 0, 0));
        // Fall back on Sunday 25 October 2026: the long day is 25 hours.
        let sat = p.after(utc(2026, 10, 23, 12, 0, 0)).unwrap();
        let sun = p.after(sat).unwrap();
        assert_eq!(sun - sat, 25 * 3600 * 1000, "the long day is 25 hours");
        assert_eq!(sun, utc(2026, 10, 25, 8, 0, 0));
    }

    #[test]
    fn the_repeated_hour_of_a_fall_back_runs_once_and_the_skipped_one_not_twice() {
        // 02:30 every day: on 25 October 2026 Berlin sees 02:30 twice (CEST, then CET);
        // a daily job runs once that day. On 29 March 02:30 does not exist at all.
        let p = cron("0 30 2 * * *", "Europe/Berlin");
        let runs_on = |day_start: u64| {
            let mut t = day_start;
            let mut n = 0;
            while let Some(next) = p.after(t) {
                if next >= day_start + 25 * 3600 * 1000 {
                    break;
                }
                n += 1;
                t = next;
            }
            n
        };
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(runs_on(ms(berlin, 2026, 10, 25, 0, 0, 0)), 1, "fall back");
        // Spring forward: at most one run, and the schedule goes on the next day.
        let spring = ms(berlin, 2026, 3, 29, 0, 0, 0);
        assert!(runs_on(spring) <= 1);
        assert_eq!(
            p.after(ms(berlin, 2026, 3, 29, 12, 0, 0)),
            Some(ms(berlin, 2026, 3, 30, 2, 30, 0))
        );
    }

    #[test]
    fn an_interval_ticks_on_multiples_of_its_anchor() {
        let p = Plan::new(&Repeat::Every(Duration::from_secs(30)), None).unwrap();
        assert_eq!(p.at_or_after(61_000), Some(90_000));
        assert_eq!(p.at_or_after(90_000), Some(90_000));
        assert_eq!(p.after(90_000), Some(120_000));
        let p = Plan::new(&Repeat::Every(Duration::from_secs(30)), Some(5_000)).unwrap();
        assert_eq!(p.at_or_after(0), Some(5_000));
        assert_eq!(p.after(5_000), Some(35_000));
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        let e = Plan::new(&Repeat::Every(Duration::from_millis(200)), None).unwrap_err();
        assert!(e.to_string().contains("at least 1s"), "{e}");
        let e = Plan::new(
            &Repeat::Cron {
                expr: "every day".into(),
                tz: None,
            },
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not valid"), "{e}");
        let e = Plan::new(
            &Repeat::Cron {
                expr: "* * * * *".into(),
                tz: Some("Mars/Olympus".into()),
            },
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown time zone"), "{e}");
    }
}
