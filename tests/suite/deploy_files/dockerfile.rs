//! deploy/Dockerfile.

use super::yaml::{deploy, read};

#[test]
fn dockerfile_runs_baton_under_tini_and_stops_with_sigterm() {
    let path = deploy().join("Dockerfile");
    let text = read(&path);
    // Join continuation lines, drop comments and blank lines.
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            if !current.trim().is_empty() {
                instructions.push(current.trim().to_string());
            }
            current.clear();
        }
    }
    let by = |keyword: &str| -> Vec<String> {
        instructions
            .iter()
            .filter_map(|i| {
                let (k, rest) = i.split_once(char::is_whitespace)?;
                k.eq_ignore_ascii_case(keyword)
                    .then(|| rest.trim().to_string())
            })
            .collect()
    };

    let froms = by("FROM");
    assert!(
        froms.len() >= 2,
        "Dockerfile should be multi-stage (builder + runtime), found FROM {froms:?}"
    );
    assert!(
        froms[0].starts_with("rust:1-bookworm"),
        "first stage should build FROM rust:1-bookworm, got {:?}",
        froms[0]
    );
    assert!(
        froms.last().unwrap().starts_with("debian:bookworm-slim"),
        "final stage should be FROM debian:bookworm-slim, got {:?}",
        froms.last().unwrap()
    );
    let runs = by("RUN").join("\n");
    assert!(
        runs.contains("cargo build") && runs.contains("--release") && runs.contains("--locked"),
        "Dockerfile should run `cargo build --release --locked`"
    );
    for pkg in ["tini", "ca-certificates"] {
        assert!(
            runs.contains("apt-get install") && runs.split_whitespace().any(|w| w == pkg),
            "runtime stage should apt-get install {pkg}"
        );
    }

    let entrypoint = by("ENTRYPOINT");
    let entrypoint = entrypoint
        .last()
        .unwrap_or_else(|| panic!("Dockerfile has no ENTRYPOINT"));
    let argv: Vec<String> = serde_json::from_str(entrypoint).unwrap_or_else(|e| {
        panic!("ENTRYPOINT should be exec (JSON) form so tini is PID 1, got {entrypoint:?}: {e}")
    });
    assert_eq!(
        argv,
        ["/usr/bin/tini", "--", "/usr/local/bin/baton"],
        "ENTRYPOINT should make tini PID 1 and run baton under it"
    );

    let stop = by("STOPSIGNAL");
    assert_eq!(
        stop.last().map(String::as_str),
        Some("SIGTERM"),
        "Dockerfile should say STOPSIGNAL SIGTERM (baton drains on SIGTERM)"
    );

    let user = by("USER");
    let user = user
        .last()
        .unwrap_or_else(|| panic!("Dockerfile has no USER: the container would run as root"));
    let name = user.split(':').next().unwrap_or("");
    assert!(
        name != "root" && name != "0",
        "Dockerfile's final USER is {user:?}; baton should not run as root"
    );

    let exposed: Vec<String> = by("EXPOSE")
        .iter()
        .flat_map(|e| {
            e.split_whitespace()
                .map(|p| p.split('/').next().unwrap().to_string())
        })
        .collect();
    for port in ["9090", "8080"] {
        assert!(
            exposed.iter().any(|p| p == port),
            "Dockerfile should EXPOSE {port}, exposes {exposed:?}"
        );
    }
}
