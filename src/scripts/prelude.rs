//! The shared Lua helpers each script is assembled with, cut down to the ones it uses.
//!
//! `lua/common.lua`, `lua/lease.lua` and `lua/compact.lua` define about 70 helpers and
//! tables. Redis runs a script's whole chunk at every EVALSHA, so each helper's closure
//! (and each table) is made anew at every call, used or not: about 60 000 instructions
//! a call for all of them (callgrind, BENCHMARKS.md), ~4 % of the Redis CPU of a
//! processed job at the batch sizes workers really claim and finish. A script gets only
//! the helpers its own text names, and the ones those name, in their files' order.
//!
//! The split is by line: a top-level statement starts at column 0 with `local ` or
//! `<name> = ` (the assignment of a forward-declared helper); the lines up to the next
//! one belong to it. A statement defines the names it declares and uses every word of
//! its lines (whole-line comments aside), so a helper is kept whenever a kept text
//! names it, even in a branch that rarely runs. The helpers' top-level statements are
//! definitions only (closures, constant tables, numbers): dropping an unused one
//! changes nothing but the cost.

use std::collections::HashSet;

/// One top-level statement of the helpers: the names it defines and its text.
struct Unit<'a> {
    defines: Vec<&'a str>,
    text: &'a str,
}

/// `common` (the helpers) cut down to the statements `body` needs, in their order.
pub(super) fn needed(common: &str, body: &str) -> String {
    let units = split(common);
    let mut want: HashSet<&str> = words(body).collect();
    // The text ahead of the first statement (the files' header comments) stays.
    let mut keep: Vec<bool> = units.iter().map(|u| u.defines.is_empty()).collect();
    // A kept statement may name helpers defined before or after it (a forward-declared
    // one): repeat until nothing more is added.
    loop {
        let mut more = false;
        for (i, u) in units.iter().enumerate() {
            if !keep[i] && u.defines.iter().any(|d| want.contains(d)) {
                keep[i] = true;
                more = true;
                want.extend(words(u.text));
            }
        }
        if !more {
            break;
        }
    }
    units
        .iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(u, _)| u.text)
        .collect()
}

/// The top-level statements of `common`, each with the lines up to the next one.
fn split(common: &str) -> Vec<Unit<'_>> {
    let mut starts = Vec::new();
    let mut at = 0;
    for line in common.split_inclusive('\n') {
        if !defined(line).is_empty() {
            starts.push(at);
        }
        at += line.len();
    }
    starts.push(common.len());
    let mut units = vec![Unit {
        defines: Vec::new(),
        text: &common[..starts[0]],
    }];
    for w in starts.windows(2) {
        let text = &common[w[0]..w[1]];
        units.push(Unit {
            defines: defined(text),
            text,
        });
    }
    units
}

/// The names a statement's first line defines: `local function f`, `local a, b = ...`,
/// `local a`, or `a = ...` at column 0; none for any other line.
fn defined(line: &str) -> Vec<&str> {
    let first = line.lines().next().unwrap_or("");
    if let Some(rest) = first.strip_prefix("local ") {
        let rest = rest.strip_prefix("function ").unwrap_or(rest);
        let names = rest.split(['=', '(']).next().unwrap_or("");
        return names
            .split(',')
            .map(str::trim)
            .filter(|n| is_name(n))
            .collect();
    }
    match first.split_once(" = ") {
        Some((name, _)) if is_name(name) => vec![name],
        _ => Vec::new(),
    }
}

fn is_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// The words (Lua names) of `text`, whole-line comments left out.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .flat_map(|l| l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')))
        .filter(|w| is_name(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELPERS: &str = "-- header\nlocal A = 1\n\n-- f uses A\nlocal function f()\n  return A\nend\n\nlocal g\nlocal unused = {}\n-- h\nlocal function h() return g() end\ng = function() return f() end\n";

    #[test]
    fn keeps_what_is_named_and_what_that_names() {
        let got = needed(HELPERS, "return h()");
        assert!(got.starts_with("-- header\n"), "{got}");
        for kept in [
            "local A = 1",
            "local function f()",
            "local g\n",
            "local function h()",
            "g = function()",
        ] {
            assert!(got.contains(kept), "{kept} missing from:\n{got}");
        }
        assert!(!got.contains("unused"), "{got}");
        assert_eq!(needed(HELPERS, "return 1"), "-- header\n");
    }

    #[test]
    fn a_name_only_in_a_comment_is_not_a_use() {
        assert!(!needed(HELPERS, "-- f\nreturn 1").contains("local function f"));
        assert!(needed(HELPERS, "return 1 -- f").contains("local function f"));
    }

    /// Every lua/*.lua script, assembled: each helper name its text uses is defined in
    /// it (a name left undefined would be a global, which Redis refuses at run time,
    /// only on the path that reaches it).
    #[test]
    fn every_script_keeps_every_helper_it_names() {
        let common = super::super::COMMON;
        // The split is by line: a long string or block comment could hide a line
        // that reads as a statement.
        assert!(
            !common.contains("[["),
            "the helpers hold a long string or comment"
        );
        let all: HashSet<&str> = split(common)
            .iter()
            .flat_map(|u| u.defines.clone())
            .collect();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/lua");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_string();
            if ["common.lua", "lease.lua", "compact.lua"].contains(&name.as_str()) {
                continue;
            }
            let file = std::fs::read_to_string(&path).unwrap();
            let text = super::super::assemble(&file);
            let defined_here: HashSet<&str> = text.lines().flat_map(defined).collect();
            let missing: Vec<&str> = words(&text)
                .filter(|w| all.contains(w) && !defined_here.contains(w))
                .collect();
            assert!(missing.is_empty(), "{name} uses {missing:?} without them");
            assert!(
                text.len() < file.len() + common.len(),
                "{name}: nothing left out"
            );
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} scripts found in {dir}");
    }

    #[test]
    fn reads_each_kind_of_definition() {
        assert_eq!(defined("local function f(a, b)\n"), ["f"]);
        assert_eq!(defined("local a, b = nil, nil\n"), ["a", "b"]);
        assert_eq!(defined("local x\n"), ["x"]);
        assert_eq!(defined("child = function(p)\n"), ["child"]);
        assert!(defined("  local y = 1\n").is_empty());
        assert!(defined("end\n").is_empty());
        assert!(defined("-- local z = 1\n").is_empty());
    }
}
