//! The ACL file, in Mosquitto's syntax, and the three questions the broker
//! asks it: may this client publish to a topic, subscribe to a filter, and
//! receive a message on a topic.
//!
//! ```text
//! # lines before the first `user` line apply to anonymous clients
//! topic read public/#
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret/#
//! # patterns apply to every client; %u = username, %c = client id
//! pattern write devices/%c/status
//! ```
//!
//! `topic [read|write|readwrite|deny] FILTER` (no access word: readwrite),
//! `user NAME` (starts that user's block; a repeated block adds to it),
//! `pattern [read|write|readwrite|deny] FILTER`. When an ACL file is in use,
//! anything no line grants is refused.
//!
//! Precedence: a matching `deny` line (the client's own or a pattern) wins
//! over every grant. Mosquitto checks a user's lines before the patterns, so
//! there a user's grant beats a pattern's deny; midge is stricter.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::topic_match::{covers, matches, strip_shared, validate_filter, FilterError};

/// Why an ACL file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    #[error("cannot read ACL file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ACL file {path}, line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: AclLineError,
    },
}

/// What is wrong with one line of an ACL file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclLineError {
    #[error("not valid UTF-8")]
    NotUtf8,
    #[error("unknown keyword '{0}' (expected topic, pattern or user)")]
    UnknownKeyword(String),
    #[error("missing topic filter")]
    MissingTopic,
    #[error("invalid access '{0}' (expected read, write, readwrite or deny)")]
    InvalidAccess(String),
    #[error("invalid topic filter '{filter}': {reason}")]
    InvalidFilter { filter: String, reason: FilterError },
    #[error("missing username after 'user'")]
    MissingUser,
}

/// What an ACL line grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
    Deny,
}

/// What a check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

impl Access {
    fn parse(word: &str) -> Option<Access> {
        Some(match word {
            "read" => Access::Read,
            "write" => Access::Write,
            "readwrite" => Access::ReadWrite,
            "deny" => Access::Deny,
            _ => return None,
        })
    }

    fn grants(self, want: Want) -> bool {
        matches!(
            (self, want),
            (Access::Read | Access::ReadWrite, Want::Read)
                | (Access::Write | Access::ReadWrite, Want::Write)
        )
    }
}

/// The `topic` lines of one user (or of anonymous clients).
#[derive(Debug, Default, Clone)]
struct Rules {
    deny: Vec<String>,
    allow: Vec<(Access, String)>,
}

impl Rules {
    fn add(&mut self, access: Access, filter: String) {
        if access == Access::Deny {
            self.deny.push(filter);
        } else {
            self.allow.push((access, filter));
        }
    }
}

/// A piece of a `pattern` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    User,
    Client,
}

#[derive(Debug, Clone)]
struct Pattern {
    access: Access,
    pieces: Vec<Piece>,
    /// What every topic (or filter) this pattern can reach starts with,
    /// whoever the client is: checked before expanding, so that patterns
    /// about other parts of the tree cost one comparison on the hot path.
    prefix: String,
}

/// What a pattern becomes for one client.
enum Expansion {
    /// The pattern does not apply (it needs a username the client lacks, or
    /// a substitution would be empty).
    Skip,
    /// The client's username or id contains `+` or `#`, which would turn the
    /// pattern into a wider filter than intended.
    Unsafe,
    /// The filter is in the buffer.
    Ready,
}

impl Pattern {
    fn compile(access: Access, template: &str) -> Pattern {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            let piece = match (c, chars.peek()) {
                ('%', Some('u')) => Piece::User,
                ('%', Some('c')) => Piece::Client,
                _ => {
                    text.push(c);
                    continue;
                }
            };
            chars.next();
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let prefix = match pieces.first() {
            Some(Piece::Text(t)) => literal_prefix(t).to_owned(),
            _ => String::new(),
        };
        Pattern {
            access,
            pieces,
            prefix,
        }
    }

    fn expand(&self, client_id: &str, username: Option<&str>, buf: &mut String) -> Expansion {
        buf.clear();
        for piece in &self.pieces {
            let value = match piece {
                Piece::Text(t) => {
                    buf.push_str(t);
                    continue;
                }
                Piece::User => username.unwrap_or_default(),
                Piece::Client => client_id,
            };
            if value.is_empty() {
                return Expansion::Skip;
            }
            if value.contains(['+', '#']) {
                return Expansion::Unsafe;
            }
            buf.push_str(value);
        }
        Expansion::Ready
    }
}

/// A loaded ACL file. Immutable: a reload builds a new one.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    anonymous: Rules,
    users: HashMap<String, Rules>,
    pattern_deny: Vec<Pattern>,
    pattern_allow: Vec<Pattern>,
}

impl Acl {
    /// Reads and checks an ACL file. Errors name the file and the line.
    pub fn load(path: &Path) -> Result<Acl, AclError> {
        let bytes = std::fs::read(path).map_err(|source| AclError::Read {
            path: path.to_owned(),
            source,
        })?;
        Acl::parse(path, &bytes)
    }

    /// Parses the contents of an ACL file; `path` is for messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Acl, AclError> {
        let mut acl = Acl::default();
        let mut user: Option<String> = None;
        for (index, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let err = |reason| AclError::Line {
                path: path.to_owned(),
                line: index + 1,
                reason,
            };
            let text = std::str::from_utf8(raw).map_err(|_| err(AclLineError::NotUtf8))?;
            acl.parse_line(text, &mut user).map_err(err)?;
        }
        Ok(acl)
    }

    fn parse_line(&mut self, text: &str, user: &mut Option<String>) -> Result<(), AclLineError> {
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            return Ok(());
        }
        let (keyword, rest) = split_word(text);
        match keyword {
            "topic" | "pattern" => {
                let (first, after) = split_word(rest);
                if first.is_empty() {
                    return Err(AclLineError::MissingTopic);
                }
                // As in Mosquitto: with one word it is the filter, read and
                // write; with more, the first word is the access.
                let (access, filter) = if after.is_empty() {
                    (Access::ReadWrite, first)
                } else {
                    let access = Access::parse(first)
                        .ok_or_else(|| AclLineError::InvalidAccess(first.to_owned()))?;
                    (access, after)
                };
                validate_filter(filter).map_err(|reason| AclLineError::InvalidFilter {
                    filter: filter.to_owned(),
                    reason,
                })?;
                if keyword == "pattern" {
                    let pattern = Pattern::compile(access, filter);
                    if access == Access::Deny {
                        self.pattern_deny.push(pattern);
                    } else {
                        self.pattern_allow.push(pattern);
                    }
                } else {
                    let rules = match user {
                        Some(name) => self.users.entry(name.clone()).or_default(),
                        None => &mut self.anonymous,
                    };
                    rules.add(access, filter.to_owned());
                }
                Ok(())
            }
            "user" => {
                if rest.is_empty() {
                    return Err(AclLineError::MissingUser);
                }
                *user = Some(rest.to_owned());
                Ok(())
            }
            other => Err(AclLineError::UnknownKeyword(other.to_owned())),
        }
    }

    /// May the client publish to `topic`? Writing under `$SYS` or `$share`
    /// is never allowed, whatever the file says (as in Mosquitto).
    pub fn can_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        if topic.starts_with("$SYS") || topic.starts_with("$share") {
            return false;
        }
        self.check(&Query {
            client_id,
            username,
            subject: topic,
            want: Want::Write,
            hit: matches,
        })
    }

    /// May the client subscribe to `filter`? Only if the whole filter lies
    /// within one readable ACL filter and not within a denied one. A
    /// subscription that overlaps a denied area in part is accepted; the
    /// messages from that area are then held back by [`Acl::can_read`].
    pub fn can_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        let subject = strip_shared(filter);
        self.check(&Query {
            client_id,
            username,
            subject,
            want: Want::Read,
            hit: covers,
        })
    }

    /// May the client receive a message published on `topic`?
    pub fn can_read(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool {
        self.check(&Query {
            client_id,
            username,
            subject: topic,
            want: Want::Read,
            hit: matches,
        })
    }

    /// The one decision procedure: denies first (the client's `topic` lines,
    /// then patterns), then grants; nothing granted means refused.
    fn check(&self, q: &Query<'_>) -> bool {
        let rules = match q.username {
            Some(name) => self.users.get(name),
            None => Some(&self.anonymous),
        };
        if let Some(rules) = rules {
            if rules.deny.iter().any(|f| (q.hit)(f, q.subject)) {
                return false;
            }
        }
        EXPANSION.with_borrow_mut(|buf| self.check_rest(q, rules, buf))
    }

    /// [`Acl::check`] after the client's own denies; `buf` holds expansions.
    fn check_rest(&self, q: &Query<'_>, rules: Option<&Rules>, buf: &mut String) -> bool {
        for p in &self.pattern_deny {
            if !q.subject.starts_with(&p.prefix) {
                continue;
            }
            match p.expand(q.client_id, q.username, buf) {
                Expansion::Skip => {}
                // Fail closed: an identity that could widen a deny pattern
                // into something else is denied outright.
                Expansion::Unsafe => return false,
                Expansion::Ready => {
                    if (q.hit)(buf, q.subject) {
                        return false;
                    }
                }
            }
        }
        if let Some(rules) = rules {
            if rules
                .allow
                .iter()
                .any(|(a, f)| a.grants(q.want) && (q.hit)(f, q.subject))
            {
                return true;
            }
        }
        for p in &self.pattern_allow {
            if !p.access.grants(q.want) || !q.subject.starts_with(&p.prefix) {
                continue;
            }
            if let Expansion::Ready = p.expand(q.client_id, q.username, buf) {
                if (q.hit)(buf, q.subject) {
                    return true;
                }
            }
        }
        false
    }
}

/// One question to the ACL.
struct Query<'q> {
    client_id: &'q str,
    username: Option<&'q str>,
    /// A topic name (publish, delivery) or a filter (subscribe).
    subject: &'q str,
    want: Want,
    /// `hit(acl_filter, subject)`: [`matches`] or [`covers`].
    hit: fn(&str, &str) -> bool,
}

thread_local! {
    /// Where patterns are expanded: reused, so that a check on the delivery
    /// path allocates nothing. Only `Acl::check` borrows it, never twice.
    static EXPANSION: RefCell<String> = const { RefCell::new(String::new()) };
}

/// The part of a filter before its first wildcard, less the `/` before a
/// `#` (since `a/#` also matches `a`): a prefix of everything it matches.
fn literal_prefix(filter: &str) -> &str {
    match filter.find(['+', '#']) {
        Some(i) if filter[i..].starts_with('#') => {
            filter[..i].strip_suffix('/').unwrap_or(&filter[..i])
        }
        Some(i) => &filter[..i],
        None => filter,
    }
}

/// The first space- or tab-separated word and the trimmed rest.
fn split_word(text: &str) -> (&str, &str) {
    match text.split_once([' ', '\t']) {
        Some((word, rest)) => (word, rest.trim()),
        None => (text, ""),
    }
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
