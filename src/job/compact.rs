//! A compact job: a plain job stored as ONE field of its queue's `jobs` hash
//! ([`Keys::jobs`](crate::keys::Keys::jobs)), id → `<ts> <keep> <spec>`, instead of a
//! hash of its own (`lua/compact.lua` says when and why; in short: a key a job costs
//! Redis more than the fields in it, and a batch of compact jobs is written, read and
//! forgotten with one command each).
//!
//! A compact job is waiting, or active while its lease is in the leases hash; its
//! hash, once something more is written about it, holds exactly the fields this value
//! carries with `state` = `waiting` (`expand` in `lua/compact.lua`). So a reader that
//! finds no job hash asks the `jobs` hash, and reads the value's fields through
//! [`Compact::field`] as if they were the hash's.

/// The parts of a compact job's value, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Compact<'a> {
    /// The add time, ms (decimal text).
    pub ts: &'a [u8],
    /// The retention, as the hash field `keep` holds it.
    pub keep: &'a [u8],
    /// The spec ([`crate::job::Spec`]).
    pub spec: &'a [u8],
}

impl<'a> Compact<'a> {
    /// The parts of a stored value; None when it is not one.
    pub fn parse(v: &'a [u8]) -> Option<Compact<'a>> {
        let a = v.iter().position(|&c| c == b' ')?;
        let b = a + 1 + v[a + 1..].iter().position(|&c| c == b' ')?;
        Some(Compact {
            ts: &v[..a],
            keep: &v[a + 1..b],
            spec: &v[b + 1..],
        })
    }

    /// The stored value of a compact job.
    pub fn encode(&self) -> Vec<u8> {
        [self.ts, self.keep, self.spec].join(&b' ')
    }

    /// The job hash field `name` as its hash would hold it: `spec`, `ts`, `keep`, and
    /// `state` (`waiting`: a leased job's hash says so too); None for any other.
    pub fn field(&self, name: &str) -> Option<&'a [u8]> {
        match name {
            "spec" => Some(self.spec),
            "ts" => Some(self.ts),
            "keep" => Some(self.keep),
            "state" => Some(b"waiting"),
            _ => None,
        }
    }

    /// The job hash a compact job stands for (the fields [`Compact::field`] gives).
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &'a [u8])> + '_ {
        ["spec", "ts", "keep", "state"]
            .into_iter()
            .filter_map(|f| self.field(f).map(|v| (f, v)))
    }
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
    fn a_value_without_two_spaces_is_not_one() {
        assert_eq!(Compact::parse(b"1700000000000"), None);
        assert_eq!(Compact::parse(b"17 keep"), None);
    }
}
