//! The action catalog: the `<feature>:<verb>` actions Warden and the default policies know.
//!
//! Policies decide what each role may do; this list says which actions exist, so that an API
//! token's scopes can be checked against it (a typo in a scope would otherwise make a token that
//! silently never works). A custom policy extends the catalog simply by naming new actions in its
//! rules (see `api::directory::tokens`). Keep it in step with the role × action table of
//! `policies/README.md`.

pub const ACTIONS: &[&str] = &[
    "org:read",
    "org:update",
    "org:delete",
    "billing:manage",
    "security:manage",
    "member:read",
    "member:invite",
    "member:manage",
    "team:read",
    "team:manage",
    "app:create",
    "app:transfer",
    "app:read",
    "app:write",
    "app:delete",
    "app:approve",
    "app:publish",
    "collaborator:manage",
    "usage:read",
    "token:manage",
    "audit:read",
];
