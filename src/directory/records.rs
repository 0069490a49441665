//! The directory's records, as stored (JSON values in redb) and as exported.
//!
//! Records hold only what the domain needs; keys are repeated inside the value so that a record
//! read on its own (an export line, a change-log entry) is self-describing.

use serde::{Deserialize, Serialize};

/// A person, as known from the app's identity provider. Users carry no rights by themselves: what
/// they may do comes from memberships and the policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Who vouched for `email` and when: set only by the operator (a caller on the Unix
    /// socket, i.e. the login layer that checked the address), kept while the email stays the
    /// same, dropped when it changes. Only a verified email may join an org by its domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<EmailVerification>,
}

/// The operator's word that a user's email belongs to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailVerification {
    /// The actor of the operator's write that marked it verified.
    pub by: String,
    pub at_ms: u64,
}

/// Per-org settings an org admin can change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSettings {
    /// Most members the org may have; `None` means no limit. Lowering it below the current count
    /// keeps existing members and refuses new ones.
    #[serde(default)]
    pub membership_limit: Option<u32>,
    /// Whether admins may delete the org.
    #[serde(default = "default_true")]
    pub deletable: bool,
    /// Version of the org's terms of use that joining members must accept (a slug such as
    /// `2024-06`); `None` means joining needs no acceptance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_version: Option<String>,
}

impl OrgSettings {
    pub fn validate(&self) -> Result<(), super::Refusal> {
        if let Some(v) = &self.terms_version {
            super::ids::validate_slug("terms_version", v)?;
        }
        Ok(())
    }
}

/// A change to some of an org's settings: each field that is `Some` is set, the others keep
/// their value. For the two optional settings, `Some(None)` clears them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSettingsPatch {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub membership_limit: Option<Option<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletable: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub terms_version: Option<Option<String>>,
}

/// A field that is present is `Some`, even when it is `null` (which clears the setting).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl OrgSettingsPatch {
    pub fn validate(&self) -> Result<(), super::Refusal> {
        if let Some(Some(v)) = &self.terms_version {
            super::ids::validate_slug("terms_version", v)?;
        }
        Ok(())
    }

    /// `settings` with this patch applied.
    pub fn apply_to(&self, settings: &mut OrgSettings) {
        if let Some(v) = self.membership_limit {
            settings.membership_limit = v;
        }
        if let Some(v) = self.deletable {
            settings.deletable = v;
        }
        if let Some(v) = &self.terms_version {
            settings.terms_version = v.clone();
        }
    }
}

fn default_true() -> bool {
    true
}

impl Default for OrgSettings {
    fn default() -> Self {
        Self {
            membership_limit: None,
            deletable: true,
            terms_version: None,
        }
    }
}

/// An organization: the domain in which roles are held.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub billing_email: Option<String>,
    pub plan: String,
    #[serde(default)]
    pub logo_url: Option<String>,
    /// Readable by the org's members through the app; a JSON object or null.
    #[serde(default)]
    pub public_metadata: serde_json::Value,
    /// Only for the app's backend; a JSON object or null.
    #[serde(default)]
    pub private_metadata: serde_json::Value,
    #[serde(default)]
    pub settings: OrgSettings,
    pub created_by: String,
    pub created_at_ms: u64,
    /// When a change last touched the org or anything in it (every change the audit log files
    /// under the org). Absent in records written before it was kept: then `created_at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_ms: Option<u64>,
}

/// When a member accepted which version of the org's terms of use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsAcceptance {
    pub version: String,
    pub at_ms: u64,
}

/// One user's single role in one org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub org: String,
    pub user: String,
    pub role: String,
    pub joined_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_accepted: Option<TermsAcceptance>,
    /// When the member's role or teams last changed. Absent until then: `joined_at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_ms: Option<u64>,
}

/// A team inside an org; teams receive app grants (siloed access).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub org: String,
    pub id: String,
    pub name: String,
}

/// A user's membership in a team. The user is always a member of the team's org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    pub org: String,
    pub team: String,
    pub user: String,
}

/// A team's access to one app owned by the team's org.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamGrant {
    pub org: String,
    pub team: String,
    pub app: String,
}

/// Who owns an app: a user (personal app) or an org.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Owner {
    User(String),
    Org(String),
}

impl Owner {
    /// `user` or `org`: the kind half of the owner's key in the apps-by-owner index.
    pub fn kind(&self) -> &'static str {
        match self {
            Owner::User(_) => "user",
            Owner::Org(_) => "org",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Owner::User(id) | Owner::Org(id) => id,
        }
    }

    pub fn org(&self) -> Option<&str> {
        match self {
            Owner::Org(id) => Some(id),
            Owner::User(_) => None,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`", self.kind(), self.id())
    }
}

/// An application. App ids are unique across the whole directory so that `apps/<app>` names one
/// app whatever its owner, and a transfer keeps the id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub owner: Owner,
    pub name: String,
    #[serde(default)]
    pub labels: Vec<String>,
    pub created_at_ms: u64,
    /// When a change last touched the app (labels, owner, grants, collaborators, versions).
    /// Absent in records written before it was kept: then `created_at_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at_ms: Option<u64>,
}

/// A user outside an app's org who holds `role` on that one app (Clarifai's collaborations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collaborator {
    pub app: String,
    pub user: String,
    pub role: String,
    pub added_by: String,
    pub added_at_ms: u64,
}

/// Where an app version stands in the publish review (Algorithmia's publishing approval).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    Pending,
    Approved,
    Rejected,
}

impl VersionState {
    pub fn as_str(self) -> &'static str {
        match self {
            VersionState::Pending => "pending",
            VersionState::Approved => "approved",
            VersionState::Rejected => "rejected",
        }
    }
}

/// A version of an org app submitted for publishing, and its review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppVersion {
    pub app: String,
    pub version: String,
    pub state: VersionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub submitted_by: String,
    pub submitted_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reviewed_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
