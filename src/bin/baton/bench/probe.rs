//! What the bench reads to measure: Redis's `INFO` (CPU, memory, commands) summed over
//! every server of the deployment, and a process's CPU time and resident memory from
//! `/proc` (Linux), for the worker processes the bench starts.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use baton::conn::RedisConfig;
use baton::{Error, Result};
use serde_json::json;

/// Microseconds since the Unix epoch: producer and worker processes on one machine
/// share this clock, so a payload can carry its add time to the handler.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// A payload of about `bytes` bytes of JSON: `{"i":n}` for 0, else the same padded by a
/// string field (what the peer benchmarks send too).
pub fn payload(i: usize, bytes: usize) -> serde_json::Value {
    let bare = format!("{{\"i\":{i},\"pad\":\"\"}}").len();
    if bytes == 0 {
        json!({ "i": i })
    } else {
        json!({ "i": i, "pad": "x".repeat(bytes.saturating_sub(bare)) })
    }
}

/// Redis counters at one moment, summed over every server.
#[derive(Debug, Clone, Default)]
pub struct RedisSample {
    /// used_cpu_user + used_cpu_sys, seconds.
    pub cpu_s: f64,
    /// used_memory, bytes.
    pub used_memory: f64,
    /// total_commands_processed (commands sent by clients).
    pub commands: f64,
    /// Calls per command from `INFO commandstats` (commands inside scripts included).
    pub calls: BTreeMap<String, f64>,
}

impl RedisSample {
    /// Reads `INFO cpu`, `memory`, `stats` and `commandstats` of every server.
    pub async fn take(cfg: &RedisConfig) -> Result<RedisSample> {
        let mut s = RedisSample::default();
        for node in baton::conn::Connector::new(cfg)?.nodes().await? {
            let mut c = node.connect().await?;
            let info: String = redis::cmd("INFO")
                .arg("cpu")
                .arg("memory")
                .arg("stats")
                .arg("commandstats")
                .query_async(&mut c)
                .await?;
            for line in info.lines() {
                let Some((k, v)) = line.split_once(':') else {
                    continue;
                };
                let num = |v: &str| v.trim().parse::<f64>().unwrap_or(0.0);
                match k {
                    "used_cpu_user" | "used_cpu_sys" => s.cpu_s += num(v),
                    "used_memory" => s.used_memory += num(v),
                    "total_commands_processed" => s.commands += num(v),
                    _ => {
                        if let Some(cmd) = k.strip_prefix("cmdstat_") {
                            let calls = v
                                .split(',')
                                .find_map(|f| f.strip_prefix("calls="))
                                .map(num)
                                .unwrap_or(0.0);
                            *s.calls.entry(cmd.to_string()).or_default() += calls;
                        }
                    }
                }
            }
        }
        Ok(s)
    }

    /// The change since `before`, per job: Redis CPU µs, client commands, and the
    /// commands Redis ran (scripts' inner commands included), the busiest first.
    pub fn per_job(&self, before: &RedisSample, jobs: usize) -> serde_json::Value {
        let n = jobs.max(1) as f64;
        let mut calls: Vec<(String, f64)> = self
            .calls
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    (v - before.calls.get(k).copied().unwrap_or(0.0)) / n,
                )
            })
            .filter(|(_, v)| *v > 0.0)
            .collect();
        calls.sort_by(|a, b| b.1.total_cmp(&a.1));
        calls.truncate(8);
        let calls_total: f64 =
            self.calls.values().sum::<f64>() - before.calls.values().sum::<f64>();
        json!({
            "redis_cpu_us_per_job": (self.cpu_s - before.cpu_s) * 1e6 / n,
            "commands_per_job": (self.commands - before.commands) / n,
            "calls_per_job": calls_total / n,
            "top_calls_per_job": calls.into_iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        })
    }
}

/// CPU time (user + sys) of a live process, seconds, from `/proc/PID/stat`.
pub fn process_cpu_s(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| Error::Invalid(format!("/proc/{pid}/stat: {e} (the bench needs Linux)")))?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Ok((ticks(11) + ticks(12)) / clock_ticks())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { nix::libc::sysconf(nix::libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// Resident memory of a live process, KiB, from `VmRSS` in `/proc/PID/status`.
pub fn process_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| Error::Invalid(format!("/proc/{pid}/status: {e} (the bench needs Linux)")))?;
    status
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| Error::Invalid(format!("no VmRSS in /proc/{pid}/status")))
}
