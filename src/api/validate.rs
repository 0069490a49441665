//! Request validation shared by the services: every rejection is INVALID_ARGUMENT and
//! names the offending field, so a caller can fix the request without reading code.
//!
//! Validation runs before the engine sees anything, which lets the engine assume
//! bounded, non-empty inputs.

use tonic::Status;

/// Longest accepted identifier, path or token field, in bytes.
pub const MAX_FIELD_BYTES: usize = 1024;
/// Most items one BatchCheck may carry.
pub const MAX_BATCH_ITEMS: usize = 1000;
/// Page size used when a request leaves `page_size` at 0.
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page served; larger requests are served this many (AIP-158 coercion).
pub const MAX_PAGE_SIZE: usize = 1000;

/// A field that must be present: non-empty and at most [`MAX_FIELD_BYTES`].
pub fn required<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!("{field}: must not be empty")));
    }
    bounded(field, value)
}

/// A field that may be empty but is still bounded (page tokens).
pub fn bounded<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.len() > MAX_FIELD_BYTES {
        return Err(Status::invalid_argument(format!(
            "{field}: {} bytes, at most {MAX_FIELD_BYTES} allowed",
            value.len()
        )));
    }
    Ok(value)
}

/// A check's subject: present, bounded, and not spelled like a node of the role graphs
/// (`role:`, `team:`, `app:`, `label:`); `token:<secret>` is a token.
pub fn subject<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    let value = required(field, value)?;
    match crate::engine::subject_problem(value) {
        Some(why) => Err(Status::invalid_argument(format!("{field}: {why}"))),
        None => Ok(value),
    }
}

/// A check's resource: present, bounded, and in the resource grammar
/// (`directory::resource`: non-empty `/`-separated segments, no `.`/`..`, no control
/// characters).
pub fn resource<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    let value = required(field, value)?;
    match crate::directory::resource::resource_problem(value) {
        Some(why) => Err(Status::invalid_argument(format!("{field}: {why}"))),
        None => Ok(value),
    }
}

/// The page size to serve for a requested `page_size`.
pub fn page_size(requested: u32) -> usize {
    match requested as usize {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_field_is_named() {
        let err = required("org", "").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with("org:"), "{}", err.message());
    }

    #[test]
    fn oversized_field_is_named() {
        let long = "x".repeat(MAX_FIELD_BYTES + 1);
        let err = required("resource", &long).unwrap_err();
        assert!(err.message().starts_with("resource:"), "{}", err.message());
        assert!(required("resource", &long[..MAX_FIELD_BYTES]).is_ok());
    }

    #[test]
    fn reserved_subjects_and_non_canonical_resources_are_named() {
        for bad in ["role:admin", "team:x", "label:x", "app:web"] {
            let err = subject("items[2].subject", bad).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(
                err.message().starts_with("items[2].subject:"),
                "{}",
                err.message()
            );
        }
        assert!(subject("subject", "token:abc").is_ok());
        assert!(subject("subject", "auth0|abc").is_ok());
        let err = resource("resource", "apps/web/../api").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().starts_with("resource:"), "{}", err.message());
        assert!(resource("resource", "apps/web/models/1").is_ok());
    }

    #[test]
    fn page_size_defaults_and_caps() {
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(5000), MAX_PAGE_SIZE);
    }
}
