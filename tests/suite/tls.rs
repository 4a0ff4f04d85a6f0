//! baton over TLS to an ACL user, as managed Redis services require: jobs flow with a
//! private CA, mutual TLS works with a client certificate, and a wrong password, a
//! wrong CA, a missing client certificate and plain `redis://` against the TLS port each
//! fail with an error that names the endpoint and what failed, and no password.

use std::time::Duration;

use crate::common::{baton_bin, start, wait_until};
use crate::topology::{ClusterOptions, RedisCluster, TlsRedis, ACL_PASS};
use baton::conn::RedisConfig;
use baton::{handler_fn, JobContext, JobOptions, Queue, Worker};

fn tls_config(t: &TlsRedis) -> RedisConfig {
    RedisConfig::url(t.url()).ca_cert(&t.ca_cert)
}

#[tokio::test]
async fn jobs_flow_over_tls_as_an_acl_user() {
    let t = TlsRedis::start();
    let q = Queue::connect(tls_config(&t), "tls").unwrap();
    for i in 0..20u32 {
        q.add("n", &i, JobOptions::default()).await.unwrap();
    }
    let w = Worker::builder(tls_config(&t), "tls")
        .build(handler_fn(
            |n: u32, _ctx: JobContext| async move { Ok(n * 2) },
        ))
        .unwrap();
    let run = start(w);
    wait_until(
        Duration::from_secs(15),
        "20 jobs completed over TLS",
        || async { q.counts().await.unwrap().completed == 20 },
    )
    .await;
    run.stop().await;
    let report = baton::config::check_all(q.shared_conn().connector())
        .await
        .unwrap();
    assert!(report.is_fit(), "{}", report.message());
}

/// The error text of a failed call, checked to name the endpoint and hide the password.
async fn refusal(cfg: RedisConfig, secret: &str) -> String {
    let q = Queue::connect(cfg, "tls").unwrap();
    let e = q.counts().await.expect_err("must be refused").to_string();
    assert!(e.contains("127.0.0.1:"), "names the endpoint: {e}");
    assert!(!e.contains(secret), "leaks the password: {e}");
    e
}

#[tokio::test]
async fn each_wrong_setting_gets_its_own_clear_error() {
    let t = TlsRedis::start();
    let wrong_pw = RedisConfig::url(t.url().replace(ACL_PASS, "wr0ngpass")).ca_cert(&t.ca_cert);
    let e = refusal(wrong_pw, "wr0ngpass").await;
    assert!(e.contains("authentication failed"), "{e}");

    let wrong_ca = RedisConfig::url(t.url()).ca_cert(&t.other_ca_cert);
    let e = refusal(wrong_ca, ACL_PASS).await;
    assert!(e.contains("TLS handshake failed"), "{e}");

    let plain = RedisConfig::url(t.url().replace("rediss://", "redis://"));
    let e = refusal(plain, ACL_PASS).await;
    assert!(e.contains("cannot connect") && e.contains("TLS"), "{e}");

    // A password file overrides the URL's (wrong) password.
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, format!("{ACL_PASS}\n")).unwrap();
    let cfg = RedisConfig::url(t.url().replace(ACL_PASS, "wr0ngpass"))
        .ca_cert(&t.ca_cert)
        .password_file(&pw)
        .unwrap();
    Queue::connect(cfg, "tls").unwrap().counts().await.unwrap();

    // A worker with a wrong password stops at start-up instead of waiting forever.
    let w = Worker::builder(
        RedisConfig::url(t.url().replace(ACL_PASS, "wr0ngpass")).ca_cert(&t.ca_cert),
        "tls",
    )
    .build(handler_fn(|n: u32, _ctx: JobContext| async move { Ok(n) }))
    .unwrap();
    let r = tokio::time::timeout(Duration::from_secs(10), w.run())
        .await
        .expect("a misconfigured worker stops by itself");
    let e = r.expect_err("wrong password").to_string();
    assert!(
        e.contains("authentication failed") && !e.contains("wr0ngpass"),
        "{e}"
    );
}

#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let t = TlsRedis::start_mutual();
    let without = tls_config(&t);
    let e = refusal(without, ACL_PASS).await;
    assert!(e.contains("cannot connect"), "{e}");
    let with = tls_config(&t).client_cert(&t.client_cert, &t.client_key);
    let q = Queue::connect(with, "mtls").unwrap();
    let added = q.add("n", &1u32, JobOptions::default()).await.unwrap();
    assert!(added.added);
}

#[tokio::test]
async fn the_cli_takes_tls_files_and_a_password_file() {
    let t = TlsRedis::start_mutual();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, ACL_PASS).unwrap();
    let url = format!("rediss://baton@127.0.0.1:{}/0", t.port);
    let run = |args: &[&str]| {
        std::process::Command::new(baton_bin())
            .args(args)
            .env_remove("REDIS_URL")
            .env("REDIS_URL", &url)
            .env("REDIS_CA_CERT", &t.ca_cert)
            .env("REDIS_PASSWORD_FILE", &pw)
            .arg("--redis-client-cert")
            .arg(&t.client_cert)
            .arg("--redis-client-key")
            .arg(&t.client_key)
            .output()
            .unwrap()
    };
    let out = run(&["check"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["add", "cliq", "{\"a\":1}", "--job-id", "j1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["stats", "cliq", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["waiting"], 1, "{v}");

    // Without the CA the handshake fails, and the message says so.
    let out = std::process::Command::new(baton_bin())
        .args(["--redis-url", &url, "--redis-password-file"])
        .arg(&pw)
        .arg("check")
        .env_remove("REDIS_CA_CERT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("TLS handshake failed"),
        "{err}"
    );
    assert!(!err.contains(ACL_PASS), "{err}");
}

#[tokio::test]
async fn jobs_flow_on_a_tls_cluster() {
    let cluster = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas_per_master: 0,
        tls: true,
        ..ClusterOptions::default()
    });
    let ca = &cluster.tls().expect("tls cluster").ca_cert;
    let cfg = RedisConfig::cluster(cluster.seed_urls()).ca_cert(ca);
    let names = cluster.queues_on_distinct_masters(3);
    let w = Worker::builder(cfg.clone(), &names[0])
        .queues(names.clone())
        .build(handler_fn(|n: u32, _ctx: JobContext| async move { Ok(n) }))
        .unwrap();
    let run = start(w);
    let mut qs = Vec::new();
    for n in &names {
        let q = Queue::connect(cfg.clone(), n).unwrap();
        for i in 0..10u32 {
            q.add("n", &i, JobOptions::default()).await.unwrap();
        }
        qs.push(q);
    }
    for q in &qs {
        wait_until(
            Duration::from_secs(15),
            "jobs completed over TLS on every shard",
            || async { q.counts().await.unwrap().completed == 10 },
        )
        .await;
    }
    run.stop().await;
    let report = baton::config::check_all(qs[0].shared_conn().connector())
        .await
        .unwrap();
    assert!(report.is_fit(), "{}", report.message());
}
