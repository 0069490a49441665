//! Identifier and field validation, defined once.
//!
//! Two id shapes exist on purpose:
//! - **slugs** (org, team, app ids, plans): 1–64 chars of `[a-z0-9][a-z0-9_.-]*`. They appear in
//!   URLs, in policy resources (`apps/<app>`) and in page tokens, so they are lowercase and free of
//!   separators that policies or tokens use (`/`, `:`, `@`, spaces).
//! - **user ids**: 1–128 chars of `[A-Za-z0-9_.@:|+-]`. They come verbatim from the app's identity
//!   provider (`auth0|abc`, `google-oauth2|123`, an email, a UUID), so they keep case and allow the
//!   separators IdPs use, but never whitespace, `/` or control characters.
//!
//! Every check returns a [`Refusal::InvalidArgument`] naming the field, so callers can report it as
//! is.

use super::Refusal;
use crate::engine::RESERVED_PREFIXES;

/// Longest slug id (org, team, app, plan).
pub const MAX_SLUG_LEN: usize = 64;
/// Longest user id; IdP subjects can be long (`google-oauth2|` + 21 digits, emails).
pub const MAX_USER_ID_LEN: usize = 128;
/// Longest display name (org, team, app names, usernames).
pub const MAX_NAME_LEN: usize = 200;
/// Longest email address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest role name.
pub const MAX_ROLE_LEN: usize = 64;
/// Longest serialized metadata value (public or private), like Clerk's 8 KiB.
pub const MAX_METADATA_BYTES: usize = 8 * 1024;
/// Longest logo URL.
pub const MAX_URL_LEN: usize = 2048;
/// Most labels on one app, and the longest label.
pub const MAX_LABELS: usize = 32;
pub const MAX_LABEL_LEN: usize = 64;

fn invalid(field: &str, reason: impl Into<String>) -> Refusal {
    Refusal::InvalidArgument {
        field: field.to_string(),
        reason: reason.into(),
    }
}

/// A slug id: org, team, app or plan. `field` names the argument in the refusal.
pub fn validate_slug(field: &str, value: &str) -> Result<(), Refusal> {
    if value.is_empty() || value.len() > MAX_SLUG_LEN {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_SLUG_LEN} characters, got {}", value.len()),
        ));
    }
    let mut chars = value.chars();
    if !chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(invalid(field, "must start with a lowercase letter or a digit"));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(*c))) {
        return Err(invalid(
            field,
            format!("may only contain a-z, 0-9, '_', '.', '-' (found {c:?})"),
        ));
    }
    Ok(())
}

/// A user id as issued by the identity provider.
pub fn validate_user_id(field: &str, value: &str) -> Result<(), Refusal> {
    if value.is_empty() || value.len() > MAX_USER_ID_LEN {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_USER_ID_LEN} characters, got {}", value.len()),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.@:|+-".contains(*c)))
    {
        return Err(invalid(
            field,
            format!("may only contain A-Z, a-z, 0-9 and '_.@:|+-' (found {c:?})"),
        ));
    }
    // The engine names role, team and app nodes of its role graphs with these prefixes; a user
    // spelled like one would stand for that node in `g(user, ...)` and inherit its rights.
    if let Some(prefix) = RESERVED_PREFIXES.iter().find(|p| value.starts_with(**p)) {
        return Err(invalid(
            field,
            format!(
                "must not start with `{prefix}`, which the engine reserves for role, team and app nodes and API tokens"
            ),
        ));
    }
    Ok(())
}

/// A role name: `[a-z][a-z0-9_]*`, at most 64 characters. Whether the role exists is the policy's
/// business, checked separately.
pub fn validate_role(field: &str, value: &str) -> Result<(), Refusal> {
    if value.is_empty() || value.len() > MAX_ROLE_LEN {
        return Err(invalid(field, format!("must be 1 to {MAX_ROLE_LEN} characters")));
    }
    let mut chars = value.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_lowercase()) {
        return Err(invalid(field, "must start with a lowercase letter"));
    }
    if chars.any(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')) {
        return Err(invalid(field, "may only contain a-z, 0-9 and '_'"));
    }
    Ok(())
}

/// A human-readable name: 1–200 characters, no control characters, not only whitespace.
pub fn validate_name(field: &str, value: &str) -> Result<(), Refusal> {
    let count = value.chars().count();
    if value.trim().is_empty() || count > MAX_NAME_LEN {
        return Err(invalid(
            field,
            format!("must be 1 to {MAX_NAME_LEN} characters and not blank"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// An email address: deliberately loose (the IdP verified it), but exactly one `@` with text on
/// both sides, no whitespace, at most 254 characters.
pub fn validate_email(field: &str, value: &str) -> Result<(), Refusal> {
    if value.is_empty() || value.len() > MAX_EMAIL_LEN {
        return Err(invalid(field, format!("must be 1 to {MAX_EMAIL_LEN} characters")));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(field, "must not contain whitespace"));
    }
    match value.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => Ok(()),
        _ => Err(invalid(field, "must look like name@domain (exactly one '@')")),
    }
}

/// A logo URL: `https://` or `http://`, bounded, no whitespace.
pub fn validate_url(field: &str, value: &str) -> Result<(), Refusal> {
    if value.len() > MAX_URL_LEN || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            field,
            format!("must be at most {MAX_URL_LEN} characters without whitespace"),
        ));
    }
    if !(value.starts_with("https://") || value.starts_with("http://")) {
        return Err(invalid(field, "must start with https:// or http://"));
    }
    Ok(())
}

/// Org metadata: a JSON object (or null for none), at most 8 KiB serialized.
pub fn validate_metadata(field: &str, value: &serde_json::Value) -> Result<(), Refusal> {
    if !(value.is_object() || value.is_null()) {
        return Err(invalid(field, "must be a JSON object"));
    }
    let size = serde_json::to_vec(value).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(invalid(
            field,
            format!("must be at most {MAX_METADATA_BYTES} bytes, got {size}"),
        ));
    }
    Ok(())
}

/// App labels (e.g. compliance tags policies can test): at most 32, each 1–64 characters of
/// `[A-Za-z0-9_.:/-]`, no duplicates.
pub fn validate_labels(field: &str, labels: &[String]) -> Result<(), Refusal> {
    if labels.len() > MAX_LABELS {
        return Err(invalid(
            field,
            format!("at most {MAX_LABELS} labels, got {}", labels.len()),
        ));
    }
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty()
            || label.len() > MAX_LABEL_LEN
            || label
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || "_.:/-".contains(c)))
        {
            // The label is named by position, not echoed: it may be megabytes long, and an
            // error message travels in a response header.
            return Err(invalid(
                field,
                format!(
                    "label #{} ({} bytes) must be 1 to {MAX_LABEL_LEN} characters of A-Z, a-z, 0-9, '_.:/-'",
                    i + 1,
                    label.len()
                ),
            ));
        }
        if labels[..i].contains(label) {
            return Err(invalid(field, format!("label {label:?} appears twice")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["acme", "a", "0rg", "my-org.eu_1", &"a".repeat(64)] {
            assert!(validate_slug("id", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Acme",
            "-acme",
            ".x",
            "a/b",
            "a b",
            "a@b",
            &"a".repeat(65),
            "é",
        ] {
            assert!(validate_slug("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_ids_cannot_impersonate_engine_nodes() {
        for bad in ["role:admin", "team:frontend", "app:web", "role:", "token:wdn_x"] {
            match validate_user_id("user_id", bad) {
                Err(Refusal::InvalidArgument { field, reason }) => {
                    assert_eq!(field, "user_id");
                    assert!(reason.contains("must not start with"), "{reason}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        // Only the exact prefixes are reserved; a colon elsewhere is an IdP separator.
        for ok in ["roles:x", "google-oauth2:1", "Role:admin", "x:role:admin"] {
            assert!(validate_user_id("user_id", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn user_ids() {
        for ok in [
            "alice",
            "auth0|abc123",
            "Alice@Example.com",
            "google-oauth2:1",
            &"u".repeat(128),
        ] {
            assert!(validate_user_id("user", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "a\nb", &"u".repeat(129)] {
            assert!(validate_user_id("user", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_names_emails() {
        assert!(validate_role("role", "org_contributor").is_ok());
        assert!(validate_role("role", "Admin").is_err());
        assert!(validate_role("role", "1admin").is_err());
        assert!(validate_name("name", "Acme Inc.").is_ok());
        assert!(validate_name("name", "  ").is_err());
        assert!(validate_name("name", &"n".repeat(201)).is_err());
        assert!(validate_email("email", "a@b.co").is_ok());
        assert!(validate_email("email", "a@b@c").is_err());
        assert!(validate_email("email", "@b").is_err());
        assert!(validate_email("email", "ab").is_err());
    }

    #[test]
    fn refusal_names_the_field() {
        let err = validate_slug("org", "Bad").unwrap_err();
        assert!(err.to_string().contains("org"), "{err}");
    }

    #[test]
    fn labels_and_metadata() {
        assert!(validate_labels("labels", &["hipaa".into(), "eu:data".into()]).is_ok());
        assert!(validate_labels("labels", &["x".into(), "x".into()]).is_err());
        assert!(validate_metadata("m", &serde_json::json!({"a": 1})).is_ok());
        assert!(validate_metadata("m", &serde_json::json!([1])).is_err());
        let big = serde_json::json!({ "a": "x".repeat(9000) });
        assert!(validate_metadata("m", &big).is_err());
    }
}
