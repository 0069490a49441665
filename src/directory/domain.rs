//! Verified domains and membership requests (Clerk's organization domains).
//!
//! An org claims an email domain and stores a verification token (to be published, e.g. in a
//! DNS TXT record); the operator, having checked it, marks the domain verified. A verified
//! domain's enrollment mode says what users whose email is on it get: nothing (`manual`), an
//! invitation they can accept by themselves (`automatic_invitation`), or a suggestion to ask to
//! join, which admins approve or reject (`automatic_suggestion`) — never both.

use super::Refusal;
use super::ids::validate_slug;
use serde::{Deserialize, Serialize};

/// Longest domain name (RFC 1035).
pub const MAX_DOMAIN_LEN: usize = 253;

/// What users whose email is on a verified domain get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Enrollment {
    Manual,
    AutomaticInvitation,
    AutomaticSuggestion,
}

impl Enrollment {
    pub fn as_str(self) -> &'static str {
        match self {
            Enrollment::Manual => "manual",
            Enrollment::AutomaticInvitation => "automatic_invitation",
            Enrollment::AutomaticSuggestion => "automatic_suggestion",
        }
    }

    pub fn parse(field: &str, text: &str) -> Result<Self, Refusal> {
        Ok(match text {
            "manual" => Enrollment::Manual,
            "automatic_invitation" => Enrollment::AutomaticInvitation,
            "automatic_suggestion" => Enrollment::AutomaticSuggestion,
            other => {
                return Err(Refusal::invalid(
                    field,
                    format!(
                        "unknown enrollment mode {other:?} (manual, automatic_invitation, automatic_suggestion)"
                    ),
                ));
            }
        })
    }
}

/// An org's claim on an email domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub org: String,
    /// Lowercase, e.g. `acme.com`.
    pub domain: String,
    /// What the org publishes to prove it holds the domain (not a secret: it goes into DNS).
    pub verification_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_by: Option<String>,
    pub enrollment: Enrollment,
    /// The role users joining through this domain get (automatic invitation) or are
    /// approved with when the approver names none.
    pub role: String,
    pub created_at_ms: u64,
}

impl Domain {
    pub fn verified(&self) -> bool {
        self.verified_at_ms.is_some()
    }
}

/// Where a membership request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Rejected,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
        }
    }

    pub fn parse(field: &str, text: &str) -> Result<Self, Refusal> {
        Ok(match text {
            "pending" => RequestStatus::Pending,
            "approved" => RequestStatus::Approved,
            "rejected" => RequestStatus::Rejected,
            other => {
                return Err(Refusal::invalid(
                    field,
                    format!("unknown status {other:?} (pending, approved, rejected)"),
                ));
            }
        })
    }
}

/// A user's request to join an org, made through a suggested (verified) domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRequest {
    pub id: String,
    pub org: String,
    pub user: String,
    /// The verified domain the user's email matched.
    pub domain: String,
    pub status: RequestStatus,
    pub created_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// The role granted on approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A domain name: lowercase labels of `[a-z0-9-]` (not starting or ending with `-`), at least
/// two of them, at most 253 characters.
pub fn validate_domain(field: &str, value: &str) -> Result<(), Refusal> {
    let bad = |reason: &str| Err(Refusal::invalid(field, reason.to_string()));
    if value.is_empty() || value.len() > MAX_DOMAIN_LEN {
        return bad("must be 1 to 253 characters");
    }
    let labels: Vec<&str> = value.split('.').collect();
    if labels.len() < 2 {
        return bad("must have at least two labels (e.g. acme.com)");
    }
    for label in labels {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return bad(
                "labels must be 1 to 63 characters of lowercase a-z, 0-9 and '-', not starting or ending with '-'",
            );
        }
    }
    Ok(())
}

/// The domain of an email address, lowercased (`None` without an `@`).
pub fn email_domain(email: &str) -> Option<String> {
    email.rsplit_once('@').map(|(_, d)| d.to_lowercase())
}

/// A verification token: a slug (what the API draws is hex).
pub fn validate_token(field: &str, value: &str) -> Result<(), Refusal> {
    validate_slug(field, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for ok in ["acme.com", "eu.acme.co.uk", "x-1.io"] {
            assert!(validate_domain("domain", ok).is_ok(), "{ok}");
        }
        for bad in ["", "acme", "Acme.com", "-a.com", "a..com", "a_b.com", "a.com."] {
            assert!(validate_domain("domain", bad).is_err(), "{bad}");
        }
        assert_eq!(email_domain("Bob@Acme.COM").as_deref(), Some("acme.com"));
        assert!(Enrollment::parse("enrollment", "both").is_err());
    }
}
