//! The job a tick writes, refusals, the CLI and the HTTP API.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::common::{baton_bin, RedisServer};
use baton::{JobOptions, Queue, Repeat, Scheduler};
use redis::Commands;
use serde_json::{json, Value};

use super::every;

#[tokio::test]
async fn a_tick_writes_the_job_as_add_does_and_seals_its_data() {
    let redis = RedisServer::start();
    let keys =
        baton::crypto::Keyring::parse("k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=").unwrap();
    let q = Queue::connect(redis.url(), "fields")
        .unwrap()
        .with_encryption(Arc::new(keys));
    let opts = JobOptions::default()
        .priority(7)
        .attempts(2)
        .keep_completed(baton::Retention::last(5));
    // No worker runs: the first tick, 1.5 s ahead (inside the look-ahead), is fired by
    // the upsert itself, as a delayed job.
    let s = Scheduler::new(
        Repeat::every(Duration::from_secs(1)),
        "hourly",
        json!({"a": 1}),
    )
    .opts(opts.clone())
    .start(SystemTime::now() + Duration::from_millis(1500));
    let info = q.upsert_scheduler("h", &s).await.unwrap();
    let fired = info.last_run_ms.expect("the first tick fired on upsert");
    assert_eq!(
        info.next_run_ms,
        Some(fired),
        "the waiting job's tick is the next run"
    );
    let added = q
        .add(
            "hourly",
            &json!({"a": 1}),
            opts.clone()
                .job_id("by-add")
                .delay(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    assert!(added.added);
    let mut c = redis.conn();
    let by_tick: BTreeMap<String, Vec<u8>> = c
        .hgetall(format!("baton:{{fields}}:job:sched:h:{fired}"))
        .unwrap();
    let by_add: BTreeMap<String, Vec<u8>> = c.hgetall("baton:{fields}:job:by-add").unwrap();
    assert_eq!(
        by_tick.keys().collect::<Vec<_>>(),
        by_add.keys().collect::<Vec<_>>(),
        "the same fields"
    );
    for f in ["keep", "pri"] {
        assert_eq!(by_tick[f], by_add[f], "field {f}");
    }
    // spec = "<name> NUL <opts length>:<opts><data>" (src/job/spec.rs): the same name
    // and options; the payloads are sealed (each with its own nonce).
    let (t, a) = (
        crate::common::spec_parts(&by_tick["spec"]),
        crate::common::spec_parts(&by_add["spec"]),
    );
    assert_eq!((t.0, t.1), (a.0, a.1), "name and options");
    assert_eq!(t.2[0], 0xC1, "the data is sealed");
    let job = q.job(&format!("sched:h:{fired}")).await.unwrap().unwrap();
    assert_eq!(job.data, json!({"a": 1}));
    assert_eq!(q.schedulers().await.unwrap()[0].data, json!({"a": 1}));
    // Without the key, the listing says so instead of failing.
    let plain = Queue::connect(redis.url(), "fields").unwrap();
    assert!(plain.schedulers().await.unwrap()[0]
        .data
        .to_string()
        .contains("encrypted"));
}

#[tokio::test]
async fn bad_definitions_are_refused_with_a_reason() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "bad").unwrap();
    let refuse = |s: Scheduler<Value>, id: &'static str| {
        let q = q.clone();
        async move { q.upsert_scheduler(id, &s).await.unwrap_err().to_string() }
    };
    let e = refuse(
        Scheduler::new(Repeat::cron("61 * * * *"), "n", json!(0)),
        "a",
    )
    .await;
    assert!(e.contains("not valid"), "{e}");
    let e = refuse(
        Scheduler::new(Repeat::cron_in("* * * * *", "Nowhere/City"), "n", json!(0)),
        "a",
    )
    .await;
    assert!(e.contains("unknown time zone"), "{e}");
    let e = refuse(
        every(1, json!(0)).opts(JobOptions::default().job_id("x")),
        "a",
    )
    .await;
    assert!(e.contains("job_id"), "{e}");
    let e = refuse(
        every(1, json!(0)).opts(JobOptions::default().delay(Duration::from_secs(1))),
        "a",
    )
    .await;
    assert!(e.contains("delay"), "{e}");
    let e = refuse(
        every(1, json!(0)).end(SystemTime::now() - Duration::from_secs(60)),
        "a",
    )
    .await;
    assert!(e.contains("never run"), "{e}");
    let e = refuse(every(1, json!(0)), "a{b}").await;
    assert!(e.contains("scheduler id"), "{e}");
    let e = refuse(every(1, json!(0)).limit(0), "a").await;
    assert!(e.contains("limit"), "{e}");
    assert!(
        q.schedulers().await.unwrap().is_empty(),
        "nothing was stored"
    );
}

fn cli(redis: &RedisServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(baton_bin())
        .args(["--redis-url", &redis.url()])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_sets_lists_and_removes_schedulers() {
    let redis = RedisServer::start();
    let (ok, out, err) = cli(
        &redis,
        &[
            "schedule",
            "set",
            "cq",
            "report",
            "--cron",
            "0 0 9 * * MON-FRI",
            "--tz",
            "Europe/Berlin",
            "--name",
            "report",
            "--data",
            r#"{"to":"ops"}"#,
            "--attempts",
            "2",
            "--limit",
            "10",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let set: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(set["cron"], "0 0 9 * * MON-FRI");
    assert_eq!(set["tz"], "Europe/Berlin");
    assert_eq!(set["data"], json!({"to": "ops"}));
    assert_eq!(
        (set["attempts"].clone(), set["limit"].clone()),
        (json!(2), json!(10))
    );
    assert!(set["next_run_ms"].as_u64().is_some(), "{set}");
    let (ok, out, err) = cli(&redis, &["schedule", "set", "cq", "tidy", "--every", "30s"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("every 30s") && out.contains("next run"),
        "{out}"
    );
    let (_, out, _) = cli(&redis, &["schedule", "list", "cq", "--json"]);
    let list: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = list["schedulers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["report", "tidy"]);
    assert!(list["schedulers"][1]["next_run_ms"].as_u64().is_some());
    assert_eq!(
        list["schedulers"][1]["name"], "tidy",
        "named after the scheduler"
    );
    let (_, table, _) = cli(&redis, &["schedule", "list", "cq"]);
    assert!(
        table.contains("cron 0 0 9 * * MON-FRI (Europe/Berlin)"),
        "{table}"
    );
    assert!(table.contains("0/10"), "runs of the limit: {table}");

    for (args, want) in [
        (
            vec!["--cron", "* * * * *", "--every", "1s"],
            "cannot be used with",
        ),
        (vec!["--cron", "not cron"], "not valid"),
        (vec!["--every", "1s", "--delay", "5s"], "leave delay out"),
        (vec!["--every", "100ms"], "at least 1s"),
        (vec!["--every", "1s", "--data", "{"], "not valid JSON"),
        (vec![], "required"),
    ] {
        let mut a = vec!["schedule", "set", "cq", "x"];
        a.extend(args.iter());
        let (ok, _, err) = cli(&redis, &a);
        assert!(!ok && err.contains(want), "{args:?}: {err}");
    }

    let (ok, out, _) = cli(&redis, &["schedule", "remove", "cq", "tidy", "--json"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["removed"],
        true
    );
    let (ok, out, _) = cli(&redis, &["schedule", "remove", "cq", "tidy"]);
    assert!(ok && out.contains("no scheduler tidy"), "{out}");
    let q = Queue::connect(redis.url(), "cq").unwrap();
    assert_eq!(q.schedulers().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_http_api_puts_gets_lists_and_deletes_schedulers() {
    use reqwest::{Method, StatusCode};
    let redis = RedisServer::start();
    let api = crate::http_api::support::Api::start(&redis.url(), None).await;
    let path = "/v1/queues/hq/schedulers/nightly";
    let (st, body) = api
        .call(
            Method::PUT,
            path,
            Some(
                json!({"cron": "0 30 2 * * *", "tz": "Europe/Berlin", "name": "n",
                        "data": {"x": 1}, "priority": 3, "limit": 5}),
            ),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "nightly");
    assert_eq!(body["priority"], 3);
    assert!(body["next_run_ms"].as_u64().is_some(), "{body}");
    let (st, one) = api.call(Method::GET, path, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["data"], json!({"x": 1}));
    let (st, list) = api
        .call(Method::GET, "/v1/queues/hq/schedulers", None)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["schedulers"].as_array().unwrap().len(), 1, "{list}");
    for (bad, want) in [
        (json!({"every": "1s", "cron": "* * * * *"}), "not both"),
        (json!({"every": "soon"}), "not a duration"),
        (json!({"every": "1s", "job_id": "x"}), "job_id"),
        (json!({"every": "1s", "colour": 1}), "colour"),
    ] {
        let (st, body) = api.call(Method::PUT, path, Some(bad.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(want),
            "{bad}: {body}"
        );
    }
    let (st, _) = api.call(Method::DELETE, path, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, body) = api.call(Method::DELETE, path, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    let (st, _) = api.call(Method::GET, path, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    api.stop().await;
}
