//! [`AuthHooks`]: the broker's `Hooks` backed by the password file, the ACL
//! file and the failed-login limiter, with an atomic hot reload.
//!
//! CONNECT answers: no username and anonymous access off => Not authorized
//! (3.1.1 return code 5, 5.0 0x87); unknown user or wrong password => Bad
//! user name or password (4, 0x86); an address in back-off after repeated
//! failures => Connection rate exceeded (3 Server unavailable, 0x9F), given
//! without checking the password.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use midge_broker::{AuthDecision, AuthRequest, ClientRef, Hooks, Transport};
use midge_proto::ReasonCode;
use parking_lot::RwLock;

use super::acl::Acl;
use super::passwd::PasswordFile;
use super::ratelimit::LoginLimiter;
use super::{AuthConfig, AuthError};

/// What one load of the files produced; replaced whole on reload.
#[derive(Debug)]
struct State {
    passwords: Option<PasswordFile>,
    acl: Option<Acl>,
}

impl State {
    fn load(config: &AuthConfig) -> Result<State, AuthError> {
        let passwords = config
            .password_file
            .as_deref()
            .map(PasswordFile::load)
            .transpose()?;
        let acl = config.acl_file.as_deref().map(Acl::load).transpose()?;
        Ok(State { passwords, acl })
    }
}

/// Authentication and authorization from files, for `Broker` hooks.
#[derive(Debug)]
pub struct AuthHooks {
    config: AuthConfig,
    allow_anonymous: bool,
    // Readers take the lock for one ACL check, or to clone the Arc before
    // hashing a password, so a reload never waits behind argon2.
    state: RwLock<Arc<State>>,
    limiter: LoginLimiter,
}

impl AuthHooks {
    /// Loads the configured files; an error names the file and the line.
    pub fn new(config: &AuthConfig) -> Result<AuthHooks, AuthError> {
        let state = State::load(config)?;
        Ok(AuthHooks {
            config: config.clone(),
            allow_anonymous: config.anonymous_allowed(),
            state: RwLock::new(Arc::new(state)),
            limiter: LoginLimiter::new(&config.rate_limit),
        })
    }

    /// Re-reads both files and swaps them in together. On error the running
    /// files stay in force and the error says what to fix. Connected clients
    /// keep their session; the new ACL applies to their next publish,
    /// subscribe and delivery.
    pub fn reload(&self) -> Result<(), AuthError> {
        let fresh = State::load(&self.config)?;
        *self.state.write() = Arc::new(fresh);
        Ok(())
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// One line for the start-up log.
    pub fn summary(&self) -> String {
        let state = self.state.read().clone();
        let users = match &state.passwords {
            Some(p) => format!("password file {} ({} users)", p.path().display(), p.len()),
            None => "no password file".to_owned(),
        };
        let acl = match &self.config.acl_file {
            Some(path) => format!("ACL {}", path.display()),
            None => "no ACL".to_owned(),
        };
        let anonymous = if self.allow_anonymous {
            "allowed"
        } else {
            "refused"
        };
        format!("auth: {users}, {acl}, anonymous clients {anonymous}")
    }

    fn check_password(
        &self,
        req: &AuthRequest<'_>,
        user: &str,
        ip: Option<IpAddr>,
    ) -> AuthDecision {
        let state = self.state.read().clone();
        let Some(passwords) = &state.passwords else {
            // No password file: the username is an identity for the ACL only.
            return AuthDecision::Allow {
                username: Some(user.to_owned()),
            };
        };
        if passwords.verify(user, req.password.unwrap_or_default()) {
            return AuthDecision::Allow {
                username: Some(user.to_owned()),
            };
        }
        tracing::warn!(
            client_id = req.client_id,
            username = user,
            remote = req.info.remote_addr.map(tracing::field::display),
            listener = %req.info.listener,
            "authentication failed: bad username or password"
        );
        if let Some(ip) = ip {
            if self.limiter.record_failure(ip, Instant::now()) {
                tracing::warn!(
                    remote = %ip,
                    backoff_secs = self.config.rate_limit.backoff_secs,
                    "too many failed logins: refusing this address for a while"
                );
            }
        }
        AuthDecision::Deny(ReasonCode::BadUserNameOrPassword)
    }

    fn acl_allows(&self, check: impl FnOnce(&Acl) -> bool) -> bool {
        match &self.state.read().acl {
            Some(acl) => check(acl),
            None => true,
        }
    }
}

impl Hooks for AuthHooks {
    /// Only a password hash to verify is slow; every other answer (trusted
    /// internal session, certificate identity, anonymous, no password file)
    /// is immediate and runs on the connection's task.
    fn authenticate_may_block(&self, req: &AuthRequest<'_>) -> bool {
        let trusted_internal = req.info.transport == Transport::Internal
            && req.password.is_none()
            && req.username.is_some();
        !trusted_internal
            && req.info.tls_identity.is_none()
            && req.username.is_some()
            && self.state.read().passwords.is_some()
    }

    fn authenticate(&self, req: &AuthRequest<'_>) -> AuthDecision {
        // Internal sessions are opened in-process by the web doors (HTTP
        // API, SSE, long polling, Socket.IO) and cannot come from the
        // network. Without a password they act for a user the web layer
        // already authenticated (API key, JWT) and are let in as that user;
        // with one (HTTP Basic auth) the password is checked below as for
        // any client. The ACL still applies by username.
        if req.info.transport == Transport::Internal && req.password.is_none() {
            if let Some(user) = req.username {
                return AuthDecision::Allow {
                    username: Some(user.to_owned()),
                };
            }
        }
        // A client certificate verified by a listener with
        // `use_identity_as_username` is the user: its CN replaces any
        // username and no password is asked, as in Mosquitto.
        if let Some(identity) = &req.info.tls_identity {
            return AuthDecision::Allow {
                username: Some(identity.to_string()),
            };
        }
        let ip = req.info.remote_addr.map(|a| a.ip());
        if let Some(ip) = ip {
            if let Some(left) = self.limiter.blocked(ip, Instant::now()) {
                tracing::debug!(client_id = req.client_id, remote = %ip, ?left, "login refused: address in back-off");
                return AuthDecision::Deny(ReasonCode::ConnectionRateExceeded);
            }
        }
        match req.username {
            Some(user) => self.check_password(req, user, ip),
            None if self.allow_anonymous => AuthDecision::Allow { username: None },
            None => {
                tracing::warn!(
                    client_id = req.client_id,
                    remote = req.info.remote_addr.map(tracing::field::display),
                    listener = %req.info.listener,
                    "connection refused: no username and anonymous access is off"
                );
                AuthDecision::Deny(ReasonCode::NotAuthorized)
            }
        }
    }

    fn authorize_publish(&self, client: &ClientRef<'_>, topic: &str) -> bool {
        self.acl_allows(|acl| acl.can_publish(client.client_id, client.username, topic))
    }

    fn authorize_subscribe(&self, client: &ClientRef<'_>, filter: &str) -> bool {
        self.acl_allows(|acl| acl.can_subscribe(client.client_id, client.username, filter))
    }

    fn authorize_deliver(&self, client: &ClientRef<'_>, topic: &str) -> bool {
        self.acl_allows(|acl| acl.can_read(client.client_id, client.username, topic))
    }
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;
