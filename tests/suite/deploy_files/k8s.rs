//! The Kubernetes manifests in deploy/k8s: well-formed, and baton's Deployments and
//! KEDA ScaledObject agree with how baton behaves.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_yaml::Value;

use super::args::{parse_worker_args, port_of, serve_opt};
use super::pods::{
    baton_container, baton_deployment, check_http_probe, check_scrape_annotations, container_ports,
    env_var, resolve_port,
};
use super::yaml::{k8s_objects, kind_of, name_of, s, scalar, str_list};

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
fn keda_scales_the_worker_on_every_ready_job() {
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
    // KEDA's redis scaler reads LLEN of one list: it sees `baton:{q}:wait` but not the
    // `prioritized` sorted set, so jobs added with a priority would never scale the
    // workers. The `waiting` count of `baton_queue_jobs` is both together.
    for t in triggers {
        assert_ne!(
            t["type"].as_str(),
            Some("redis"),
            "{ctx}: a redis trigger reads one list (LLEN) and misses prioritized jobs; \
             scale on baton_queue_jobs{{state=\"waiting\"}} instead"
        );
    }
    let prom = triggers
        .iter()
        .find(|t| t["type"].as_str() == Some("prometheus"))
        .unwrap_or_else(|| panic!("{ctx} has no trigger of type prometheus"));
    let query = prom["metadata"]["query"]
        .as_str()
        .unwrap_or_else(|| panic!("{ctx}: the prometheus trigger has no metadata.query"));
    let squashed: String = query.chars().filter(|c| !c.is_whitespace()).collect();
    for want in [
        format!("{}{{", baton::metrics::QUEUE_JOBS),
        format!("queue=\"{}\"", worker.queue),
        "state=\"waiting\"".to_string(),
    ] {
        assert!(
            squashed.contains(&want),
            "{ctx}: the query {query:?} should contain {want:?} (the worker runs queue {:?})",
            worker.queue
        );
    }
    // Every worker pod (and the API) exports the whole queue's count: a sum would
    // count the same jobs once per pod and scale out on phantom work.
    assert!(
        squashed.starts_with("max(") && !squashed.contains("sum("),
        "{ctx}: the query {query:?} should take max() over the pods that report the queue"
    );
    let threshold = scalar(&prom["metadata"]["threshold"])
        .unwrap_or_else(|| panic!("{ctx}: the prometheus trigger has no threshold"));
    assert!(
        threshold.parse::<f64>().is_ok_and(|n| n > 0.0),
        "{ctx}: threshold {threshold:?} should be a positive number (as a string)"
    );
    let server = prom["metadata"]["serverAddress"]
        .as_str()
        .unwrap_or_default();
    assert!(
        server.starts_with("http://") || server.starts_with("https://"),
        "{ctx}: the prometheus trigger needs serverAddress (http://…), got {server:?}"
    );
}
