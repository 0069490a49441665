//! Changes: every write to the directory as a typed, serializable intent (DESIGN §6).
//!
//! A change carries every id and timestamp it needs, decided by the caller *before* it is applied
//! (the envelope's `at_ms` is the only clock), so applying it is a pure function of the directory's
//! state: the single-node path and, later, every replica consuming a shared log reach the same
//! outcome. The serialized form is versioned by [`ChangeEnvelope::format`]; changing the meaning of
//! an existing variant needs a new format number.

use super::domain::{Enrollment, normalize_email, validate_domain, validate_token};
use super::ids::{
    validate_email, validate_labels, validate_metadata, validate_name, validate_role, validate_slug,
    validate_url, validate_user_id,
};
use super::invitation::{Invitee, validate_code_hash, validate_teams};
use super::records::{OrgSettings, OrgSettingsPatch, Owner};
use super::security::SecuritySettings;
use super::tokens::{validate_scopes, validate_secret_hash, validate_token_id};
use super::{ADMIN_ROLE, Limits, Refusal};
use serde::{Deserialize, Serialize};

/// The only change format this build writes and applies.
pub const CHANGE_FORMAT: u32 = 1;

/// A change with who asked for it and when. `at_ms` (Unix milliseconds) is the time recorded on
/// anything the change creates.
///
/// Everything apply reads besides the directory and the policy is in here, so a replica applying
/// the same envelope under the same policy reaches the same outcome. The fields added after
/// format 1 was first written (`operator`, `request_id`, `policy`) default when absent, so
/// envelopes and change-log records written before them still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeEnvelope {
    pub format: u32,
    pub actor: String,
    pub at_ms: u64,
    pub change: Change,
    /// Whether the actor acts for the operator (the caller came in on the Unix socket). It
    /// decides operator-only rules (`VerifyDomain`, `CreateOrg` when users may not create orgs,
    /// marking an email verified), so it travels with the change rather than with the
    /// connection.
    #[serde(default, skip_serializing_if = "is_false")]
    pub operator: bool,
    /// The caller's request id, when it gave or was given one (for retries and audit). Apply
    /// never reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The hash of the policy the submitter judged the change with (`CompiledPolicy::hash`), for
    /// audit. Apply never reads it: the policy it judges with is the one its caller pins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ChangeEnvelope {
    /// An envelope in the current format, from a caller that is not the operator.
    pub fn new(actor: impl Into<String>, at_ms: u64, change: Change) -> Self {
        Self {
            format: CHANGE_FORMAT,
            actor: actor.into(),
            at_ms,
            change,
            operator: false,
            request_id: None,
            policy: None,
        }
    }

    /// The same envelope from a caller acting for the operator (or not).
    pub fn as_operator(mut self, operator: bool) -> Self {
        self.operator = operator;
        self
    }

    /// The same envelope judged under the policy with this hash.
    pub fn with_policy(mut self, hash: impl Into<String>) -> Self {
        self.policy = Some(hash.into());
        self
    }
}

/// How many records of each kind an import brought in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportCounts {
    pub users: u64,
    pub orgs: u64,
    pub memberships: u64,
    pub teams: u64,
    pub team_members: u64,
    pub apps: u64,
    pub team_grants: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub invitations: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub domains: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub membership_requests: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tokens: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub collaborators: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub app_versions: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub security: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One write to the directory. Optional fields of `UpdateOrg` mean "leave as is"; for the optional
/// strings, `Some("")` clears the field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// Create or replace a user's profile (the IdP is the source of truth).
    ///
    /// `email_verified`: `Some(true)` records that the login layer verified the email (only
    /// the operator may say so), `Some(false)` drops a verification, `None` keeps it while the
    /// email stays the same (a changed email is never verified by itself).
    UpsertUser {
        id: String,
        email: String,
        #[serde(default)]
        username: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        email_verified: Option<bool>,
    },
    /// Create an org; the actor (an existing user) becomes its first admin.
    CreateOrg {
        id: String,
        name: String,
        #[serde(default)]
        billing_email: Option<String>,
        plan: String,
        #[serde(default)]
        logo_url: Option<String>,
        #[serde(default)]
        public_metadata: serde_json::Value,
        #[serde(default)]
        private_metadata: serde_json::Value,
        #[serde(default)]
        settings: OrgSettings,
    },
    UpdateOrg {
        id: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        billing_email: Option<String>,
        #[serde(default)]
        plan: Option<String>,
        #[serde(default)]
        logo_url: Option<String>,
        #[serde(default)]
        public_metadata: Option<serde_json::Value>,
        #[serde(default)]
        private_metadata: Option<serde_json::Value>,
        /// Replaces every setting (the format-1 meaning, kept for change logs written with it).
        #[serde(default)]
        settings: Option<OrgSettings>,
        /// Changes only the settings it names.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settings_patch: Option<OrgSettingsPatch>,
    },
    /// Delete an org with its memberships, teams and grants; refused while it owns apps.
    DeleteOrg {
        id: String,
    },
    AddMember {
        org: String,
        user: String,
        role: String,
        /// Version of the org's terms of use the user accepted on joining, recorded with `at_ms`.
        #[serde(default)]
        terms_version: Option<String>,
    },
    ChangeRole {
        org: String,
        user: String,
        role: String,
    },
    /// Remove a member and, with it, their team memberships in that org.
    RemoveMember {
        org: String,
        user: String,
    },
    CreateTeam {
        org: String,
        team: String,
        name: String,
    },
    RenameTeam {
        org: String,
        team: String,
        name: String,
    },
    /// Delete a team with its members and grants.
    DeleteTeam {
        org: String,
        team: String,
    },
    AddTeamMember {
        org: String,
        team: String,
        user: String,
    },
    RemoveTeamMember {
        org: String,
        team: String,
        user: String,
    },
    GrantApp {
        org: String,
        team: String,
        app: String,
    },
    RevokeApp {
        org: String,
        team: String,
        app: String,
    },
    CreateApp {
        id: String,
        owner: Owner,
        name: String,
        #[serde(default)]
        labels: Vec<String>,
    },
    /// Delete an app and every team grant on it.
    DeleteApp {
        id: String,
    },
    /// Replace an app's labels; label-scoped rules follow from this change's revision on.
    SetAppLabels {
        app: String,
        labels: Vec<String>,
    },
    /// Move a personal app to an org, optionally renaming it. The id stays.
    TransferApp {
        app: String,
        to_org: String,
        #[serde(default)]
        rename: Option<String>,
    },
    /// Written to the change log by an import; never applied through `apply`.
    Import {
        counts: ImportCounts,
    },
    /// Invite an email or an existing user to `org` as `role` (and into `teams` on accepting).
    /// Only the code's hash travels in the change; it expires at `expires_at_ms`.
    CreateInvitation {
        id: String,
        org: String,
        invitee: Invitee,
        role: String,
        #[serde(default)]
        teams: Vec<String>,
        code_sha256: String,
        expires_at_ms: u64,
    },
    /// Withdraw a pending invitation.
    RevokeInvitation {
        org: String,
        id: String,
    },
    /// The invitee (the actor) accepts, presenting the code (by its hash): the membership and
    /// the team memberships are created with it. `terms_version` is the org's terms-of-use
    /// version the invitee accepted, required when the org has one.
    AcceptInvitation {
        code_sha256: String,
        #[serde(default)]
        terms_version: Option<String>,
    },
    /// The invitee (the actor) declines, presenting the code (by its hash).
    DeclineInvitation {
        code_sha256: String,
    },
    /// Delete an org even though it still owns apps: the apps (and their grants) go with it.
    ForceDeleteOrg {
        id: String,
    },
    /// The actor leaves `org` (and its teams); the last admin cannot.
    LeaveOrg {
        org: String,
    },
    /// Claim an email domain for `org`, unverified, with the token it will publish.
    AddDomain {
        org: String,
        domain: String,
        verification_token: String,
        enrollment: Enrollment,
        role: String,
    },
    /// Mark a domain verified: only the operator (after checking the token) may.
    VerifyDomain {
        org: String,
        domain: String,
        verification_token: String,
    },
    SetDomainEnrollment {
        org: String,
        domain: String,
        enrollment: Enrollment,
    },
    RemoveDomain {
        org: String,
        domain: String,
    },
    /// The actor joins `org` through a verified domain in `automatic_invitation` mode that
    /// their email is on, with the domain's role.
    JoinByDomain {
        org: String,
    },
    /// The actor asks to join `org` through a verified domain in `automatic_suggestion` mode
    /// that their email is on.
    RequestMembership {
        id: String,
        org: String,
    },
    /// Approve a pending request: the requester becomes a member with `role` (or the
    /// domain's role).
    ApproveMembershipRequest {
        org: String,
        id: String,
        #[serde(default)]
        role: Option<String>,
    },
    RejectMembershipRequest {
        org: String,
        id: String,
    },
    /// Issue an API token: a personal access token (owner a user) or an org API key (owner an
    /// org, acting with `role` there). The secret was generated by the caller; only its hash is
    /// in the change.
    CreateToken {
        id: String,
        owner: Owner,
        name: String,
        #[serde(default)]
        role: Option<String>,
        scopes: Vec<String>,
        #[serde(default)]
        expires_at_ms: Option<u64>,
        secret_hash: String,
    },
    /// Revoke a token; checks presenting it are denied from this revision on.
    RevokeToken {
        id: String,
    },
    /// Give a user outside an org app's org `role` on that one app.
    AddCollaborator {
        app: String,
        user: String,
        role: String,
    },
    RemoveCollaborator {
        app: String,
        user: String,
    },
    /// Submit a version of an org app for publishing; it waits for an admin's review.
    SubmitAppVersion {
        app: String,
        version: String,
        #[serde(default)]
        note: Option<String>,
    },
    /// Approve or reject a pending version.
    ReviewAppVersion {
        app: String,
        version: String,
        approve: bool,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Replace an org's security settings (password policy, identity providers).
    SetSecuritySettings {
        org: String,
        settings: SecuritySettings,
    },
    /// The actor, authenticated by the org's identity provider `idp`, joins the org with that
    /// IdP's auto-join role. Submitted by the app's login layer on the user's behalf.
    SsoJoin {
        org: String,
        idp: String,
    },
}

/// A permission the actor must hold: `action` on `resource` in `org`, asked of the authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub org: String,
    pub resource: String,
    pub action: String,
}

impl Permission {
    pub fn new(org: &str, resource: impl Into<String>, action: &str) -> Self {
        Self {
            org: org.to_string(),
            resource: resource.into(),
            action: action.to_string(),
        }
    }

    /// The refusal for an actor that lacks this permission.
    pub fn denied(&self) -> Refusal {
        Refusal::PermissionDenied {
            permission: format!("`{}` on `{}`", self.action, self.resource),
            org: self.org.clone(),
        }
    }
}

/// Who may issue or revoke token `id` of `owner`: the user itself, or `token:manage` in the org.
fn token_permission(actor: &str, owner: &Owner, id: &str) -> Result<Option<Permission>, Refusal> {
    match owner {
        Owner::User(user) if user == actor => Ok(None),
        Owner::User(user) => Err(Refusal::PermissionDenied {
            permission: format!("ownership of personal token `{id}` (owned by `{user}`)"),
            org: String::new(),
        }),
        Owner::Org(org) => Ok(Some(Permission::new(org, "org", "token:manage"))),
    }
}

fn owner_only(actor: &str, owner: &str, app: &str) -> Result<(), Refusal> {
    if actor == owner {
        Ok(())
    } else {
        Err(Refusal::PermissionDenied {
            permission: format!("ownership of personal app `{app}` (owned by `{owner}`)"),
            org: String::new(),
        })
    }
}

impl Change {
    /// Short name of the variant, as serialized in its `type` tag (for logs and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            Change::UpsertUser { .. } => "upsert_user",
            Change::CreateOrg { .. } => "create_org",
            Change::UpdateOrg { .. } => "update_org",
            Change::DeleteOrg { .. } => "delete_org",
            Change::AddMember { .. } => "add_member",
            Change::ChangeRole { .. } => "change_role",
            Change::RemoveMember { .. } => "remove_member",
            Change::CreateTeam { .. } => "create_team",
            Change::RenameTeam { .. } => "rename_team",
            Change::DeleteTeam { .. } => "delete_team",
            Change::AddTeamMember { .. } => "add_team_member",
            Change::RemoveTeamMember { .. } => "remove_team_member",
            Change::GrantApp { .. } => "grant_app",
            Change::RevokeApp { .. } => "revoke_app",
            Change::CreateApp { .. } => "create_app",
            Change::DeleteApp { .. } => "delete_app",
            Change::SetAppLabels { .. } => "set_app_labels",
            Change::TransferApp { .. } => "transfer_app",
            Change::Import { .. } => "import",
            Change::CreateInvitation { .. } => "create_invitation",
            Change::RevokeInvitation { .. } => "revoke_invitation",
            Change::AcceptInvitation { .. } => "accept_invitation",
            Change::DeclineInvitation { .. } => "decline_invitation",
            Change::ForceDeleteOrg { .. } => "force_delete_org",
            Change::LeaveOrg { .. } => "leave_org",
            Change::AddDomain { .. } => "add_domain",
            Change::VerifyDomain { .. } => "verify_domain",
            Change::SetDomainEnrollment { .. } => "set_domain_enrollment",
            Change::RemoveDomain { .. } => "remove_domain",
            Change::JoinByDomain { .. } => "join_by_domain",
            Change::RequestMembership { .. } => "request_membership",
            Change::ApproveMembershipRequest { .. } => "approve_membership_request",
            Change::RejectMembershipRequest { .. } => "reject_membership_request",
            Change::CreateToken { .. } => "create_token",
            Change::RevokeToken { .. } => "revoke_token",
            Change::AddCollaborator { .. } => "add_collaborator",
            Change::RemoveCollaborator { .. } => "remove_collaborator",
            Change::SubmitAppVersion { .. } => "submit_app_version",
            Change::ReviewAppVersion { .. } => "review_app_version",
            Change::SetSecuritySettings { .. } => "set_security_settings",
            Change::SsoJoin { .. } => "sso_join",
        }
    }

    /// The permission `actor` must hold for this change, if any.
    ///
    /// `app_owner` is the current owner of the app a `DeleteApp` or `TransferApp` refers to, or of
    /// the token a `RevokeToken` refers to (the caller looks it up; other changes ignore it): whether a personal-ownership rule or an org
    /// permission applies depends on it. Ownership rules are decided here and come back as
    /// `Err(PermissionDenied)`; an org permission comes back for the authorizer to decide.
    ///
    /// Catalog:
    /// - `UpdateOrg` → `org:update` on `org`; `DeleteOrg` → `org:delete` on `org`.
    /// - `AddMember`, `ChangeRole`, `RemoveMember` → `member:manage` on `org`.
    /// - team changes and grants → `team:manage` on `org`.
    /// - `CreateApp` for an org → `app:create` on `org`; for a user → the actor must be that user.
    /// - `DeleteApp` of an org app → `app:delete` on `apps/<app>` in the owning org; of a personal
    ///   app → the actor must be the owner.
    /// - `SetAppLabels` of an org app → `app:label` on `apps/<app>` in the owning org (labels
    ///   decide label-scoped rules, so relabelling is an admin's act in the default policy); of
    ///   a personal app → the actor must be the owner.
    /// - `TransferApp` → the actor must own the personal app and hold `app:transfer` on `org` in
    ///   the destination org.
    /// - `UpsertUser`, `CreateOrg` → nothing: users carry no rights by themselves, and who may
    ///   create orgs (instance limits, plans) is checked by `apply`: a plan other than the
    ///   default needs the operator, and so does marking an email verified.
    /// - `UpdateOrg` that changes the plan → also `billing:manage` on `org` (or the operator),
    ///   checked by `apply`.
    /// - `Import` → nothing here; imports never go through `apply`.
    /// - `CreateInvitation`, `RevokeInvitation` → `member:invite` on `org`.
    /// - `AcceptInvitation`, `DeclineInvitation` → nothing here: the actor must be the invitee,
    ///   which `apply` checks against the invitation the code names.
    /// - `ForceDeleteOrg` → `org:force_delete` on `org`; `LeaveOrg` → `org:leave` on `org`.
    /// - `AddDomain`, `SetDomainEnrollment`, `RemoveDomain` → `domain:manage` on `org`;
    ///   `VerifyDomain` → only the operator (checked by `apply`); `JoinByDomain` and
    ///   `RequestMembership` → nothing here (the actor's email must be on a verified domain);
    ///   approving or rejecting a request → `member:manage` on `org`.
    /// - `AddCollaborator`, `RemoveCollaborator` → `collaborator:manage` on `apps/<app>` in the
    ///   app's org (personal apps have no collaborators).
    /// - `SubmitAppVersion` → `app:publish`, `ReviewAppVersion` → `app:approve`, on `apps/<app>`
    ///   in the app's org (personal apps are not reviewed).
    /// - `SetSecuritySettings` → `security:manage` on `org`; `SsoJoin` → nothing from the
    ///   policy: the org's settings must name the IdP with an auto-join role.
    /// - `CreateToken`, `RevokeToken` of a personal token → the actor must be its user; of an org
    ///   key → `token:manage` on `org` in that org.
    pub fn required_permission(
        &self,
        actor: &str,
        app_owner: Option<&Owner>,
    ) -> Result<Option<Permission>, Refusal> {
        let perm = match self {
            Change::UpsertUser { .. } | Change::CreateOrg { .. } | Change::Import { .. } => None,
            Change::UpdateOrg { id, .. } => Some(Permission::new(id, "org", "org:update")),
            Change::DeleteOrg { id } => Some(Permission::new(id, "org", "org:delete")),
            Change::AddMember { org, .. }
            | Change::ChangeRole { org, .. }
            | Change::RemoveMember { org, .. } => Some(Permission::new(org, "org", "member:manage")),
            Change::CreateTeam { org, .. }
            | Change::RenameTeam { org, .. }
            | Change::DeleteTeam { org, .. }
            | Change::AddTeamMember { org, .. }
            | Change::RemoveTeamMember { org, .. }
            | Change::GrantApp { org, .. }
            | Change::RevokeApp { org, .. } => Some(Permission::new(org, "org", "team:manage")),
            Change::CreateApp { id, owner, .. } => match owner {
                Owner::Org(org) => Some(Permission::new(org, "org", "app:create")),
                Owner::User(user) => {
                    owner_only(actor, user, id)?;
                    None
                }
            },
            Change::SetAppLabels { app, .. } => match app_owner {
                Some(Owner::Org(org)) => Some(Permission::new(org, format!("apps/{app}"), "app:label")),
                Some(Owner::User(user)) => {
                    owner_only(actor, user, app)?;
                    None
                }
                None => return Err(Refusal::not_found(format!("app `{app}`"))),
            },
            Change::DeleteApp { id } => match app_owner {
                Some(Owner::Org(org)) => Some(Permission::new(org, format!("apps/{id}"), "app:delete")),
                Some(Owner::User(user)) => {
                    owner_only(actor, user, id)?;
                    None
                }
                None => return Err(Refusal::not_found(format!("app `{id}`"))),
            },
            Change::TransferApp { app, to_org, .. } => match app_owner {
                Some(Owner::User(user)) => {
                    owner_only(actor, user, app)?;
                    Some(Permission::new(to_org, "org", "app:transfer"))
                }
                Some(Owner::Org(org)) => {
                    return Err(Refusal::precondition(format!(
                        "app `{app}` belongs to org `{org}`; only personal apps can be transferred"
                    )));
                }
                None => return Err(Refusal::not_found(format!("app `{app}`"))),
            },
            Change::CreateInvitation { org, .. } | Change::RevokeInvitation { org, .. } => {
                Some(Permission::new(org, "org", "member:invite"))
            }
            Change::AcceptInvitation { .. } | Change::DeclineInvitation { .. } => None,
            Change::ForceDeleteOrg { id } => Some(Permission::new(id, "org", "org:force_delete")),
            Change::LeaveOrg { org } => Some(Permission::new(org, "org", "org:leave")),
            Change::AddDomain { org, .. }
            | Change::SetDomainEnrollment { org, .. }
            | Change::RemoveDomain { org, .. } => Some(Permission::new(org, "org", "domain:manage")),
            Change::VerifyDomain { .. } | Change::JoinByDomain { .. } | Change::RequestMembership { .. } => {
                None
            }
            Change::ApproveMembershipRequest { org, .. } | Change::RejectMembershipRequest { org, .. } => {
                Some(Permission::new(org, "org", "member:manage"))
            }
            Change::CreateToken { id, owner, .. } => token_permission(actor, owner, id)?,
            Change::RevokeToken { id } => match app_owner {
                Some(owner) => token_permission(actor, owner, id)?,
                None => return Err(Refusal::not_found(format!("token `{id}`"))),
            },
            Change::AddCollaborator { app, .. } | Change::RemoveCollaborator { app, .. } => match app_owner {
                Some(Owner::Org(org)) => {
                    Some(Permission::new(org, format!("apps/{app}"), "collaborator:manage"))
                }
                Some(Owner::User(_)) => {
                    return Err(Refusal::precondition(format!(
                        "app `{app}` is a personal app; collaborators are for org apps (transfer it to an org first)"
                    )));
                }
                None => return Err(Refusal::not_found(format!("app `{app}`"))),
            },
            Change::SetSecuritySettings { org, .. } => Some(Permission::new(org, "org", "security:manage")),
            // The org's own settings authorize it (an IdP with auto-join); checked by apply.
            Change::SsoJoin { .. } => None,
            Change::SubmitAppVersion { app, .. } | Change::ReviewAppVersion { app, .. } => {
                let action = if matches!(self, Change::SubmitAppVersion { .. }) {
                    "app:publish"
                } else {
                    "app:approve"
                };
                match app_owner {
                    Some(Owner::Org(org)) => Some(Permission::new(org, format!("apps/{app}"), action)),
                    Some(Owner::User(_)) => {
                        return Err(Refusal::precondition(format!(
                            "app `{app}` is a personal app; publishing review is for org apps"
                        )));
                    }
                    None => return Err(Refusal::not_found(format!("app `{app}`"))),
                }
            }
        };
        Ok(perm)
    }

    /// Checks that depend only on the change itself: id shapes, lengths, formats. Role existence
    /// and everything about the directory's state are checked by `apply`.
    pub fn validate(&self) -> Result<(), Refusal> {
        match self {
            Change::UpsertUser {
                id,
                email,
                username,
                email_verified: _,
            } => {
                validate_user_id("id", id)?;
                // Only an address with a canonical form is stored: one whose domain would
                // fold into another's (`ban\u{212A}.io`) is refused, never matched.
                normalize_email("email", email)?;
                if let Some(name) = username {
                    validate_name("username", name)?;
                }
            }
            Change::CreateOrg {
                id,
                name,
                billing_email,
                plan,
                logo_url,
                public_metadata,
                private_metadata,
                settings,
            } => {
                validate_slug("id", id)?;
                validate_name("name", name)?;
                settings.validate()?;
                if let Some(email) = billing_email {
                    validate_email("billing_email", email)?;
                }
                validate_slug("plan", plan)?;
                if let Some(url) = logo_url {
                    validate_url("logo_url", url)?;
                }
                validate_metadata("public_metadata", public_metadata)?;
                validate_metadata("private_metadata", private_metadata)?;
            }
            Change::UpdateOrg {
                id,
                name,
                billing_email,
                plan,
                logo_url,
                public_metadata,
                private_metadata,
                settings,
                settings_patch,
            } => {
                validate_slug("id", id)?;
                if let Some(settings) = settings {
                    settings.validate()?;
                }
                if let Some(patch) = settings_patch {
                    patch.validate()?;
                }
                if let Some(name) = name {
                    validate_name("name", name)?;
                }
                if let Some(email) = billing_email.as_deref().filter(|e| !e.is_empty()) {
                    validate_email("billing_email", email)?;
                }
                if let Some(plan) = plan {
                    validate_slug("plan", plan)?;
                }
                if let Some(url) = logo_url.as_deref().filter(|u| !u.is_empty()) {
                    validate_url("logo_url", url)?;
                }
                if let Some(meta) = public_metadata {
                    validate_metadata("public_metadata", meta)?;
                }
                if let Some(meta) = private_metadata {
                    validate_metadata("private_metadata", meta)?;
                }
            }
            Change::DeleteOrg { id } => validate_slug("id", id)?,
            Change::AddMember {
                org,
                user,
                role,
                terms_version,
            } => {
                validate_slug("org", org)?;
                validate_user_id("user", user)?;
                validate_role("role", role)?;
                if let Some(v) = terms_version {
                    validate_slug("terms_version", v)?;
                }
            }
            Change::ChangeRole { org, user, role } => {
                validate_slug("org", org)?;
                validate_user_id("user", user)?;
                validate_role("role", role)?;
            }
            Change::RemoveMember { org, user } => {
                validate_slug("org", org)?;
                validate_user_id("user", user)?;
            }
            Change::CreateTeam { org, team, name } | Change::RenameTeam { org, team, name } => {
                validate_slug("org", org)?;
                validate_slug("team", team)?;
                validate_name("name", name)?;
            }
            Change::DeleteTeam { org, team } => {
                validate_slug("org", org)?;
                validate_slug("team", team)?;
            }
            Change::AddTeamMember { org, team, user } | Change::RemoveTeamMember { org, team, user } => {
                validate_slug("org", org)?;
                validate_slug("team", team)?;
                validate_user_id("user", user)?;
            }
            Change::GrantApp { org, team, app } | Change::RevokeApp { org, team, app } => {
                validate_slug("org", org)?;
                validate_slug("team", team)?;
                validate_slug("app", app)?;
            }
            Change::CreateApp {
                id,
                owner,
                name,
                labels,
            } => {
                validate_slug("id", id)?;
                match owner {
                    Owner::User(user) => validate_user_id("owner", user)?,
                    Owner::Org(org) => validate_slug("owner", org)?,
                }
                validate_name("name", name)?;
                validate_labels("labels", labels)?;
            }
            Change::DeleteApp { id } => validate_slug("id", id)?,
            Change::SetAppLabels { app, labels } => {
                validate_slug("app", app)?;
                validate_labels("labels", labels)?;
            }
            Change::TransferApp { app, to_org, rename } => {
                validate_slug("app", app)?;
                validate_slug("to_org", to_org)?;
                if let Some(name) = rename {
                    validate_name("rename", name)?;
                }
            }
            Change::Import { .. } => {
                return Err(Refusal::invalid(
                    "change",
                    "imports come only from a dump, through `import`",
                ));
            }
            Change::CreateInvitation {
                id,
                org,
                invitee,
                role,
                teams,
                code_sha256,
                expires_at_ms: _,
            } => {
                validate_slug("id", id)?;
                validate_slug("org", org)?;
                invitee.validate()?;
                validate_role("role", role)?;
                validate_teams("teams", teams)?;
                validate_code_hash("code", code_sha256)?;
            }
            Change::RevokeInvitation { org, id } => {
                validate_slug("org", org)?;
                validate_slug("id", id)?;
            }
            Change::AcceptInvitation {
                code_sha256,
                terms_version,
            } => {
                validate_code_hash("code", code_sha256)?;
                if let Some(v) = terms_version {
                    validate_slug("terms_version", v)?;
                }
            }
            Change::DeclineInvitation { code_sha256 } => validate_code_hash("code", code_sha256)?,
            Change::ForceDeleteOrg { id } => validate_slug("id", id)?,
            Change::LeaveOrg { org } => validate_slug("org", org)?,
            Change::AddDomain {
                org,
                domain,
                verification_token,
                enrollment: _,
                role,
            } => {
                validate_slug("org", org)?;
                validate_domain("domain", domain)?;
                validate_token("verification_token", verification_token)?;
                validate_role("role", role)?;
            }
            Change::VerifyDomain {
                org,
                domain,
                verification_token,
            } => {
                validate_slug("org", org)?;
                validate_domain("domain", domain)?;
                validate_token("verification_token", verification_token)?;
            }
            Change::SetDomainEnrollment { org, domain, .. } | Change::RemoveDomain { org, domain } => {
                validate_slug("org", org)?;
                validate_domain("domain", domain)?;
            }
            Change::JoinByDomain { org } => validate_slug("org", org)?,
            Change::RequestMembership { id, org } | Change::RejectMembershipRequest { org, id } => {
                validate_slug("org", org)?;
                validate_slug("id", id)?;
            }
            Change::ApproveMembershipRequest { org, id, role } => {
                validate_slug("org", org)?;
                validate_slug("id", id)?;
                if let Some(role) = role {
                    validate_role("role", role)?;
                }
            }
            Change::CreateToken {
                id,
                owner,
                name,
                role,
                scopes,
                expires_at_ms: _,
                secret_hash,
            } => {
                validate_token_id("id", id)?;
                match (owner, role) {
                    (Owner::User(user), None) => validate_user_id("owner", user)?,
                    (Owner::User(_), Some(_)) => {
                        return Err(Refusal::invalid(
                            "role",
                            "personal tokens act as their user; only org keys take a role",
                        ));
                    }
                    (Owner::Org(org), Some(role)) => {
                        validate_slug("owner", org)?;
                        validate_role("role", role)?;
                    }
                    (Owner::Org(_), None) => {
                        return Err(Refusal::invalid(
                            "role",
                            "an org key needs the org role it acts with",
                        ));
                    }
                }
                validate_name("name", name)?;
                validate_scopes("scopes", scopes)?;
                validate_secret_hash("secret_hash", secret_hash)?;
            }
            Change::RevokeToken { id } => validate_token_id("id", id)?,
            Change::AddCollaborator { app, user, role } => {
                validate_slug("app", app)?;
                validate_user_id("user", user)?;
                validate_role("role", role)?;
            }
            Change::RemoveCollaborator { app, user } => {
                validate_slug("app", app)?;
                validate_user_id("user", user)?;
            }
            Change::SubmitAppVersion { app, version, note } => {
                validate_slug("app", app)?;
                validate_slug("version", version)?;
                if let Some(n) = note {
                    validate_name("note", n)?;
                }
            }
            Change::ReviewAppVersion {
                app,
                version,
                approve: _,
                reason,
            } => {
                validate_slug("app", app)?;
                validate_slug("version", version)?;
                if let Some(r) = reason {
                    validate_name("reason", r)?;
                }
            }
            Change::SetSecuritySettings { org, settings } => {
                validate_slug("org", org)?;
                settings.validate()?;
            }
            Change::SsoJoin { org, idp } => {
                validate_slug("org", org)?;
                validate_slug("idp", idp)?;
            }
        }
        Ok(())
    }
}

/// What `apply` needs from the outside world, all of it deterministic for a given policy.
pub struct ApplyContext<'a> {
    /// `authorize(actor, org, resource, action)`: does the actor hold the permission? In the
    /// daemon this is the engine's check against the current policy and index.
    pub authorize: &'a dyn Fn(&str, &str, &str, &str) -> bool,
    /// Is this a role the policy defines? Roles live in the policy files, not in code.
    pub is_role: &'a dyn Fn(&str) -> bool,
    /// Instance limits and plans in force (from the same policy snapshot).
    pub limits: &'a Limits,
    /// Whether the actor acts for the operator (a caller on the Unix socket): instance
    /// switches such as `users_can_create_orgs` and forced deletes do not bind it.
    pub operator: bool,
}

/// No limits, for contexts without a policy at hand.
static NO_LIMITS: std::sync::LazyLock<Limits> = std::sync::LazyLock::new(Limits::default);

/// The default roles (Clarifai's), for callers without a policy at hand.
pub const DEFAULT_ROLES: [&str; 4] = [ADMIN_ROLE, "org_contributor", "team_contributor", "org_user"];

/// Whether `role` is one of [`DEFAULT_ROLES`].
pub fn is_default_role(role: &str) -> bool {
    DEFAULT_ROLES.contains(&role)
}

fn allow_everything(_: &str, _: &str, _: &str, _: &str) -> bool {
    true
}

impl<'a> ApplyContext<'a> {
    pub fn new(
        authorize: &'a dyn Fn(&str, &str, &str, &str) -> bool,
        is_role: &'a dyn Fn(&str) -> bool,
    ) -> Self {
        Self {
            authorize,
            is_role,
            limits: &NO_LIMITS,
            operator: false,
        }
    }

    /// The same context judged against `limits`.
    pub fn with_limits(mut self, limits: &'a Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The same context for a caller acting as the operator (or not).
    pub fn as_operator(mut self, operator: bool) -> Self {
        self.operator = operator;
        self
    }

    /// Every permission granted, default roles: for seeding (`--demo`) and operator tools that
    /// already run with full rights. Invariants still hold; only authorization is skipped.
    pub fn trusted() -> ApplyContext<'static> {
        ApplyContext {
            authorize: &allow_everything,
            is_role: &is_default_role,
            limits: &NO_LIMITS,
            operator: true,
        }
    }

    /// Ask the authorizer for `perm` on behalf of `actor`.
    pub fn check(&self, actor: &str, perm: &Permission) -> Result<(), Refusal> {
        if (self.authorize)(actor, &perm.org, &perm.resource, &perm.action) {
            Ok(())
        } else {
            Err(perm.denied())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_serialize_with_a_type_tag() {
        let env = ChangeEnvelope::new(
            "alice",
            5,
            Change::AddMember {
                org: "acme".into(),
                user: "bob".into(),
                role: "org_user".into(),
                terms_version: None,
            },
        );
        let json = serde_json::to_string(&env).unwrap();
        assert!(json.contains(r#""type":"add_member""#), "{json}");
        let back: ChangeEnvelope = serde_json::from_str(&json).unwrap();
        assert_eq!(back, env);
    }

    #[test]
    fn permission_catalog() {
        let upd = Change::UpdateOrg {
            id: "acme".into(),
            name: None,
            billing_email: None,
            plan: None,
            logo_url: None,
            public_metadata: None,
            private_metadata: None,
            settings: None,
            settings_patch: None,
        };
        let p = upd.required_permission("x", None).unwrap().unwrap();
        assert_eq!(
            (p.org.as_str(), p.resource.as_str(), p.action.as_str()),
            ("acme", "org", "org:update")
        );

        let personal = Owner::User("alice".into());
        let del = Change::DeleteApp { id: "sb".into() };
        assert_eq!(del.required_permission("alice", Some(&personal)).unwrap(), None);
        assert!(matches!(
            del.required_permission("bob", Some(&personal)),
            Err(Refusal::PermissionDenied { .. })
        ));
        let org_owned = Owner::Org("acme".into());
        let p = del.required_permission("bob", Some(&org_owned)).unwrap().unwrap();
        assert_eq!(
            (p.resource.as_str(), p.action.as_str()),
            ("apps/sb", "app:delete")
        );

        let tr = Change::TransferApp {
            app: "sb".into(),
            to_org: "acme".into(),
            rename: None,
        };
        let p = tr.required_permission("alice", Some(&personal)).unwrap().unwrap();
        assert_eq!((p.org.as_str(), p.action.as_str()), ("acme", "app:transfer"));
        assert!(tr.required_permission("bob", Some(&personal)).is_err());
        assert!(matches!(
            tr.required_permission("alice", Some(&org_owned)),
            Err(Refusal::FailedPrecondition { .. })
        ));

        let mk = Change::CreateApp {
            id: "x".into(),
            owner: personal,
            name: "X".into(),
            labels: vec![],
        };
        assert_eq!(mk.required_permission("alice", None).unwrap(), None);
        let denied = mk.required_permission("bob", None).unwrap_err();
        assert!(denied.to_string().contains("alice"), "{denied}");
    }

    #[test]
    fn validate_names_the_field() {
        let c = Change::CreateTeam {
            org: "acme".into(),
            team: "Bad Team".into(),
            name: "T".into(),
        };
        match c.validate() {
            Err(Refusal::InvalidArgument { field, .. }) => assert_eq!(field, "team"),
            other => panic!("{other:?}"),
        }
    }
}
