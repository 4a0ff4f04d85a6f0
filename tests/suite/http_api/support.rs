//! An in-process API server and helpers to call it and check its answers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use baton::http::ServeConfig;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::common::free_port;

/// An API server running in this process.
pub(crate) struct Api {
    pub(crate) base: String,
    token: Option<String>,
    pub(crate) http: reqwest::Client,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<baton::Result<()>>>,
}

impl Api {
    pub(crate) async fn start(redis_url: &str, token: Option<&str>) -> Api {
        let port = free_port();
        let listen: SocketAddr = ([127, 0, 0, 1], port).into();
        let stop = CancellationToken::new();
        let cfg = ServeConfig {
            redis: redis_url.into(),
            listen,
            token: token.map(String::from),
        };
        let task = tokio::spawn(baton::http::serve(cfg, stop.clone()));
        let api = Api {
            base: format!("http://{listen}"),
            token: token.map(String::from),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            stop,
            task: Some(task),
        };
        wait_http(&api.http, &format!("{}/healthz", api.base)).await;
        api
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let b = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => b.bearer_auth(t),
            None => b,
        }
    }

    /// Sends and returns (status, parsed JSON body or Null).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = self.req(method, path);
        if let Some(v) = body {
            b = b.json(&v);
        }
        split(b.send().await.unwrap()).await
    }

    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        split(
            self.req(method, path)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        let r = tokio::time::timeout(Duration::from_secs(10), self.task.take().unwrap()).await;
        r.expect("server stops on the token").unwrap().unwrap();
    }
}

pub(crate) async fn split(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, v)
}

pub(crate) async fn wait_http(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{url} did not answer in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A JSON error body with a non-empty message.
#[track_caller]
pub(crate) fn assert_json_error(what: &str, status: StatusCode, body: &Value, want: StatusCode) {
    assert_eq!(status, want, "{what}: status (body {body})");
    let msg = body.get("error").and_then(Value::as_str);
    assert!(
        msg.is_some_and(|m| !m.is_empty()),
        "{what}: want a JSON {{\"error\": ...}} body, got {body}"
    );
}
