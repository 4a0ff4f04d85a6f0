//! Static checks of the deployment files in `deploy/`: they parse, and the
//! settings that have to agree with each other (and with how baton behaves) do.
//!
//! No network, no Docker, no Kubernetes: the files are read and parsed only.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.yaml`/`.yml` file under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        ) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// All documents of a (possibly multi-document) YAML file, empty documents dropped.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let doc = Value::deserialize(de).unwrap_or_else(|e| {
            panic!(
                "{}: YAML document #{} does not parse: {e}",
                path.display(),
                i + 1
            )
        });
        if !doc.is_null() {
            docs.push(doc);
        }
    }
    docs
}

/// All Kubernetes objects in deploy/k8s, with the file each came from.
fn k8s_objects() -> Vec<(PathBuf, Value)> {
    let files = yaml_files(&deploy().join("k8s"));
    assert!(!files.is_empty(), "deploy/k8s/ holds no YAML files");
    files
        .into_iter()
        .flat_map(|f| yaml_docs(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

fn kind_of(v: &Value) -> &str {
    s(&v["kind"]).unwrap_or("")
}

fn name_of(v: &Value) -> &str {
    s(&v["metadata"]["name"]).unwrap_or("")
}

/// A YAML scalar as a string, whether it was written as a string or a number.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn str_list(v: &Value, what: &str) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what} is not a list: {v:?}"))
        .iter()
        .map(|x| scalar(x).unwrap_or_else(|| panic!("{what} has a non-scalar item: {x:?}")))
        .collect()
}

/// Parses a humantime-style duration: `30s`, `5m`, `1h30m`, `250ms`, `1m 30s`.
fn parse_duration(text: &str) -> Duration {
    let t = text.trim();
    assert!(!t.is_empty(), "empty duration");
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        assert!(
            digits > 0,
            "duration {text:?}: expected a number at {rest:?}"
        );
        let number: f64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("duration {text:?}: bad number {:?}", &rest[..digits]));
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ms" | "msec" => 0.001,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "" => panic!("duration {text:?}: number without a unit (baton wants e.g. `30s`)"),
            other => panic!("duration {text:?}: unknown unit {other:?}"),
        };
        total += Duration::from_secs_f64(number * secs);
    }
    total
}

/// The port of a `host:port` socket address.
fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr:?} is not a host:port address"))
}

/// Options of `baton worker` that take a value.
const WORKER_VALUE_OPTS: &[&str] = &[
    "--concurrency",
    "--lease",
    "--timeout",
    "--shutdown-timeout",
    "--kill-grace",
    "--metrics-addr",
    "--redis-url",
];

/// A parsed `baton worker QUEUE [OPTIONS] --exec -- CMD ARGS...` command line
/// (the command after `--exec --` is only checked to be there).
#[derive(Debug)]
struct WorkerArgs {
    queue: String,
    opts: BTreeMap<String, String>,
}

impl WorkerArgs {
    fn opt(&self, name: &str, ctx: &str) -> &str {
        self.opts
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{ctx}: `baton worker` is not given {name}"))
    }

    fn duration(&self, name: &str, ctx: &str) -> Duration {
        parse_duration(self.opt(name, ctx))
    }
}

fn parse_worker_args(args: &[String], ctx: &str) -> WorkerArgs {
    assert_eq!(
        args.first().map(String::as_str),
        Some("worker"),
        "{ctx}: the command should start with the `worker` subcommand, got {args:?}"
    );
    let mut queue = None;
    let mut opts = BTreeMap::new();
    let mut exec = None;
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--exec" {
            assert_eq!(
                args.get(i + 1).map(String::as_str),
                Some("--"),
                "{ctx}: `--exec` must be followed by `--` and the command, got {:?}",
                &args[i..]
            );
            exec = Some(args[i + 2..].to_vec());
            break;
        } else if let Some((k, v)) = a.split_once('=').filter(|_| a.starts_with("--")) {
            opts.insert(k.to_string(), v.to_string());
        } else if WORKER_VALUE_OPTS.contains(&a.as_str()) {
            let v = args
                .get(i + 1)
                .unwrap_or_else(|| panic!("{ctx}: option {a} has no value"));
            opts.insert(a.clone(), v.clone());
            i += 1;
        } else if a.starts_with('-') {
            panic!(
                "{ctx}: unknown `baton worker` option {a} (known: {WORKER_VALUE_OPTS:?}, --exec)"
            );
        } else {
            assert!(
                queue.is_none(),
                "{ctx}: two queue names given: {queue:?} and {a:?}"
            );
            queue = Some(a.clone());
        }
        i += 1;
    }
    let queue = queue.unwrap_or_else(|| panic!("{ctx}: no QUEUE after `worker` in {args:?}"));
    let exec = exec.unwrap_or_else(|| panic!("{ctx}: no `--exec -- CMD` in {args:?}"));
    assert!(
        exec.first()
            .is_some_and(|c| !c.is_empty() && !c.starts_with('-')),
        "{ctx}: `--exec --` should be followed by a command, got {exec:?}"
    );
    WorkerArgs { queue, opts }
}

/// The value of option `name` in a `baton serve ...` command line.
fn serve_opt<'a>(args: &'a [String], name: &str, ctx: &str) -> &'a str {
    let prefix = format!("{name}=");
    for (i, a) in args.iter().enumerate() {
        if a == name {
            return args
                .get(i + 1)
                .unwrap_or_else(|| panic!("{ctx}: {name} has no value"));
        }
        if let Some(v) = a.strip_prefix(&prefix) {
            return v;
        }
    }
    panic!("{ctx}: `baton serve` is not given {name} in {args:?}")
}

/// The one object of `kind` whose (first) container's args start with `subcommand`.
fn baton_deployment(objects: &[(PathBuf, Value)], subcommand: &str) -> (PathBuf, Value) {
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

fn baton_container<'a>(deployment: &'a Value, subcommand: &str) -> &'a Value {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["args"][0].as_str() == Some(subcommand))
        .unwrap()
}

/// Resolves a probe's or Service's port (number or container port name) to a number.
fn resolve_port(port: &Value, container: &Value, ctx: &str) -> u16 {
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

fn container_ports(container: &Value) -> Vec<u16> {
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

fn env_var<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"].as_str() == Some(name))
}

/// Checks an HTTP probe: its path, and that its port resolves to `want_port`.
fn check_http_probe(container: &Value, probe: &str, path: &str, want_port: u16, ctx: &str) {
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
fn check_scrape_annotations(deployment: &Value, want_port: u16, ctx: &str) {
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

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

#[test]
fn every_yaml_file_parses() {
    let files = yaml_files(&deploy());
    for want in ["docker-compose.yml", "prometheus.yml"] {
        assert!(
            files
                .iter()
                .any(|f| f.file_name().is_some_and(|n| n == want)),
            "deploy/{want} is missing"
        );
    }
    for file in &files {
        let docs = yaml_docs(file);
        assert!(
            !docs.is_empty(),
            "{} holds no YAML document",
            file.display()
        );
        for doc in &docs {
            assert!(
                doc.is_mapping(),
                "{}: a top-level document is not a mapping: {doc:?}",
                file.display()
            );
        }
    }
}

#[test]
fn k8s_manifests_are_well_formed_and_namespace_agnostic() {
    let objects = k8s_objects();
    let mut seen = BTreeMap::new();
    for (file, o) in &objects {
        let f = file.display();
        assert!(
            s(&o["apiVersion"]).is_some_and(|v| !v.is_empty()),
            "{f}: an object has no apiVersion"
        );
        assert!(!kind_of(o).is_empty(), "{f}: an object has no kind");
        assert!(
            !name_of(o).is_empty(),
            "{f}: a {} has no metadata.name",
            kind_of(o)
        );
        assert!(
            o["metadata"]["namespace"].is_null(),
            "{f}: {} {} sets metadata.namespace; the manifests must be namespace-agnostic \
             (apply them with `kubectl apply -n NAMESPACE`)",
            kind_of(o),
            name_of(o)
        );
        let key = (kind_of(o).to_string(), name_of(o).to_string());
        if let Some(other) = seen.insert(key.clone(), file.clone()) {
            panic!(
                "{} {} is defined twice: in {} and {f}",
                key.0,
                key.1,
                other.display()
            );
        }
    }
    for kind in [
        "ConfigMap",
        "Service",
        "StatefulSet",
        "Deployment",
        "ScaledObject",
    ] {
        assert!(
            objects.iter().any(|(_, o)| kind_of(o) == kind),
            "deploy/k8s has no {kind}"
        );
    }
}

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

#[test]
fn worker_deployment_drains_before_the_kubelet_kills_it() {
    let objects = k8s_objects();
    let (file, deployment) = baton_deployment(&objects, "worker");
    let ctx = format!("{} (Deployment {})", file.display(), name_of(&deployment));
    let container = baton_container(&deployment, "worker");
    let args = str_list(&container["args"], &format!("{ctx}: args"));
    let worker = parse_worker_args(&args, &ctx);

    let shutdown = worker.duration("--shutdown-timeout", &ctx);
    let kill_grace = worker.duration("--kill-grace", &ctx);
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap_or_else(|| {
            panic!("{ctx}: pod spec has no terminationGracePeriodSeconds (the default 30s is too short)")
        });
    assert!(
        Duration::from_secs(grace) > shutdown + kill_grace,
        "{ctx}: terminationGracePeriodSeconds is {grace}s but --shutdown-timeout ({:?}) + \
         --kill-grace ({:?}) = {:?}; the kubelet would SIGKILL the worker mid-drain",
        shutdown,
        kill_grace,
        shutdown + kill_grace
    );

    // Other durations must at least parse.
    for opt in ["--lease", "--timeout"] {
        if worker.opts.contains_key(opt) {
            worker.duration(opt, &ctx);
        }
    }
    if let Some(c) = worker.opts.get("--concurrency") {
        assert!(
            c.parse::<u32>().is_ok_and(|n| n > 0),
            "{ctx}: --concurrency {c:?} is not a positive integer"
        );
    }

    let metrics_port = port_of(worker.opt("--metrics-addr", &ctx));
    assert!(
        container_ports(container).contains(&metrics_port),
        "{ctx}: no containerPort {metrics_port} (the --metrics-addr port) on the worker container"
    );
    check_http_probe(container, "livenessProbe", "/healthz", metrics_port, &ctx);
    check_http_probe(container, "readinessProbe", "/readyz", metrics_port, &ctx);
    check_scrape_annotations(&deployment, metrics_port, &ctx);

    assert!(
        env_var(container, "REDIS_URL").is_some() || worker.opts.contains_key("--redis-url"),
        "{ctx}: the worker is given neither REDIS_URL nor --redis-url"
    );
}

#[test]
fn api_deployment_takes_its_token_from_a_secret() {
    let objects = k8s_objects();
    let (file, deployment) = baton_deployment(&objects, "serve");
    let ctx = format!("{} (Deployment {})", file.display(), name_of(&deployment));
    let container = baton_container(&deployment, "serve");
    let args = str_list(&container["args"], &format!("{ctx}: args"));
    let listen = serve_opt(&args, "--listen", &ctx);
    let port = port_of(listen);
    assert!(
        !listen.starts_with("127.") && !listen.starts_with("localhost"),
        "{ctx}: `baton serve --listen {listen}` is loopback-only; other pods could not reach it"
    );

    let token = env_var(container, "BATON_API_TOKEN")
        .unwrap_or_else(|| panic!("{ctx}: no BATON_API_TOKEN env var (required off loopback)"));
    assert!(
        token["value"].is_null(),
        "{ctx}: BATON_API_TOKEN is given inline; take it from a Secret"
    );
    let secret = &token["valueFrom"]["secretKeyRef"];
    assert!(
        secret["name"].as_str().is_some_and(|n| !n.is_empty())
            && secret["key"].as_str().is_some_and(|k| !k.is_empty()),
        "{ctx}: BATON_API_TOKEN should come from valueFrom.secretKeyRef with a name and key"
    );

    assert!(
        container_ports(container).contains(&port),
        "{ctx}: no containerPort {port} (the --listen port)"
    );
    check_http_probe(container, "livenessProbe", "/healthz", port, &ctx);
    check_http_probe(container, "readinessProbe", "/readyz", port, &ctx);
    check_scrape_annotations(&deployment, port, &ctx);

    // A Service must select the API pods and route to the listen port.
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{ctx}: pod template has no labels"));
    let service = objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| kind_of(o) == "Service")
        .find(|svc| {
            svc["spec"]["selector"].as_mapping().is_some_and(|sel| {
                !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
            })
        })
        .unwrap_or_else(|| panic!("{ctx}: no Service in deploy/k8s selects the API pods"));
    let svc_ctx = format!("Service {}", name_of(service));
    let routes = service["spec"]["ports"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{svc_ctx} has no ports"))
        .iter()
        .any(|p| {
            let target = if p["targetPort"].is_null() {
                &p["port"]
            } else {
                &p["targetPort"]
            };
            resolve_port(target, container, &svc_ctx) == port
        });
    assert!(
        routes,
        "{svc_ctx} does not route to the API's listen port {port}"
    );
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

#[test]
fn keda_scales_the_worker_on_its_queues_wait_list() {
    let objects = k8s_objects();
    let (_, deployment) = baton_deployment(&objects, "worker");
    let container = baton_container(&deployment, "worker");
    let args = str_list(&container["args"], "worker args");
    let worker = parse_worker_args(&args, "worker Deployment");

    let scaled: Vec<&Value> = objects
        .iter()
        .map(|(_, o)| o)
        .filter(|o| kind_of(o) == "ScaledObject")
        .collect();
    assert_eq!(
        scaled.len(),
        1,
        "expected one KEDA ScaledObject in deploy/k8s"
    );
    let so = scaled[0];
    let ctx = format!("ScaledObject {}", name_of(so));
    assert!(
        s(&so["apiVersion"]).is_some_and(|v| v.starts_with("keda.sh/")),
        "{ctx}: apiVersion should be keda.sh/v1alpha1"
    );
    let target = &so["spec"]["scaleTargetRef"];
    assert_eq!(
        target["name"].as_str(),
        Some(name_of(&deployment)),
        "{ctx}: scaleTargetRef.name should be the worker Deployment"
    );
    if let Some(kind) = target["kind"].as_str() {
        assert_eq!(
            kind, "Deployment",
            "{ctx}: scaleTargetRef.kind should be Deployment"
        );
    }

    let triggers = so["spec"]["triggers"]
        .as_sequence()
        .unwrap_or_else(|| panic!("{ctx} has no triggers"));
    let redis = triggers
        .iter()
        .find(|t| t["type"].as_str() == Some("redis"))
        .unwrap_or_else(|| panic!("{ctx} has no trigger of type redis"));
    let want = format!("baton:{{{}}}:wait", worker.queue);
    let list = redis["metadata"]["listName"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx}: the redis trigger has no metadata.listName"));
    assert_eq!(
        list, want,
        "{ctx}: listName is {list:?} but the worker Deployment runs queue {:?}, whose ready \
         list is {want:?}",
        worker.queue
    );
    let length = scalar(&redis["metadata"]["listLength"])
        .unwrap_or_else(|| panic!("{ctx}: the redis trigger has no listLength"));
    assert!(
        length.parse::<u64>().is_ok_and(|n| n > 0),
        "{ctx}: listLength {length:?} should be a positive integer (as a string)"
    );

    // The address (or host) points at the Redis Service.
    let redis_service = objects
        .iter()
        .map(|(_, o)| o)
        .find(|o| kind_of(o) == "StatefulSet")
        .and_then(|sts| sts["spec"]["serviceName"].as_str())
        .unwrap_or("baton-redis");
    let address = redis["metadata"]["address"]
        .as_str()
        .or_else(|| redis["metadata"]["host"].as_str())
        .unwrap_or_default();
    let env_address = redis["metadata"]["addressFromEnv"].as_str();
    assert!(
        address.starts_with(redis_service) || env_address.is_some(),
        "{ctx}: the redis trigger should connect to Service {redis_service}, got address {address:?}"
    );
}

// --------------------------- docker compose --------------------------------

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
