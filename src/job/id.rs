//! Generated job ids: short, unique, made by the producer before anything is sent (so a
//! caller whose add timed out can add again with the same id and change nothing).
//!
//! An id is `<prefix>.<n>`: a prefix of 12 base-62 characters drawn once per process
//! from a random UUID (71 bits: two given processes draw the same one with a chance of
//! 1 in 3·10^21), then `.`, then a per-process counter in base 32 (`0-9a-v`). A
//! process's first 32 ids take 14 characters, its first million 17: about half the
//! 32-character UUID it replaces. Why: every waiting job stores its id twice (a field
//! of `jobs` and an entry of the wait list) and every lease, finished set and event once
//! more; measured, Redis memory a waiting job went from 214 to 182 bytes
//! (BENCHMARKS.md, issue 10, session 12). Ids of one process that differ only in their
//! last character are consecutive: that is what a store packing ids by their stem
//! would rely on (architecture.md, Known gaps).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BASE32: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Characters of the per-process prefix.
const PREFIX_LEN: usize = 12;

/// The process that drew the prefix, and the prefix.
static PREFIX: Mutex<Option<(u32, String)>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A new job id, unique across processes (see the module's doc). `add.lua` writes a
/// generated id without looking it up (`fresh`), so uniqueness is what keeps a job from
/// overwriting another: a process forked after drawing its prefix (same memory, same
/// counter) draws a new one, told by its process id.
pub(crate) fn generate() -> String {
    let pid = std::process::id();
    let mut prefix = PREFIX.lock().unwrap_or_else(|e| e.into_inner());
    if prefix.as_ref().is_none_or(|(drawn_by, _)| *drawn_by != pid) {
        *prefix = Some((pid, prefix_of(uuid::Uuid::new_v4().as_u128())));
    }
    let (_, p) = prefix.as_ref().expect("drawn above");
    format_id(p, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The 12-character prefix made of the random bits of `r`.
fn prefix_of(mut r: u128) -> String {
    let mut s = String::with_capacity(PREFIX_LEN);
    for _ in 0..PREFIX_LEN {
        s.push(BASE62[(r % 62) as usize] as char);
        r /= 62;
    }
    s
}

/// `<prefix>.<n in base 32>`.
fn format_id(prefix: &str, mut n: u64) -> String {
    let mut digits = [0u8; 13];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = BASE32[(n % 32) as usize];
        n /= 32;
        if n == 0 {
            break;
        }
    }
    let mut s = String::with_capacity(prefix.len() + 1 + digits.len() - i);
    s.push_str(prefix);
    s.push('.');
    s.push_str(std::str::from_utf8(&digits[i..]).expect("ascii digits"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_is_base32_after_the_prefix() {
        assert_eq!(format_id("p", 0), "p.0");
        assert_eq!(format_id("p", 31), "p.v");
        assert_eq!(format_id("p", 32), "p.10");
        assert_eq!(format_id("p", u64::MAX), "p.fvvvvvvvvvvvv");
    }

    #[test]
    fn prefix_is_twelve_base62_characters() {
        assert_eq!(prefix_of(0), "000000000000");
        let p = prefix_of(u128::MAX);
        assert_eq!(p.len(), PREFIX_LEN);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(prefix_of(1), prefix_of(2));
    }

    #[test]
    fn generated_ids_are_distinct_short_and_valid() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a[..PREFIX_LEN], b[..PREFIX_LEN], "one prefix a process");
        assert!(a.len() <= PREFIX_LEN + 1 + 13);
        assert_eq!(a.as_bytes()[PREFIX_LEN], b'.');
        crate::validate::job_id(&a).expect("a generated id passes the id check");
    }
}
