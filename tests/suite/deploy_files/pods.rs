//! Finding baton's Deployments and containers in deploy/k8s and checking their ports,
//! probes and scrape annotations.

use std::path::PathBuf;

use serde_yaml::Value;

use super::yaml::{kind_of, scalar};

/// The one object of `kind` whose (first) container's args start with `subcommand`.
pub(crate) fn baton_deployment(objects: &[(PathBuf, Value)], subcommand: &str) -> (PathBuf, Value) {
    let found: Vec<_> = objects
        .iter()
        .filter(|(_, o)| kind_of(o) == "Deployment")
        .filter(|(_, o)| {
            o["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .is_some_and(|cs| cs.iter().any(|c| c["args"][0].as_str() == Some(subcommand)))
        })
        .cloned()
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one Deployment in deploy/k8s running `baton {subcommand}`, found {}",
        found.len()
    );
    found.into_iter().next().unwrap()
}

pub(crate) fn baton_container<'a>(deployment: &'a Value, subcommand: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["args"][0].as_str() == Some(subcommand))
        .unwrap()
}

/// Resolves a probe's or Service's port (number or container port name) to a number.
pub(crate) fn resolve_port(port: &Value, container: &Value, ctx: &str) -> u16 {
    match port {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or_else(|| panic!("{ctx}: port {n} is not a valid port")),
        Value::String(name) => container["ports"]
            .as_sequence()
            .and_then(|ps| ps.iter().find(|p| p["name"].as_str() == Some(name)))
            .and_then(|p| p["containerPort"].as_u64())
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or_else(|| {
                panic!("{ctx}: port name {name:?} is not a containerPort of the container")
            }),
        other => panic!("{ctx}: port is neither a number nor a name: {other:?}"),
    }
}

pub(crate) fn container_ports(container: &Value) -> Vec<u16> {
    container["ports"]
        .as_sequence()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["containerPort"].as_u64())
                .filter_map(|n| u16::try_from(n).ok())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
}

/// Checks an HTTP probe: its path, and that its port resolves to `want_port`.
pub(crate) fn check_http_probe(
    container: &Value,
    probe: &str,
    path: &str,
    want_port: u16,
    ctx: &str,
) {
    let get = &container[probe]["httpGet"];
    assert!(
        get.is_mapping(),
        "{ctx}: container has no {probe} with httpGet (want GET {path} on port {want_port})"
    );
    assert_eq!(
        get["path"].as_str(),
        Some(path),
        "{ctx}: {probe} should GET {path}"
    );
    let port = resolve_port(&get["port"], container, &format!("{ctx} {probe}"));
    assert_eq!(
        port, want_port,
        "{ctx}: {probe} probes port {port} but baton listens on {want_port}"
    );
}

/// Checks the `prometheus.io/*` scrape annotations of a pod template.
pub(crate) fn check_scrape_annotations(deployment: &Value, want_port: u16, ctx: &str) {
    let ann = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        scalar(&ann["prometheus.io/scrape"]).as_deref(),
        Some("true"),
        "{ctx}: pod template lacks the annotation prometheus.io/scrape: \"true\""
    );
    let port = scalar(&ann["prometheus.io/port"])
        .unwrap_or_else(|| panic!("{ctx}: pod template lacks the annotation prometheus.io/port"));
    assert_eq!(
        port,
        want_port.to_string(),
        "{ctx}: prometheus.io/port annotation is {port} but metrics are served on {want_port}"
    );
    if let Some(path) = scalar(&ann["prometheus.io/path"]) {
        assert_eq!(
            path, "/metrics",
            "{ctx}: prometheus.io/path should be /metrics"
        );
    }
}
