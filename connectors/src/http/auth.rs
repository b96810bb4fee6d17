//! API keys: who is calling, and what they may touch.
//!
//! A key is presented in `X-FundWatch-Key: KEY` or `Authorization: Bearer KEY`.
//! Keys are held only as SHA-256 digests; a presented key is hashed and looked
//! up, so the comparison never depends on how many leading bytes match.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use sha2::{Digest, Sha256};

use super::config::{KeyConfig, Role};

/// The header carrying a key.
pub const KEY_HEADER: &str = "x-fundwatch-key";

/// Shortest accepted key: shorter ones are guessable.
const MIN_KEY_CHARS: usize = 16;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An institution's HIS: may submit and read for this `fixmedins_code` only.
    Institution {
        /// `fixmedins_code`.
        fixmedins_code: String,
        /// The key's name (for logs).
        name: String,
    },
    /// An operator with the admin role.
    Admin {
        /// The key's name (for the audit log).
        name: String,
    },
}

impl Principal {
    /// The name written to logs and the audit log.
    pub fn name(&self) -> &str {
        match self {
            Self::Institution { name, .. } | Self::Admin { name } => name,
        }
    }
}

/// A key entry that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("auth.keys[{index}]: {reason}")]
pub struct KeyConfigError {
    /// Position in `[[auth.keys]]`.
    pub index: usize,
    /// What to change.
    pub reason: String,
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No key in either header.
    #[error(
        "missing API key: send the institution's key in the X-FundWatch-Key header or as Authorization: Bearer <key>"
    )]
    Missing,
    /// A key that is not configured.
    #[error("API key not recognised: check the key configured for this institution")]
    Unknown,
}

/// Keys by digest.
#[derive(Debug, Clone, Default)]
pub struct Authenticator {
    keys: HashMap<[u8; 32], Principal>,
}

impl Authenticator {
    /// Builds the key table; `env` resolves `key_env` names.
    pub fn from_config(
        keys: &[KeyConfig],
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, KeyConfigError> {
        let mut table = HashMap::new();
        for (index, entry) in keys.iter().enumerate() {
            let err = |reason: String| KeyConfigError { index, reason };
            let digest = match (&entry.key, &entry.key_sha256, &entry.key_env) {
                (Some(key), None, None) => {
                    if key.chars().count() < MIN_KEY_CHARS {
                        return Err(err(format!(
                            "key must be at least {MIN_KEY_CHARS} characters (got {})",
                            key.chars().count()
                        )));
                    }
                    digest(key)
                }
                (None, Some(hex_digest), None) => {
                    let bytes = hex::decode(hex_digest.trim())
                        .ok()
                        .filter(|b| b.len() == 32);
                    match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
                        Some(d) => d,
                        None => {
                            return Err(err(
                                "key_sha256 must be 64 hex digits (printf %s KEY | sha256sum)"
                                    .to_string(),
                            ));
                        }
                    }
                }
                (None, None, Some(var)) => match env(var) {
                    Some(key) if key.chars().count() >= MIN_KEY_CHARS => digest(&key),
                    Some(_) => {
                        return Err(err(format!(
                            "the key in environment variable {var} must be at least {MIN_KEY_CHARS} characters"
                        )));
                    }
                    None => {
                        return Err(err(format!(
                            "key_env names {var}, which is not set in the environment"
                        )));
                    }
                },
                _ => {
                    return Err(err(
                        "give exactly one of key, key_sha256 or key_env".to_string()
                    ));
                }
            };
            let principal = match entry.role {
                Role::Institution => {
                    let code = entry
                        .fixmedins_code
                        .as_deref()
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .ok_or_else(
                            || err("an institution key needs fixmedins_code".to_string()),
                        )?;
                    Principal::Institution {
                        fixmedins_code: code.to_string(),
                        name: entry.name.clone().unwrap_or_else(|| code.to_string()),
                    }
                }
                Role::Admin => {
                    if entry.fixmedins_code.is_some() {
                        return Err(err(
                            "an admin key belongs to no institution: remove fixmedins_code"
                                .to_string(),
                        ));
                    }
                    Principal::Admin {
                        name: entry.name.clone().unwrap_or_else(|| "admin".to_string()),
                    }
                }
            };
            if table.insert(digest, principal).is_some() {
                return Err(err(
                    "this key is already configured for another entry; keys must be distinct"
                        .to_string(),
                ));
            }
        }
        Ok(Self { keys: table })
    }

    /// Number of configured keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is configured (then every request is refused).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The principal whose key `headers` carry.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&Principal, AuthError> {
        let key = presented_key(headers).ok_or(AuthError::Missing)?;
        self.keys.get(&digest(key)).ok_or(AuthError::Unknown)
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(KEY_HEADER) {
        return value.to_str().ok().map(str::trim).filter(|k| !k.is_empty());
    }
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, key) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn entry(role: Role, code: Option<&str>, key: &str) -> KeyConfig {
        KeyConfig {
            role,
            fixmedins_code: code.map(str::to_string),
            name: None,
            key: Some(key.to_string()),
            key_sha256: None,
            key_env: None,
        }
    }

    #[test]
    fn both_headers_resolve_to_the_same_institution() {
        let auth = Authenticator::from_config(
            &[entry(Role::Institution, Some("H1"), "key-of-hospital-one")],
            |_| None,
        )
        .expect("valid");
        let mut headers = HeaderMap::new();
        headers.insert(KEY_HEADER, HeaderValue::from_static("key-of-hospital-one"));
        let by_header = auth.authenticate(&headers).expect("known").clone();
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer key-of-hospital-one"),
        );
        assert_eq!(auth.authenticate(&headers), Ok(&by_header));
        assert_eq!(
            by_header,
            Principal::Institution {
                fixmedins_code: "H1".into(),
                name: "H1".into()
            }
        );
        assert_eq!(
            auth.authenticate(&HeaderMap::new()),
            Err(AuthError::Missing)
        );
        let mut headers = HeaderMap::new();
        headers.insert(KEY_HEADER, HeaderValue::from_static("key-of-hospital-two"));
        assert_eq!(auth.authenticate(&headers), Err(AuthError::Unknown));
    }

    #[test]
    fn hashed_and_env_keys_work_and_bad_entries_say_what_to_fix() {
        let mut hashed = entry(Role::Admin, None, "x");
        hashed.key = None;
        hashed.key_sha256 = Some(hex::encode(digest("admin-key-0123456789")));
        let mut from_env = entry(Role::Institution, Some("H2"), "x");
        from_env.key = None;
        from_env.key_env = Some("H2_KEY".into());
        let auth = Authenticator::from_config(&[hashed, from_env], |var| {
            (var == "H2_KEY").then(|| "hospital-two-key-0000".to_string())
        })
        .expect("valid");
        assert_eq!(auth.len(), 2);

        let short =
            Authenticator::from_config(&[entry(Role::Institution, Some("H1"), "short")], |_| None)
                .expect_err("too short");
        assert!(short.to_string().contains("auth.keys[0]"), "{short}");
        let no_code = Authenticator::from_config(
            &[entry(Role::Institution, None, "long-enough-key-123")],
            |_| None,
        )
        .expect_err("no institution");
        assert!(no_code.reason.contains("fixmedins_code"), "{no_code}");
        let dup = Authenticator::from_config(
            &[
                entry(Role::Institution, Some("H1"), "long-enough-key-123"),
                entry(Role::Institution, Some("H2"), "long-enough-key-123"),
            ],
            |_| None,
        )
        .expect_err("duplicate");
        assert_eq!(dup.index, 1);
    }
}
