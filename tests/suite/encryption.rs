//! Payload encryption at rest (issue 9): data, results and errors hold only ciphertext
//! in Redis; a worker without the key, or a tampered value, fails the job for good with
//! a reason; keys rotate (`reencrypt`); the CLI and the exec worker take a key file.

use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{
    baton_bin, set_stored_spec, spec_parts, start, stored_job, wait_until, RedisServer,
};
use baton::crypto::Keyring;
use baton::{handler_fn, JobError, JobOptions, JobState, Queue, Worker};
use serde_json::{json, Value};

const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const K2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn ring(lines: &[&str]) -> Arc<Keyring> {
    Arc::new(Keyring::parse(&lines.join("\n")).unwrap())
}

/// A job hash field as stored; "data" is the payload, the tail of field `spec`
/// ("<name> NUL <opts length>:<opts><data>", src/job/spec.rs).
fn raw(redis: &RedisServer, q: &str, id: &str, field: &str) -> Vec<u8> {
    let mut job = stored_job(redis, q, id);
    if field == "data" {
        return spec_parts(&job["spec"]).2.to_vec();
    }
    job.remove(field)
        .unwrap_or_else(|| panic!("job {id} has no {field}"))
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn wait_state(q: &Queue, id: &str, state: JobState) -> baton::JobInfo {
    wait_until(
        Duration::from_secs(15),
        &format!("job {id} {state}"),
        || async { q.job(id).await.unwrap().is_some_and(|j| j.state == state) },
    )
    .await;
    q.job(id).await.unwrap().unwrap()
}

/// A worker that echoes the payload's `echo` field in its result, or fails with it
/// when the payload says `fail`.
fn echo_worker(url: &str, queue: &str, keys: Option<Arc<Keyring>>) -> Worker {
    let mut b = Worker::builder(url, queue)
        .allow_unfit_redis()
        .stalled_interval(Duration::from_millis(200));
    if let Some(k) = keys {
        b = b.encryption(k);
    }
    b.build(handler_fn(|v: Value, _ctx| async move {
        if v["fail"] == json!(true) {
            return Err(JobError::fatal(format!("failed on {}", v["echo"])));
        }
        Ok(json!({ "echoed": v["echo"] }))
    }))
    .unwrap()
}

#[tokio::test]
async fn an_encrypted_job_runs_and_redis_holds_no_plaintext() {
    let redis = RedisServer::start();
    let keys = ring(&[K1]);
    let q = Queue::connect(redis.url(), "enc")
        .unwrap()
        .with_encryption(keys.clone());
    let ok = q
        .add("j", &json!({"echo": "hunter2-data"}), JobOptions::default())
        .await
        .unwrap();
    let bad = q
        .add(
            "j",
            &json!({"echo": "hunter2-error", "fail": true}),
            JobOptions::default(),
        )
        .await
        .unwrap();
    assert!(baton::crypto::is_encrypted(&raw(
        &redis, "enc", &ok.id, "data"
    )));
    let w = start(echo_worker(&redis.url(), "enc", Some(keys.clone())));
    let done = wait_state(&q, &ok.id, JobState::Completed).await;
    let failed = wait_state(&q, &bad.id, JobState::Failed).await;
    w.stop().await;

    for (id, field) in [(&ok.id, "data"), (&ok.id, "result"), (&bad.id, "error")] {
        let v = raw(&redis, "enc", id, field);
        assert!(
            baton::crypto::key_id_of(&v) == Some("k1") && !contains(&v, "hunter2"),
            "{field} of {id} is stored in the clear: {:?}",
            String::from_utf8_lossy(&v)
        );
    }
    // The key holder reads it all back.
    assert_eq!(done.data, json!({"echo": "hunter2-data"}));
    assert_eq!(done.result, Some(json!({"echoed": "hunter2-data"})));
    assert_eq!(failed.error.as_deref(), Some("failed on \"hunter2-error\""));
    // Without the key: a placeholder naming the key, never the bytes.
    let blind = Queue::connect(redis.url(), "enc").unwrap();
    let j = blind.job(&ok.id).await.unwrap().unwrap();
    assert_eq!(j.data, json!("encrypted (key k1)"));
    assert_eq!(j.result, Some(json!("encrypted (key k1)")));
    let j = blind.job(&bad.id).await.unwrap().unwrap();
    assert_eq!(j.error.as_deref(), Some("encrypted (key k1)"));
}

#[tokio::test]
async fn a_worker_without_the_key_fails_the_job_for_good_and_goes_on() {
    let redis = RedisServer::start();
    let enc = Queue::connect(redis.url(), "nokey")
        .unwrap()
        .with_encryption(ring(&[K1]));
    let plain = Queue::connect(redis.url(), "nokey").unwrap();
    let a = enc
        .add("j", &json!({"echo": 1}), JobOptions::default().attempts(5))
        .await
        .unwrap();
    let b = plain
        .add("j", &json!({"echo": 2}), JobOptions::default())
        .await
        .unwrap();
    // One worker without any key, one with another key only: both refuse it for good.
    let c = enc
        .add("j", &json!({"echo": 3}), JobOptions::default().attempts(5))
        .await
        .unwrap();
    let w = start(echo_worker(&redis.url(), "nokey", None));
    let ja = wait_state(&plain, &a.id, JobState::Failed).await;
    let jb = wait_state(&plain, &b.id, JobState::Completed).await;
    wait_until(Duration::from_secs(10), "job c failed", || async {
        plain.job(&c.id).await.unwrap().unwrap().state == JobState::Failed
    })
    .await;
    w.stop().await;
    assert_eq!(ja.attempt, 1, "no retry: {ja:?}");
    let reason = ja.error.unwrap();
    assert!(
        reason.contains("encrypted with key k1, which this worker does not hold"),
        "{reason}"
    );
    assert_eq!(jb.result, Some(json!({"echoed": 2})));

    let d = enc
        .add("j", &json!({"echo": 4}), JobOptions::default().attempts(5))
        .await
        .unwrap();
    let w = start(echo_worker(&redis.url(), "nokey", Some(ring(&[K2]))));
    let jd = wait_state(&plain, &d.id, JobState::Failed).await;
    w.stop().await;
    assert_eq!(jd.attempt, 1);
    // This worker holds a key, so it encrypts what it writes, the reason included.
    let reason = enc.with_encryption(ring(&[K2])).job(&d.id).await.unwrap();
    let reason = reason.unwrap().error.unwrap();
    assert!(
        reason.contains("key k1, which this worker does not hold"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_tampered_value_fails_its_job_with_a_reason_and_the_worker_goes_on() {
    let redis = RedisServer::start();
    let keys = ring(&[K1]);
    let q = Queue::connect(redis.url(), "tamper")
        .unwrap()
        .with_encryption(keys.clone());
    let t = q
        .add(
            "j",
            &json!({"echo": "x"}),
            JobOptions::default().attempts(3),
        )
        .await
        .unwrap();
    // The payload is the tail of the spec: one bit of its last byte flipped.
    let mut v = stored_job(&redis, "tamper", &t.id).remove("spec").unwrap();
    assert!(baton::crypto::is_encrypted(spec_parts(&v).2));
    *v.last_mut().unwrap() ^= 0x01;
    set_stored_spec(&redis, "tamper", &t.id, &v);
    let next = q
        .add("j", &json!({"echo": "y"}), JobOptions::default())
        .await
        .unwrap();
    let w = start(echo_worker(&redis.url(), "tamper", Some(keys)));
    let jt = wait_state(&q, &t.id, JobState::Failed).await;
    let jn = wait_state(&q, &next.id, JobState::Completed).await;
    w.stop().await;
    assert_eq!(jt.attempt, 1);
    let reason = jt.error.unwrap();
    assert!(reason.contains("tampered with or corrupt"), "{reason}");
    assert_eq!(jn.result, Some(json!({"echoed": "y"})));
    assert!(
        jt.data.as_str().unwrap().contains("tampered"),
        "{:?}",
        jt.data
    );
}

#[tokio::test]
async fn keys_rotate_and_reencrypt_rewrites_under_the_first_key() {
    let redis = RedisServer::start();
    let url = redis.url();
    let old = Queue::connect(url.clone(), "rot")
        .unwrap()
        .with_encryption(ring(&[K1]));
    let plain = Queue::connect(url.clone(), "rot").unwrap();
    let done = old
        .add("j", &json!({"echo": "one"}), JobOptions::default())
        .await
        .unwrap();
    let w = start(echo_worker(&url, "rot", Some(ring(&[K1]))));
    wait_state(&plain, &done.id, JobState::Completed).await;
    w.stop().await;
    let waiting = old
        .add("j", &json!({"echo": "two"}), JobOptions::default())
        .await
        .unwrap();
    let before = plain
        .add("j", &json!({"echo": "three"}), JobOptions::default())
        .await
        .unwrap();

    let both = plain.clone().with_encryption(ring(&[K2, K1]));
    let j = both.job(&done.id).await.unwrap().unwrap();
    assert_eq!(j.result, Some(json!({"echoed": "one"})), "K1 decrypts");
    let report = both.reencrypt(2).await.unwrap();
    assert_eq!(report.rewritten, 4, "{report:?}"); // data+result, data, plaintext data
    assert_eq!(report.undecryptable, 0, "{report:?}");
    for (id, field) in [
        (&done.id, "data"),
        (&done.id, "result"),
        (&waiting.id, "data"),
        (&before.id, "data"),
    ] {
        let v = raw(&redis, "rot", id, field);
        assert_eq!(baton::crypto::key_id_of(&v), Some("k2"), "{field} of {id}");
    }
    assert_eq!(
        both.reencrypt(100).await.unwrap().rewritten,
        0,
        "idempotent"
    );
    // K1 can go now.
    let new = plain.clone().with_encryption(ring(&[K2]));
    let j = new.job(&done.id).await.unwrap().unwrap();
    assert_eq!(j.data, json!({"echo": "one"}));
    assert_eq!(j.result, Some(json!({"echoed": "one"})));
    let w = start(echo_worker(&url, "rot", Some(ring(&[K2]))));
    let jw = wait_state(&new, &waiting.id, JobState::Completed).await;
    let jb = wait_state(&new, &before.id, JobState::Completed).await;
    w.stop().await;
    assert_eq!(jw.result, Some(json!({"echoed": "two"})));
    assert_eq!(jb.result, Some(json!({"echoed": "three"})));
}

fn key_file(dir: &tempfile::TempDir, name: &str, lines: &[&str]) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    p.display().to_string()
}

fn baton(redis: &RedisServer, keys: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(baton_bin());
    c.arg("--redis-url").arg(redis.url()).args(args);
    c.env_remove("BATON_ENCRYPTION_KEY_FILE");
    if let Some(k) = keys {
        c.env("BATON_ENCRYPTION_KEY_FILE", k);
    }
    c.output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_cli_adds_encrypted_shows_decrypted_and_reencrypts() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let f1 = key_file(&dir, "k1", &[K1]);
    let f21 = key_file(&dir, "k21", &["# rotated", K2, K1]);
    let out = Command::new(baton_bin())
        .args(["--redis-url", &redis.url(), "--encryption-key-file", &f1])
        .args(["add", "cli", r#"{"card":"4111-secret"}"#])
        .output()
        .unwrap();
    let id = ok(out).trim().to_string();
    let data = raw(&redis, "cli", &id, "data");
    assert!(baton::crypto::key_id_of(&data) == Some("k1") && !contains(&data, "4111"));

    let shown = ok(baton(&redis, Some(&f1), &["job", "cli", &id, "--json"]));
    let shown: Value = serde_json::from_str(shown.trim()).unwrap();
    assert_eq!(shown["data"], json!({"card": "4111-secret"}));
    let blind = ok(baton(&redis, None, &["job", "cli", &id]));
    assert!(blind.contains("encrypted (key k1)"), "{blind}");
    assert!(!blind.contains("4111"), "{blind}");

    let out = ok(baton(&redis, Some(&f21), &["reencrypt", "cli", "--json"]));
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["rewritten"], json!(1), "{out}");
    let data = raw(&redis, "cli", &id, "data");
    assert_eq!(baton::crypto::key_id_of(&data), Some("k2"));
    let refused = baton(&redis, None, &["reencrypt", "cli"]);
    assert!(!refused.status.success(), "reencrypt needs keys");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--encryption-key-file"));

    // A key file that does not parse stops the command, naming the line, not the key.
    let badf = key_file(&dir, "bad", &["k9:AAAA"]);
    let bad = baton(&redis, Some(&badf), &["job", "cli", &id]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("line 1"), "{err}");
}

#[tokio::test]
async fn the_exec_worker_with_a_key_file_gets_the_plaintext_on_stdin() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let f1 = key_file(&dir, "k1", &[K1]);
    let q = Queue::connect(redis.url(), "ex")
        .unwrap()
        .with_encryption(ring(&[K1]));
    let a = q
        .add("j", &json!({"msg": "stdin-secret"}), JobOptions::default())
        .await
        .unwrap();
    let mut child = crate::common::ChildGuard(
        Command::new(baton_bin())
            .args(["--redis-url", &redis.url(), "--encryption-key-file", &f1])
            .args(["worker", "ex", "--exec", "--allow-unfit-redis"])
            .args(["--shutdown-timeout", "1s", "--", "cat"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let j = wait_state(&q, &a.id, JobState::Completed).await;
    crate::common::signal(child.id(), libc::SIGTERM);
    let _ = child.wait();
    // `cat` echoes its stdin: the result is the plaintext payload, stored encrypted.
    assert_eq!(j.result, Some(json!({"msg": "stdin-secret"})));
    let r = raw(&redis, "ex", &a.id, "result");
    assert!(baton::crypto::key_id_of(&r) == Some("k1") && !contains(&r, "stdin-secret"));
}

#[tokio::test]
async fn the_http_api_encrypts_on_add_and_decrypts_on_read() {
    let redis = RedisServer::start();
    let listen: std::net::SocketAddr = ([127, 0, 0, 1], crate::common::free_port()).into();
    let stop = tokio_util::sync::CancellationToken::new();
    let cfg = baton::http::ServeConfig {
        redis: redis.url().as_str().into(),
        listen,
        token: None,
    };
    let opts = baton::http::ServeOptions {
        encryption: Some(ring(&[K1])),
        ..Default::default()
    };
    let server = tokio::spawn(baton::http::serve_with(cfg, opts, stop.clone()));
    let http = reqwest::Client::new();
    let base = format!("http://{listen}/v1/queues/api/jobs");
    let health = format!("http://{listen}/healthz");
    wait_until(Duration::from_secs(10), "the API answers", || {
        let (http, health) = (http.clone(), health.clone());
        async move { http.get(&health).send().await.is_ok() }
    })
    .await;
    let body = json!({"name": "j", "data": {"ssn": "078-05-1120"}});
    let r = http.post(&base).json(&body).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let added: Value = r.json().await.unwrap();
    let id = added["id"].as_str().unwrap().to_string();
    let data = raw(&redis, "api", &id, "data");
    assert!(baton::crypto::key_id_of(&data) == Some("k1") && !contains(&data, "078-05"));
    let shown: Value = http
        .get(format!("{base}/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["data"], json!({"ssn": "078-05-1120"}), "{shown}");
    stop.cancel();
    let _ = server.await;
}
