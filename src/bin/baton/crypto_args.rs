//! The encryption flag every subcommand takes (`--encryption-key-file` /
//! `BATON_ENCRYPTION_KEY_FILE`), and the keyring it loads once per process.
//!
//! Why a process-wide keyring: every command that makes a queue handle (`add`, `job`,
//! the admin commands, `serve`, `worker`, `reencrypt`) must use the same keys, and
//! reading it here once keeps each of them a one-line change.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use baton::crypto::Keyring;
use baton::{Queue, Result};
use clap::Args;

/// Payload encryption at rest.
#[derive(Debug, Clone, Args)]
pub struct CryptoArgs {
    /// File of encryption keys, one a line `KEY_ID:BASE64_OF_32_BYTES`: the first
    /// encrypts what this command writes (payloads on add, results and errors in a
    /// worker), any of them decrypts. Without it, encrypted jobs show as
    /// "encrypted (key K)" and a worker fails them.
    #[arg(long, global = true, env = "BATON_ENCRYPTION_KEY_FILE")]
    pub encryption_key_file: Option<PathBuf>,
}

static KEYRING: OnceLock<Option<Arc<Keyring>>> = OnceLock::new();

impl CryptoArgs {
    /// Loads the key file, if one is given (an empty value means none), for
    /// [`keyring`] and [`with_keys`]. A file that cannot be read or parsed stops the
    /// command; its message names the line, never a key.
    pub fn load(&self) -> Result<()> {
        let keyring = match self
            .encryption_key_file
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(path) => {
                let k = Keyring::from_file(path)?;
                tracing::debug!(keys = ?k.key_ids(), "encryption keys loaded");
                Some(Arc::new(k))
            }
            None => None,
        };
        let _ = KEYRING.set(keyring);
        Ok(())
    }
}

/// The keyring loaded by [`CryptoArgs::load`], if any.
pub fn keyring() -> Option<Arc<Keyring>> {
    KEYRING.get().cloned().flatten()
}

/// `q` with the process's keyring, if one was given.
pub fn with_keys(q: Queue) -> Queue {
    match keyring() {
        Some(k) => q.with_encryption(k),
        None => q,
    }
}
