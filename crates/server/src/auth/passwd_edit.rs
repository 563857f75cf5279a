//! Editing a password file, for `midge passwd`: hash new passwords with
//! argon2id, add, replace and delete users, upgrade plain-text lines, and
//! write the result atomically. Comments, blank lines and the order of the
//! other users are kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;

use super::passwd::{LineError, StoredHash};

/// Longest password an MQTT client can send (a two-byte length prefix).
pub const MAX_PASSWORD_LEN: usize = u16::MAX as usize;

/// Why a password file could not be edited.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
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
    #[error("cannot write password file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid username '{user}': {reason}")]
    InvalidUser { user: String, reason: &'static str },
    #[error("empty password")]
    EmptyPassword,
    #[error("password longer than {MAX_PASSWORD_LEN} bytes")]
    PasswordTooLong,
    #[error("cannot hash password: {0}")]
    Hash(String),
}

/// Hashes a password as midge stores it: argon2id, version 19, the argon2
/// crate's default cost (19 MiB, 2 passes, 1 lane: OWASP's minimum).
pub fn hash_password(password: &[u8]) -> Result<String, EditError> {
    hash_password_with(password, Params::default())
}

/// As [`hash_password`], with explicit argon2 costs (tests use cheap ones).
pub fn hash_password_with(password: &[u8], params: Params) -> Result<String, EditError> {
    check_password(password)?;
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| EditError::Hash(e.to_string()))?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .map(|h| h.to_string())
        .map_err(|e| EditError::Hash(e.to_string()))
}

/// Checks that `user` can be written to (and read back from) a password file.
pub fn validate_username(user: &str) -> Result<(), EditError> {
    let invalid = |reason| {
        Err(EditError::InvalidUser {
            user: user.to_owned(),
            reason,
        })
    };
    if user.is_empty() {
        return invalid("empty");
    }
    if user.contains(':') {
        return invalid("must not contain ':'");
    }
    if user.chars().any(char::is_control) {
        return invalid("must not contain control characters");
    }
    if user.trim() != user {
        return invalid("must not start or end with whitespace");
    }
    if user.starts_with('#') {
        return invalid("must not start with '#' (the line would be a comment)");
    }
    if user.len() > usize::from(u16::MAX) {
        return invalid("longer than 65535 bytes");
    }
    Ok(())
}

fn check_password(password: &[u8]) -> Result<(), EditError> {
    if password.is_empty() {
        return Err(EditError::EmptyPassword);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(EditError::PasswordTooLong);
    }
    Ok(())
}

/// Splits a `user:password` line of batch input (the password may contain
/// ':'; only the first one separates).
pub fn split_batch_line(line: &str) -> Option<(&str, &str)> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    line.split_once(':')
}

#[derive(Debug, Clone)]
enum EditLine {
    /// A comment or blank line, written back as it was.
    Verbatim(String),
    /// A user; `secret` is a hash, or plain text awaiting `upgrade`.
    Entry { user: String, secret: String },
}

/// A password file being edited.
#[derive(Debug, Clone, Default)]
pub struct PasswdEditor {
    lines: Vec<EditLine>,
}

impl PasswdEditor {
    /// An empty file (`midge passwd -c`).
    pub fn new() -> PasswdEditor {
        PasswdEditor::default()
    }

    /// Reads an existing file. Entries are kept as written, plain-text
    /// secrets included (so that `upgrade` can hash them).
    pub fn open(path: &Path) -> Result<PasswdEditor, EditError> {
        let bytes = std::fs::read(path).map_err(|source| EditError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut lines = Vec::new();
        for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let err = |reason| EditError::Line {
                path: path.to_owned(),
                line: index + 1,
                reason,
            };
            let text = std::str::from_utf8(raw).map_err(|_| err(LineError::NotUtf8))?;
            let text = text.strip_suffix('\r').unwrap_or(text);
            let trimmed = text.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(EditLine::Verbatim(text.to_owned()));
                continue;
            }
            let (user, secret) = trimmed
                .split_once(':')
                .ok_or_else(|| err(LineError::MissingColon))?;
            let user = user.trim();
            if user.is_empty() {
                return Err(err(LineError::EmptyUser));
            }
            lines.push(EditLine::Entry {
                user: user.to_owned(),
                secret: secret.trim().to_owned(),
            });
        }
        // `split` yields an empty piece after the final newline; do not let
        // each edit add one more blank line at the end.
        if matches!(lines.last(), Some(EditLine::Verbatim(s)) if s.is_empty()) {
            lines.pop();
        }
        Ok(PasswdEditor { lines })
    }

    /// The users, in file order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|l| match l {
            EditLine::Entry { user, .. } => Some(user.as_str()),
            EditLine::Verbatim(_) => None,
        })
    }

    /// Adds `user` or replaces their password, hashing it with argon2id.
    pub fn set_password(&mut self, user: &str, password: &[u8]) -> Result<(), EditError> {
        self.set_password_with(user, password, Params::default())
    }

    /// As [`PasswdEditor::set_password`], with explicit argon2 costs.
    pub fn set_password_with(
        &mut self,
        user: &str,
        password: &[u8],
        params: Params,
    ) -> Result<(), EditError> {
        validate_username(user)?;
        let hash = hash_password_with(password, params)?;
        self.set_secret(user, hash);
        Ok(())
    }

    fn set_secret(&mut self, user: &str, secret: String) {
        // Keep the first entry of `user` and drop later duplicates, which the
        // broker would refuse to load.
        let mut seen = false;
        self.lines.retain(|line| match line {
            EditLine::Entry { user: u, .. } if u == user => !std::mem::replace(&mut seen, true),
            _ => true,
        });
        let existing = self.lines.iter_mut().find_map(|line| match line {
            EditLine::Entry { user: u, secret: s } if u == user => Some(s),
            _ => None,
        });
        match existing {
            Some(s) => *s = secret,
            None => self.lines.push(EditLine::Entry {
                user: user.to_owned(),
                secret,
            }),
        }
    }

    /// Removes `user`; false if there was no such user.
    pub fn delete(&mut self, user: &str) -> bool {
        let before = self.lines.len();
        self.lines
            .retain(|l| !matches!(l, EditLine::Entry { user: u, .. } if u == user));
        self.lines.len() != before
    }

    /// Hashes every plain-text password (Mosquitto's `-U`); lines already
    /// hashed are left alone, so running it twice is harmless. Returns how
    /// many lines were hashed.
    pub fn upgrade(&mut self) -> Result<usize, EditError> {
        self.upgrade_with(Params::default())
    }

    /// As [`PasswdEditor::upgrade`], with explicit argon2 costs.
    pub fn upgrade_with(&mut self, params: Params) -> Result<usize, EditError> {
        let mut count = 0;
        for line in &mut self.lines {
            if let EditLine::Entry { user, secret } = line {
                if StoredHash::looks_plain(secret) {
                    validate_username(user)?;
                    *secret = hash_password_with(secret.as_bytes(), params.clone())?;
                    count += 1;
                }
            }
        }
        Ok(count)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                EditLine::Verbatim(text) => out.push_str(text),
                EditLine::Entry { user, secret } => {
                    out.push_str(user);
                    out.push(':');
                    out.push_str(secret);
                }
            }
            out.push('\n');
        }
        out
    }

    /// Replaces `path` atomically: a temporary file in the same directory,
    /// flushed to disk, then renamed over the old one, so the broker never
    /// reads half a file. An existing file keeps its permissions; a new one
    /// is readable by its owner only.
    pub fn write_atomic(&self, path: &Path) -> Result<(), EditError> {
        let werr = |source| EditError::Write {
            path: path.to_owned(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let name = path.file_name().ok_or_else(|| {
            werr(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a file name",
            ))
        })?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp{}", std::process::id()));
        let tmp = dir.join(tmp_name);
        let result = write_then_rename(&tmp, path, self.render().as_bytes());
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(werr)?;
        // Make the rename itself durable; a failure here leaves the new file
        // in place, so it is not worth failing the command for.
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(tmp)?;
    file.write_all(bytes)?;
    if let Ok(meta) = std::fs::metadata(path) {
        file.set_permissions(meta.permissions())?;
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::passwd::PasswordFile;

    fn cheap() -> Params {
        Params::new(64, 1, 1, None).expect("valid argon2 params")
    }

    #[test]
    fn hash_is_argon2id_phc_and_salted() {
        let a = hash_password_with(b"pw", cheap()).expect("hash");
        let b = hash_password_with(b"pw", cheap()).expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(StoredHash::parse("u", &a).expect("parses").verify(b"pw"));
    }

    #[test]
    fn default_cost_is_owasp_minimum() {
        let h = hash_password(b"pw").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }

    #[test]
    fn usernames_that_would_break_the_file_are_refused() {
        for bad in ["", "a:b", "a\nb", "tab\t", " lead", "trail ", "#comment"] {
            assert!(validate_username(bad).is_err(), "{bad:?}");
        }
        for good in ["alice", "device-01", "ünï", "a b", "a#b", "x/y"] {
            assert!(validate_username(good).is_ok(), "{good:?}");
        }
        assert!(matches!(
            hash_password_with(b"", cheap()),
            Err(EditError::EmptyPassword)
        ));
    }

    #[test]
    fn edits_keep_comments_and_other_users() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "# users\nalice:$6$c2FsdA==$x\n\nbob:plain\n").expect("write");
        let mut ed = PasswdEditor::open(&path).expect("open");
        assert_eq!(ed.users().collect::<Vec<_>>(), ["alice", "bob"]);
        ed.set_password_with("carol", b"c", cheap()).expect("add");
        ed.set_password_with("bob", b"b2", cheap())
            .expect("replace");
        assert!(ed.delete("alice"));
        assert!(!ed.delete("alice"));
        ed.write_atomic(&path).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# users");
        assert_eq!(lines[1], "");
        assert!(lines[2].starts_with("bob:$argon2id$"), "{text}");
        assert!(lines[3].starts_with("carol:$argon2id$"), "{text}");
        assert_eq!(lines.len(), 4, "{text}");
        let file = PasswordFile::load(&path).expect("broker can load it");
        assert!(file.verify("bob", b"b2"));
        assert!(file.verify("carol", b"c"));
        assert!(!file.contains("alice"));
    }

    #[test]
    fn upgrade_hashes_plain_lines_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        let kept = "$6$lo7jfyGRKLBFdm7B$DUDo9iYjWjQ/pEKHQuZ2+W5NPfSfRjDvY66PBSm+EHYdLONNF3RpwV3WQrkT4hW844xIK9vMNNYVKpUrKVeVzA==";
        std::fs::write(&path, format!("a:pass:with:colons\nb:{kept}\nc:  spaced\n"))
            .expect("write");
        let mut ed = PasswdEditor::open(&path).expect("open");
        assert_eq!(ed.upgrade_with(cheap()).expect("upgrade"), 2);
        assert_eq!(ed.upgrade_with(cheap()).expect("again"), 0);
        ed.write_atomic(&path).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains(&format!("b:{kept}\n")), "untouched: {text}");
        let file = PasswordFile::load(&path).expect("loads");
        assert!(file.verify("a", b"pass:with:colons"));
        assert!(file.verify("b", b"pass"));
        assert!(file.verify("c", b"spaced"));
    }

    #[test]
    fn duplicate_entries_collapse_on_set() {
        let mut ed = PasswdEditor::new();
        ed.lines.push(EditLine::Entry {
            user: "d".into(),
            secret: "x".into(),
        });
        ed.lines.push(EditLine::Entry {
            user: "d".into(),
            secret: "y".into(),
        });
        ed.set_password_with("d", b"z", cheap()).expect("set");
        assert_eq!(ed.users().count(), 1);
    }

    #[test]
    fn open_reports_bad_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "ok:x\nbroken\n").expect("write");
        match PasswdEditor::open(&path) {
            Err(EditError::Line {
                line: 2,
                reason: LineError::MissingColon,
                ..
            }) => {}
            other => panic!("expected line 2 error, got {other:?}"),
        }
    }

    #[cfg(unix)]
    #[test]
    fn new_file_is_private_and_existing_keeps_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("pw");
        let mut ed = PasswdEditor::new();
        ed.set_password_with("u", b"p", cheap()).expect("set");
        ed.write_atomic(&path).expect("write");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        ed.write_atomic(&path).expect("rewrite");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }
}
