//! Checks grafana/baton.json against the metrics baton exports
//! (`baton::metrics::ALL`) and against what Grafana needs to import it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

fn dashboard() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grafana/baton.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()))
}

/// Every panel, with the panels nested in (collapsed) rows, in order.
fn all_panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"]
        .as_array()
        .expect("dashboard has no `panels` array")
    {
        out.push(p);
        for nested in p["panels"].as_array().into_iter().flatten() {
            out.push(nested);
        }
    }
    out
}

fn is_row(p: &Value) -> bool {
    p["type"].as_str() == Some("row")
}

fn title(p: &Value) -> &str {
    p["title"].as_str().unwrap_or("<untitled>")
}

/// `(panel title, expr)` for every query target of every panel.
fn exprs(d: &Value) -> Vec<(String, String)> {
    all_panels(d)
        .into_iter()
        .filter(|p| !is_row(p))
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(move |t| Some((title(p).to_string(), t["expr"].as_str()?.to_string())))
        })
        .collect()
}

/// Names matching `baton_[a-z_]+` that are not part of a longer identifier.
fn metric_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = expr[i..].find("baton_") {
        let start = i + off;
        let boundary = start == 0 || {
            let c = bytes[start - 1];
            !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
        };
        let mut end = start + "baton_".len();
        while end < bytes.len() && (bytes[end].is_ascii_lowercase() || bytes[end] == b'_') {
            end += 1;
        }
        // A digit or capital letter right after means the regex would have
        // matched only a prefix of a longer name; report that longer name.
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            out.push(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

/// Maps `x_bucket` / `x_sum` / `x_count` back to the histogram `x` when `x` is a
/// known metric; anything else is returned unchanged.
fn base_name(name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if baton::metrics::ALL.contains(&base) {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

/// The `${NAME}` reference of the dashboard's Prometheus datasource input.
fn datasource_input_ref(d: &Value) -> String {
    let inputs = d["__inputs"].as_array().unwrap_or_else(|| {
        panic!("dashboard has no `__inputs`: it cannot be imported with a datasource choice")
    });
    let input = inputs
        .iter()
        .find(|i| i["type"] == "datasource" && i["pluginId"] == "prometheus")
        .unwrap_or_else(|| panic!("`__inputs` has no datasource input with pluginId prometheus"));
    let name = input["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| panic!("the Prometheus datasource input has no name"));
    format!("${{{name}}}")
}

fn check_datasource(ds: &Value, want: &str, what: &str) {
    let uid = match ds {
        Value::Object(_) => ds["uid"].as_str(),
        // Old-style string reference.
        Value::String(s) => Some(s.as_str()),
        _ => None,
    };
    assert_eq!(
        uid,
        Some(want),
        "{what}: datasource should reference the input {want}, got {ds}"
    );
    if let Some(ty) = ds["type"].as_str() {
        assert_eq!(
            ty, "prometheus",
            "{what}: datasource type should be prometheus"
        );
    }
}

#[test]
fn schema_is_current() {
    let d = dashboard();
    let v = d["schemaVersion"]
        .as_u64()
        .unwrap_or_else(|| panic!("dashboard has no numeric schemaVersion"));
    assert!(
        v >= 39,
        "schemaVersion is {v}; use 39 or later (Grafana 10.4+)"
    );
    assert!(
        d["title"].as_str().is_some_and(|t| !t.is_empty()),
        "dashboard has no title"
    );
    assert!(
        d["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty() && u.len() <= 40),
        "dashboard needs a stable uid of at most 40 characters"
    );
    assert!(
        d["id"].is_null(),
        "an importable dashboard should have `id: null`, got {}",
        d["id"]
    );
}

#[test]
fn every_panel_uses_the_datasource_input() {
    let d = dashboard();
    let want = datasource_input_ref(&d);
    let mut ids = BTreeSet::new();
    let mut queried = 0;
    for p in all_panels(&d) {
        if let Some(id) = p["id"].as_u64() {
            assert!(
                ids.insert(id),
                "panel id {id} is used twice (again by {:?})",
                title(p)
            );
        }
        assert!(
            p["gridPos"].is_object(),
            "panel {:?} has no gridPos",
            title(p)
        );
        if is_row(p) {
            continue;
        }
        let what = format!("panel {:?}", title(p));
        check_datasource(&p["datasource"], &want, &what);
        let targets = p["targets"]
            .as_array()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| panic!("{what} has no query targets"));
        for t in targets {
            let what = format!("{what} target {}", t["refId"]);
            if !t["datasource"].is_null() {
                check_datasource(&t["datasource"], &want, &what);
            }
            assert!(
                t["expr"].as_str().is_some_and(|e| !e.trim().is_empty()),
                "{what} has no PromQL expr"
            );
            queried += 1;
        }
    }
    assert!(queried > 0, "dashboard has no queries at all");

    // Template variables that query must use the input too.
    for var in d["templating"]["list"].as_array().into_iter().flatten() {
        if var["type"] == "query" {
            check_datasource(
                &var["datasource"],
                &want,
                &format!("template variable {}", var["name"]),
            );
        }
    }
}

#[test]
fn queue_variable_exists_and_filters_every_query() {
    let d = dashboard();
    let vars = d["templating"]["list"]
        .as_array()
        .unwrap_or_else(|| panic!("dashboard has no templating.list"));
    let queue = vars
        .iter()
        .find(|v| v["name"] == "queue")
        .unwrap_or_else(|| panic!("dashboard has no template variable named `queue`"));
    assert_eq!(
        queue["type"], "query",
        "variable `queue` should be a query variable"
    );
    let query = queue["definition"]
        .as_str()
        .or_else(|| queue["query"].as_str())
        .or_else(|| queue["query"]["query"].as_str())
        .unwrap_or_else(|| panic!("variable `queue` has no query"));
    assert!(
        query.contains("label_values") && query.contains("queue"),
        "variable `queue` should list label_values(..., queue), has {query:?}"
    );
    for name in metric_names(query) {
        assert!(
            baton::metrics::ALL.contains(&base_name(&name).as_str()),
            "variable `queue` queries {name}, which baton does not export"
        );
    }
    for (panel, expr) in exprs(&d) {
        assert!(
            expr.contains("$queue") || expr.contains("${queue"),
            "panel {panel:?}: query ignores the `queue` variable: {expr}"
        );
    }
}

#[test]
fn dashboard_metrics_are_exactly_the_exported_ones() {
    let d = dashboard();
    let all: BTreeSet<&str> = baton::metrics::ALL.iter().copied().collect();
    let mut used = BTreeSet::new();
    for (panel, expr) in exprs(&d) {
        for name in metric_names(&expr) {
            let base = base_name(&name);
            assert!(
                all.contains(base.as_str()),
                "panel {panel:?} queries {name}, which is not in baton::metrics::ALL \
                 (typo, or a metric baton does not export): {expr}"
            );
            used.insert(base);
        }
    }
    let missing: Vec<&&str> = all.iter().filter(|m| !used.contains(**m)).collect();
    assert!(
        missing.is_empty(),
        "baton exports {missing:?} but no dashboard panel shows them"
    );
}

#[test]
fn histograms_are_shown_as_p50_p95_p99() {
    let d = dashboard();
    let exprs = exprs(&d);
    let histograms: Vec<&str> = baton::metrics::ALL
        .iter()
        .copied()
        .filter(|m| m.ends_with("_seconds"))
        .collect();
    assert!(
        !histograms.is_empty(),
        "baton::metrics::ALL has no *_seconds histogram"
    );
    for h in histograms {
        let bucket = format!("{h}_bucket");
        for q in ["0.5", "0.95", "0.99"] {
            let found = exprs.iter().any(|(_, e)| {
                let compact: String = e.chars().filter(|c| !c.is_whitespace()).collect();
                compact.contains(&format!("histogram_quantile({q},"))
                    && metric_names(e).contains(&bucket)
            });
            assert!(
                found,
                "no panel shows histogram_quantile({q}, ...{bucket}...) for {h}"
            );
        }
    }
}

#[test]
fn required_panels_are_present() {
    let d = dashboard();
    let exprs = exprs(&d);
    let shows = |metric: &str| {
        exprs
            .iter()
            .any(|(_, e)| metric_names(e).iter().any(|n| n == metric))
    };
    let needed = [
        ("throughput", "baton_jobs_completed_total"),
        ("failures", "baton_jobs_failed_total"),
        ("retries", "baton_jobs_retried_total"),
        ("stalls", "baton_jobs_stalled_total"),
        ("cancellations", "baton_jobs_cancelled_total"),
        ("lock lost", "baton_jobs_lock_lost_total"),
        ("queue depth per state", "baton_queue_jobs"),
        ("in-flight per pod", "baton_worker_in_flight_jobs"),
        ("Redis errors", "baton_redis_errors_total"),
    ];
    for (what, metric) in needed {
        assert!(shows(metric), "no panel shows {what} ({metric})");
    }
    // Counters are shown as rates, never as raw ever-growing totals.
    for (panel, e) in &exprs {
        for name in metric_names(e) {
            if name.ends_with("_total") {
                assert!(
                    e.contains("rate(") || e.contains("increase("),
                    "panel {panel:?} shows counter {name} without rate()/increase(): {e}"
                );
            }
        }
    }
    let depth = exprs
        .iter()
        .find(|(_, e)| {
            metric_names(e).iter().any(|n| n == "baton_queue_jobs") && e.contains("state")
        })
        .map(|(p, _)| p.clone());
    assert!(
        depth.is_some(),
        "no panel breaks baton_queue_jobs down by its `state` label"
    );
}

#[test]
fn metric_name_scanner_works() {
    assert_eq!(
        metric_names("sum(rate(baton_jobs_completed_total{queue=~\"$queue\"}[5m]))"),
        ["baton_jobs_completed_total"]
    );
    assert_eq!(
        metric_names(
            "histogram_quantile(0.9, rate(baton_job_wait_seconds_bucket[1m])) / my_baton_x"
        ),
        ["baton_job_wait_seconds_bucket"]
    );
    assert_eq!(
        base_name("baton_job_wait_seconds_bucket"),
        "baton_job_wait_seconds"
    );
    assert_eq!(base_name("baton_nope_bucket"), "baton_nope_bucket");
}
