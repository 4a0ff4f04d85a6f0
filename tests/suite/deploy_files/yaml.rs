//! Reading the files under `deploy/` and picking values out of parsed YAML.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

pub(crate) fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn deploy() -> PathBuf {
    root().join("deploy")
}

pub(crate) fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.yaml`/`.yml` file under `dir`, recursively, sorted.
pub(crate) fn yaml_files(dir: &Path) -> Vec<PathBuf> {
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
pub(crate) fn yaml_docs(path: &Path) -> Vec<Value> {
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
pub(crate) fn k8s_objects() -> Vec<(PathBuf, Value)> {
    let files = yaml_files(&deploy().join("k8s"));
    assert!(!files.is_empty(), "deploy/k8s/ holds no YAML files");
    files
        .into_iter()
        .flat_map(|f| yaml_docs(&f).into_iter().map(move |d| (f.clone(), d)))
        .collect()
}

pub(crate) fn s(v: &Value) -> Option<&str> {
    v.as_str()
}

pub(crate) fn kind_of(v: &Value) -> &str {
    s(&v["kind"]).unwrap_or("")
}

pub(crate) fn name_of(v: &Value) -> &str {
    s(&v["metadata"]["name"]).unwrap_or("")
}

/// A YAML scalar as a string, whether it was written as a string or a number.
pub(crate) fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn str_list(v: &Value, what: &str) -> Vec<String> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("{what} is not a list: {v:?}"))
        .iter()
        .map(|x| scalar(x).unwrap_or_else(|| panic!("{what} has a non-scalar item: {x:?}")))
        .collect()
}
