//! What the command's exit status means for the attempt: the table in the module docs
//! of [`crate::exec`], in code.

use std::process::ExitStatus;

use super::{EXIT_FATAL, EXIT_TEMPFAIL};
use crate::worker::JobError;

/// The failure for a command that did not exit 0.
///
/// `stopped`: the worker told the attempt to stop (cancel, timeout, lost lease,
/// shutdown); the worker then decides the outcome from why it stopped, so the exit
/// status only describes what happened. `last_err` (the last stderr line) is appended,
/// because it is usually the command's own explanation.
pub(super) fn failure(status: ExitStatus, stopped: bool, last_err: Option<&str>) -> JobError {
    let how = describe(status);
    if stopped {
        return JobError::retry(format!(
            "stopped (cancel, timeout, lost lease or shutdown); {how}"
        ));
    }
    let msg = match last_err {
        Some(l) => format!("{how}: {l}"),
        None => how,
    };
    if status.code() == Some(EXIT_FATAL) {
        JobError::fatal(msg)
    } else {
        JobError::retry(msg)
    }
}

/// "command exited with code N" / "command killed by signal S (NAME)", naming the two
/// codes that mean something to baton.
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(EXIT_TEMPFAIL), _) => {
            format!("command asked for a retry (exited with code {EXIT_TEMPFAIL}, EX_TEMPFAIL)")
        }
        (Some(EXIT_FATAL), _) => format!(
            "command failed the job for good (exited with code {EXIT_FATAL}, EX_DATAERR: not retried)"
        ),
        (Some(c), _) => format!("command exited with code {c}"),
        (None, Some(s)) => format!("command killed by signal {s} ({})", signal_name(s)),
        (None, None) => format!("command ended with {status}"),
    }
}

fn signal_name(s: i32) -> &'static str {
    nix::sys::signal::Signal::try_from(s).map_or("?", |s| s.as_str())
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use nix::sys::signal::Signal;

    use super::*;
    use crate::worker::Retry;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    #[test]
    fn codes_map_to_retry_choices() {
        assert_eq!(
            failure(exit(EXIT_FATAL), false, None).retry_choice(),
            Retry::Never
        );
        assert_eq!(
            failure(exit(EXIT_TEMPFAIL), false, None).retry_choice(),
            Retry::Backoff
        );
        assert_eq!(failure(exit(1), false, None).retry_choice(), Retry::Backoff);
        assert_eq!(
            failure(ExitStatus::from_raw(Signal::SIGKILL as i32), false, None).retry_choice(),
            Retry::Backoff
        );
        // Stopped by the worker: the worker decides, whatever the code.
        assert_eq!(
            failure(exit(EXIT_FATAL), true, None).retry_choice(),
            Retry::Backoff
        );
        let e = failure(exit(3), false, Some("boom"));
        assert_eq!(e.message(), "command exited with code 3: boom");
        let e = failure(ExitStatus::from_raw(Signal::SIGSEGV as i32), false, None);
        assert_eq!(e.message(), "command killed by signal 11 (SIGSEGV)");
    }
}
