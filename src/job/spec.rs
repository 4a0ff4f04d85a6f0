//! A job's spec: its name, run options and payload, stored as ONE field of its hash,
//! `spec`, written once by the producer and handed whole to the worker that claims it.
//!
//! Why one field: every field of a hash costs Redis an entry to write at the add, an
//! element to read at the claim (each crossing the Lua bridge), and its name in the
//! AOF and in memory. Name, options and payload are written together, never changed
//! apart (a debounced add replaces the payload: `lua/common.lua` `spec_with_data`)
//! and read together, so they travel as one value: `add.lua` ran 58 000 instructions
//! a job with three fields, 46 000 with one; the claim 62 000 → 53 000
//! (`bench/script_instructions.py`).
//!
//! Layout (bytes): `<name> NUL <opts length, decimal> ':' <opts> <data>`. A job name
//! holds no NUL ([`crate::validate::job_name`]), so the first NUL ends it; `opts` is
//! the MessagePack of [`RunOptions`](crate::job::RunOptions), `data` the payload
//! (MessagePack, or its sealed envelope). Lua reads the name with one `string.find`
//! (`spec_name`), never the payload.
//!
//! A job written by a baton before this field has `name`, `data` and `opts` instead:
//! [`Spec::from_fields`] reads either, and the scripts move such a job to `spec` the
//! first time they read it (`lua/common.lua` `legacy_spec`).

/// The parts of a stored spec, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spec<'a> {
    /// The job name.
    pub name: &'a str,
    /// The run options (MessagePack).
    pub opts: &'a [u8],
    /// The payload as stored (MessagePack, or sealed).
    pub data: &'a [u8],
}

impl<'a> Spec<'a> {
    /// The stored form of a job's name, options and payload.
    pub fn encode(name: &str, opts: &[u8], data: &[u8]) -> Vec<u8> {
        let len = opts.len().to_string();
        let mut b = Vec::with_capacity(name.len() + len.len() + 2 + opts.len() + data.len());
        b.extend_from_slice(name.as_bytes());
        b.push(0);
        b.extend_from_slice(len.as_bytes());
        b.push(b':');
        b.extend_from_slice(opts);
        b.extend_from_slice(data);
        b
    }

    /// The parts of a stored spec; None when it is not one (cut short, a name that is
    /// not UTF-8, a length that is not a number).
    pub fn decode(b: &'a [u8]) -> Option<Spec<'a>> {
        let nul = b.iter().position(|&c| c == 0)?;
        let name = std::str::from_utf8(&b[..nul]).ok()?;
        let rest = &b[nul + 1..];
        let colon = rest.iter().position(|&c| c == b':')?;
        let digits = &rest[..colon];
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let len: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
        let body = &rest[colon + 1..];
        if len > body.len() {
            return None;
        }
        let (opts, data) = body.split_at(len);
        Some(Spec { name, opts, data })
    }

    /// A job hash's spec: its field `spec`, or the fields `name`, `data` and `opts` of
    /// a job written before it (all three needed). `get` reads a field by name.
    pub fn from_fields(get: impl Fn(&str) -> Option<&'a [u8]>) -> Option<Spec<'a>> {
        match get("spec") {
            Some(s) => Spec::decode(s),
            None => Some(Spec {
                name: std::str::from_utf8(get("name")?).ok()?,
                opts: get("opts")?,
                data: get("data")?,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_reads_back_as_written() {
        for (name, opts, data) in [
            ("send", &b"\x84\xa1a"[..], &b"\x81\xa2to\xa3ada"[..]),
            ("a:b:c", &b""[..], &b""[..]),
            ("é", &b"1:2\x00"[..], &b"\x00:\x00"[..]),
        ] {
            let b = Spec::encode(name, opts, data);
            assert_eq!(Spec::decode(&b), Some(Spec { name, opts, data }), "{b:?}");
        }
    }

    #[test]
    fn a_broken_spec_is_none_not_a_guess() {
        for b in [
            &b""[..],
            b"name",
            b"name\x00",
            b"name\x003",
            b"name\x00:xyz",
            b"name\x00-1:x",
            b"name\x005:abc",
            b"\xff\x000:",
        ] {
            assert_eq!(Spec::decode(b), None, "{b:?}");
        }
    }

    #[test]
    fn a_job_from_before_the_spec_field_reads_from_its_three_fields() {
        let f = |k: &str| match k {
            "name" => Some(&b"old"[..]),
            "opts" => Some(&b"o"[..]),
            "data" => Some(&b"d"[..]),
            _ => None,
        };
        let s = Spec::from_fields(f).unwrap();
        assert_eq!((s.name, s.opts, s.data), ("old", &b"o"[..], &b"d"[..]));
        assert_eq!(Spec::from_fields(|k| f(k).filter(|_| k != "data")), None);
    }
}
