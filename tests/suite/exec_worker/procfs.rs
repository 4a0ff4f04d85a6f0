//! Process state from /proc: whether a pid is gone, and zombie children.

use std::time::Duration;

use crate::common::wait_until;

/// (state, ppid) of `pid` from /proc/PID/stat; None once it is gone (reaped).
pub(crate) fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

pub(crate) fn gone(pid: i32) -> bool {
    proc_stat(pid).is_none()
}

/// Zombie children of `parent`.
pub(crate) fn zombies_of(parent: i32) -> Vec<i32> {
    let mut z = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(('Z', ppid)) = proc_stat(pid) {
            if ppid == parent {
                z.push(pid);
            }
        }
    }
    z
}

/// Asserts (within a deadline: a command that just exited is a zombie until its handler
/// reaps it) that `parent` has no zombie children.
pub(crate) async fn assert_no_zombies(parent: i32) {
    wait_until(
        Duration::from_secs(3),
        &format!("no zombie children of {parent}"),
        || async { zombies_of(parent).is_empty() },
    )
    .await;
}
