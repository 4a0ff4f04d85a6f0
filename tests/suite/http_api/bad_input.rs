//! Client mistakes get a 4xx JSON error, and Redis being down a 503, never a 500.

use std::time::{Duration, Instant};

use baton::http::MAX_BODY_BYTES;
use baton::Queue;
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::support::{assert_json_error, Api};
use crate::common::{wait_until, RedisServer};

#[tokio::test]
async fn bad_input_gets_4xx_json_never_500() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    Queue::connect(redis.url(), "q")
        .unwrap()
        .add("n", &1, Default::default())
        .await
        .unwrap();

    let jobs = "/v1/queues/q/jobs";
    let bodies: &[(&str, &str)] = &[
        ("malformed JSON", "{"),
        ("not an object", "[]"),
        ("a string", "\"send\""),
        ("missing name", r#"{"data": 1}"#),
        ("empty name", r#"{"name": ""}"#),
        ("name of the wrong type", r#"{"name": 5}"#),
        (
            "priority above the maximum",
            r#"{"name": "x", "priority": 1000001}"#,
        ),
        ("negative priority", r#"{"name": "x", "priority": -1}"#),
        ("fractional priority", r#"{"name": "x", "priority": 1.5}"#),
        (
            "priority beyond u32",
            r#"{"name": "x", "priority": 99999999999}"#,
        ),
        ("zero attempts", r#"{"name": "x", "attempts": 0}"#),
        ("attempts as string", r#"{"name": "x", "attempts": "3"}"#),
        ("empty job id", r#"{"name": "x", "job_id": ""}"#),
        (
            "overlong job id",
            &format!(r#"{{"name": "x", "job_id": "{}"}}"#, "i".repeat(257)),
        ),
        ("job id of the wrong type", r#"{"name": "x", "job_id": 7}"#),
        ("negative delay", r#"{"name": "x", "delay_ms": -5}"#),
        (
            "absurd delay",
            r#"{"name": "x", "delay_ms": 18446744073709551615}"#,
        ),
        ("zero timeout", r#"{"name": "x", "timeout_ms": 0}"#),
        ("timeout as text", r#"{"name": "x", "timeout_ms": "soon"}"#),
        ("unknown field", r#"{"name": "x", "priorty": 3}"#),
        ("empty body", ""),
    ];
    for (what, body) in bodies {
        let (st, e) = api.raw(Method::POST, jobs, body.to_string()).await;
        assert_json_error(what, st, &e, StatusCode::BAD_REQUEST);
    }

    // Too large: 413, also JSON.
    let big = format!(
        r#"{{"name": "x", "data": "{}"}}"#,
        "a".repeat(MAX_BODY_BYTES)
    );
    let (st, e) = api.raw(Method::POST, jobs, big).await;
    assert_json_error("body over 1 MiB", st, &e, StatusCode::PAYLOAD_TOO_LARGE);
    // Just under the limit is fine.
    let ok = format!(
        r#"{{"name": "x", "data": "{}"}}"#,
        "a".repeat(MAX_BODY_BYTES - 100)
    );
    assert_eq!(api.raw(Method::POST, jobs, ok).await.0, StatusCode::CREATED);

    // Bad queue names, on every kind of route.
    let long = "q".repeat(129);
    for q in ["a%7Bb", "a%7Db", "a%20b", "a%09b", long.as_str(), "%FF%FE"] {
        for (m, p) in [
            (Method::GET, format!("/v1/queues/{q}")),
            (Method::POST, format!("/v1/queues/{q}/jobs")),
            (Method::GET, format!("/v1/queues/{q}/jobs?state=waiting")),
            (Method::GET, format!("/v1/queues/{q}/jobs/x")),
            (Method::POST, format!("/v1/queues/{q}/pause")),
        ] {
            let (st, e) = api.call(m.clone(), &p, Some(json!({"name": "x"}))).await;
            assert_json_error(&format!("{m} {p}"), st, &e, StatusCode::BAD_REQUEST);
        }
    }
    assert_eq!(
        api.call(
            Method::GET,
            &format!("/v1/queues/{}", "q".repeat(128)),
            None
        )
        .await
        .0,
        StatusCode::OK
    );

    // Listing: unknown or missing state, bad limits, unknown parameters.
    for query in [
        "state=bogus",
        "",
        "state=failed&limit=0",
        "state=failed&limit=abc",
        "state=failed&limit=5000",
        "state=failed&offset=-1",
        "state=failed&sort=asc",
    ] {
        let (st, e) = api
            .call(Method::GET, &format!("{jobs}?{query}"), None)
            .await;
        assert_json_error(&format!("list ?{query}"), st, &e, StatusCode::BAD_REQUEST);
    }

    // Unknown jobs: 404.
    for (m, p) in [
        (Method::GET, "/v1/queues/q/jobs/nope"),
        (Method::DELETE, "/v1/queues/q/jobs/nope"),
        (Method::POST, "/v1/queues/q/jobs/nope/cancel"),
        (Method::POST, "/v1/queues/q/jobs/nope/retry"),
    ] {
        let (st, e) = api.call(m.clone(), p, None).await;
        assert_json_error(&format!("{m} {p}"), st, &e, StatusCode::NOT_FOUND);
    }

    // Unknown routes and wrong methods: JSON too.
    let (st, e) = api.call(Method::GET, "/v1/nothing/here", None).await;
    assert_json_error("unknown route", st, &e, StatusCode::NOT_FOUND);
    let (st, e) = api.call(Method::PUT, jobs, Some(json!({}))).await;
    assert_json_error("wrong method", st, &e, StatusCode::METHOD_NOT_ALLOWED);

    // The queue is untouched by all of that: the one job added directly plus the big one.
    assert_eq!(
        api.call(Method::GET, "/v1/queues/q", None).await.1["waiting"],
        2
    );
    api.stop().await;
}

#[tokio::test]
async fn redis_down_gives_503_json_and_health_stays_up() {
    let mut redis = RedisServer::start();
    let api = Api::start(&redis.url(), None).await;
    assert_eq!(
        api.call(Method::GET, "/v1/queues/q", None).await.0,
        StatusCode::OK
    );
    redis.kill();
    for (m, p, body) in [
        (Method::GET, "/v1/queues/q", None),
        (Method::GET, "/v1/queues", None),
        (
            Method::POST,
            "/v1/queues/q/jobs",
            Some(json!({"name": "x"})),
        ),
        (Method::GET, "/v1/queues/q/jobs/x", None),
    ] {
        let started = Instant::now();
        let (st, e) = api.call(m.clone(), p, body).await;
        assert_json_error(
            &format!("{m} {p} with redis down"),
            st,
            &e,
            StatusCode::SERVICE_UNAVAILABLE,
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{m} {p} took {:?}",
            started.elapsed()
        );
    }
    // Client mistakes are still 400, not 503: they are checked before Redis is asked.
    let (st, e) = api
        .call(
            Method::POST,
            "/v1/queues/q/jobs",
            Some(json!({"name": "x", "attempts": 0})),
        )
        .await;
    assert_json_error("bad input with redis down", st, &e, StatusCode::BAD_REQUEST);

    let (st, _) = api.call(Method::GET, "/healthz", None).await;
    assert_eq!(st, StatusCode::OK);
    let (st, ready) = api.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["ready"], false);
    assert!(
        ready["error"].as_str().unwrap().contains("unreachable"),
        "{ready}"
    );

    redis.restart();
    wait_until(
        Duration::from_secs(15),
        "ready again after redis restarts",
        || async { api.call(Method::GET, "/readyz", None).await.0 == StatusCode::OK },
    )
    .await;
    assert_eq!(
        api.call(Method::GET, "/v1/queues/q", None).await.0,
        StatusCode::OK
    );
    api.stop().await;
}
