//! Tokens as check subjects: `token:<secret>` resolves to the token's owner, narrowed to its
//! scopes.
//!
//! Resolution is one SHA-256 of the secret and one hash-map lookup in the index (the index keeps
//! only hashes, like the store). A token that is unknown (never issued, or revoked), expired,
//! used outside its org (org keys) or for an action outside its scopes is a deny, not an error:
//! a caller presenting a bad credential learns nothing more than "no". Otherwise the decision is
//! the owner's own, through the same policy evaluation as any subject, so the token's rights are
//! the intersection of its owner's permissions and its scopes.
//!
//! Last use is kept in the entry as an atomic, so a check under the index's shared lock can
//! record it without a write lock or I/O; the daemon collects the changed ones periodically
//! ([`super::index::DirectoryIndex::take_token_uses`]) and writes them to the store.

use super::index::{IndexData, TokenSubject};
use sha2::Digest;
use std::sync::atomic::{AtomicU64, Ordering};

/// The subject prefix that marks a token secret.
pub const TOKEN_PREFIX: &str = "token:";

/// Uses closer together than this do not move the recorded last-use time: it spares the
/// entry's cache line on a token that is checked thousands of times a second.
const TOUCH_GRANULARITY_MS: u64 = 1000;

/// A usable token in the index.
pub(crate) struct TokenEntry {
    pub(crate) id: Box<str>,
    /// The name the decision is made for: the owner's user id, or `role:<role>` for an org key
    /// (the role node reaches the role's rights through the policy's static hierarchy).
    pub(crate) subject: Box<str>,
    /// An org key's org; `None` for a personal token.
    pub(crate) org: Option<Box<str>>,
    pub(crate) scopes: Box<[Box<str>]>,
    /// Unix ms from which the token is refused (`u64::MAX`: never).
    pub(crate) expires_at_ms: u64,
    last_used_ms: AtomicU64,
    /// The last use already handed to the store.
    flushed_ms: AtomicU64,
}

impl TokenEntry {
    pub(crate) fn new(
        id: &str,
        subject: &TokenSubject,
        scopes: &[String],
        expires_at_ms: Option<u64>,
        last_used_ms: u64,
    ) -> Self {
        let (subject, org) = match subject {
            TokenSubject::User(user) => (user.as_str().into(), None),
            TokenSubject::OrgRole { org, role } => (format!("role:{role}").into(), Some(org.as_str().into())),
        };
        Self {
            id: id.into(),
            subject,
            org,
            scopes: scopes.iter().map(|s| s.as_str().into()).collect(),
            expires_at_ms: expires_at_ms.unwrap_or(u64::MAX),
            last_used_ms: AtomicU64::new(last_used_ms),
            flushed_ms: AtomicU64::new(last_used_ms),
        }
    }

    fn touch(&self, now_ms: u64) {
        let last = self.last_used_ms.load(Ordering::Relaxed);
        if now_ms >= last.saturating_add(TOUCH_GRANULARITY_MS) {
            self.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

    /// Last use in memory (0 if never).
    pub(crate) fn last_used_ms(&self) -> u64 {
        self.last_used_ms.load(Ordering::Relaxed)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDenial {
    /// Never issued, or revoked.
    Unknown,
    Expired,
    /// An org key presented for another org (or an org that no longer exists).
    OtherOrg,
    /// The action is not among the token's scopes.
    OutOfScope,
}

impl std::fmt::Display for TokenDenial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenDenial::Unknown => "unknown or revoked token",
            TokenDenial::Expired => "expired token",
            TokenDenial::OtherOrg => "org key used outside its org",
            TokenDenial::OutOfScope => "action outside the token's scopes",
        })
    }
}

/// Milliseconds since the Unix epoch; read only when a token is checked.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl IndexData {
    /// The token whose secret is `secret`, if usable for `action` in `org` at `now_ms`.
    /// Records the use of any live token, in or out of scope.
    pub(crate) fn resolve_token(
        &self,
        secret: &str,
        org: &str,
        action: &str,
        now_ms: u64,
    ) -> Result<&TokenEntry, TokenDenial> {
        let hash: [u8; 32] = sha2::Sha256::digest(secret.as_bytes()).into();
        let entry = self.tokens.get(&hash).ok_or(TokenDenial::Unknown)?;
        if now_ms >= entry.expires_at_ms {
            return Err(TokenDenial::Expired);
        }
        entry.touch(now_ms);
        if let Some(key_org) = &entry.org
            && (**key_org != *org || self.org(org).is_none())
        {
            return Err(TokenDenial::OtherOrg);
        }
        if !entry.scopes.iter().any(|s| **s == *action) {
            return Err(TokenDenial::OutOfScope);
        }
        Ok(entry)
    }

    /// Last use in memory of the token with this secret hash (0 if never or unknown).
    pub fn token_last_used(&self, hash: &[u8; 32]) -> u64 {
        self.tokens.get(hash).map_or(0, TokenEntry::last_used_ms)
    }

    /// Token uses not yet handed to the store, marking them handed over.
    pub(crate) fn take_token_uses(&self) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        for entry in self.tokens.values() {
            let used = entry.last_used_ms.load(Ordering::Relaxed);
            if used > entry.flushed_ms.load(Ordering::Relaxed) {
                entry.flushed_ms.fetch_max(used, Ordering::Relaxed);
                out.push((entry.id.to_string(), used));
            }
        }
        out
    }
}
