//! `/healthz`, `/readyz`, `/metrics` and the OpenAPI document against the router.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::support::{wait_http, Api};
use crate::common::{free_port, RedisServer};

#[tokio::test]
async fn healthz_and_readyz() {
    let fit = RedisServer::start();
    let api = Api::start(&fit.url(), None).await;
    let resp = api
        .http
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "ok");
    let (st, ready) = api.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::OK, "{ready}");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["problems"], json!([]));
    api.stop().await;

    let unfit =
        RedisServer::start_with(&["--appendonly", "no", "--maxmemory-policy", "allkeys-lru"]);
    let api = Api::start(&unfit.url(), None).await;
    assert_eq!(
        api.call(Method::GET, "/healthz", None).await.0,
        StatusCode::OK,
        "alive even when not ready"
    );
    let (st, ready) = api.call(Method::GET, "/readyz", None).await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["ready"], false);
    let settings: BTreeSet<&str> = ready["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["setting"].as_str().unwrap())
        .collect();
    assert_eq!(
        settings,
        BTreeSet::from(["appendonly", "maxmemory-policy"]),
        "{ready}"
    );
    for p in ready["problems"].as_array().unwrap() {
        assert!(!p["fix"].as_str().unwrap().is_empty(), "{p}");
    }
    api.stop().await;

    // The same endpoints from serve_ops, the server every worker runs.
    let port = free_port();
    let stop = CancellationToken::new();
    let task = tokio::spawn(baton::http::serve_ops(
        ([127, 0, 0, 1], port).into(),
        unfit.url(),
        stop.clone(),
    ));
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_http(&http, &format!("{base}/healthz")).await;
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["problems"].as_array().unwrap().len(), 2, "{body}");
    let r = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let r = http.get(format!("{base}/v1/queues")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "serve_ops has no API routes"
    );
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let redis = RedisServer::start();
    let api = Api::start(&redis.url(), Some("tok")).await;
    // No token needed for the document.
    let resp = api
        .http
        .get(format!("{}/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "OpenAPI 3.1"
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if ["get", "post", "put", "patch", "delete", "head", "options"]
                .contains(&method.as_str())
            {
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path} documents its responses"
                );
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let routed: BTreeSet<(String, String)> = baton::http::routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routed, "openapi.json and the router disagree");
    for must in [
        ("POST", "/v1/queues/{queue}/jobs"),
        ("GET", "/v1/queues/{queue}/jobs/{id}"),
        ("POST", "/v1/queues/{queue}/jobs/{id}/cancel"),
        ("POST", "/v1/queues/{queue}/jobs/{id}/retry"),
        ("DELETE", "/v1/queues/{queue}/jobs/{id}"),
        ("GET", "/v1/queues/{queue}/jobs"),
        ("GET", "/v1/queues/{queue}"),
        ("GET", "/v1/queues"),
        ("POST", "/v1/queues/{queue}/pause"),
        ("POST", "/v1/queues/{queue}/resume"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.json"),
    ] {
        assert!(
            routed.contains(&(must.0.to_string(), must.1.to_string())),
            "{must:?} is routed and documented"
        );
    }

    // Every listed route is really served (not the 404/405 fallback), and every /v1
    // route documents 401 and asks for the bearer scheme.
    for (method, path) in &routed {
        let mut concrete = path.replace("{queue}", "q").replace("{id}", "nope");
        if path.ends_with("/events") {
            // An event stream never ends: a bad `from` answers 400 at once, still served.
            concrete.push_str("?from=not-an-id");
        }
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let (st, body) = api.call(m, &concrete, None).await;
        let fallback = st == StatusCode::METHOD_NOT_ALLOWED
            || (st == StatusCode::NOT_FOUND
                && body["error"].as_str().unwrap_or("").starts_with("no route"));
        assert!(!fallback, "{method} {path} is not served: {st} {body}");
        assert!(
            st.as_u16() < 500 || path == "/readyz",
            "{method} {path}: {st} {body}"
        );
        if path.starts_with("/v1") {
            let op = &doc["paths"][path][method.to_lowercase()];
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} documents 401"
            );
            assert_eq!(
                op["security"],
                json!([{"bearer": []}]),
                "{method} {path} security"
            );
        }
    }
    api.stop().await;
}
