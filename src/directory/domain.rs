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

/// The canonical form of a domain name, the only form domains are compared in: ASCII letters
/// lowercased, an international name as its punycode A-labels (`münchen.de` →
/// `xn--mnchen-3ya.de`, per IDNA/UTS #46).
///
/// A name that reaches its canonical form only through a compatibility mapping is refused
/// rather than folded: `ban\u{212A}.io` (KELVIN SIGN) would fold to `bank.io`, full-width
/// letters to ASCII, a decomposed `u\u{308}` to `ü`. Such a name is a confusable of another
/// domain, and a domain join must never match one by accident. Only ASCII letters are
/// lowercased; a non-ASCII name must already be lowercase and NFC.
pub fn normalize_domain(field: &str, value: &str) -> Result<String, Refusal> {
    let lowered = value.to_ascii_lowercase();
    if lowered.is_ascii() {
        validate_domain(field, &lowered)?;
        return Ok(lowered);
    }
    if lowered.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Refusal::invalid(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    let ascii = idna::domain_to_ascii_strict(&lowered).map_err(|_| {
        Refusal::invalid(
            field,
            format!("{value:?} is not a valid international domain name (IDNA)"),
        )
    })?;
    let (unicode, back) = idna::domain_to_unicode(&ascii);
    if back.is_err() || unicode != lowered {
        return Err(Refusal::invalid(
            field,
            format!(
                "{value:?} uses characters that stand in for others (it would be read as {unicode:?}); \
                 write the domain in its canonical form, or as punycode ({ascii})"
            ),
        ));
    }
    validate_domain(field, &ascii)?;
    Ok(ascii)
}

/// The canonical form of an email address for comparison: the local part (ASCII only, refused
/// otherwise) lowercased, `@`, the domain in [`normalize_domain`]'s canonical form.
pub fn normalize_email(field: &str, value: &str) -> Result<String, Refusal> {
    super::ids::validate_email(field, value)?;
    let Some((local, domain)) = value.rsplit_once('@') else {
        return Err(Refusal::invalid(field, "must look like name@domain"));
    };
    if !local.is_ascii() {
        return Err(Refusal::invalid(
            field,
            "the part before '@' must be ASCII (non-ASCII letters there can stand in for others)",
        ));
    }
    let domain = normalize_domain(field, domain)?;
    Ok(format!("{}@{domain}", local.to_ascii_lowercase()))
}

/// The canonical domain of an email address (see [`normalize_email`]); `None` without an `@`
/// or when the address has no canonical form (it then matches no domain).
pub fn email_domain(email: &str) -> Option<String> {
    let normal = normalize_email("email", email).ok()?;
    normal.rsplit_once('@').map(|(_, d)| d.to_string())
}

/// The key an email is indexed and compared under: its canonical form, or, for an address
/// stored before canonical forms were required and that has none, its lowercase text
/// (which no canonical address can equal when it contains non-ASCII letters).
pub fn email_key(email: &str) -> String {
    normalize_email("email", email).unwrap_or_else(|_| email.to_lowercase())
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
        // KELVIN SIGN folds to `k` under lowercasing and IDNA mapping: refused, never `bank.io`.
        assert_eq!(email_domain("kelvin@ban\u{212A}.io"), None);
        assert!(normalize_email("email", "kelvin@ban\u{212A}.io").is_err());
        assert!(normalize_domain("domain", "ban\u{212A}.io").is_err());
        // Full-width letters, a decomposed umlaut and a non-ASCII local part are refused too.
        assert!(normalize_domain("domain", "\u{FF41}cme.com").is_err());
        assert!(normalize_domain("domain", "mu\u{308}nchen.de").is_err());
        assert!(normalize_email("email", "j\u{F6}rg@acme.com").is_err());
        // A genuine international domain is compared as punycode.
        assert_eq!(
            normalize_domain("domain", "m\u{FC}nchen.de").unwrap(),
            "xn--mnchen-3ya.de"
        );
        assert_eq!(
            normalize_email("email", "Ann@m\u{DC}nchen.de").err().map(|_| ()),
            Some(()),
            "a non-ASCII upper-case letter is not folded"
        );
        assert_eq!(normalize_email("email", "Ann@Acme.IO").unwrap(), "ann@acme.io");
        assert!(Enrollment::parse("enrollment", "both").is_err());
    }
}
