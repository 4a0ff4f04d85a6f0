//! Static checks of the deployment files in `deploy/`: they parse, and the
//! settings that have to agree with each other (and with how baton behaves) do.
//!
//! No network, no Docker, no Kubernetes: the files are read and parsed only.

mod args;
mod compose;
mod dockerfile;
mod k8s;
mod pods;
mod redis;
mod yaml;

use yaml::{deploy, yaml_docs, yaml_files};

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
