//! Who an HTTP request (or a Socket.IO handshake) acts as: HTTP Basic auth
//! (checked by the broker's own hooks against the password file when the
//! internal session connects), API keys from `[[http.api_key]]`, and HS256
//! JWTs signed with `http.jwt_secret` (`sub` = username, `exp`/`nbf`
//! honoured). Without credentials a request is anonymous, which the broker
//! accepts only when anonymous access is on.

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config::HttpConfig;
use super::error::ApiError;

/// The identity a request acts as.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: Option<String>,
    /// The password to present to the broker (Basic auth); `None` for an
    /// anonymous request or a token the web layer already verified.
    pub password: Option<Bytes>,
    /// Admin role: a verified token for an admin, or a Basic user listed in
    /// `http.admins` (the password is checked before the role is used).
    pub admin: bool,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("admin", &self.admin)
            .finish()
    }
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity {
            username: None,
            password: None,
            admin: false,
        }
    }

    /// A key for caching sessions per identity: the username and a hash of
    /// the password, so a wrong password never reuses a good session.
    pub fn cache_key(&self) -> String {
        let mut h = Sha256::new();
        if let Some(p) = &self.password {
            h.update(p);
        }
        let digest = h.finalize();
        let mut key = String::with_capacity(80);
        key.push_str(match (&self.username, &self.password) {
            (None, _) => "anon:",
            (Some(_), None) => "token:",
            (Some(_), Some(_)) => "basic:",
        });
        key.push_str(self.username.as_deref().unwrap_or(""));
        key.push(':');
        for b in &digest[..16] {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }
}

/// The identity of a request from its `Authorization` header.
pub fn from_headers(headers: &HeaderMap, config: &HttpConfig) -> Result<Identity, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Identity::anonymous());
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization header is not ASCII".into()))?;
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        basic(rest, config)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        token(rest, config)
    } else {
        Err(ApiError::Unauthorized(format!(
            "unsupported authorization scheme {scheme:?} (use Basic or Bearer)"
        )))
    }
}

/// `user:password`, base64.
fn basic(b64: &str, config: &HttpConfig) -> Result<Identity, ApiError> {
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| ApiError::Unauthorized("Basic credentials are not valid base64".into()))?;
    let text = String::from_utf8(raw)
        .map_err(|_| ApiError::Unauthorized("Basic credentials are not UTF-8".into()))?;
    let (user, password) = text
        .split_once(':')
        .ok_or_else(|| ApiError::Unauthorized("Basic credentials need user:password".into()))?;
    login(user, password, config)
}

/// A username and password (Basic auth, Socket.IO `auth`).
pub fn login(user: &str, password: &str, config: &HttpConfig) -> Result<Identity, ApiError> {
    if user.is_empty() {
        return Err(ApiError::Unauthorized("empty username".into()));
    }
    Ok(Identity {
        username: Some(user.to_owned()),
        password: Some(Bytes::copy_from_slice(password.as_bytes())),
        admin: config.admins.iter().any(|a| a == user),
    })
}

/// An API key or a JWT.
pub fn token(token: &str, config: &HttpConfig) -> Result<Identity, ApiError> {
    if token.is_empty() {
        return Err(ApiError::Unauthorized("empty bearer token".into()));
    }
    // Every key is compared, in constant time, so timing tells nothing.
    let mut found = None;
    for k in &config.api_keys {
        if bool::from(k.key.as_bytes().ct_eq(token.as_bytes())) {
            found = Some(k);
        }
    }
    if let Some(k) = found {
        return Ok(Identity {
            username: Some(k.username.clone()),
            password: None,
            admin: k.admin || config.admins.contains(&k.username),
        });
    }
    match &config.jwt_secret {
        Some(secret) if token.matches('.').count() == 2 => {
            let sub = verify_jwt(token, secret.as_bytes(), unix_now())?;
            Ok(Identity {
                admin: config.admins.contains(&sub),
                username: Some(sub),
                password: None,
            })
        }
        _ => Err(ApiError::Unauthorized("unknown bearer token".into())),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Checks an HS256 JWT and returns its `sub`.
pub fn verify_jwt(token: &str, secret: &[u8], now: u64) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::Unauthorized(format!("invalid JWT: {why}"));
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("not three parts"));
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("header is not base64url JSON"))?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(bad("alg must be HS256"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| bad("signature is not base64url"))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| bad("unusable secret"))?;
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&sig).map_err(|_| bad("bad signature"))?;
    let claims: serde_json::Value = URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("payload is not base64url JSON"))?;
    if let Some(exp) = claims.get("exp").and_then(|v| v.as_u64()) {
        if now >= exp {
            return Err(bad("expired"));
        }
    }
    if let Some(nbf) = claims.get("nbf").and_then(|v| v.as_u64()) {
        if now < nbf {
            return Err(bad("not valid yet"));
        }
    }
    match claims.get("sub").and_then(|v| v.as_str()) {
        Some(sub) if !sub.is_empty() => Ok(sub.to_owned()),
        _ => Err(bad("no sub claim")),
    }
}

/// Makes an HS256 JWT (tests and docs).
pub fn sign_jwt(claims: &serde_json::Value, secret: &[u8]) -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let p = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length.
        Err(_) => return String::new(),
    };
    mac.update(h.as_bytes());
    mac.update(b".");
    mac.update(p.as_bytes());
    let s = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{h}.{p}.{s}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::config::ApiKey;
    use axum::http::HeaderValue;

    fn config() -> HttpConfig {
        HttpConfig {
            admins: vec!["root".into()],
            api_keys: vec![ApiKey {
                key: "key-0123456789abcdef".into(),
                username: "svc".into(),
                admin: false,
            }],
            jwt_secret: Some("secret-0123456789abcdef".into()),
            ..HttpConfig::default()
        }
    }

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(auth).expect("ascii"),
        );
        h
    }

    #[test]
    fn basic_and_keys() {
        let c = config();
        let id = from_headers(&with("Basic cm9vdDpwdw=="), &c).expect("basic"); // root:pw
        assert_eq!(id.username.as_deref(), Some("root"));
        assert_eq!(id.password.as_deref(), Some(&b"pw"[..]));
        assert!(id.admin);
        let id = from_headers(&with("Bearer key-0123456789abcdef"), &c).expect("key");
        assert_eq!(id.username.as_deref(), Some("svc"));
        assert!(id.password.is_none() && !id.admin);
        assert!(from_headers(&with("Bearer nope"), &c).is_err());
        assert!(from_headers(&with("Basic !!!"), &c).is_err());
        assert!(from_headers(&with("Digest x"), &c).is_err());
        assert_eq!(
            from_headers(&HeaderMap::new(), &c).expect("anon"),
            Identity::anonymous()
        );
    }

    #[test]
    fn jwt_checks() {
        let secret = b"secret-0123456789abcdef";
        let t = sign_jwt(&serde_json::json!({"sub": "root", "exp": 2000}), secret);
        assert_eq!(verify_jwt(&t, secret, 1000).expect("valid"), "root");
        assert!(verify_jwt(&t, secret, 2000).is_err(), "expired");
        assert!(
            verify_jwt(&t, b"other-secret-0123456", 1000).is_err(),
            "wrong key"
        );
        let nbf = sign_jwt(&serde_json::json!({"sub": "a", "nbf": 500}), secret);
        assert!(verify_jwt(&nbf, secret, 400).is_err());
        let nosub = sign_jwt(&serde_json::json!({"x": 1}), secret);
        assert!(verify_jwt(&nosub, secret, 1).is_err());
        // Tampered payload: the signature no longer matches.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin"}"#);
        parts[1] = &forged;
        assert!(verify_jwt(&parts.join("."), secret, 1000).is_err());
        // alg none is refused.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(r#"{"sub":"root"}"#)
        );
        assert!(verify_jwt(&none, secret, 1).is_err());
        let id = token(
            &sign_jwt(&serde_json::json!({"sub": "root"}), secret),
            &config(),
        )
        .expect("jwt identity");
        assert!(id.admin && id.password.is_none());
    }

    #[test]
    fn cache_keys_differ_by_password() {
        let c = config();
        let a = login("u", "p1", &c).expect("id").cache_key();
        let b = login("u", "p2", &c).expect("id").cache_key();
        assert_ne!(a, b);
        assert!(!a.contains("p1"));
    }
}
