//! Invitations: an org's offer of a role (and teams) to an email or to an existing user,
//! redeemed with a single-use secret code.
//!
//! The code is random and high-entropy, chosen by the API before the change is built; the
//! directory only ever sees and stores its SHA-256 ([`code_hash`]), so neither the store, an
//! export nor the change log can hand it back. Expiry is a timestamp fixed at creation and
//! compared with the envelope time of a later change, never with a clock, so whether an
//! invitation had expired is the same answer on every replica.

use super::Refusal;
use super::ids::{validate_email, validate_slug, validate_user_id};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest an invitation may stay open (Clerk caps theirs at 30 days; we allow a quarter).
pub const MAX_INVITATION_TTL_MS: u64 = 90 * 24 * 3600 * 1000;
/// Most teams one invitation may add the invitee to.
pub const MAX_INVITATION_TEAMS: usize = 64;
/// Most invitees one bulk call may carry.
pub const MAX_BULK_INVITATIONS: usize = 100;

/// Who an invitation is made out to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Invitee {
    /// An email address, stored lowercased: the accepting user's email must equal it.
    Email(String),
    /// An existing user: only that user may accept.
    User(String),
}

impl Invitee {
    /// The key of this invitee in the invitee index: `email:<lowercased>` or `user:<id>`.
    pub fn key(&self) -> String {
        match self {
            Invitee::Email(e) => format!("email:{}", super::domain::email_key(e)),
            Invitee::User(u) => format!("user:{u}"),
        }
    }

    pub fn validate(&self) -> Result<(), Refusal> {
        match self {
            Invitee::Email(e) => {
                validate_email("email", e)?;
                if super::domain::normalize_email("email", e)? != *e {
                    return Err(Refusal::invalid(
                        "email",
                        "must be in canonical form: lowercase, the domain as punycode \
                         (emails are matched in that form)",
                    ));
                }
                Ok(())
            }
            Invitee::User(u) => validate_user_id("user", u),
        }
    }
}

impl std::fmt::Display for Invitee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Invitee::Email(e) => write!(f, "email `{e}`"),
            Invitee::User(u) => write!(f, "user `{u}`"),
        }
    }
}

/// Where an invitation stands. `Expired` is never stored: it is a pending invitation read
/// after its `expires_at_ms` (see [`Invitation::status_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Declined,
    Revoked,
    Expired,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InvitationStatus::Pending => "pending",
            InvitationStatus::Accepted => "accepted",
            InvitationStatus::Declined => "declined",
            InvitationStatus::Revoked => "revoked",
            InvitationStatus::Expired => "expired",
        }
    }

    /// Parse a status filter; `field` names the argument in the refusal.
    pub fn parse(field: &str, text: &str) -> Result<Self, Refusal> {
        Ok(match text {
            "pending" => InvitationStatus::Pending,
            "accepted" => InvitationStatus::Accepted,
            "declined" => InvitationStatus::Declined,
            "revoked" => InvitationStatus::Revoked,
            "expired" => InvitationStatus::Expired,
            other => {
                return Err(Refusal::invalid(
                    field,
                    format!("unknown status {other:?} (pending, accepted, declined, revoked, expired)"),
                ));
            }
        })
    }
}

/// One invitation, as stored and exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: String,
    pub org: String,
    pub invitee: Invitee,
    pub role: String,
    #[serde(default)]
    pub teams: Vec<String>,
    /// Hex SHA-256 of the secret code.
    pub code_sha256: String,
    pub invited_by: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    /// `Pending`, `Accepted`, `Declined` or `Revoked`; never `Expired`.
    pub status: InvitationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
}

impl Invitation {
    /// The status as seen at `at_ms`: a pending invitation at or past its expiry is expired.
    pub fn status_at(&self, at_ms: u64) -> InvitationStatus {
        if self.status == InvitationStatus::Pending && at_ms >= self.expires_at_ms {
            InvitationStatus::Expired
        } else {
            self.status
        }
    }

    /// Whether the invitation still holds a seat against the org's membership limit at `at_ms`.
    pub fn holds_seat(&self, at_ms: u64) -> bool {
        self.status_at(at_ms) == InvitationStatus::Pending
    }

    /// Refuse to act on an invitation that is no longer pending, naming why.
    pub fn require_pending(&self, at_ms: u64) -> Result<(), Refusal> {
        let why = match self.status_at(at_ms) {
            InvitationStatus::Pending => return Ok(()),
            InvitationStatus::Accepted => "was already accepted",
            InvitationStatus::Declined => "was declined",
            InvitationStatus::Revoked => "was revoked",
            InvitationStatus::Expired => "has expired",
        };
        Err(Refusal::precondition(format!(
            "invitation `{}` to org `{}` {why}",
            self.id, self.org
        )))
    }
}

/// Hex SHA-256 of an invitation code: what the directory stores and compares.
pub fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.as_bytes()))
}

/// A stored code hash: 64 lowercase hex digits.
pub fn validate_code_hash(field: &str, value: &str) -> Result<(), Refusal> {
    if value.len() != 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(Refusal::invalid(
            field,
            "must be 64 lowercase hex digits (a SHA-256)",
        ));
    }
    Ok(())
}

/// Team ids of an invitation: slugs, no duplicates, at most [`MAX_INVITATION_TEAMS`].
pub fn validate_teams(field: &str, teams: &[String]) -> Result<(), Refusal> {
    if teams.len() > MAX_INVITATION_TEAMS {
        return Err(Refusal::invalid(
            field,
            format!("at most {MAX_INVITATION_TEAMS} teams, got {}", teams.len()),
        ));
    }
    for (i, team) in teams.iter().enumerate() {
        validate_slug(field, team)?;
        if teams[..i].contains(team) {
            return Err(Refusal::invalid(field, format!("team `{team}` appears twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(status: InvitationStatus) -> Invitation {
        Invitation {
            id: "inv-1".into(),
            org: "acme".into(),
            invitee: Invitee::Email("a@b.co".into()),
            role: "org_user".into(),
            teams: vec![],
            code_sha256: code_hash("secret"),
            invited_by: "alice".into(),
            created_at_ms: 10,
            expires_at_ms: 100,
            status,
            resolved_at_ms: None,
            resolved_by: None,
        }
    }

    #[test]
    fn expiry_is_decided_by_the_time_given() {
        let i = inv(InvitationStatus::Pending);
        assert_eq!(i.status_at(99), InvitationStatus::Pending);
        assert_eq!(i.status_at(100), InvitationStatus::Expired);
        assert!(
            i.require_pending(100)
                .unwrap_err()
                .to_string()
                .contains("expired")
        );
        assert_eq!(
            inv(InvitationStatus::Revoked).status_at(500),
            InvitationStatus::Revoked
        );
        let twice = inv(InvitationStatus::Accepted).require_pending(50).unwrap_err();
        assert!(twice.to_string().contains("already accepted"), "{twice}");
    }

    #[test]
    fn hashes_and_inputs() {
        let h = code_hash("secret");
        assert!(validate_code_hash("code", &h).is_ok());
        assert!(validate_code_hash("code", "xyz").is_err());
        assert!(Invitee::Email("A@b.co".into()).validate().is_err());
        assert!(validate_teams("team_ids", &["a".into(), "a".into()]).is_err());
        assert_eq!(Invitee::User("bob".into()).key(), "user:bob");
    }
}
