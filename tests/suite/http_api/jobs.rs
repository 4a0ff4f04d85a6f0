//! Enqueue, inspect, list, pause, cancel, retry and delete through the API.

use std::collections::BTreeSet;
use std::time::Duration;

use baton::{handler_fn, JobContext, JobError, Worker};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::support::{assert_json_error, Api};
use crate::common::{wait_until, RedisServer};

#[tokio::test]
async fn happy_path_enqueue_inspect_cancel_retry_delete() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;

    // Enqueue: 201 with a fresh id.
    let (st, added) = api
        .call(Method::POST, "/v1/queues/emails/jobs", Some(json!({"name": "send", "data": {"to": "a@x"}, "priority": 5, "attempts": 2, "timeout_ms": 30000})))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{added}");
    assert_eq!(added["added"], true);
    let id = added["id"].as_str().unwrap().to_string();

    // The same job_id twice: 201 then 200 with added=false, nothing changed.
    let (st, first) = api
        .call(
            Method::POST,
            "/v1/queues/emails/jobs",
            Some(json!({"name": "send", "data": 1, "job_id": "fixed"})),
        )
        .await;
    assert_eq!(
        (st, first.clone()),
        (
            StatusCode::CREATED,
            json!({"id": "fixed", "added": true, "deduplicated": false})
        )
    );
    let (st, again) = api
        .call(
            Method::POST,
            "/v1/queues/emails/jobs",
            Some(json!({"name": "send", "data": 2, "job_id": "fixed"})),
        )
        .await;
    assert_eq!(
        (st, again),
        (
            StatusCode::OK,
            json!({"id": "fixed", "added": false, "deduplicated": false})
        )
    );
    let (_, fixed) = api
        .call(Method::GET, "/v1/queues/emails/jobs/fixed", None)
        .await;
    assert_eq!(
        fixed["data"], 1,
        "a second add with the same id changes nothing"
    );

    // A delayed job (data omitted: null).
    let (st, delayed) = api
        .call(
            Method::POST,
            "/v1/queues/emails/jobs",
            Some(json!({"name": "later", "delay_ms": 3_600_000})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let delayed_id = delayed["id"].as_str().unwrap().to_string();

    // Get the job.
    let (st, job) = api
        .call(Method::GET, &format!("/v1/queues/emails/jobs/{id}"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{job}");
    assert_eq!(job["id"], id.as_str());
    assert_eq!(job["queue"], "emails");
    assert_eq!(job["name"], "send");
    assert_eq!(job["state"], "waiting");
    assert_eq!(job["data"], json!({"to": "a@x"}));
    assert_eq!(job["priority"], 5);
    assert_eq!(job["attempts"], 2);
    let (_, d) = api
        .call(
            Method::GET,
            &format!("/v1/queues/emails/jobs/{delayed_id}"),
            None,
        )
        .await;
    assert_eq!(
        (d["state"].clone(), d["data"].clone()),
        (json!("delayed"), Value::Null)
    );

    // List by state.
    let (st, list) = api
        .call(
            Method::GET,
            "/v1/queues/emails/jobs?state=waiting&limit=50",
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let ids: BTreeSet<&str> = list["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from([id.as_str(), "fixed"]));
    let (_, list) = api
        .call(Method::GET, "/v1/queues/emails/jobs?state=delayed", None)
        .await;
    assert_eq!(list["ids"], json!([delayed_id]));
    // Delayed jobs come with the time they run (ms since the epoch, Redis clock).
    assert_eq!(list["jobs"][0]["id"], json!(delayed_id));
    let due = list["jobs"][0]["due_ms"].as_u64().expect("due_ms");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(due > now_ms, "due {due} is not in the future of {now_ms}");
    let (_, list) = api
        .call(
            Method::GET,
            "/v1/queues/emails/jobs?state=waiting&limit=1&offset=1",
            None,
        )
        .await;
    assert_eq!(list["ids"].as_array().unwrap().len(), 1);

    // Counts, one queue and all.
    let (st, counts) = api.call(Method::GET, "/v1/queues/emails", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        counts,
        json!({"queue": "emails", "waiting": 2, "delayed": 1, "waiting-children": 0, "active": 0, "completed": 0, "failed": 0, "cancelled": 0, "paused": false})
    );
    let (st, all) = api.call(Method::GET, "/v1/queues", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(all["queues"], json!([counts]));

    // Pause and resume.
    let (st, p) = api
        .call(Method::POST, "/v1/queues/emails/pause", None)
        .await;
    assert_eq!(
        (st, p),
        (StatusCode::OK, json!({"queue": "emails", "paused": true}))
    );
    assert_eq!(
        api.call(Method::GET, "/v1/queues/emails", None).await.1["paused"],
        true
    );
    let (st, p) = api
        .call(Method::POST, "/v1/queues/emails/resume", None)
        .await;
    assert_eq!(
        (st, p),
        (StatusCode::OK, json!({"queue": "emails", "paused": false}))
    );
    assert_eq!(
        api.call(Method::GET, "/v1/queues/emails", None).await.1["paused"],
        false
    );

    // Retry of a waiting job: 409.
    let (st, e) = api
        .call(
            Method::POST,
            &format!("/v1/queues/emails/jobs/{id}/retry"),
            None,
        )
        .await;
    assert_json_error("retry waiting", st, &e, StatusCode::CONFLICT);

    // Cancel a waiting job: cancelled at once; again: 409.
    let (st, c) = api
        .call(
            Method::POST,
            &format!("/v1/queues/emails/jobs/{id}/cancel"),
            None,
        )
        .await;
    assert_eq!(
        (st, c),
        (StatusCode::OK, json!({"id": id, "result": "cancelled"}))
    );
    assert_eq!(
        api.call(Method::GET, &format!("/v1/queues/emails/jobs/{id}"), None)
            .await
            .1["state"],
        "cancelled"
    );
    let (st, e) = api
        .call(
            Method::POST,
            &format!("/v1/queues/emails/jobs/{id}/cancel"),
            None,
        )
        .await;
    assert_json_error("cancel cancelled", st, &e, StatusCode::CONFLICT);
    assert_eq!(
        api.call(Method::GET, "/v1/queues/emails/jobs?state=cancelled", None)
            .await
            .1["ids"],
        json!([id])
    );

    // Retry it: waiting again.
    let (st, r) = api
        .call(
            Method::POST,
            &format!("/v1/queues/emails/jobs/{id}/retry"),
            None,
        )
        .await;
    assert_eq!(
        (st, r),
        (StatusCode::OK, json!({"id": id, "result": "queued"}))
    );
    assert_eq!(
        api.call(Method::GET, &format!("/v1/queues/emails/jobs/{id}"), None)
            .await
            .1["state"],
        "waiting"
    );

    // Delete: 204, then 404 for everything about it.
    let (st, body) = api
        .call(
            Method::DELETE,
            &format!("/v1/queues/emails/jobs/{id}"),
            None,
        )
        .await;
    assert_eq!((st, body), (StatusCode::NO_CONTENT, Value::Null));
    for (m, p) in [
        (Method::GET, format!("/v1/queues/emails/jobs/{id}")),
        (Method::DELETE, format!("/v1/queues/emails/jobs/{id}")),
        (Method::POST, format!("/v1/queues/emails/jobs/{id}/cancel")),
        (Method::POST, format!("/v1/queues/emails/jobs/{id}/retry")),
    ] {
        let (st, e) = api.call(m.clone(), &p, None).await;
        assert_json_error(
            &format!("{m} {p} after delete"),
            st,
            &e,
            StatusCode::NOT_FOUND,
        );
    }

    api.stop().await;
}

#[tokio::test]
async fn running_jobs_cancel_requested_and_not_deletable() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    let worker = Worker::builder(redis.url(), "runs")
        .lease(Duration::from_secs(5))
        .shutdown_timeout(Duration::from_secs(5))
        .build(handler_fn(|_: Value, ctx: JobContext| async move {
            ctx.cancelled().await;
            Err::<(), _>(JobError::retry("stopped"))
        }))
        .unwrap();
    let stop = worker.shutdown_handle();
    let run = tokio::spawn(worker.run());

    let (st, added) = api
        .call(
            Method::POST,
            "/v1/queues/runs/jobs",
            Some(json!({"name": "long", "data": null, "attempts": 1})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let id = added["id"].as_str().unwrap().to_string();
    let path = format!("/v1/queues/runs/jobs/{id}");
    wait_until(Duration::from_secs(10), "job active", || async {
        api.call(Method::GET, &path, None).await.1["state"] == "active"
    })
    .await;

    let (st, e) = api.call(Method::DELETE, &path, None).await;
    assert_json_error("delete running", st, &e, StatusCode::CONFLICT);
    let (st, e) = api.call(Method::POST, &format!("{path}/retry"), None).await;
    assert_json_error("retry running", st, &e, StatusCode::CONFLICT);

    let (st, c) = api
        .call(Method::POST, &format!("{path}/cancel"), None)
        .await;
    assert_eq!(
        (st, c),
        (
            StatusCode::OK,
            json!({"id": id, "result": "cancel_requested"})
        )
    );
    wait_until(Duration::from_secs(10), "job cancelled", || async {
        api.call(Method::GET, &path, None).await.1["state"] == "cancelled"
    })
    .await;
    let (st, e) = api
        .call(Method::POST, &format!("{path}/cancel"), None)
        .await;
    assert_json_error("cancel finished", st, &e, StatusCode::CONFLICT);
    let (st, _) = api.call(Method::DELETE, &path, None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    stop.shutdown();
    run.await.unwrap().unwrap();
    api.stop().await;
}

/// The add route takes the library's options under the CLI's names and units, and
/// refuses a bad queue name in the library's words.
#[tokio::test]
async fn add_takes_every_library_option_as_the_cli_does() {
    use baton::{Backoff, JobOptions, Queue, Retention};
    use redis::Commands;
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    let opts = JobOptions::default()
        .delay(Duration::from_secs(3600))
        .priority(3)
        .attempts(4)
        .backoff(Backoff::Exponential {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
            jitter: false,
        })
        .timeout(Duration::from_secs(30))
        .keep_completed(Retention::last(10))
        .keep_failed(Retention {
            count: Some(5),
            age: Some(Duration::from_secs(3600)),
        });
    Queue::connect(redis.url(), "o")
        .unwrap()
        .add("n", &1, opts.job_id("lib"))
        .await
        .unwrap();
    let body = json!({"name": "n", "data": 1, "job_id": "http", "delay": "1h", "priority": 3,
        "attempts": 4, "backoff": "exponential:500ms:1m:no-jitter", "timeout": "30s",
        "keep_completed": "10", "keep_failed": "5,1h"});
    let (st, added) = api
        .call(Method::POST, "/v1/queues/o/jobs", Some(body))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{added}");
    let stored = |id: &str| {
        let mut h: std::collections::BTreeMap<String, Vec<u8>> = redis
            .conn()
            .hgetall(format!("baton:{{o}}:job:{id}"))
            .unwrap();
        h.retain(|k, _| ["spec", "keep", "pri", "state"].contains(&k.as_str()));
        h
    };
    assert_eq!(stored("http"), stored("lib"));

    for (body, word) in [
        (json!({"name": "x", "delay": "soon"}), "delay"),
        (json!({"name": "x", "delay": 5}), "\"30s\""),
        (json!({"name": "x", "backoff": "sometimes"}), "backoff"),
        (json!({"name": "x", "keep_failed": "lots"}), "keep_failed"),
        (
            json!({"name": "x", "delay": "1s", "delay_ms": 5}),
            "delay_ms",
        ),
    ] {
        let (st, e) = api
            .call(Method::POST, "/v1/queues/o/jobs", Some(body.clone()))
            .await;
        assert_json_error(&body.to_string(), st, &e, StatusCode::BAD_REQUEST);
        assert!(e["error"].as_str().unwrap().contains(word), "{body}: {e}");
    }

    let want = match baton::validate::queue_name("bad queue!").unwrap_err() {
        baton::Error::Invalid(m) => m,
        e => panic!("{e}"),
    };
    let (st, e) = api
        .call(
            Method::POST,
            "/v1/queues/bad%20queue!/jobs",
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert_eq!(e["error"], want.as_str());
}
