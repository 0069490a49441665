//! The resource grammar: what a `resource` of a check may look like, defined once.
//!
//! A resource is one or more **segments** joined by `/` — `org`, `apps/web`,
//! `apps/web/models/1` — where every segment is non-empty and is neither `.` nor `..`, and
//! no character is a control character (U+0000–U+001F, U+007F–U+009F). So there is no
//! leading or trailing `/`, no `//`, no NUL.
//!
//! Why: rules match resources by shape (`keyMatch2(r.obj, "apps/:app/*")`) and the engine
//! scopes a check to the app named by the second segment, while the service behind Warden
//! may normalise the path it serves: `apps/web/../api/models/1` would be decided as app
//! `web` and served as app `api`, and `apps/web/./secrets` or `apps/web//secrets` would
//! slip past a deny rule on `apps/:app/secrets`. A name that means one thing to Warden and
//! another to the service is refused instead of decided. Every entry point uses
//! [`resource_problem`]: the gRPC and HTTP/JSON checks, batch items, lookups, Envoy
//! external authorization, policy test suites, and the engine itself.

/// Why `resource` is not a resource of the grammar above, or `None` when it is. The
/// reason never echoes a control character.
pub fn resource_problem(resource: &str) -> Option<String> {
    if resource.is_empty() {
        return Some("must not be empty".into());
    }
    if let Some((at, c)) = resource.char_indices().find(|(_, c)| c.is_control()) {
        return Some(format!(
            "a control character (U+{:04X}) at byte {at}; a resource is printable text",
            u32::from(c)
        ));
    }
    for (i, segment) in resource.split('/').enumerate() {
        let why = match segment {
            "" => "is empty",
            "." => "is `.`",
            ".." => "is `..`",
            _ => continue,
        };
        return Some(format!(
            "`{resource}`: segment {} {why}; a resource is non-empty segments joined by `/`, \
             without `.` or `..` (e.g. `apps/web/models/1`)",
            i + 1
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::resource_problem;

    #[test]
    fn canonical_resources_pass() {
        for ok in [
            "org",
            "apps/web",
            "apps/web/models/1",
            "apps/web/secrets/k",
            "a.b/..c/d..",
            "x",
        ] {
            assert_eq!(resource_problem(ok), None, "{ok}");
        }
    }

    #[test]
    fn the_issues_inputs_are_refused() {
        for bad in [
            "apps/web/../api/models/1",
            "apps/web/../ledger",
            "apps/web/./secrets",
            "apps/web//secrets",
            "apps/web/x/../secrets",
            "apps/web/secrets\0",
            "/apps/web",
            "apps/web/",
            ".",
            "..",
            "apps/web\n",
            "apps/web\u{85}",
            "",
        ] {
            assert!(resource_problem(bad).is_some(), "{bad:?}");
        }
        let why = resource_problem("apps/web/../api").unwrap();
        assert!(why.contains("segment 3 is `..`"), "{why}");
        let why = resource_problem("apps/web/secrets\0").unwrap();
        assert!(why.contains("U+0000") && !why.contains('\0'), "{why}");
    }
}
