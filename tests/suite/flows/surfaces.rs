//! Flows from the CLI and the HTTP API, run by `baton worker --exec` processes: the
//! parent's command starts after every child's command ended (the ledger the commands
//! write) and reads their results from `BATON_CHILDREN`.

use std::process::{Command, Stdio};
use std::time::Duration;

use baton::JobState;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{baton_bin, wait_until, ChildGuard, RedisServer};
use crate::http_api::support::Api;

/// Records its start and end in `$LEDGER`; a parent prints `$BATON_CHILDREN` (its
/// result), a child its payload.
const FIXTURE: &str = r#"#!/bin/sh
read -r payload
echo "start $BATON_JOB_ID" >> "$LEDGER"
sleep 0.1
echo "end $BATON_JOB_ID" >> "$LEDGER"
if [ -n "$BATON_CHILDREN" ]; then echo "$BATON_CHILDREN"; else echo "$payload"; fi
"#;

struct Procs {
    redis: RedisServer,
    dir: tempfile::TempDir,
}

impl Procs {
    fn new() -> Procs {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("job.sh"), FIXTURE).unwrap();
        Procs {
            redis: RedisServer::start(),
            dir,
        }
    }

    fn worker(&self, queue: &str) -> ChildGuard {
        let log = std::fs::File::create(self.dir.path().join(format!("{queue}.log"))).unwrap();
        let mut cmd = Command::new(baton_bin());
        cmd.args(["--redis-url", &self.redis.url(), "worker", queue, "--exec"])
            .args(["--concurrency", "3", "--shutdown-timeout", "1s", "--", "sh"])
            .arg(self.dir.path().join("job.sh"))
            .env("LEDGER", self.dir.path().join("ledger"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        ChildGuard(cmd.spawn().unwrap())
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(baton_bin())
            .args(["--redis-url", &self.redis.url()])
            .args(args)
            .output()
            .unwrap()
    }

    fn ledger(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("ledger"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// The parent `root` started after every other job's end, each once.
    fn assert_parent_last(&self, jobs: usize) {
        let l = self.ledger();
        let root = l
            .iter()
            .position(|x| x == "start root")
            .expect("root started");
        let ends = l[..root].iter().filter(|x| x.starts_with("end ")).count();
        assert_eq!(
            ends, jobs,
            "every child ended before the parent started: {l:?}"
        );
        assert_eq!(l.iter().filter(|x| *x == "start root").count(), 1, "{l:?}");
    }
}

fn flow_json() -> Value {
    json!({
        "name": "sum", "job_id": "root",
        "children": [
            {"name": "n", "data": 1, "job_id": "a"},
            {"name": "n", "data": 2, "job_id": "b"},
            {"name": "n", "data": 3, "job_id": "c", "queue": "{p}side"},
            {"name": "n", "data": 4, "job_id": "d", "queue": "{p}side", "on_failure": "ignore"}
        ]
    })
}

fn results(children: &Value) -> Vec<(String, Value)> {
    let mut v: Vec<(String, Value)> = children
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            assert_eq!(c["state"], "completed", "{c}");
            (
                format!(
                    "{}/{}",
                    c["queue"].as_str().unwrap(),
                    c["id"].as_str().unwrap()
                ),
                c["result"].clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn the_cli_adds_a_flow_that_exec_workers_run_parent_last() {
    let p = Procs::new();
    let file = p.dir.path().join("flow.json");
    std::fs::write(&file, flow_json().to_string()).unwrap();
    let out = p.cli(&["add-flow", "{p}main", file.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let added: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added["added"], true);
    assert_eq!(added["children"][2]["queue"], "{p}side");
    let listed = p.cli(&["list", "{p}main", "waiting-children"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("root"));

    let _w = [
        p.worker("{p}main"),
        p.worker("{p}main"),
        p.worker("{p}side"),
    ];
    // The same flow again, waiting for the root: nothing added, its result printed.
    let out = p.cli(&[
        "add-flow",
        "{p}main",
        file.to_str().unwrap(),
        "--wait",
        "30s",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("exists already"), "{stdout}");
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        results(&result),
        vec![
            ("{p}main/a".to_string(), json!(1)),
            ("{p}main/b".to_string(), json!(2)),
            ("{p}side/c".to_string(), json!(3)),
            ("{p}side/d".to_string(), json!(4)),
        ]
    );
    p.assert_parent_last(4);
    let shown = p.cli(&["job", "{p}main", "root"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains("child     {p}side/c completed: 3"),
        "{shown}"
    );
    let shown = p.cli(&["job", "{p}side", "c"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("parent    {p}main/root"));
}

#[tokio::test]
async fn the_http_api_adds_a_flow_and_refuses_a_bad_one_saying_where() {
    let p = Procs::new();
    let api = Api::start(&p.redis.url(), None).await;
    let (st, body) = api
        .call(
            Method::POST,
            "/v1/queues/%7Bp%7Dmain/flows",
            Some(flow_json()),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "root");
    let (st, body) = api
        .call(
            Method::POST,
            "/v1/queues/%7Bp%7Dmain/flows",
            Some(flow_json()),
        )
        .await;
    assert_eq!(
        (st, &body["added"]),
        (StatusCode::OK, &json!(false)),
        "{body}"
    );
    let (st, body) = api
        .call(
            Method::POST,
            "/v1/queues/%7Bp%7Dmain/flows",
            Some(json!({"name": "p", "children": [{"name": "c", "on_failure": "maybe"}]})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("children[0]: on_failure"),
        "{body}"
    );

    let _w = [p.worker("{p}main"), p.worker("{p}side")];
    let q = baton::Queue::connect(p.redis.url(), "{p}main").unwrap();
    wait_until(Duration::from_secs(30), "root completed", || async {
        q.job("root")
            .await
            .unwrap()
            .is_some_and(|j| j.state == JobState::Completed)
    })
    .await;
    let (st, body) = api
        .call(Method::GET, "/v1/queues/%7Bp%7Dmain/jobs/root", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(body["children"].as_array().unwrap().len(), 4, "{body}");
    assert_eq!(results(&body["result"]).len(), 4);
    p.assert_parent_last(4);
}
