//! The password file: `user:hash` lines, `#` comments and blank lines, read
//! once and checked on every CONNECT that carries a username.
//!
//! Hashes accepted: midge's own argon2 PHC strings (`$argon2id$v=19$...`,
//! written by `midge passwd`) and the two formats of Mosquitto's
//! `mosquitto_passwd`, so that a Mosquitto password file works unchanged:
//! `$6$SALT$HASH` (SHA-512 of password then salt, Mosquitto 1.x) and
//! `$7$ITERATIONS$SALT$HASH` (PBKDF2-HMAC-SHA512, Mosquitto 2.x), salt and
//! hash in standard base64.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Mosquitto writes padded standard base64; accept it unpadded too.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a password file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("cannot read password file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("password file {path}, line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: LineError,
    },
}

/// What is wrong with one line of a password file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("expected USER:HASH")]
    MissingColon,
    #[error("empty username")]
    EmptyUser,
    #[error("user '{user}' already defined on line {first_line}")]
    DuplicateUser { user: String, first_line: usize },
    #[error("the password of user '{0}' is not hashed (run `midge passwd -U FILE`)")]
    NotHashed(String),
    #[error("user '{user}': unknown hash format '{scheme}'")]
    UnknownScheme { user: String, scheme: String },
    #[error("user '{user}': malformed {scheme} hash: {detail}")]
    Malformed {
        user: String,
        scheme: &'static str,
        detail: String,
    },
}

/// One stored password hash, decoded at load so that a malformed entry is
/// found at start (or reload), not at the user's first login.
#[derive(Debug, Clone)]
pub enum StoredHash {
    /// An argon2 PHC string (parsed again at verification; parsing costs
    /// nothing next to hashing, and the string owns the parameters).
    Argon2(String),
    /// Mosquitto `$6$`: SHA-512(password || salt).
    Sha512 { salt: Vec<u8>, digest: Vec<u8> },
    /// Mosquitto `$7$`: PBKDF2-HMAC-SHA512(password, salt, iterations).
    Pbkdf2Sha512 {
        iterations: u32,
        salt: Vec<u8>,
        digest: Vec<u8>,
    },
}

impl StoredHash {
    /// Parses the hash part of a password-file line.
    pub fn parse(user: &str, text: &str) -> Result<StoredHash, LineError> {
        let malformed = |scheme: &'static str, detail: &str| LineError::Malformed {
            user: user.to_owned(),
            scheme,
            detail: detail.to_owned(),
        };
        if let Some(rest) = text.strip_prefix("$6$") {
            let (salt, digest) = rest
                .split_once('$')
                .ok_or_else(|| malformed("$6$", "expected $6$SALT$HASH"))?;
            let salt = B64
                .decode(salt)
                .map_err(|_| malformed("$6$", "salt is not base64"))?;
            let digest = B64
                .decode(digest)
                .map_err(|_| malformed("$6$", "hash is not base64"))?;
            if salt.is_empty() || digest.len() != 64 {
                return Err(malformed("$6$", "expected a salt and a 64-byte hash"));
            }
            return Ok(StoredHash::Sha512 { salt, digest });
        }
        if let Some(rest) = text.strip_prefix("$7$") {
            let mut parts = rest.splitn(3, '$');
            let (Some(iterations), Some(salt), Some(digest)) =
                (parts.next(), parts.next(), parts.next())
            else {
                return Err(malformed("$7$", "expected $7$ITERATIONS$SALT$HASH"));
            };
            let iterations: u32 = iterations
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| malformed("$7$", "iterations must be a positive integer"))?;
            let salt = B64
                .decode(salt)
                .map_err(|_| malformed("$7$", "salt is not base64"))?;
            let digest = B64
                .decode(digest)
                .map_err(|_| malformed("$7$", "hash is not base64"))?;
            if salt.is_empty() || digest.len() != 64 {
                return Err(malformed("$7$", "expected a salt and a 64-byte hash"));
            }
            return Ok(StoredHash::Pbkdf2Sha512 {
                iterations,
                salt,
                digest,
            });
        }
        if text.starts_with("$argon2") {
            let parsed =
                PasswordHash::new(text).map_err(|e| malformed("argon2", &e.to_string()))?;
            if parsed.hash.is_none() {
                return Err(malformed("argon2", "no hash value"));
            }
            // Building the hasher from the string's parameters catches an
            // unknown variant or out-of-range cost now rather than at login.
            argon2::Params::try_from(&parsed).map_err(|e| malformed("argon2", &e.to_string()))?;
            argon2::Algorithm::try_from(parsed.algorithm)
                .map_err(|e| malformed("argon2", &e.to_string()))?;
            return Ok(StoredHash::Argon2(text.to_owned()));
        }
        if let Some(rest) = text.strip_prefix('$') {
            let scheme = rest.split('$').next().unwrap_or_default();
            return Err(LineError::UnknownScheme {
                user: user.to_owned(),
                scheme: format!("${scheme}$"),
            });
        }
        Err(LineError::NotHashed(user.to_owned()))
    }

    /// True when `password` hashes to this value. Digest comparisons run in
    /// constant time (argon2's own comparison does too).
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            StoredHash::Argon2(phc) => match PasswordHash::new(phc) {
                Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
                Err(_) => false,
            },
            StoredHash::Sha512 { salt, digest } => {
                let mut h = Sha512::new();
                h.update(password);
                h.update(salt);
                bool::from(h.finalize().as_slice().ct_eq(digest))
            }
            StoredHash::Pbkdf2Sha512 {
                iterations,
                salt,
                digest,
            } => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                bool::from(out.as_slice().ct_eq(digest))
            }
        }
    }

    /// True for a plain-text secret (what `midge passwd -U` upgrades); false
    /// for anything that looks like a hash, known or not.
    pub fn looks_plain(text: &str) -> bool {
        !(text.starts_with("$6$") || text.starts_with("$7$") || text.starts_with("$argon2"))
    }
}

/// A loaded password file. Immutable: a reload builds a new one.
#[derive(Debug)]
pub struct PasswordFile {
    path: PathBuf,
    users: HashMap<String, StoredHash>,
    /// Verified when the user is unknown, with the answer thrown away, so
    /// that an unknown name costs as much as a known one and response time
    /// does not tell which usernames exist.
    decoy: Option<StoredHash>,
    verified: VerifiedCache,
}

impl PasswordFile {
    /// Reads and checks a password file. Errors name the file and the line.
    pub fn load(path: &Path) -> Result<PasswordFile, PasswdError> {
        let bytes = std::fs::read(path).map_err(|source| PasswdError::Read {
            path: path.to_owned(),
            source,
        })?;
        PasswordFile::parse(path, &bytes)
    }

    /// Parses the contents of a password file; `path` is for messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<PasswordFile, PasswdError> {
        let mut users = HashMap::new();
        let mut first_lines: HashMap<String, usize> = HashMap::new();
        let mut decoy = None;
        for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let line = index + 1;
            let err = |reason| PasswdError::Line {
                path: path.to_owned(),
                line,
                reason,
            };
            let text = std::str::from_utf8(raw).map_err(|_| err(LineError::NotUtf8))?;
            let Some((user, hash)) = split_entry(text).map_err(err)? else {
                continue;
            };
            if let Some(first_line) = first_lines.get(user) {
                return Err(err(LineError::DuplicateUser {
                    user: user.to_owned(),
                    first_line: *first_line,
                }));
            }
            let stored = StoredHash::parse(user, hash).map_err(err)?;
            if decoy.is_none() {
                decoy = Some(stored.clone());
            }
            first_lines.insert(user.to_owned(), line);
            users.insert(user.to_owned(), stored);
        }
        Ok(PasswordFile {
            path: path.to_owned(),
            users,
            decoy,
            verified: VerifiedCache::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// True when `user` exists and `password` is theirs.
    ///
    /// A successful check is remembered (as a keyed digest, not the
    /// password), so a device that reconnects does not pay for argon2 again;
    /// a failed one always runs the full hash.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        let Some(stored) = self.users.get(user) else {
            if let Some(decoy) = &self.decoy {
                let _ = decoy.verify(password);
            }
            return false;
        };
        if self.verified.contains(user, password) {
            return true;
        }
        let ok = stored.verify(password);
        if ok {
            self.verified.insert(user, password);
        }
        ok
    }
}

/// Splits a line into (user, hash); `None` for comments and blank lines.
/// Whitespace around both parts is ignored, as Mosquitto does.
fn split_entry(text: &str) -> Result<Option<(&str, &str)>, LineError> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let (user, hash) = text.split_once(':').ok_or(LineError::MissingColon)?;
    let user = user.trim();
    if user.is_empty() {
        return Err(LineError::EmptyUser);
    }
    Ok(Some((user, hash.trim())))
}

/// Passwords that verified, as SHA-256(process key || password) per user.
/// Bounded by the number of users in the file (only they can be inserted);
/// dropped with the file on reload, so a changed password is never served
/// from here.
struct VerifiedCache {
    key: [u8; 32],
    // A plain mutex: held for one map operation, never across hashing.
    entries: Mutex<HashMap<String, [u8; 32]>>,
}

impl VerifiedCache {
    fn new() -> VerifiedCache {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        VerifiedCache {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(password);
        h.finalize().into()
    }

    fn contains(&self, user: &str, password: &[u8]) -> bool {
        let digest = self.digest(password);
        self.entries
            .lock()
            .get(user)
            .is_some_and(|known| bool::from(known.ct_eq(&digest)))
    }

    fn insert(&self, user: &str, password: &[u8]) {
        let digest = self.digest(password);
        self.entries.lock().insert(user.to_owned(), digest);
    }
}

impl std::fmt::Debug for VerifiedCache {
    // Never print the key or the digests.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedCache")
            .field("entries", &self.entries.lock().len())
            .finish()
    }
}

#[cfg(test)]
#[path = "passwd_tests.rs"]
mod tests;
