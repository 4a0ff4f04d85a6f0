//! Adopting and reaping orphaned descendants.
//!
//! A job's command may start processes that outlive it. Normally those are re-parented
//! to init, and if init does not reap (a container whose PID 1 is not an init) they stay
//! zombies forever. [`start_reaper`] makes this process a child subreaper, so they are
//! re-parented here instead, and reaps them.
//!
//! Reaping must not steal the exit status of a command the exec handler is waiting for
//! (tokio reaps those with `waitpid(pid)`). So the handler registers every command it
//! spawns (under the same lock the reaper holds, across the spawn, so a command that
//! dies at once cannot be mistaken for an orphan), and the reaper only *peeks* at exited
//! children (`waitid(P_ALL, WNOWAIT)`), reaping a peeked pid only if it is not
//! registered. When the peeked one is registered (ours, about to be reaped by its
//! handler), the others are found in `/proc/self/task/*/children`.
//!
//! The same holds when baton runs as PID 1: every orphan in the container is then its
//! child, and is reaped the same way.
//!
//! Only processes started through the exec handler are protected: code in the same
//! process that spawns children of its own and waits for them should not run the reaper.

use std::collections::HashMap;
use std::io;
use std::sync::{LazyLock, Mutex, MutexGuard, Once};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// pid → number of live registrations (a pid reused by a new command while the old
/// registration is being dropped counts twice).
static OURS: LazyLock<Mutex<HashMap<i32, u32>>> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn ours() -> MutexGuard<'static, HashMap<i32, u32>> {
    OURS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Spawns `cmd` and registers its pid, atomically with respect to the reaper.
pub(super) fn spawn_registered(cmd: &mut Command) -> io::Result<Child> {
    let mut ours = ours();
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        *ours.entry(pid as i32).or_insert(0) += 1;
    }
    Ok(child)
}

/// Drops one registration of `pid` (after it was reaped).
pub(super) fn unregister(pid: i32) {
    let mut ours = ours();
    if let Some(n) = ours.get_mut(&pid) {
        *n -= 1;
        if *n == 0 {
            ours.remove(&pid);
        }
    }
}

/// True if our child `pid` has exited (it is not reaped by this). Also true if it is no
/// child of ours any more, so nobody waits forever.
pub(super) fn has_exited(pid: i32) -> bool {
    match waitid(Id::Pid(Pid::from_raw(pid)), peek()) {
        Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => false,
        // EINVAL: exited, killed by a signal nix has no name for (a real-time one).
        Ok(_) | Err(_) => true,
    }
}

/// `waitid` flags that look at an exited child without reaping it.
fn peek() -> WaitPidFlag {
    WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG
}

/// Reaps every exited child that the exec handler is not waiting for; returns how many.
/// [`start_reaper`] calls it on SIGCHLD and every second.
pub fn reap_orphans() -> usize {
    let ours = ours();
    let mut reaped = 0;
    for _ in 0..100_000 {
        let pid = match waitid(Id::All, peek()) {
            Ok(WaitStatus::StillAlive) => break, // children, none exited
            Ok(st) => match st.pid() {
                Some(p) => p.as_raw(),
                None => break,
            },
            Err(Errno::EINTR) => continue,
            Err(Errno::EINVAL) => {
                // A child exited, killed by a signal nix has no name for (a real-time
                // one), so its pid is not told: look for it.
                reaped += reap_unlisted(&ours);
                break;
            }
            Err(_) => break, // ECHILD: no children at all
        };
        if ours.contains_key(&pid) {
            // waitid reports one exited child, and this one is the handler's to reap:
            // look past it.
            reaped += reap_unlisted(&ours);
            break;
        }
        if reap(pid) {
            reaped += 1;
        }
    }
    reaped
}

fn reap(pid: i32) -> bool {
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => false,
        Ok(status) => {
            tracing::debug!(pid, ?status, "reaped an orphaned process");
            true
        }
        // Reaped, but killed by a signal nix has no name for (a real-time one).
        Err(Errno::EINVAL) => {
            tracing::debug!(
                pid,
                "reaped an orphaned process (killed by a real-time signal)"
            );
            true
        }
        Err(_) => false, // ECHILD: not our child (any more)
    }
}

/// Reaps exited children not in `ours`, found through /proc (Linux).
fn reap_unlisted(ours: &HashMap<i32, u32>) -> usize {
    let mut n = 0;
    for pid in children() {
        if !ours.contains_key(&pid) && reap(pid) {
            n += 1;
        }
    }
    n
}

#[cfg(target_os = "linux")]
fn children() -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            pids.extend(
                s.split_ascii_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    pids
}

#[cfg(not(target_os = "linux"))]
fn children() -> Vec<i32> {
    Vec::new()
}

/// Makes this process adopt orphaned descendants and reaps them, so grandchildren never
/// linger as zombies (also when baton runs as PID 1). Idempotent. Call it from within a
/// tokio runtime (it then listens for SIGCHLD); outside one it polls from a thread.
pub fn start_reaper() {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        #[cfg(target_os = "linux")]
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(error = %e, "could not become a child subreaper; orphaned job processes go to init");
        }
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async {
                    use tokio::signal::unix::{signal, SignalKind};
                    let mut sigchld = match signal(SignalKind::child()) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot listen for SIGCHLD; reaping orphans every second");
                            None
                        }
                    };
                    let mut tick = tokio::time::interval(Duration::from_secs(1));
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        match sigchld.as_mut() {
                            Some(s) => {
                                tokio::select! {
                                    _ = s.recv() => {}
                                    _ = tick.tick() => {}
                                }
                            }
                            None => {
                                tick.tick().await;
                            }
                        }
                        reap_orphans();
                    }
                });
            }
            Err(_) => {
                let r = std::thread::Builder::new().name("baton-reaper".into()).spawn(|| loop {
                    reap_orphans();
                    std::thread::sleep(Duration::from_millis(200));
                });
                if let Err(e) = r {
                    tracing::warn!(error = %e, "could not start the reaper thread");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// nix cannot name a real-time signal, so it cannot decode the status of a child
    /// killed by one: such an orphan must still be reaped, not block the reaper.
    #[test]
    fn an_orphan_killed_by_a_real_time_signal_is_reaped() {
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let sent = std::process::Command::new("kill")
            .args(["-s", "RTMIN+1", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !has_exited(pid) {
            assert!(Instant::now() < deadline, "the child did not die");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(reap_orphans() >= 1);
        assert_eq!(
            waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
            Err(Errno::ECHILD),
            "reaped"
        );
        drop(child);
    }
}
