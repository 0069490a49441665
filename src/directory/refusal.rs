//! Why the directory refused a change. The API maps each kind 1:1 to a gRPC status code, so the
//! kinds follow gRPC's meanings; the messages are for humans and name the field, the thing, or the
//! missing permission.

/// A change the directory's rules refuse. Refusals are deterministic: the same state and the same
/// change give the same refusal on every machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// The change is malformed regardless of state (`INVALID_ARGUMENT`).
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    /// Something the change refers to does not exist (`NOT_FOUND`).
    #[error("{what} not found")]
    NotFound { what: String },
    /// The change would create something that exists already (`ALREADY_EXISTS`).
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// The change is well-formed but the directory's state forbids it now (`FAILED_PRECONDITION`).
    #[error("refused: {reason}")]
    FailedPrecondition { reason: String },
    /// The actor lacks the permission the change needs (`PERMISSION_DENIED`). `org` is empty when
    /// the requirement is personal ownership rather than an org permission.
    #[error("permission denied: {}", describe_denial(permission, org))]
    PermissionDenied { permission: String, org: String },
}

fn describe_denial(permission: &str, org: &str) -> String {
    if org.is_empty() {
        format!("requires {permission}")
    } else {
        format!("requires {permission} in org `{org}`")
    }
}

impl Refusal {
    pub fn not_found(what: impl Into<String>) -> Self {
        Refusal::NotFound { what: what.into() }
    }

    pub fn already_exists(what: impl Into<String>) -> Self {
        Refusal::AlreadyExists { what: what.into() }
    }

    pub fn precondition(reason: impl Into<String>) -> Self {
        Refusal::FailedPrecondition {
            reason: reason.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Refusal::InvalidArgument {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
