//! The bearer token: `baton serve` refuses to listen openly without one, and with one
//! guards every `/v1` route.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use baton::http::ServeConfig;
use reqwest::StatusCode;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::support::{assert_json_error, split};
use crate::common::{free_port, RedisServer};

#[tokio::test]
async fn refuses_open_listen_without_token() {
    // In process: an Error::Invalid that says what to do.
    let cfg = ServeConfig {
        redis: "redis://127.0.0.1:1".into(),
        listen: ([0, 0, 0, 0], free_port()).into(),
        token: None,
    };
    let err = baton::http::serve(cfg.clone(), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, baton::Error::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("BATON_API_TOKEN"), "{err}");
    let err = baton::http::serve(
        ServeConfig {
            token: Some(String::new()),
            ..cfg
        },
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, baton::Error::Invalid(_)),
        "an empty token is no token: {err:?}"
    );

    // The binary: exits non-zero with the message, without serving.
    let redis = RedisServer::start();
    let port = free_port();
    let out = Command::new(crate::common::baton_bin())
        .args([
            "serve",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--redis-url",
            &redis.url(),
        ])
        .env_remove("BATON_API_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "baton serve on 0.0.0.0 without a token must fail"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("BATON_API_TOKEN") && stderr.contains("0.0.0.0"),
        "stderr: {stderr}"
    );
}

#[tokio::test]
async fn binary_with_token_requires_bearer_auth() {
    let redis = RedisServer::start();
    let port = free_port();
    let mut child = Command::new(crate::common::baton_bin())
        // Not loopback: allowed because a token is set.
        .args([
            "serve",
            "--listen",
            &format!("0.0.0.0:{port}"),
            "--redis-url",
            &redis.url(),
        ])
        .env("BATON_API_TOKEN", "s3cret-token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("baton serve exited early with {status}: {err}");
            }
            if http
                .get(format!("{base}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                break;
            }
            assert!(Instant::now() < deadline, "baton serve did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let child = Kill(child);

    let get = |auth: Option<&'static str>| {
        let mut b = http.get(format!("{base}/v1/queues"));
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        async move { split(b.send().await.unwrap()).await }
    };
    for (what, auth) in [
        ("no header", None),
        ("wrong token", Some("Bearer s3cret-tokeN")),
        ("token prefix", Some("Bearer s3cret")),
        ("token plus more", Some("Bearer s3cret-token2")),
        ("wrong scheme", Some("Basic czNjcmV0LXRva2Vu")),
        ("bare token", Some("s3cret-token")),
    ] {
        let (st, e) = get(auth).await;
        assert_json_error(what, st, &e, StatusCode::UNAUTHORIZED);
    }
    let r = http.get(format!("{base}/v1/queues")).send().await.unwrap();
    assert!(r
        .headers()
        .get("www-authenticate")
        .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")));

    let (st, body) = get(Some("Bearer s3cret-token")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"queues": []}));
    let (st, _) = get(Some("bearer s3cret-token")).await;
    assert_eq!(st, StatusCode::OK, "the scheme is case-insensitive");

    // Every /v1 route is guarded, whatever the method; a bad request without a token is 401, not 400.
    let (st, e) = split(
        http.post(format!("{base}/v1/queues/q/jobs"))
            .body("{")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_json_error("add without token", st, &e, StatusCode::UNAUTHORIZED);
    let (st, e) = split(
        http.delete(format!("{base}/v1/queues/q/jobs/x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_json_error("delete without token", st, &e, StatusCode::UNAUTHORIZED);
    let (st, added) = split(
        http.post(format!("{base}/v1/queues/q/jobs"))
            .bearer_auth("s3cret-token")
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{added}");

    // Ops endpoints and the document need no token.
    for p in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let r = http.get(format!("{base}{p}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{p} without a token");
    }

    // SIGTERM: graceful shutdown, exit 0.
    let mut child = child;
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "baton serve did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
