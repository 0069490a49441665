//! API tokens: personal access tokens (owned by a user) and org API keys (owned by an org).
//!
//! A token's secret is random, shown once when the token is created and never stored: the
//! directory keeps its SHA-256 (the secret has 256 bits of entropy, so a plain hash is enough)
//! and the change that created it carries only that hash. A token acts as its owner, narrowed
//! to its scopes: a personal token decides as its user would, an org key as its `role` in its
//! org; either way an action outside the scopes is denied, and so is an expired or revoked
//! token. Shape rules live here; the store checks state (owner exists, id unique) and the API
//! checks scopes against the policy's action catalog.

use super::Refusal;
use super::records::Owner;
use serde::{Deserialize, Serialize};

/// Prefix of a `Check` subject that is a token secret: `token:<secret>`. Reserved, so no user id
/// can be spelled like a token.
pub const TOKEN_SUBJECT_PREFIX: &str = "token:";
/// Prefix of every secret Warden issues (recognizable in logs and by secret scanners).
pub const SECRET_PREFIX: &str = "wdn_";
/// Prefix of token ids (public, safe to log).
pub const TOKEN_ID_PREFIX: &str = "tok_";
/// Most scopes on one token.
pub const MAX_SCOPES: usize = 64;
/// Longest scope (an action name).
pub const MAX_SCOPE_LEN: usize = 128;

/// A token as stored. `secret_hash` is the hex SHA-256 of the whole secret (`wdn_…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub owner: Owner,
    pub name: String,
    /// The org role an org key acts with in its org; `None` for personal tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Actions the token may be used for (a subset of the action catalog).
    pub scopes: Vec<String>,
    /// Unix ms after which the token is refused; `None` never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
    pub secret_hash: String,
    pub created_by: String,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at_ms: Option<u64>,
    /// Last time a check used the token (Unix ms). Kept outside the change log: it is
    /// telemetry, flushed from memory periodically, not a directory write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_ms: Option<u64>,
}

impl Token {
    /// Whether checks may still use the token at `now_ms`.
    pub fn is_active(&self, now_ms: u64) -> bool {
        self.revoked_at_ms.is_none() && self.expires_at_ms.is_none_or(|e| now_ms < e)
    }
}

/// The hex SHA-256 of a secret, as stored.
pub fn hash_secret(secret: &str) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes()).into()
}

/// A stored hash back to bytes; `None` if it is not 64 hex digits.
pub fn parse_hash(hex_hash: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_hash, &mut out).ok()?;
    Some(out)
}

/// A scope: an action name, `<feature>:<verb>` of `[a-z0-9_-]` on both sides.
pub fn validate_scopes(field: &str, scopes: &[String]) -> Result<(), Refusal> {
    if scopes.is_empty() {
        return Err(Refusal::invalid(
            field,
            "at least one scope (an action such as `app:read`) is required",
        ));
    }
    if scopes.len() > MAX_SCOPES {
        return Err(Refusal::invalid(
            field,
            format!("at most {MAX_SCOPES} scopes, got {}", scopes.len()),
        ));
    }
    for (i, scope) in scopes.iter().enumerate() {
        let ok_part = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        };
        let well_formed = scope.len() <= MAX_SCOPE_LEN
            && scope
                .split_once(':')
                .is_some_and(|(f, v)| ok_part(f) && ok_part(v));
        if !well_formed {
            return Err(Refusal::invalid(
                format!("{field}[{i}]"),
                format!("{scope:?} is not an action of the form `<feature>:<verb>` (e.g. `app:read`)"),
            ));
        }
        if scopes[..i].contains(scope) {
            return Err(Refusal::invalid(
                format!("{field}[{i}]"),
                format!("scope {scope:?} appears twice"),
            ));
        }
    }
    Ok(())
}

/// A token id: `tok_` and 1–60 of `[a-z0-9]`.
pub fn validate_token_id(field: &str, id: &str) -> Result<(), Refusal> {
    let ok = id.strip_prefix(TOKEN_ID_PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 60
            && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(Refusal::invalid(
            field,
            format!(
                "{id:?} is not a token id (`{TOKEN_ID_PREFIX}` followed by lowercase letters and digits)"
            ),
        ))
    }
}

/// A stored secret hash: 64 lowercase hex digits.
pub fn validate_secret_hash(field: &str, hash: &str) -> Result<(), Refusal> {
    if hash.len() == 64
        && hash
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        Ok(())
    } else {
        Err(Refusal::invalid(
            field,
            "must be 64 lowercase hex digits (a SHA-256)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_actions_and_name_the_bad_one() {
        assert!(validate_scopes("scopes", &["app:read".into(), "model:train".into()]).is_ok());
        for (bad, field) in [
            (vec![], "scopes"),
            (vec!["app:read".into(), "App:read".into()], "scopes[1]"),
            (vec!["app".into()], "scopes[0]"),
            (vec!["app:read".into(), "app:read".into()], "scopes[1]"),
            (vec!["*".into()], "scopes[0]"),
        ] {
            match validate_scopes("scopes", &bad) {
                Err(Refusal::InvalidArgument { field: f, .. }) => assert_eq!(f, field, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn ids_and_hashes() {
        assert!(validate_token_id("token_id", "tok_0123abcd").is_ok());
        for bad in ["tok_", "0123", "tok_ABC", "tok_a-b"] {
            assert!(validate_token_id("token_id", bad).is_err(), "{bad}");
        }
        let h = hex::encode(hash_secret("wdn_x"));
        assert!(validate_secret_hash("secret_hash", &h).is_ok());
        assert_eq!(parse_hash(&h), Some(hash_secret("wdn_x")));
        assert!(validate_secret_hash("secret_hash", "abc").is_err());
    }

    #[test]
    fn expiry_and_revocation() {
        let mut t = Token {
            id: "tok_1".into(),
            owner: Owner::User("alice".into()),
            name: "ci".into(),
            role: None,
            scopes: vec!["app:read".into()],
            expires_at_ms: Some(100),
            secret_hash: String::new(),
            created_by: "alice".into(),
            created_at_ms: 1,
            revoked_at_ms: None,
            last_used_ms: None,
        };
        assert!(t.is_active(99));
        assert!(!t.is_active(100));
        t.expires_at_ms = None;
        t.revoked_at_ms = Some(5);
        assert!(!t.is_active(6));
    }
}
