//! Between protobuf messages and directory records. Request-side conversions refuse what
//! the domain cannot represent (INVALID_ARGUMENT naming the proto field) instead of
//! dropping it silently.

use crate::api::pb;
use crate::directory::{App, Membership, Org, OrgSettings, OrgSettingsPatch, Owner, Team, User};
use tonic::Status;

/// `""` means "not set" for optional text fields of create requests.
pub fn opt(s: String) -> Option<String> {
    if s.is_empty() { None } else { Some(s) }
}

/// Metadata arrives as JSON text; empty means null (no metadata).
pub fn metadata(field: &str, text: &str) -> Result<serde_json::Value, Status> {
    if text.is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(text).map_err(|e| Status::invalid_argument(format!("{field}: not valid JSON: {e}")))
}

fn metadata_text(value: &serde_json::Value) -> String {
    if value.is_null() {
        String::new()
    } else {
        value.to_string()
    }
}

/// Settings of a new org: an absent field takes its default (see `OrgSettings` in the proto;
/// `deletable` defaults to true with or without other settings).
pub fn settings_from_pb(s: pb::OrgSettings) -> OrgSettings {
    let mut settings = OrgSettings::default();
    patch_from_pb(s).apply_to(&mut settings);
    settings
}

/// An update of an org's settings: only the fields present change.
pub fn patch_from_pb(s: pb::OrgSettings) -> OrgSettingsPatch {
    OrgSettingsPatch {
        membership_limit: s.max_memberships.map(|n| (n != 0).then_some(n)),
        deletable: s.deletable,
        terms_version: s.terms_version.map(opt),
    }
}

pub fn org_pb(org: Org, member_count: u32) -> pb::Org {
    pb::Org {
        public_metadata: metadata_text(&org.public_metadata),
        private_metadata: metadata_text(&org.private_metadata),
        settings: Some(pb::OrgSettings {
            max_memberships: Some(org.settings.membership_limit.unwrap_or(0)),
            deletable: Some(org.settings.deletable),
            terms_version: Some(org.settings.terms_version.unwrap_or_default()),
        }),
        org_id: org.id,
        name: org.name,
        billing_email: org.billing_email.unwrap_or_default(),
        plan: org.plan,
        logo_url: org.logo_url.unwrap_or_default(),
        created_by: org.created_by,
        created_at_unix_ms: org.created_at_ms,
        updated_at_unix_ms: org.updated_at_ms.unwrap_or(org.created_at_ms),
        member_count,
    }
}

pub fn member_pb(m: Membership, team_ids: Vec<String>) -> pb::Member {
    pb::Member {
        terms_accepted_at_unix_ms: m.terms_accepted.as_ref().map_or(0, |t| t.at_ms),
        terms_version: m.terms_accepted.map(|t| t.version).unwrap_or_default(),
        org_id: m.org,
        user_id: m.user,
        role: m.role,
        team_ids,
        created_at_unix_ms: m.joined_at_ms,
        updated_at_unix_ms: m.updated_at_ms.unwrap_or(m.joined_at_ms),
    }
}

/// `member_ids` may be empty while `member_count` is not (`ListTeams` with `omit_member_ids`).
pub fn team_pb(team: Team, member_ids: Vec<String>, member_count: u32, apps: Vec<String>) -> pb::Team {
    pb::Team {
        org_id: team.org,
        team_id: team.id,
        name: team.name,
        member_ids,
        member_count,
        app_grants: apps
            .into_iter()
            .map(|app_id| pb::AppGrant {
                app_id,
                role: String::new(),
            })
            .collect(),
    }
}

pub fn owner_pb(owner: Owner) -> pb::Owner {
    pb::Owner {
        owner: Some(match owner {
            Owner::User(id) => pb::owner::Owner::UserId(id),
            Owner::Org(id) => pb::owner::Owner::OrgId(id),
        }),
    }
}

/// An owner is required wherever it appears.
pub fn owner_from_pb(owner: Option<pb::Owner>) -> Result<Owner, Status> {
    match owner.and_then(|o| o.owner) {
        Some(pb::owner::Owner::UserId(id)) => Ok(Owner::User(id)),
        Some(pb::owner::Owner::OrgId(id)) => Ok(Owner::Org(id)),
        None => Err(Status::invalid_argument(
            "owner: must be set to a user_id or an org_id",
        )),
    }
}

pub fn app_pb(app: App) -> pb::App {
    pb::App {
        app_id: app.id,
        owner: Some(owner_pb(app.owner)),
        name: app.name,
        labels: app.labels,
        created_at_unix_ms: app.created_at_ms,
        updated_at_unix_ms: app.updated_at_ms.unwrap_or(app.created_at_ms),
    }
}

pub fn user_pb(user: User) -> pb::User {
    pb::User {
        user_id: user.id,
        username: user.username.unwrap_or_default(),
        email: user.email,
        email_verified: user.email_verified.is_some(),
        // Not stored by this version (see UpsertUserRequest.name).
        name: String::new(),
        created_at_unix_ms: 0,
        updated_at_unix_ms: 0,
    }
}
