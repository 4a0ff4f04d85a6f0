//! deploy/redis.conf and the Redis StatefulSet that runs it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::yaml::{deploy, k8s_objects, kind_of, name_of, read, str_list};

/// `directive -> arguments` of a redis.conf (last occurrence wins, as in Redis).
fn redis_directives(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            (k.to_ascii_lowercase(), v.trim().to_string())
        })
        .collect()
}

fn redis_conf() -> (PathBuf, String) {
    let path = deploy().join("redis.conf");
    let text = read(&path);
    (path, text)
}

#[test]
fn redis_conf_is_durable_and_never_evicts() {
    let (path, text) = redis_conf();
    let d = redis_directives(&text);
    let f = path.display();
    for (key, want) in [
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("maxmemory-policy", "noeviction"),
    ] {
        assert_eq!(
            d.get(key).map(String::as_str),
            Some(want),
            "{f}: baton needs `{key} {want}`, found {:?}",
            d.get(key)
        );
    }
    assert!(
        d.get("dir").is_some_and(|v| !v.is_empty()),
        "{f}: no `dir`: the AOF would land in the working directory, not on the data volume"
    );
}

#[test]
fn redis_configmap_matches_redis_conf_and_statefulset_uses_it() {
    let (_, conf) = redis_conf();
    let objects = k8s_objects();
    let (cm_file, cm) = objects
        .iter()
        .find(|(_, o)| kind_of(o) == "ConfigMap" && !o["data"]["redis.conf"].is_null())
        .cloned()
        .unwrap_or_else(|| panic!("deploy/k8s has no ConfigMap with a `redis.conf` key"));
    let in_cm = cm["data"]["redis.conf"]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {}: redis.conf is not a string", name_of(&cm)));
    if in_cm != conf {
        let diff = conf
            .lines()
            .zip(in_cm.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("first difference at line {}: {a:?} vs {b:?}", i + 1))
            .unwrap_or_else(|| {
                format!(
                    "same lines up to the shorter one; lengths {} vs {} bytes \
                     (trailing newlines or missing lines)",
                    conf.len(),
                    in_cm.len()
                )
            });
        panic!(
            "{}: ConfigMap {} redis.conf differs from deploy/redis.conf; copy the file in \
             verbatim. {diff}",
            cm_file.display(),
            name_of(&cm)
        );
    }

    let sts = objects
        .iter()
        .map(|(_, o)| o)
        .find(|o| kind_of(o) == "StatefulSet")
        .unwrap_or_else(|| panic!("deploy/k8s has no Redis StatefulSet"));
    let ctx = format!("StatefulSet {}", name_of(sts));
    let pod = &sts["spec"]["template"]["spec"];

    // It mounts the ConfigMap...
    let volume = pod["volumes"]
        .as_sequence()
        .and_then(|vs| {
            vs.iter()
                .find(|v| v["configMap"]["name"].as_str() == Some(name_of(&cm)))
        })
        .unwrap_or_else(|| panic!("{ctx} has no volume from ConfigMap {}", name_of(&cm)));
    let container = &pod["containers"][0];
    let mount = container["volumeMounts"]
        .as_sequence()
        .and_then(|ms| ms.iter().find(|m| m["name"] == volume["name"]))
        .unwrap_or_else(|| panic!("{ctx}: the redis container does not mount the config volume"));
    let conf_path = format!(
        "{}/redis.conf",
        mount["mountPath"]
            .as_str()
            .unwrap_or("")
            .trim_end_matches('/')
    );
    // ...and starts redis-server with it.
    let mut argv = Vec::new();
    for key in ["command", "args"] {
        if !container[key].is_null() {
            argv.extend(str_list(&container[key], &format!("{ctx}: {key}")));
        }
    }
    assert!(
        argv.iter().any(|a| a.contains("redis-server")) && argv.contains(&conf_path),
        "{ctx}: redis should be started as `redis-server {conf_path}`, got {argv:?}"
    );

    // The persistent volume is mounted where redis.conf's `dir` points.
    let dir = redis_directives(&conf)
        .get("dir")
        .cloned()
        .unwrap_or_default();
    let claims: Vec<&str> = sts["spec"]["volumeClaimTemplates"]
        .as_sequence()
        .map(|cs| cs.iter().map(name_of).collect())
        .unwrap_or_default();
    assert!(
        !claims.is_empty(),
        "{ctx} has no volumeClaimTemplates: Redis data would not survive the pod"
    );
    let data_mounted = container["volumeMounts"].as_sequence().is_some_and(|ms| {
        ms.iter().any(|m| {
            m["name"].as_str().is_some_and(|n| claims.contains(&n))
                && m["mountPath"].as_str().map(|p| p.trim_end_matches('/'))
                    == Some(dir.trim_end_matches('/'))
        })
    });
    assert!(
        data_mounted,
        "{ctx}: no persistent volume claim is mounted at redis.conf's dir {dir:?}"
    );

    // Headless Service named like the StatefulSet's serviceName.
    let service_name = sts["spec"]["serviceName"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx} has no serviceName"));
    let svc = objects
        .iter()
        .map(|(_, o)| o)
        .find(|o| kind_of(o) == "Service" && name_of(o) == service_name)
        .unwrap_or_else(|| panic!("{ctx}: no Service named {service_name:?} (its serviceName)"));
    assert_eq!(
        svc["spec"]["clusterIP"].as_str(),
        Some("None"),
        "Service {service_name} should be headless (clusterIP: None)"
    );
}
