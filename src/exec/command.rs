//! The start-up check of the command: a worker whose command cannot run would claim
//! every job and fail each attempt with "could not start command" until its attempts
//! ran out, so a typo in a deploy would quietly empty a queue into `failed`. Checking
//! once, before the first claim, turns that into a worker that refuses to start, which
//! an orchestrator shows as a crash loop with the reason in its log.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// The search path `execvp` uses when `PATH` is not set (glibc's default).
const DEFAULT_PATH: &str = "/bin:/usr/bin";

/// Finds the file `program` runs, as the spawn will (a name with a `/` is a path,
/// relative to the current directory; any other name is looked up on `PATH`), and
/// checks that it is a file this process may execute. The error names the command and
/// what is wrong with it, in words.
///
/// This is a check, not a pin: the command is still started by its name, so its
/// `argv[0]` and its lookup stay what the user wrote.
pub fn resolve_program(program: &str) -> Result<PathBuf, String> {
    if program.is_empty() {
        return Err("the command is empty".into());
    }
    if program.contains('/') {
        let p = Path::new(program);
        return match problem(p) {
            None => Ok(p.to_path_buf()),
            Some(why) => Err(format!("command {program:?} {why}")),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from(DEFAULT_PATH));
    let mut unusable = Vec::new();
    for dir in std::env::split_paths(&path) {
        // An empty entry means the current directory, as for execvp.
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(program);
        match problem(&candidate) {
            None => return Ok(candidate),
            Some(Problem::Missing) => {}
            Some(why) => unusable.push(format!("{} {why}", candidate.display())),
        }
    }
    let mut msg = format!(
        "command {program:?} not found on PATH ({})",
        path.to_string_lossy()
    );
    if !unusable.is_empty() {
        msg.push_str(&format!("; found but unusable: {}", unusable.join(", ")));
    }
    Err(msg)
}

/// Why a path cannot be executed.
#[derive(Debug, PartialEq)]
enum Problem {
    Missing,
    Directory,
    NotAFile,
    NotExecutable,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Problem::Missing => "does not exist",
            Problem::Directory => "is a directory",
            Problem::NotAFile => "is not a regular file",
            Problem::NotExecutable => {
                "is not executable by this user (chmod +x, or run it through its interpreter)"
            }
        })
    }
}

fn problem(p: &Path) -> Option<Problem> {
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(_) => return Some(Problem::Missing),
    };
    if meta.is_dir() {
        return Some(Problem::Directory);
    }
    if !meta.is_file() {
        return Some(Problem::NotAFile);
    }
    (!executable(p.as_os_str())).then_some(Problem::NotExecutable)
}

/// access(2) with X_OK: asks the kernel, so the user, the mode bits, ACLs and a
/// `noexec` mount all count, as they will for the spawn.
fn executable(p: &OsStr) -> bool {
    // A path with a NUL byte in it is refused (EINVAL) like any other error.
    nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(resolve_program("sh").unwrap().is_absolute());
        let e = resolve_program("baton-surely-not-a-command").unwrap_err();
        assert!(
            e.contains("\"baton-surely-not-a-command\" not found on PATH"),
            "{e}"
        );
        assert_eq!(resolve_program("").unwrap_err(), "the command is empty");

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.sh");
        std::fs::write(&f, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let fs = f.display().to_string();
        // root may execute any file with an execute bit, so none is set here.
        assert!(resolve_program(&fs).unwrap_err().contains("not executable"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(resolve_program(&fs).unwrap(), f);
        let d = dir.path().display().to_string();
        assert!(resolve_program(&d).unwrap_err().contains("is a directory"));
        let gone = dir.path().join("gone").display().to_string();
        assert!(resolve_program(&gone)
            .unwrap_err()
            .contains("does not exist"));
    }
}
