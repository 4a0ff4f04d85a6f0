//! Dedup through the `baton add` CLI (also many processes at once, and `add-bulk`) and
//! the HTTP API: the same fields and answers as the library.

use std::process::{Command, Output, Stdio};

use baton::{JobState, Queue};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::scenarios::holder;
use crate::common::{baton_bin, ChildGuard, RedisServer};
use crate::http_api::support::Api;

fn baton(redis: &RedisServer, args: &[&str]) -> Output {
    Command::new(baton_bin())
        .arg("--redis-url")
        .arg(redis.url())
        .args(args)
        .output()
        .unwrap()
}

fn json_out(out: Output) -> Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn dedup_cli_add_modes_and_refusals() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "cq").unwrap();
    let a = json_out(baton(&redis, &["add", "cq", "1", "--dedup", "k", "--json"]));
    assert_eq!(
        (a["added"].clone(), a["deduplicated"].clone()),
        (json!(true), json!(false))
    );
    let b = json_out(baton(&redis, &["add", "cq", "2", "--dedup", "k", "--json"]));
    assert_eq!(
        b,
        json!({"id": a["id"], "added": false, "deduplicated": true})
    );
    // Plain output: the id that stands, and a note on stderr.
    let out = baton(&redis, &["add", "cq", "3", "--dedup", "k"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        a["id"].as_str().unwrap()
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dedup"),
        "{out:?}"
    );

    let t = json_out(baton(
        &redis,
        &[
            "add",
            "cq",
            "1",
            "--dedup",
            "t",
            "--dedup-ttl",
            "1h",
            "--json",
        ],
    ));
    assert_eq!(t["added"], true);
    let t2 = json_out(baton(
        &redis,
        &[
            "add",
            "cq",
            "1",
            "--dedup",
            "t",
            "--dedup-ttl",
            "1h",
            "--json",
        ],
    ));
    assert_eq!(t2["id"], t["id"]);
    assert_eq!(t2["deduplicated"], true);

    let d = json_out(baton(
        &redis,
        &[
            "add",
            "cq",
            "1",
            "--dedup",
            "d",
            "--debounce",
            "1h",
            "--json",
        ],
    ));
    let d2 = json_out(baton(
        &redis,
        &[
            "add",
            "cq",
            "2",
            "--dedup",
            "d",
            "--debounce",
            "1h",
            "--json",
        ],
    ));
    assert_eq!(
        (d2["id"].clone(), d2["deduplicated"].clone()),
        (d["id"].clone(), json!(true))
    );
    let j = q.job(d["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!((j.state, j.data), (JobState::Delayed, json!(2)));

    for bad in [
        &["add", "cq", "1", "--dedup-ttl", "1s"][..],
        &[
            "add",
            "cq",
            "1",
            "--dedup",
            "x",
            "--debounce",
            "1s",
            "--delay",
            "1s",
        ],
        &[
            "add",
            "cq",
            "1",
            "--dedup",
            "x",
            "--debounce",
            "1s",
            "--dedup-ttl",
            "1s",
        ],
        &["add", "cq", "1", "--dedup", "x", "--dedup-ttl", "soon"],
        &["add", "cq", "1", "--dedup", "a{b}"],
    ] {
        let out = baton(&redis, bad);
        assert!(!out.status.success(), "{bad:?} was accepted");
        assert!(!out.stderr.is_empty(), "{bad:?}: no message");
    }
    assert_eq!(holder(&q, "x").await, None, "a refused add writes nothing");

    // add-bulk: a line's dedup key, and the count of deduplicated lines.
    let file = std::env::temp_dir().join(format!("baton-dedup-{}.jsonl", std::process::id()));
    std::fs::write(
        &file,
        "{\"data\":1,\"dedup\":\"b\"}\n{\"data\":2,\"dedup\":\"b\"}\n{\"data\":3}\n",
    )
    .unwrap();
    let out = baton(
        &redis,
        &["add-bulk", "cq", file.to_str().unwrap(), "--json"],
    );
    std::fs::remove_file(&file).ok();
    let r = json_out(out);
    assert_eq!(
        (
            r["added"].clone(),
            r["deduplicated"].clone(),
            r["existing"].clone()
        ),
        (json!(2), json!(1), json!(0)),
        "{r}"
    );
    assert_eq!(r["ids"][0], r["ids"][1]);
}

#[tokio::test]
async fn dedup_many_cli_processes_at_once_leave_one_job() {
    let redis = RedisServer::start();
    let children: Vec<ChildGuard> = (0..12)
        .map(|i| {
            ChildGuard(
                Command::new(baton_bin())
                    .arg("--redis-url")
                    .arg(redis.url())
                    .args(["add", "pq", &i.to_string(), "--dedup", "one", "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let mut outs = Vec::new();
    for mut c in children {
        let mut stdout = String::new();
        std::io::Read::read_to_string(c.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let status = c.wait().unwrap();
        assert!(status.success(), "{stdout}");
        outs.push(serde_json::from_str::<Value>(&stdout).unwrap());
    }
    let added: Vec<_> = outs.iter().filter(|o| o["added"] == true).collect();
    assert_eq!(added.len(), 1, "{outs:?}");
    assert!(outs.iter().all(|o| o["id"] == added[0]["id"]), "{outs:?}");
    let q = Queue::connect(redis.url(), "pq").unwrap();
    assert_eq!(q.counts().await.unwrap().waiting, 1);
}

#[tokio::test]
async fn dedup_http_add_fields_and_answers() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    let post = |body: Value| {
        let api = &api;
        async move {
            api.call(Method::POST, "/v1/queues/hq/jobs", Some(body))
                .await
        }
    };
    let (st, a) = post(json!({"name": "n", "data": 1, "dedup": "k"})).await;
    assert_eq!(st, StatusCode::CREATED, "{a}");
    assert_eq!(
        (a["added"].clone(), a["deduplicated"].clone()),
        (json!(true), json!(false))
    );
    let (st, b) = post(json!({"name": "n", "data": 2, "dedup": "k"})).await;
    assert_eq!(
        (st, b),
        (
            StatusCode::OK,
            json!({"id": a["id"], "added": false, "deduplicated": true})
        )
    );

    let (st, t) = post(json!({"name": "n", "dedup": "t", "dedup_ttl": "1h"})).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let (st, t2) = post(json!({"name": "n", "dedup": "t", "dedup_ttl": "1h"})).await;
    assert_eq!(
        (st, t2["id"].clone(), t2["deduplicated"].clone()),
        (StatusCode::OK, t["id"].clone(), json!(true))
    );

    let (st, d) = post(json!({"name": "n", "data": 1, "dedup": "d", "debounce": "1h"})).await;
    assert_eq!(st, StatusCode::CREATED, "{d}");
    let (st, d2) = post(json!({"name": "n", "data": 2, "dedup": "d", "debounce": "1h"})).await;
    assert_eq!((st, d2["id"].clone()), (StatusCode::OK, d["id"].clone()));
    let (_, job) = api
        .call(
            Method::GET,
            &format!("/v1/queues/hq/jobs/{}", d["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(
        (job["state"].clone(), job["data"].clone()),
        (json!("delayed"), json!(2)),
        "{job}"
    );

    for bad in [
        json!({"name": "n", "dedup_ttl": "1s"}),
        json!({"name": "n", "dedup": "x", "debounce": "1s", "delay": "1s"}),
        json!({"name": "n", "dedup": "x", "debounce": "1s", "dedup_ttl": "1s"}),
        json!({"name": "n", "dedup": "", }),
        json!({"name": "n", "dedup": "x", "debounce": 5}),
    ] {
        let (st, body) = post(bad.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}
