//! One contract however baton is driven: the CLI takes every job option the library
//! does (same names, same units), refuses what the library refuses with the same words,
//! prints JSON on request, and names the Redis endpoint and what failed when it cannot
//! reach it. Also: `baton demo` on a given Redis cleans up after itself.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{baton_bin, free_port, RedisServer};
use redis::Commands;

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

fn err(out: Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
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
