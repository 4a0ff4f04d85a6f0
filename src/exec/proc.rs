//! The command as a process: spawned in its own process group, tied to the worker's life
//! (Linux), signalled as a group and reaped exactly once.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::reaper;

/// Makes the command die (SIGKILL) when the worker dies; see the module docs for what
/// it does not cover.
#[cfg(target_os = "linux")]
pub(super) fn die_with_parent(cmd: &mut Command) {
    use nix::sys::prctl;
    use nix::unistd::{getpid, getppid};

    let parent = getpid();
    // SAFETY: `pre_exec` is unsafe because the closure runs in the forked child, where
    // only async-signal-safe calls are sound. This one makes only raw system calls
    // (prctl, getppid) and builds an `io::Error` from an errno, which does not allocate;
    // it takes no lock and touches no memory shared with other threads.
    unsafe {
        cmd.pre_exec(move || {
            prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The worker died between fork and prctl: the signal will never come, so do
            // not run the command (the spawn fails, the child exits at once).
            if getppid() != parent {
                return Err(io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// A spawned command: registered with the reaper as ours until reaped; if dropped before
/// that, its process group is SIGKILLed and it is reaped in the background.
pub(super) struct Proc {
    pub(super) child: Option<Child>,
    pid: i32,
    #[cfg(target_os = "linux")]
    pidfd: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl Proc {
    pub(super) fn spawn(cmd: &mut Command) -> io::Result<Proc> {
        let child = reaper::spawn_registered(cmd)?;
        let pid = child.id().expect("a child not yet waited for has a pid") as i32;
        Ok(Proc {
            child: Some(child),
            pid,
            #[cfg(target_os = "linux")]
            pidfd: open_pidfd(pid),
        })
    }

    /// Resolves once the command has exited, without reaping it.
    pub(super) async fn exited(&self) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.pidfd {
            while let Ok(mut g) = fd.readable().await {
                if reaper::has_exited(self.pid) {
                    return;
                }
                g.clear_ready();
            }
        }
        // No pidfd: poll.
        while !reaper::has_exited(self.pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Signals the command's whole process group (its pgid is its pid). Safe only while
    /// the command is not reaped: until then its pid, hence the group id, is not reused.
    pub(super) fn signal_group(&self, sig: Signal) {
        if self.child.is_some() {
            // ESRCH (nothing left in the group) is fine.
            let _ = killpg(Pid::from_raw(self.pid), sig);
        }
    }

    /// Waits for the command and reaps it.
    pub(super) async fn reap(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.as_mut().expect("not reaped yet").wait().await?;
        self.child = None;
        reaper::unregister(self.pid);
        Ok(status)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // The handler was dropped (aborted) before the command was reaped: kill the whole
        // group (not just the command, as kill_on_drop would), then reap it.
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        let pid = self.pid;
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move {
                    let _ = child.wait().await;
                    reaper::unregister(pid);
                });
            }
            Err(_) => {
                // No runtime: tokio's orphan queue (or the reaper) reaps it.
                drop(child);
                reaper::unregister(pid);
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn open_pidfd(pid: i32) -> Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::{FromRawFd, OwnedFd};

    use nix::libc;
    // pidfd_open(2), Linux 5.3+: readable once the process has exited (before it is
    // reaped). The fd is close-on-exec. nix has no wrapper for it (nor has std, stably).
    // SAFETY: the syscall takes two integers and touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel just returned `fd`, an open descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: an `OwnedFd` is a valid open descriptor and keeps returning the same one
    // until the `AsyncFd` that owns it is dropped.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .ok()
}
