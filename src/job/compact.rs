//! A compact job: a plain job stored as ONE field of its queue's `jobs` hash
//! ([`Keys::jobs`](crate::keys::Keys::jobs)), id → `<ts> <keep> <spec>`, instead of a
//! hash of its own (`lua/compact.lua` says when and why; in short: a key a job costs
//! Redis more than the fields in it, and a batch of compact jobs is written, read and
//! forgotten with one command each).
//!
//! A compact job is waiting, or active while its lease is in the leases hash, or
//! completed and kept: then its outcome,
//! `C<finished>:<lease length>:<lease><result length>:<result>`, is its field of the
//! queue's `done` hash ([`Keys::done`](crate::keys::Keys::done), `finish.lua`), and its
//! value stays as it was. The two read as one text, outcome first ([`Compact::join`]),
//! is what [`Compact::parse`] takes (and what a kept completion's value in `jobs` was
//! until session 10, which it still parses). Its hash, once something more is written
//! about it, holds exactly the fields these carry (`expand` in `lua/compact.lua`). So a
//! reader that finds no job hash asks the `jobs` and `done` hashes, and reads the
//! fields through [`Compact::field`] as if they were the hash's.

/// A kept completion's outcome, as a compact job's value holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Done<'a> {
    /// When it finished, ms (decimal text).
    pub finished: &'a [u8],
    /// Its last lease, as the leases hash held it (`token:attempt:started:worker`).
    pub lease: &'a [u8],
    /// The result as stored (MessagePack, or sealed).
    pub result: &'a [u8],
}

impl<'a> Done<'a> {
    /// An outcome as the `done` hash holds it; None when `v` is not one whole.
    pub fn parse(v: &'a [u8]) -> Option<Done<'a>> {
        Done::parse_head(v).and_then(|(d, rest)| rest.is_empty().then_some(d))
    }

    /// The outcome at the head of `v`, and the rest.
    fn parse_head(v: &'a [u8]) -> Option<(Done<'a>, &'a [u8])> {
        let rest = v.strip_prefix(b"C")?;
        let (finished, rest) = counted_digits(rest)?;
        let (ll, rest) = counted(rest)?;
        let lease = rest.get(..ll)?;
        let (rl, rest) = counted(&rest[ll..])?;
        let result = rest.get(..rl)?;
        let done = Done {
            finished,
            lease,
            result,
        };
        Some((done, &rest[rl..]))
    }

    /// The outcome as the `done` hash holds it:
    /// `C<finished>:<lease length>:<lease><result length>:<result>`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![b'C'];
        out.extend_from_slice(self.finished);
        out.extend_from_slice(format!(":{}:", self.lease.len()).as_bytes());
        out.extend_from_slice(self.lease);
        out.extend_from_slice(format!("{}:", self.result.len()).as_bytes());
        out.extend_from_slice(self.result);
        out
    }
}

/// The parts of a compact job's value, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact<'a> {
    /// The add time, ms (decimal text).
    pub ts: &'a [u8],
    /// The retention, as the hash field `keep` holds it.
    pub keep: &'a [u8],
    /// The spec: `<name> NUL <opts length>:<opts><data>` (src/job/spec.rs).
    pub spec: &'a [u8],
    /// The outcome of a completed one that its retention keeps.
    pub done: Option<Done<'a>>,
}

/// `<decimal>:` at the head of `v`: the number and the rest.
fn counted(v: &[u8]) -> Option<(usize, &[u8])> {
    let (digits, rest) = counted_digits(v)?;
    Some((std::str::from_utf8(digits).ok()?.parse().ok()?, rest))
}

impl<'a> Compact<'a> {
    /// A compact job's value and its outcome (its field of `done`, if any) as one
    /// text, the outcome first: what [`Compact::parse`] reads. None without a value (no
    /// compact job).
    pub fn join(outcome: Option<Vec<u8>>, value: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let value = value?;
        Some(match outcome {
            Some(mut o) => {
                o.extend_from_slice(&value);
                o
            }
            None => value,
        })
    }

    /// The parts of a stored value (an outcome and a value read as one, see
    /// [`Compact::join`]); None when it is not one.
    pub fn parse(v: &'a [u8]) -> Option<Compact<'a>> {
        let (done, v) = match v.first() {
            Some(b'C') => {
                let (done, rest) = Done::parse_head(v)?;
                (Some(done), rest)
            }
            _ => (None, v),
        };
        let a = v.iter().position(|&c| c == b' ')?;
        let b = a + 1 + v[a + 1..].iter().position(|&c| c == b' ')?;
        Some(Compact {
            ts: &v[..a],
            keep: &v[a + 1..b],
            spec: &v[b + 1..],
            done,
        })
    }

    /// The stored value of a compact job.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.done.map(|d| d.encode()).unwrap_or_default();
        out.extend_from_slice(&[self.ts, self.keep, self.spec].join(&b' '));
        out
    }

    /// The job hash field `name` as its hash would hold it: `spec`, `ts`, `keep`,
    /// `state` (`waiting`, which a leased job's hash says too, or `completed`), and a
    /// completed one's `finished`, `lease` and `result`; None for any other.
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        match (name, &self.done) {
            ("spec", _) => Some(self.spec),
            ("ts", _) => Some(self.ts),
            ("keep", _) => Some(self.keep),
            ("state", None) => Some(b"waiting"),
            ("state", Some(_)) => Some(b"completed"),
            ("finished", Some(d)) => Some(d.finished),
            ("lease", Some(d)) => Some(d.lease),
            ("result", Some(d)) => Some(d.result),
            _ => None,
        }
    }

    /// The job hash a compact job stands for (the fields [`Compact::field`] gives).
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &'a [u8])> + '_ {
        ["spec", "ts", "keep", "state", "finished", "lease", "result"]
            .into_iter()
            .filter_map(|f| self.field(f).map(|v| (f, v)))
    }
}

/// The digits at the head of `v` up to its `:`, and the rest after it.
fn counted_digits(v: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = v.iter().position(|&c| c == b':')?;
    let digits = &v[..colon];
    (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit)).then(|| (digits, &v[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes_a_value_whose_spec_holds_spaces() {
        let v = b"1700000000000 0:0:-1:0 name\x003:abcpay load";
        let c = Compact::parse(v).unwrap();
        assert_eq!(c.ts, b"1700000000000");
        assert_eq!(c.keep, b"0:0:-1:0");
        assert_eq!(c.spec, b"name\x003:abcpay load");
        assert_eq!(c.encode(), v.to_vec());
        assert_eq!(c.field("state"), Some(&b"waiting"[..]));
        assert_eq!(c.field("result"), None);
        assert_eq!(c.fields().count(), 4);
    }

    #[test]
    fn parses_and_encodes_a_completed_one() {
        // A lease and a result holding spaces and colons: both are counted.
        let (lease, result) = (&b"170000000000001:1:17:w x"[..], &b"r: s"[..]);
        let waiting = b"1700000000000 -1:0:-1:0 n\x000:x y";
        let v = [
            &b"C1700000000500:"[..],
            format!("{}:", lease.len()).as_bytes(),
            lease,
            format!("{}:", result.len()).as_bytes(),
            result,
            waiting,
        ]
        .concat();
        let c = Compact::parse(&v).unwrap();
        let d = c.done.unwrap();
        assert_eq!(
            (d.finished, d.lease, d.result),
            (&b"1700000000500"[..], lease, result)
        );
        assert_eq!((c.ts, c.keep), (&b"1700000000000"[..], &b"-1:0:-1:0"[..]));
        assert_eq!(c.spec, b"n\x000:x y");
        assert_eq!(c.encode(), v);
        assert_eq!(c.field("state"), Some(&b"completed"[..]));
        assert_eq!(c.fields().count(), 7);
        assert_eq!(
            Compact::parse(&v[..v.len() - waiting.len() - 2]),
            None,
            "cut short"
        );
    }

    #[test]
    fn a_value_without_two_spaces_is_not_one() {
        assert_eq!(Compact::parse(b"1700000000000"), None);
        assert_eq!(Compact::parse(b"17 keep"), None);
    }
}
