//! Payload encryption at rest: AES-256-GCM over a job's `data`, `result` and `error`.
//!
//! Why: whoever can read Redis (an operator, a backup, a replica, a `MONITOR`) can
//! otherwise read every payload. With a [`Keyring`] given to the [`Queue`](crate::Queue)
//! that adds and to the [`Worker`](crate::Worker) that runs, those fields hold only
//! ciphertext; the Lua scripts never read them, so nothing else changes.
//!
//! # Keys
//! A keyring is a text file, one key a line: `KEY_ID:BASE64_OF_32_BYTES` (blank lines and
//! lines starting with `#` are skipped). The first key encrypts; every key decrypts, so
//! keys rotate: put the new key first, keep the old one below it until `baton reencrypt`
//! has rewritten every job, then drop it. Key ids are 1 to 64 of `A-Z a-z 0-9 . _ -`.
//! Key bytes never appear in a log line, an error or a `Debug` output.
//!
//! # Envelope
//! An encrypted value is
//!
//! ```text
//! C1 62 74 6E | 01      | len | key id  | nonce    | ciphertext + tag
//! magic "\xC1btn" | version | u8  | len bytes | 12 bytes | plaintext len + 16 bytes
//! ```
//!
//! `0xC1` is the one byte MessagePack never uses and is never valid in UTF-8, so no
//! plaintext payload or result (MessagePack) and no plaintext error text (UTF-8) starts
//! with it: values stored before encryption was turned on are told apart and still run.
//! The nonce is random per value (96 bits from the OS); the header (magic to key id) is
//! authenticated as associated data, so a changed key id or version is refused like a
//! changed ciphertext. A random nonce is safe for about 2³² values per key: rotate
//! long before that.

use std::borrow::Cow;
use std::path::Path;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;

use crate::error::{Error, Result};

/// The first bytes of every encrypted value (see the module docs).
pub const MAGIC: &[u8; 4] = b"\xC1btn";
/// The envelope version written now.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Longest key id, in bytes.
pub const MAX_KEY_ID: usize = 64;

/// The keys a process holds: the first encrypts, any decrypts. Cheap to share in an `Arc`.
pub struct Keyring {
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    /// Key ids only: a keyring ends up in builders and options that get logged.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

/// Why a value could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptError {
    /// Encrypted with a key this keyring (or a process without one) does not hold.
    MissingKey(String),
    /// The key is held but the value does not authenticate: changed or corrupt.
    Tampered(String),
    /// Starts like an envelope but is cut short or of an unknown version.
    Malformed(String),
}

impl DecryptError {
    /// What `baton job` and [`Queue::job`](crate::Queue::job) show in place of the value.
    pub fn placeholder(&self) -> String {
        match self {
            DecryptError::MissingKey(k) => format!("encrypted (key {k})"),
            DecryptError::Tampered(k) => {
                format!("encrypted (key {k}): does not decrypt, tampered with or corrupt")
            }
            DecryptError::Malformed(why) => format!("encrypted: malformed envelope ({why})"),
        }
    }
}

impl std::fmt::Display for DecryptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecryptError::MissingKey(k) => {
                write!(f, "encrypted with key {k}, which this worker does not hold")
            }
            DecryptError::Tampered(k) => write!(
                f,
                "encrypted with key {k} but does not decrypt: tampered with or corrupt"
            ),
            DecryptError::Malformed(why) => write!(f, "malformed encrypted value: {why}"),
        }
    }
}

impl std::error::Error for DecryptError {}

/// True when `value` is an encrypted envelope (starts with [`MAGIC`]).
pub fn is_encrypted(value: &[u8]) -> bool {
    value.starts_with(MAGIC)
}

/// The parts of an envelope.
struct Parts<'a> {
    /// Magic to key id: authenticated as associated data.
    header: &'a [u8],
    key_id: &'a str,
    nonce: &'a [u8],
    /// Ciphertext with its tag.
    sealed: &'a [u8],
}

fn split(value: &[u8]) -> std::result::Result<Parts<'_>, DecryptError> {
    let bad = |why: &str| DecryptError::Malformed(why.to_string());
    let rest = value
        .strip_prefix(&MAGIC[..])
        .ok_or_else(|| bad("no magic"))?;
    let (&version, rest) = rest.split_first().ok_or_else(|| bad("cut short"))?;
    if version != VERSION {
        return Err(bad(&format!("unknown version {version}")));
    }
    let (&len, rest) = rest.split_first().ok_or_else(|| bad("cut short"))?;
    let len = usize::from(len);
    if len == 0 || rest.len() < len + NONCE_LEN + TAG_LEN {
        return Err(bad("cut short"));
    }
    let key_id = std::str::from_utf8(&rest[..len]).map_err(|_| bad("key id is not UTF-8"))?;
    let header = &value[..MAGIC.len() + 2 + len];
    let (nonce, sealed) = rest[len..].split_at(NONCE_LEN);
    Ok(Parts {
        header,
        key_id,
        nonce,
        sealed,
    })
}

/// The key id an encrypted value names; None for a plaintext or malformed one.
pub fn key_id_of(value: &[u8]) -> Option<&str> {
    split(value).ok().map(|p| p.key_id)
}

/// `value` as plaintext: decrypted with `keyring` when it is an envelope, as it is
/// otherwise (a value stored before encryption was turned on). Without a keyring an
/// envelope fails with [`DecryptError::MissingKey`].
pub(crate) fn open<'a>(
    keyring: Option<&Keyring>,
    value: &'a [u8],
) -> std::result::Result<Cow<'a, [u8]>, DecryptError> {
    if !is_encrypted(value) {
        return Ok(Cow::Borrowed(value));
    }
    match keyring {
        Some(k) => k.decrypt(value).map(Cow::Owned),
        None => Err(DecryptError::MissingKey(split(value)?.key_id.to_string())),
    }
}

/// `value` encrypted with `keyring`'s first key, or as it is without a keyring.
pub(crate) fn seal(keyring: Option<&Keyring>, value: Vec<u8>) -> Vec<u8> {
    match keyring {
        Some(k) => k.encrypt(&value),
        None => value,
    }
}

impl Keyring {
    /// A keyring from the text of a key file (see the module docs). Errors name the
    /// line and what is wrong with it, never the key.
    pub fn parse(text: &str) -> Result<Keyring> {
        let mut keys: Vec<(String, Aes256Gcm)> = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                |why: String| Error::Invalid(format!("encryption keys, line {}: {why}", i + 1));
            let (id, b64) = line
                .split_once(':')
                .ok_or_else(|| bad("expected KEY_ID:BASE64_OF_32_BYTES".into()))?;
            let id = id.trim();
            check_key_id(id).map_err(bad)?;
            if keys.iter().any(|(k, _)| k == id) {
                return Err(bad(format!("key id {id} is given twice")));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| bad(format!("key {id} is not valid base64")))?;
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
                bad(format!(
                    "key {id} is {} bytes, AES-256 needs 32 (make one with `head -c 32 /dev/urandom | base64`)",
                    bytes.len()
                ))
            })?;
            keys.push((id.to_string(), cipher));
        }
        if keys.is_empty() {
            return Err(Error::Invalid(
                "encryption keys: none given (one a line, KEY_ID:BASE64_OF_32_BYTES)".into(),
            ));
        }
        Ok(Keyring { keys })
    }

    /// A keyring from a key file (`--encryption-key-file`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Keyring> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Invalid(format!(
                "encryption key file {} could not be read: {e}",
                path.display()
            ))
        })?;
        Keyring::parse(&text).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// The key ids, the encrypting one first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// The id of the key that encrypts (the first).
    pub fn current(&self) -> &str {
        &self.keys[0].0
    }

    /// True when `value` is an envelope under the encrypting key (nothing to rewrite).
    pub fn is_current(&self, value: &[u8]) -> bool {
        key_id_of(value) == Some(self.current())
    }

    /// `plain` in an envelope under the first key, with a fresh random nonce.
    pub fn encrypt(&self, plain: &[u8]) -> Vec<u8> {
        let (id, cipher) = &self.keys[0];
        let mut out =
            Vec::with_capacity(MAGIC.len() + 2 + id.len() + NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(id.len() as u8); // checked ≤ MAX_KEY_ID at load
        out.extend_from_slice(id.as_bytes());
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &out,
                },
            )
            .expect("AES-GCM encrypts any message below 64 GiB");
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plaintext of an envelope made by [`Keyring::encrypt`] under any key held.
    pub fn decrypt(&self, value: &[u8]) -> std::result::Result<Vec<u8>, DecryptError> {
        let Parts {
            header,
            key_id,
            nonce,
            sealed,
        } = split(value)?;
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(k, _)| k == key_id)
            .ok_or_else(|| DecryptError::MissingKey(key_id.to_string()))?;
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: header,
                },
            )
            .map_err(|_| DecryptError::Tampered(key_id.to_string()))
    }
}

/// 1 to [`MAX_KEY_ID`] of `A-Z a-z 0-9 . _ -`: it is shown in messages and must fit
/// the envelope's one-byte length.
fn check_key_id(id: &str) -> std::result::Result<(), String> {
    if id.is_empty() || id.len() > MAX_KEY_ID {
        return Err(format!("key id must be 1 to {MAX_KEY_ID} characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "key id {id:?} contains {c:?}; use A-Z a-z 0-9 . _ -"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
