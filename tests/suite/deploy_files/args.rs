//! Parsing what the deployment files pass to baton: durations, addresses and the
//! command lines of `baton worker` and `baton serve`.

use std::collections::BTreeMap;
use std::time::Duration;

/// Parses a humantime-style duration: `30s`, `5m`, `1h30m`, `250ms`, `1m 30s`.
pub(crate) fn parse_duration(text: &str) -> Duration {
    let t = text.trim();
    assert!(!t.is_empty(), "empty duration");
    let mut total = Duration::ZERO;
    let mut rest = t;
    while !rest.is_empty() {
        rest = rest.trim_start();
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        assert!(
            digits > 0,
            "duration {text:?}: expected a number at {rest:?}"
        );
        let number: f64 = rest[..digits]
            .parse()
            .unwrap_or_else(|_| panic!("duration {text:?}: bad number {:?}", &rest[..digits]));
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs = match unit {
            "ms" | "msec" => 0.001,
            "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
            "" => panic!("duration {text:?}: number without a unit (baton wants e.g. `30s`)"),
            other => panic!("duration {text:?}: unknown unit {other:?}"),
        };
        total += Duration::from_secs_f64(number * secs);
    }
    total
}

/// The port of a `host:port` socket address.
pub(crate) fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("{addr:?} is not a host:port address"))
}

/// Options of `baton worker` that take a value.
pub(crate) const WORKER_VALUE_OPTS: &[&str] = &[
    "--concurrency",
    "--lease",
    "--timeout",
    "--shutdown-timeout",
    "--kill-grace",
    "--metrics-addr",
    "--redis-url",
];

/// A parsed `baton worker QUEUE [OPTIONS] --exec -- CMD ARGS...` command line
/// (the command after `--exec --` is only checked to be there).
#[derive(Debug)]
pub(crate) struct WorkerArgs {
    pub(crate) queue: String,
    pub(crate) opts: BTreeMap<String, String>,
}

impl WorkerArgs {
    pub(crate) fn opt(&self, name: &str, ctx: &str) -> &str {
        self.opts
            .get(name)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{ctx}: `baton worker` is not given {name}"))
    }

    pub(crate) fn duration(&self, name: &str, ctx: &str) -> Duration {
        parse_duration(self.opt(name, ctx))
    }
}

pub(crate) fn parse_worker_args(args: &[String], ctx: &str) -> WorkerArgs {
    assert_eq!(
        args.first().map(String::as_str),
        Some("worker"),
        "{ctx}: the command should start with the `worker` subcommand, got {args:?}"
    );
    let mut queue = None;
    let mut opts = BTreeMap::new();
    let mut exec = None;
    let mut i = 1;
    while i < args.len() {
        let a = &args[i];
        if a == "--exec" {
            assert_eq!(
                args.get(i + 1).map(String::as_str),
                Some("--"),
                "{ctx}: `--exec` must be followed by `--` and the command, got {:?}",
                &args[i..]
            );
            exec = Some(args[i + 2..].to_vec());
            break;
        } else if let Some((k, v)) = a.split_once('=').filter(|_| a.starts_with("--")) {
            opts.insert(k.to_string(), v.to_string());
        } else if WORKER_VALUE_OPTS.contains(&a.as_str()) {
            let v = args
                .get(i + 1)
                .unwrap_or_else(|| panic!("{ctx}: option {a} has no value"));
            opts.insert(a.clone(), v.clone());
            i += 1;
        } else if a.starts_with('-') {
            panic!(
                "{ctx}: unknown `baton worker` option {a} (known: {WORKER_VALUE_OPTS:?}, --exec)"
            );
        } else {
            assert!(
                queue.is_none(),
                "{ctx}: two queue names given: {queue:?} and {a:?}"
            );
            queue = Some(a.clone());
        }
        i += 1;
    }
    let queue = queue.unwrap_or_else(|| panic!("{ctx}: no QUEUE after `worker` in {args:?}"));
    let exec = exec.unwrap_or_else(|| panic!("{ctx}: no `--exec -- CMD` in {args:?}"));
    assert!(
        exec.first()
            .is_some_and(|c| !c.is_empty() && !c.starts_with('-')),
        "{ctx}: `--exec --` should be followed by a command, got {exec:?}"
    );
    WorkerArgs { queue, opts }
}

/// The value of option `name` in a `baton serve ...` command line.
pub(crate) fn serve_opt<'a>(args: &'a [String], name: &str, ctx: &str) -> &'a str {
    let prefix = format!("{name}=");
    for (i, a) in args.iter().enumerate() {
        if a == name {
            return args
                .get(i + 1)
                .unwrap_or_else(|| panic!("{ctx}: {name} has no value"));
        }
        if let Some(v) = a.strip_prefix(&prefix) {
            return v;
        }
    }
    panic!("{ctx}: `baton serve` is not given {name} in {args:?}")
}
