//! Authentication and authorization: the password file, the ACL file, the
//! failed-login limiter, and [`AuthHooks`], which plugs them into the broker
//! through its `Hooks` trait. `midge passwd` edits password files with
//! [`passwd_edit`]. See `docs/security.md`.

pub mod acl;
mod hooks;
pub mod passwd;
pub mod passwd_edit;
pub mod ratelimit;
mod topic_match;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use acl::{Acl, AclError};
pub use hooks::AuthHooks;
pub use passwd::{PasswdError, PasswordFile};
pub use ratelimit::RateLimitConfig;

/// The `[auth]` table of the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// `user:hash` lines (argon2id from `midge passwd`, or Mosquitto's
    /// `$6$`/`$7$`). Unset: usernames are taken as given, unchecked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Mosquitto-syntax ACL. Unset: every client may publish and subscribe
    /// to everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acl_file: Option<PathBuf>,
    /// Clients without a username. Unset: allowed unless a password file is
    /// configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_anonymous: Option<bool>,
    pub rate_limit: RateLimitConfig,
}

impl AuthConfig {
    /// True when nothing is configured: everyone may do everything, and the
    /// broker needs no hooks at all.
    pub fn is_open(&self) -> bool {
        self.password_file.is_none() && self.acl_file.is_none() && self.anonymous_allowed()
    }

    /// Whether clients without a username are let in.
    pub fn anonymous_allowed(&self) -> bool {
        self.allow_anonymous.unwrap_or(self.password_file.is_none())
    }
}

/// Why authentication could not be set up or reloaded.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Passwd(#[from] PasswdError),
    #[error(transparent)]
    Acl(#[from] AclError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_toml() {
        let text = "password_file = \"/etc/midge/passwd\"\nallow_anonymous = true\n\n[rate_limit]\nmax_failures = 3\n";
        let config: AuthConfig = toml::from_str(text).expect("parses");
        assert_eq!(
            config.password_file.as_deref(),
            Some(std::path::Path::new("/etc/midge/passwd"))
        );
        assert_eq!(config.acl_file, None);
        assert_eq!(config.rate_limit.max_failures, 3);
        assert_eq!(
            config.rate_limit.window_secs, 60,
            "unset keys keep their defaults"
        );
        let written = toml::to_string(&config).expect("serializes");
        let again: AuthConfig = toml::from_str(&written).expect("re-parses");
        assert_eq!(again, config);
        assert!(
            toml::from_str::<AuthConfig>("passwd_file = \"x\"").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn anonymous_default_follows_the_password_file() {
        let mut c = AuthConfig::default();
        assert!(c.anonymous_allowed() && c.is_open());
        c.password_file = Some(PathBuf::from("p"));
        assert!(!c.anonymous_allowed() && !c.is_open());
        c.allow_anonymous = Some(true);
        assert!(c.anonymous_allowed());
        let acl_only = AuthConfig {
            acl_file: Some(PathBuf::from("a")),
            ..AuthConfig::default()
        };
        assert!(acl_only.anonymous_allowed() && !acl_only.is_open());
    }
}
