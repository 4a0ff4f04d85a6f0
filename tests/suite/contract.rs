//! One contract however baton is driven: the CLI takes every job option the library
//! does (same names, same units), refuses what the library refuses with the same words,
//! prints JSON on request, and names the Redis endpoint and what failed when it cannot
//! reach it. Also: `baton demo` on a given Redis cleans up after itself.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{baton_bin, free_port, start, wait_until, RedisServer};
use baton::{handler_fn, Backoff, JobContext, JobError, JobOptions, Queue, Retention, Worker};
use redis::Commands;
use serde_json::{json, Value};

fn baton_at(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(baton_bin())
        .arg("--redis-url")
        .arg(url)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn baton(redis: &RedisServer, args: &[&str]) -> Output {
    baton_at(&redis.url(), args, None)
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(out: Output) -> Value {
    let s = ok(out);
    assert_eq!(s.trim().lines().count(), 1, "one JSON object: {s}");
    serde_json::from_str(s.trim()).unwrap()
}

fn err(out: Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stored fields of a job that its options decide.
fn stored(redis: &RedisServer, q: &str, id: &str) -> BTreeMap<String, Vec<u8>> {
    let mut h: BTreeMap<String, Vec<u8>> = redis
        .conn()
        .hgetall(format!("baton:{{{q}}}:job:{id}"))
        .unwrap();
    h.retain(|k, _| ["spec", "keep", "pri", "state"].contains(&k.as_str()));
    h
}

#[test]
fn the_cli_refuses_bad_queue_names_in_the_librarys_words() {
    let redis = RedisServer::start();
    for bad in ["", "bad queue!"] {
        let want = match baton::validate::queue_name(bad).unwrap_err() {
            baton::Error::Invalid(m) => m,
            e => panic!("{e}"),
        };
        for args in [
            vec!["add", bad, "{}"],
            vec!["stats", bad],
            vec!["list", bad, "waiting"],
            vec!["job", bad, "x"],
        ] {
            let e = err(baton(&redis, &args));
            assert!(e.contains(&want), "{args:?}: {e}");
        }
    }
    let keys: Vec<String> = redis.conn().keys("*").unwrap();
    assert!(keys.is_empty(), "nothing written: {keys:?}");
}

#[tokio::test]
async fn every_library_option_is_a_cli_option_with_the_same_effect() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "opts").unwrap();
    let opts = JobOptions::default()
        .delay(Duration::from_secs(3600))
        .priority(3)
        .attempts(4)
        .backoff(Backoff::Fixed {
            delay: Duration::from_secs(2),
        })
        .timeout(Duration::from_secs(30))
        .keep_completed(Retention::last(10))
        .keep_failed(Retention {
            count: Some(5),
            age: Some(Duration::from_secs(3600)),
        });
    q.add("n", &json!({"a": 1}), opts.clone().job_id("lib"))
        .await
        .unwrap();
    let added = json(baton(
        &redis,
        &[
            "add",
            "opts",
            r#"{"a":1}"#,
            "--name",
            "n",
            "--delay",
            "1h",
            "--priority",
            "3",
            "--attempts",
            "4",
            "--backoff",
            "fixed:2s",
            "--timeout",
            "30s",
            "--keep-completed",
            "10",
            "--keep-failed",
            "5,1h",
            "--job-id",
            "cli",
            "--json",
        ],
    ));
    assert_eq!(
        added,
        json!({"id": "cli", "added": true, "deduplicated": false})
    );
    assert_eq!(stored(&redis, "opts", "cli"), stored(&redis, "opts", "lib"));

    // Exponential backoff and the retention words.
    let lib = JobOptions::default()
        .backoff(Backoff::Exponential {
            base: Duration::from_millis(500),
            max: Duration::from_secs(60),
            jitter: false,
        })
        .keep_completed(Retention::none())
        .keep_failed(Retention::all());
    q.add("n", &1, lib.job_id("lib2")).await.unwrap();
    ok(baton(
        &redis,
        &[
            "add",
            "opts",
            "1",
            "--name",
            "n",
            "--backoff",
            "exponential:500ms:1m:no-jitter",
            "--keep-completed",
            "none",
            "--keep-failed",
            "all",
            "--job-id",
            "cli2",
        ],
    ));
    assert_eq!(
        stored(&redis, "opts", "cli2"),
        stored(&redis, "opts", "lib2")
    );
    let e = err(baton(
        &redis,
        &["add", "opts", "1", "--backoff", "sometimes"],
    ));
    assert!(e.contains("backoff"), "{e}");
    let e = err(baton(&redis, &["add", "opts", "1", "--delay", "soon"]));
    assert!(e.contains("delay") && e.contains("soon"), "{e}");

    // The payload from stdin.
    let id = ok(baton_at(
        &redis.url(),
        &["add", "opts", "-", "--job-id", "stdin"],
        Some("{\"from\": \"stdin\"}\n"),
    ));
    assert_eq!(id.trim(), "stdin");
    assert_eq!(
        q.job("stdin").await.unwrap().unwrap().data,
        json!({"from": "stdin"})
    );
}

#[tokio::test]
async fn add_bulk_reads_json_lines_from_a_file_or_stdin() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.jsonl");
    std::fs::write(
        &file,
        "{\"name\": \"a\", \"data\": 1, \"job_id\": \"b1\"}\n\n\
         {\"data\": {\"x\": 2}, \"priority\": 2, \"job_id\": \"b2\", \"delay\": \"1h\"}\n",
    )
    .unwrap();
    let out = json(baton(
        &redis,
        &[
            "add-bulk",
            "bulk",
            file.to_str().unwrap(),
            "--name",
            "dflt",
            "--json",
        ],
    ));
    assert_eq!(out["added"], 2, "{out}");
    assert_eq!(out["ids"], json!(["b1", "b2"]));
    let q = Queue::connect(redis.url(), "bulk").unwrap();
    let b2 = q.job("b2").await.unwrap().unwrap();
    assert_eq!(
        (b2.name.as_str(), b2.priority, b2.state),
        ("dflt", 2, baton::JobState::Delayed)
    );
    assert_eq!(q.job("b1").await.unwrap().unwrap().name, "a");

    // stdin, in chunks larger than one script call would take.
    let lines: String = (0..2500).map(|i| format!("{{\"data\": {i}}}\n")).collect();
    let out = ok(baton_at(
        &redis.url(),
        &["add-bulk", "bulk", "-", "--chunk", "1000"],
        Some(&lines),
    ));
    assert!(out.contains("2500"), "{out}");
    assert_eq!(q.counts().await.unwrap().waiting, 2501);

    // A bad line is refused by number, and nothing of its chunk is added.
    std::fs::write(&file, "{\"data\": 1}\n{\"dataa\": 2}\n").unwrap();
    let e = err(baton(
        &redis,
        &["add-bulk", "other", file.to_str().unwrap()],
    ));
    assert!(e.contains("line 2"), "{e}");
    assert_eq!(
        Queue::connect(redis.url(), "other")
            .unwrap()
            .counts()
            .await
            .unwrap()
            .waiting,
        0
    );
}

#[tokio::test]
async fn list_offset_due_times_timestamps_and_log_attempts() {
    let redis = RedisServer::start();
    let q = Queue::connect(redis.url(), "show").unwrap();
    for id in ["w1", "w2", "w3"] {
        q.add("n", &0, JobOptions::default().job_id(id))
            .await
            .unwrap();
    }
    let page = json(baton(
        &redis,
        &[
            "list", "show", "waiting", "--offset", "1", "--limit", "1", "--json",
        ],
    ));
    assert_eq!(page["ids"], json!(["w2"]), "{page}");
    assert_eq!(page["offset"], 1);

    q.add(
        "n",
        &0,
        JobOptions::default()
            .job_id("later")
            .delay(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let delayed = json(baton(&redis, &["list", "show", "delayed", "--json"]));
    let created = q.job("later").await.unwrap().unwrap().created_ms;
    let due = delayed["jobs"][0]["due_ms"].as_u64().unwrap();
    assert_eq!(delayed["jobs"][0]["id"], "later");
    assert!(due.abs_diff(created + 3_600_000) < 1000, "{delayed}");
    let text = ok(baton(&redis, &["list", "show", "delayed"]));
    assert!(
        text.contains("later") && text.contains("due"),
        "list delayed shows when: {text}"
    );
    let job = json(baton(&redis, &["job", "show", "later", "--json"]));
    assert_eq!(job["due_ms"].as_u64(), Some(due));
    let text = ok(baton(&redis, &["job", "show", "later"]));
    for word in ["created", "due"] {
        assert!(text.contains(word), "{word}: {text}");
    }

    // A job that fails once, logging on each attempt.
    let id = q
        .add(
            "flaky",
            &0,
            JobOptions::default().attempts(3).backoff(Backoff::Fixed {
                delay: Duration::from_millis(10),
            }),
        )
        .await
        .unwrap()
        .id;
    let w = Worker::builder(redis.url(), "show")
        .build(handler_fn(|_: Value, ctx: JobContext| async move {
            ctx.log(format!("try {}", ctx.attempt())).await.ok();
            if ctx.attempt() == 1 {
                Err(JobError::retry("first try fails"))
            } else {
                Ok(())
            }
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(10), "flaky completed", || async {
        q.job(&id).await.unwrap().unwrap().state == baton::JobState::Completed
    })
    .await;
    run.stop().await;
    // A line written before attempts were recorded still reads.
    let _: () = redis
        .conn()
        .rpush(format!("baton:{{show}}:logs:{id}"), "old line")
        .unwrap();
    let job = json(baton(&redis, &["job", "show", &id, "--json"]));
    assert_eq!(job["logs"], json!(["try 1", "try 2", "old line"]), "{job}");
    assert_eq!(job["log_attempts"], json!([1, 2, null]), "{job}");
    let text = ok(baton(&redis, &["job", "show", &id]));
    for want in ["created", "started", "finished", "attempt 1", "try 1"] {
        assert!(text.contains(want), "{want}: {text}");
    }

    // The error of a failed job names its attempt.
    let failed = q
        .add("bad", &0, JobOptions::default().attempts(1).job_id("f"))
        .await
        .unwrap()
        .id;
    let w = Worker::builder(redis.url(), "show")
        .build(handler_fn(|_: Value, _ctx: JobContext| async move {
            Err::<(), _>(JobError::fatal("broken"))
        }))
        .unwrap();
    let run = start(w);
    wait_until(Duration::from_secs(10), "f failed", || async {
        q.job(&failed).await.unwrap().unwrap().state == baton::JobState::Failed
    })
    .await;
    run.stop().await;
    let job = json(baton(&redis, &["job", "show", "f", "--json"]));
    assert_eq!(job["error_attempt"], 1, "{job}");
    assert!(ok(baton(&redis, &["job", "show", "f"])).contains("(attempt 1)"));
}

#[test]
fn every_command_that_prints_has_json() {
    let redis = RedisServer::start();
    ok(baton(&redis, &["add", "j", "{}", "--job-id", "a"]));
    ok(baton(&redis, &["add", "j", "{}", "--job-id", "b"]));
    let runs: &[(&[&str], &str)] = &[
        (&["pause", "j", "--json"], "paused"),
        (&["resume", "j", "--json"], "paused"),
        (&["cancel", "j", "a", "--json"], "result"),
        (&["retry", "j", "a", "--json"], "result"),
        (&["cancel", "j", "a", "--json"], "result"),
        (&["retry", "j", "--all-failed", "--json"], "retried"),
        (&["remove", "j", "b", "--json"], "removed"),
        (&["clean", "j", "completed", "--json"], "deleted"),
    ];
    for (args, key) in runs {
        let v = json(baton(&redis, args));
        assert!(v.get(key).is_some(), "{args:?}: {v}");
    }
}

/// A listener that answers every connection as an HTTP server would.
fn http_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::Read;
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        }
    });
    port
}

#[test]
fn redis_errors_name_the_endpoint_and_what_failed_in_words() {
    let closed = free_port();
    let http = http_port();
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("redis://:hunter2@127.0.0.1:{closed}"),
            vec!["connection refused"],
        ),
        (
            format!("redis://:hunter2@127.0.0.1:{http}"),
            vec!["not a Redis server"],
        ),
        (
            "redis://:hunter2@127.0.0.1:99999999".to_string(),
            vec!["did not parse", "port"],
        ),
        (
            "http://:hunter2@127.0.0.1:6379".to_string(),
            vec!["did not parse", "scheme"],
        ),
        (
            "127.0.0.1:6379".to_string(),
            vec!["did not parse", "redis://"],
        ),
    ];
    for (url, wants) in cases {
        for args in [vec!["stats"], vec!["stats", "q"]] {
            let e = err(baton_at(&url, &args, None));
            assert!(!e.contains("hunter2"), "password shown: {e}");
            assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
            for w in &wants {
                assert!(e.contains(w), "{url} {args:?}: wanted {w:?} in {e}");
            }
            for junk in ["Parse error", "Unexpected", "InvalidClientConfig"] {
                assert!(!e.contains(junk), "{url} {args:?}: {e}");
            }
            if !e.contains("did not parse") {
                let port = url.rsplit(':').next().unwrap();
                assert!(e.contains(&format!("127.0.0.1:{port}")), "names it: {e}");
            }
        }
    }
}

#[test]
fn demo_on_a_given_redis_says_so_and_leaves_nothing_behind() {
    let redis = RedisServer::start();
    let out = Command::new(baton_bin())
        .args(["demo", "--jobs", "2"])
        .env("REDIS_URL", redis.url())
        .output()
        .unwrap();
    let stdout = ok(out);
    assert!(stdout.contains("all 7 jobs finished"), "{stdout}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("your redis") && first.contains("demo-"),
        "says up front that it uses a queue in the given Redis: {first}"
    );
    assert!(stdout.contains("deleted"), "{stdout}");
    let keys: Vec<String> = redis.conn().keys("*").unwrap();
    assert!(keys.is_empty(), "left behind: {keys:?}");
}
