//! deploy/docker-compose.yml and the Prometheus and Grafana files it mounts.

use std::time::Duration;

use serde_yaml::Value;

use super::args::{parse_duration, parse_worker_args, port_of, serve_opt};
use super::yaml::{deploy, scalar, str_list, yaml_docs, yaml_files};

fn compose() -> Value {
    let docs = yaml_docs(&deploy().join("docker-compose.yml"));
    assert_eq!(
        docs.len(),
        1,
        "docker-compose.yml should be a single YAML document"
    );
    docs.into_iter().next().unwrap()
}

/// Bind-mount sources (relative to deploy/) and targets of a compose service.
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in service["volumes"].as_sequence().into_iter().flatten() {
        let (source, target) = match v {
            Value::String(short) => {
                let mut parts = short.split(':');
                let source = parts.next().unwrap_or("").to_string();
                let target = parts.next().unwrap_or("").to_string();
                (source, target)
            }
            long => {
                if long["type"].as_str().is_some_and(|t| t != "bind") {
                    continue;
                }
                (
                    long["source"].as_str().unwrap_or("").to_string(),
                    long["target"].as_str().unwrap_or("").to_string(),
                )
            }
        };
        // Named volumes have no `.` or `/` at the front.
        if source.starts_with('.') || source.starts_with('/') {
            out.push((source, target));
        }
    }
    out
}

fn compose_command(service: &Value, ctx: &str) -> Vec<String> {
    match &service["command"] {
        Value::Sequence(_) => str_list(&service["command"], ctx),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        other => panic!("{ctx}: no command (got {other:?})"),
    }
}

#[test]
fn compose_services_refer_to_files_that_exist() {
    let c = compose();
    let services = c["services"]
        .as_mapping()
        .unwrap_or_else(|| panic!("docker-compose.yml has no services"));
    for want in ["redis", "worker", "api", "prometheus", "grafana"] {
        assert!(
            services.contains_key(want),
            "docker-compose.yml has no `{want}` service"
        );
    }
    let base = deploy();
    for (name, svc) in services {
        let name = name.as_str().unwrap_or("?");
        let ctx = format!("docker-compose.yml service `{name}`");
        match &svc["build"] {
            Value::Null => {}
            Value::String(dir) => {
                let dir = base.join(dir);
                assert!(
                    dir.is_dir(),
                    "{ctx}: build context {} does not exist",
                    dir.display()
                );
                assert!(
                    dir.join("Dockerfile").is_file(),
                    "{ctx}: no Dockerfile in build context {}",
                    dir.display()
                );
            }
            build => {
                let context = base.join(build["context"].as_str().unwrap_or("."));
                assert!(
                    context.is_dir(),
                    "{ctx}: build context {} does not exist",
                    context.display()
                );
                let dockerfile = context.join(build["dockerfile"].as_str().unwrap_or("Dockerfile"));
                assert!(
                    dockerfile.is_file(),
                    "{ctx}: Dockerfile {} does not exist",
                    dockerfile.display()
                );
            }
        }
        for (source, target) in bind_mounts(svc) {
            let path = base.join(&source);
            assert!(
                path.exists(),
                "{ctx}: bind mount source {source} (for {target}) does not exist at {}",
                path.display()
            );
        }
        for file in svc["env_file"]
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            assert!(
                base.join(file).is_file(),
                "{ctx}: env_file {file} does not exist"
            );
        }
        if svc["build"].is_null() {
            assert!(
                svc["image"].as_str().is_some_and(|i| !i.is_empty()),
                "{ctx}: neither build nor image"
            );
        }
    }
}

#[test]
fn compose_wires_redis_worker_api_prometheus_and_grafana_together() {
    let c = compose();
    let svc = |n: &str| c["services"][n].clone();
    let base = deploy();

    // Redis runs with deploy/redis.conf.
    let redis = svc("redis");
    let conf_target = bind_mounts(&redis)
        .into_iter()
        .find(|(src, _)| {
            base.join(src).canonicalize().ok() == base.join("redis.conf").canonicalize().ok()
        })
        .map(|(_, target)| target)
        .unwrap_or_else(|| panic!("compose `redis` does not mount deploy/redis.conf"));
    let redis_cmd = compose_command(&redis, "compose `redis`");
    assert!(
        redis_cmd.contains(&conf_target),
        "compose `redis` should run `redis-server {conf_target}`, runs {redis_cmd:?}"
    );

    // Worker drains within its stop grace period.
    let worker = svc("worker");
    let wargs = compose_command(&worker, "compose `worker`");
    let w = parse_worker_args(&wargs, "compose `worker`");
    let shutdown = w.duration("--shutdown-timeout", "compose `worker`");
    let kill_grace = w.duration("--kill-grace", "compose `worker`");
    let stop = worker["stop_grace_period"]
        .as_str()
        .map(parse_duration)
        .unwrap_or(Duration::from_secs(10));
    assert!(
        stop > shutdown + kill_grace,
        "compose `worker`: stop_grace_period {stop:?} (default 10s) is not longer than \
         --shutdown-timeout + --kill-grace = {:?}",
        shutdown + kill_grace
    );
    let worker_port = port_of(w.opt("--metrics-addr", "compose `worker`"));

    // The API has a token.
    let api = svc("api");
    let aargs = compose_command(&api, "compose `api`");
    let api_port = port_of(serve_opt(&aargs, "--listen", "compose `api`"));
    let env = &api["environment"];
    let has_token = match env {
        Value::Mapping(m) => m.contains_key("BATON_API_TOKEN"),
        Value::Sequence(list) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|e| e.starts_with("BATON_API_TOKEN")),
        _ => false,
    };
    assert!(has_token, "compose `api` does not set BATON_API_TOKEN");

    // Prometheus scrapes both.
    let prometheus = svc("prometheus");
    let prom_src = bind_mounts(&prometheus)
        .into_iter()
        .find(|(src, _)| src.ends_with("prometheus.yml"))
        .map(|(src, _)| base.join(src))
        .unwrap_or_else(|| panic!("compose `prometheus` does not mount deploy/prometheus.yml"));
    let prom = yaml_docs(&prom_src).into_iter().next().unwrap();
    let jobs = prom["scrape_configs"]
        .as_sequence()
        .unwrap_or_else(|| panic!("prometheus.yml has no scrape_configs"));
    let mut targets: Vec<String> = Vec::new();
    for job in jobs {
        for sc in job["static_configs"].as_sequence().into_iter().flatten() {
            targets.extend(str_list(
                &sc["targets"],
                "prometheus.yml static_configs targets",
            ));
        }
        for dns in job["dns_sd_configs"].as_sequence().into_iter().flatten() {
            let port = scalar(&dns["port"]).unwrap_or_default();
            for name in str_list(&dns["names"], "prometheus.yml dns_sd_configs names") {
                targets.push(format!("{name}:{port}"));
            }
        }
    }
    for (service, port) in [("worker", worker_port), ("api", api_port)] {
        let want = format!("{service}:{port}");
        assert!(
            targets.contains(&want),
            "prometheus.yml does not scrape {want} (targets: {targets:?})"
        );
    }

    // Grafana is provisioned with the dashboards in grafana/.
    let grafana = svc("grafana");
    let mounts = bind_mounts(&grafana);
    let dashboards_target = mounts
        .iter()
        .find(|(src, _)| base.join(src).join("baton.json").is_file())
        .map(|(_, t)| t.clone())
        .unwrap_or_else(|| {
            panic!("compose `grafana` does not mount the grafana/ dashboards directory")
        });
    let provisioning_src = mounts
        .iter()
        .find(|(_, t)| t.trim_end_matches('/') == "/etc/grafana/provisioning")
        .map(|(src, _)| base.join(src))
        .unwrap_or_else(|| panic!("compose `grafana` does not mount /etc/grafana/provisioning"));
    let providers: Vec<Value> = yaml_files(&provisioning_src.join("dashboards"))
        .iter()
        .flat_map(|f| yaml_docs(f))
        .flat_map(|d| d["providers"].as_sequence().cloned().unwrap_or_default())
        .collect();
    assert!(
        providers.iter().any(|p| p["options"]["path"]
            .as_str()
            .map(|s| s.trim_end_matches('/'))
            == Some(dashboards_target.trim_end_matches('/'))),
        "no Grafana dashboard provider reads {dashboards_target}, where grafana/ is mounted"
    );
    let datasources: Vec<Value> = yaml_files(&provisioning_src.join("datasources"))
        .iter()
        .flat_map(|f| yaml_docs(f))
        .flat_map(|d| d["datasources"].as_sequence().cloned().unwrap_or_default())
        .collect();
    assert!(
        datasources
            .iter()
            .any(|d| d["type"].as_str() == Some("prometheus")
                && d["url"].as_str().is_some_and(|u| u.contains("prometheus:"))),
        "no provisioned Grafana datasource of type prometheus points at the `prometheus` service"
    );
}
