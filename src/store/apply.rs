//! The one deterministic function that applies a change to the directory (DESIGN §6).
//!
//! `apply_change` is a function of (current tables, change, context) only: no clock, no random
//! ids, no iteration over hash maps. It validates the change's shape, asks the authorizer for the
//! permission the change needs, checks the state-dependent invariants, and writes, all through the
//! tables of the caller's write transaction; on `Err` the caller aborts that transaction, so a
//! half-applied change can never be committed. It returns the [`IndexOp`]s that describe the
//! effect on the in-memory index.
//!
//! Invariants kept here:
//! - an org's creator becomes `admin`, and an org always keeps at least one admin;
//! - team members are org members (removing a member removes their team memberships);
//! - app collaborators are not members of the app's org (a new member's collaborations on the
//!   org's apps are dropped with the membership; `AddCollaborator` refuses a member);
//! - a team grant names an app owned by the team's org;
//! - an org that still owns apps cannot be deleted; deleting an org removes its memberships,
//!   teams, team members and grants;
//! - `membership_limit` (`OrgSettings.max_memberships`, else `default_membership_limit`) caps
//!   new members, on every path that creates one;
//! - an org's plan is one of the plan table's, and choosing one is the operator's (at creation)
//!   or `billing:manage`'s (later);
//! - only the operator marks an email verified;
//! - everything a change refers to exists, and nothing is created twice.

use super::tables::{WriteTables, decode, encode, get_json, get_json2, seconds, thirds};
use super::{ApplyError, StoreError};
use super::{domains, invitations, limits};
use crate::directory::domain::email_key;
use crate::directory::ids::validate_user_id;
use crate::directory::{
    ADMIN_ROLE, App, ApplyContext, CHANGE_FORMAT, Change, ChangeEnvelope, EmailVerification, Membership, Org,
    Owner, Refusal, Team, TermsAcceptance, User,
};
use crate::engine::index::IndexOp;
use redb::ReadableTable;

type Ops = Result<Vec<IndexOp>, ApplyError>;

pub(crate) fn apply_change(t: &mut WriteTables<'_>, env: &ChangeEnvelope, ctx: &ApplyContext<'_>) -> Ops {
    if env.format > CHANGE_FORMAT {
        // A halt, not a refusal: see `ApplyError::UnsupportedFormat`.
        return Err(ApplyError::UnsupportedFormat {
            found: env.format,
            supported: CHANGE_FORMAT,
        });
    }
    if env.format != CHANGE_FORMAT {
        // An older format this build no longer applies (or never existed): every build that
        // knows the current format refuses it the same way.
        return Err(Refusal::invalid(
            "format",
            format!(
                "change format {} is not supported (this build applies format {CHANGE_FORMAT})",
                env.format
            ),
        )
        .into());
    }
    validate_user_id("actor", &env.actor)?;
    env.change.validate()?;
    if let Change::AddMember { role, .. }
    | Change::ChangeRole { role, .. }
    | Change::CreateInvitation { role, .. } = &env.change
        && !(ctx.is_role)(role)
    {
        return Err(Refusal::invalid(
            "role",
            format!("unknown role `{role}`; roles are defined by the policy"),
        )
        .into());
    }

    // Authorize. Whether an app rule is personal or org-scoped depends on its current owner.
    let app_owner = match &env.change {
        Change::DeleteApp { id: app }
        | Change::TransferApp { app, .. }
        | Change::SetAppLabels { app, .. } => Some(require_app(t, app)?.owner),
        Change::RevokeToken { id } => Some(super::tokens::require_token(t, id)?.owner),
        Change::AddCollaborator { app, .. }
        | Change::RemoveCollaborator { app, .. }
        | Change::SubmitAppVersion { app, .. }
        | Change::ReviewAppVersion { app, .. } => Some(require_app(t, app)?.owner),
        _ => None,
    };
    if let Some(perm) = env.change.required_permission(&env.actor, app_owner.as_ref())? {
        ctx.check(&env.actor, &perm)?;
    }

    let actor = env.actor.as_str();
    let at_ms = env.at_ms;
    // The membership limit in force for an org: its own setting, else the instance default.
    let limit_of = |o: &Org| ctx.limits.membership_limit(o.settings.membership_limit);
    match &env.change {
        Change::UpsertUser {
            id,
            email,
            username,
            email_verified,
        } => {
            if *email_verified == Some(true) && !ctx.operator {
                return Err(Refusal::PermissionDenied {
                    permission: "the operator's role to mark an email verified (email_verified): \
                                 only the login layer, on the Unix socket, vouches for an address"
                        .into(),
                    org: String::new(),
                }
                .into());
            }
            let old = get_json::<User>(&t.users, "users", id)?;
            if let Some(old) = &old {
                t.users_by_email
                    .remove((email_key(&old.email).as_str(), id.as_str()))?;
            }
            let email_verified = match email_verified {
                Some(true) => Some(EmailVerification {
                    by: actor.to_string(),
                    at_ms,
                }),
                Some(false) => None,
                // Kept only for the very same address.
                None => old
                    .filter(|o| email_key(&o.email) == email_key(email))
                    .and_then(|o| o.email_verified),
            };
            let user = User {
                id: id.clone(),
                email: email.clone(),
                username: username.clone(),
                email_verified,
            };
            t.users.insert(id.as_str(), encode(&user)?.as_slice())?;
            t.users_by_email
                .insert((email_key(email).as_str(), id.as_str()), ())?;
            Ok(vec![])
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
            if t.orgs.get(id.as_str())?.is_some() {
                return Err(Refusal::already_exists(format!("org `{id}`")).into());
            }
            require_user(t, actor, "actor")?;
            limits::check_plan_choice(ctx, plan, None)?;
            limits::check_create_org(t, ctx, actor, id, plan)?;
            let org = Org {
                id: id.clone(),
                name: name.clone(),
                billing_email: billing_email.clone(),
                plan: plan.clone(),
                logo_url: logo_url.clone(),
                public_metadata: public_metadata.clone(),
                private_metadata: private_metadata.clone(),
                settings: settings.clone(),
                created_by: actor.to_string(),
                created_at_ms: at_ms,
                updated_at_ms: None,
            };
            super::sorted::put_org(t, &org)?;
            limits::remember_org(t, &org)?;
            let m = Membership {
                org: id.clone(),
                user: actor.to_string(),
                role: ADMIN_ROLE.to_string(),
                joined_at_ms: at_ms,
                terms_accepted: None,
                updated_at_ms: None,
            };
            put_membership(t, &m)?;
            Ok(vec![IndexOp::SetMember {
                org: id.clone(),
                user: actor.to_string(),
                role: m.role,
            }])
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
            let mut org = require_org(t, id)?;
            if let Some(v) = name {
                org.name = v.clone();
            }
            if let Some(v) = billing_email {
                org.billing_email = Some(v.clone()).filter(|s| !s.is_empty());
            }
            if let Some(v) = plan
                && *v != org.plan
            {
                limits::check_plan_choice(ctx, v, Some((actor, id)))?;
                org.plan = v.clone();
                limits::check_plan_change(t, ctx, &org)?;
            }
            if let Some(v) = logo_url {
                org.logo_url = Some(v.clone()).filter(|s| !s.is_empty());
            }
            if let Some(v) = public_metadata {
                org.public_metadata = v.clone();
            }
            if let Some(v) = private_metadata {
                org.private_metadata = v.clone();
            }
            if let Some(v) = settings {
                org.settings = v.clone();
            }
            if let Some(patch) = settings_patch {
                patch.apply_to(&mut org.settings);
            }
            super::sorted::put_org(t, &org)?;
            Ok(vec![])
        }
        Change::DeleteOrg { id } => delete_org(t, id, false),
        Change::AddMember {
            org,
            user,
            role,
            terms_version,
        } => {
            let o = require_org(t, org)?;
            require_user(t, user, "user")?;
            if t.memberships.get((org.as_str(), user.as_str()))?.is_some() {
                return Err(Refusal::already_exists(format!("membership of `{user}` in org `{org}`")).into());
            }
            invitations::check_membership_limit(t, &o, limit_of(&o), at_ms, None)?;
            limits::check_join(t, ctx, &o, user, role)?;
            let m = Membership {
                org: org.clone(),
                user: user.clone(),
                role: role.clone(),
                joined_at_ms: at_ms,
                terms_accepted: terms_version.as_ref().map(|version| TermsAcceptance {
                    version: version.clone(),
                    at_ms,
                }),
                updated_at_ms: None,
            };
            put_membership(t, &m)?;
            Ok(vec![IndexOp::SetMember {
                org: org.clone(),
                user: user.clone(),
                role: role.clone(),
            }])
        }
        Change::ChangeRole { org, user, role } => {
            let mut m = require_membership(t, org, user)?;
            if m.role == ADMIN_ROLE && role != ADMIN_ROLE {
                keep_another_admin(t, org, user, "demote")?;
            }
            limits::check_role_change(t, ctx, &require_org(t, org)?, user, &m.role, role)?;
            m.role = role.clone();
            put_membership(t, &m)?;
            Ok(vec![IndexOp::SetMember {
                org: org.clone(),
                user: user.clone(),
                role: role.clone(),
            }])
        }
        Change::RemoveMember { org, user } => {
            let m = require_membership(t, org, user)?;
            if m.role == ADMIN_ROLE {
                keep_another_admin(t, org, user, "remove")?;
            }
            remove_member(t, org, user)?;
            Ok(vec![IndexOp::RemoveMember {
                org: org.clone(),
                user: user.clone(),
            }])
        }
        Change::CreateTeam { org, team, name } => {
            limits::check_teams_allowed(t, ctx, org)?;
            if t.teams.get((org.as_str(), team.as_str()))?.is_some() {
                return Err(Refusal::already_exists(format!("team `{team}` in org `{org}`")).into());
            }
            let record = Team {
                org: org.clone(),
                id: team.clone(),
                name: name.clone(),
            };
            t.teams
                .insert((org.as_str(), team.as_str()), encode(&record)?.as_slice())?;
            Ok(vec![])
        }
        Change::RenameTeam { org, team, name } => {
            let mut record = require_team(t, org, team)?;
            record.name = name.clone();
            t.teams
                .insert((org.as_str(), team.as_str()), encode(&record)?.as_slice())?;
            Ok(vec![])
        }
        Change::DeleteTeam { org, team } => {
            require_team(t, org, team)?;
            remove_team(t, org, team)?;
            Ok(vec![IndexOp::RemoveTeam {
                org: org.clone(),
                team: team.clone(),
            }])
        }
        Change::AddTeamMember { org, team, user } => {
            require_team(t, org, team)?;
            if t.memberships.get((org.as_str(), user.as_str()))?.is_none() {
                return Err(Refusal::precondition(format!(
                    "`{user}` is not a member of org `{org}`; add them to the org before the team"
                ))
                .into());
            }
            if t.team_members
                .insert((org.as_str(), team.as_str(), user.as_str()), ())?
                .is_some()
            {
                return Err(
                    Refusal::already_exists(format!("`{user}` in team `{team}` of org `{org}`")).into(),
                );
            }
            Ok(vec![IndexOp::AddTeamMember {
                org: org.clone(),
                team: team.clone(),
                user: user.clone(),
            }])
        }
        Change::RemoveTeamMember { org, team, user } => {
            require_team(t, org, team)?;
            if t.team_members
                .remove((org.as_str(), team.as_str(), user.as_str()))?
                .is_none()
            {
                return Err(Refusal::not_found(format!("`{user}` in team `{team}` of org `{org}`")).into());
            }
            Ok(vec![IndexOp::RemoveTeamMember {
                org: org.clone(),
                team: team.clone(),
                user: user.clone(),
            }])
        }
        Change::GrantApp { org, team, app } => {
            require_team(t, org, team)?;
            let a = require_app(t, app)?;
            if a.owner.org() != Some(org.as_str()) {
                return Err(Refusal::precondition(format!(
                    "app `{app}` is owned by {}, not by org `{org}`; teams can only be granted their org's apps",
                    a.owner
                ))
                .into());
            }
            if t.team_grants
                .insert((org.as_str(), team.as_str(), app.as_str()), ())?
                .is_some()
            {
                return Err(Refusal::already_exists(format!(
                    "grant of app `{app}` to team `{team}` of org `{org}`"
                ))
                .into());
            }
            Ok(vec![IndexOp::GrantApp {
                org: org.clone(),
                team: team.clone(),
                app: app.clone(),
            }])
        }
        Change::RevokeApp { org, team, app } => {
            require_team(t, org, team)?;
            if t.team_grants
                .remove((org.as_str(), team.as_str(), app.as_str()))?
                .is_none()
            {
                return Err(Refusal::not_found(format!(
                    "grant of app `{app}` to team `{team}` of org `{org}`"
                ))
                .into());
            }
            Ok(vec![IndexOp::RevokeApp {
                org: org.clone(),
                team: team.clone(),
                app: app.clone(),
            }])
        }
        Change::CreateApp {
            id,
            owner,
            name,
            labels,
        } => {
            match owner {
                Owner::User(user) => require_user(t, user, "owner")?,
                Owner::Org(org) => {
                    require_org(t, org)?;
                }
            }
            if t.apps.get(id.as_str())?.is_some() {
                return Err(Refusal::already_exists(format!("app `{id}`")).into());
            }
            let app = App {
                id: id.clone(),
                owner: owner.clone(),
                name: name.clone(),
                labels: labels.clone(),
                created_at_ms: at_ms,
                updated_at_ms: None,
            };
            put_app(t, &app)?;
            Ok(match owner {
                Owner::Org(org) => vec![IndexOp::AddApp {
                    org: org.clone(),
                    app: id.clone(),
                    labels: labels.clone(),
                }],
                Owner::User(_) => vec![],
            })
        }
        Change::DeleteApp { id } => {
            let app = require_app(t, id)?;
            t.apps.remove(id.as_str())?;
            t.apps_by_owner
                .remove((app.owner.kind(), app.owner.id(), id.as_str()))?;
            super::sorted::unindex_app(t, &app)?;
            match &app.owner {
                Owner::Org(org) => {
                    for team in seconds(&t.teams, org)? {
                        t.team_grants.remove((org.as_str(), team.as_str(), id.as_str()))?;
                    }
                    super::collaborators::drop_app(t, id)?;
                    super::publishing::drop_app(t, id)?;
                    Ok(vec![IndexOp::RemoveApp {
                        org: org.clone(),
                        app: id.clone(),
                    }])
                }
                Owner::User(_) => Ok(vec![]),
            }
        }
        Change::SetAppLabels { app, labels } => {
            let mut record = require_app(t, app)?;
            record.labels = labels.clone();
            put_app(t, &record)?;
            Ok(match &record.owner {
                Owner::Org(org) => vec![IndexOp::SetAppLabels {
                    org: org.clone(),
                    app: app.clone(),
                    labels: labels.clone(),
                }],
                Owner::User(_) => vec![],
            })
        }
        Change::TransferApp { app, to_org, rename } => {
            let mut record = require_app(t, app)?;
            require_org(t, to_org)?;
            t.apps_by_owner
                .remove((record.owner.kind(), record.owner.id(), app.as_str()))?;
            record.owner = Owner::Org(to_org.clone());
            if let Some(name) = rename {
                record.name = name.clone();
            }
            put_app(t, &record)?;
            Ok(vec![IndexOp::AddApp {
                org: to_org.clone(),
                app: app.clone(),
                labels: record.labels.clone(),
            }])
        }
        Change::Import { .. } => {
            Err(Refusal::invalid("change", "imports come only from a dump, through `import`").into())
        }
        Change::CreateInvitation {
            id,
            org,
            invitee,
            role,
            teams,
            code_sha256,
            expires_at_ms,
        } => invitations::create(
            t,
            actor,
            at_ms,
            invitations::NewInvitation {
                id,
                org,
                invitee,
                role,
                teams,
                code_sha256,
                expires_at_ms: *expires_at_ms,
                limit_of: &limit_of,
            },
            ctx,
        ),
        Change::RevokeInvitation { org, id } => invitations::revoke(t, actor, at_ms, org, id),
        Change::AcceptInvitation {
            code_sha256,
            terms_version,
        } => invitations::accept(
            t,
            actor,
            at_ms,
            code_sha256,
            terms_version.as_deref(),
            &limit_of,
            ctx,
        ),
        Change::DeclineInvitation { code_sha256 } => invitations::decline(t, actor, at_ms, code_sha256),
        Change::ForceDeleteOrg { id } => delete_org(t, id, true),
        Change::LeaveOrg { org } => {
            let m = require_membership(t, org, actor)?;
            if m.role == ADMIN_ROLE {
                match keep_another_admin(t, org, actor, "remove") {
                    Err(ApplyError::Refused(_)) => {
                        return Err(Refusal::precondition(format!(
                            "`{actor}` is the last admin of org `{org}` and cannot leave it; \
                             make someone else admin first"
                        ))
                        .into());
                    }
                    other => other?,
                }
            }
            remove_member(t, org, actor)?;
            Ok(vec![IndexOp::RemoveMember {
                org: org.clone(),
                user: actor.to_string(),
            }])
        }
        Change::AddDomain {
            org,
            domain,
            verification_token,
            enrollment,
            role,
        } => domains::add(t, ctx, at_ms, org, domain, verification_token, *enrollment, role),
        Change::VerifyDomain {
            org,
            domain,
            verification_token,
        } => domains::verify(t, ctx, actor, at_ms, org, domain, verification_token),
        Change::SetDomainEnrollment {
            org,
            domain,
            enrollment,
        } => domains::set_enrollment(t, org, domain, *enrollment),
        Change::RemoveDomain { org, domain } => domains::remove(t, org, domain),
        Change::JoinByDomain { org } => domains::join_by_domain(t, ctx, actor, at_ms, org, &limit_of),
        Change::RequestMembership { id, org } => domains::request(t, actor, at_ms, id, org),
        Change::ApproveMembershipRequest { org, id, role } => {
            domains::approve(t, ctx, actor, at_ms, org, id, role.as_deref(), &limit_of)
        }
        Change::RejectMembershipRequest { org, id } => domains::reject(t, actor, at_ms, org, id),
        Change::CreateToken { .. } | Change::RevokeToken { .. } => super::tokens::apply(t, env, ctx),
        Change::AddCollaborator { .. } | Change::RemoveCollaborator { .. } => {
            super::collaborators::apply(t, env, ctx)
        }
        Change::SubmitAppVersion { .. } | Change::ReviewAppVersion { .. } => super::publishing::apply(t, env),
        Change::SetSecuritySettings { .. } | Change::SsoJoin { .. } => super::security::apply(t, env, ctx),
    }
}

pub(crate) fn require_user(t: &WriteTables<'_>, id: &str, role: &str) -> Result<(), ApplyError> {
    if t.users.get(id)?.is_none() {
        return Err(Refusal::not_found(format!("user `{id}` ({role})")).into());
    }
    Ok(())
}

pub(crate) fn require_org(t: &WriteTables<'_>, id: &str) -> Result<Org, ApplyError> {
    get_json(&t.orgs, "orgs", id)?.ok_or_else(|| Refusal::not_found(format!("org `{id}`")).into())
}

pub(crate) fn require_app(t: &WriteTables<'_>, id: &str) -> Result<App, ApplyError> {
    get_json(&t.apps, "apps", id)?.ok_or_else(|| Refusal::not_found(format!("app `{id}`")).into())
}

pub(super) fn require_team(t: &WriteTables<'_>, org: &str, team: &str) -> Result<Team, ApplyError> {
    get_json2(&t.teams, "teams", (org, team))?
        .ok_or_else(|| Refusal::not_found(format!("team `{team}` in org `{org}`")).into())
}

pub(super) fn require_membership(
    t: &WriteTables<'_>,
    org: &str,
    user: &str,
) -> Result<Membership, ApplyError> {
    get_json2(&t.memberships, "memberships", (org, user))?
        .ok_or_else(|| Refusal::not_found(format!("membership of `{user}` in org `{org}`")).into())
}

/// Refuse to take `admin` away from `user` unless the org has another admin.
fn keep_another_admin(t: &WriteTables<'_>, org: &str, user: &str, verb: &str) -> Result<(), ApplyError> {
    for item in t.org_admins.range((org, "")..)? {
        let (key, _) = item?;
        let (o, u) = key.value();
        if o != org {
            break;
        }
        if u != user {
            return Ok(());
        }
    }
    Err(Refusal::precondition(format!(
        "cannot {verb} `{user}`: they are the last admin of org `{org}`; make someone else admin first"
    ))
    .into())
}

/// Write a membership with its reverse and admin indexes. A new member's collaborations on
/// the org's apps end here, in the same transaction: a member is never also a collaborator
/// of its own org (every path that creates a membership comes through here).
pub(crate) fn put_membership(t: &mut WriteTables<'_>, m: &Membership) -> Result<(), StoreError> {
    let (org, user) = (m.org.as_str(), m.user.as_str());
    let old = t
        .memberships
        .insert((org, user), encode(m)?.as_slice())?
        .map(|old| decode::<Membership>("memberships", &format!("{org}/{user}"), old.value()))
        .transpose()?;
    if old.is_none() {
        super::collaborators::drop_member(t, org, user)?;
    }
    super::sorted::member_written(t, old.as_ref(), Some(m))?;
    t.user_orgs.insert((user, org), ())?;
    if m.role == ADMIN_ROLE {
        t.org_admins.insert((org, user), ())?;
    } else {
        t.org_admins.remove((org, user))?;
    }
    Ok(())
}

/// Write an app with its by-owner index entry.
pub(crate) fn put_app(t: &mut WriteTables<'_>, app: &App) -> Result<(), StoreError> {
    let old = t
        .apps
        .insert(app.id.as_str(), encode(app)?.as_slice())?
        .map(|old| decode::<App>("apps", &app.id, old.value()))
        .transpose()?;
    super::sorted::app_written(t, old.as_ref(), Some(app))?;
    t.apps_by_owner
        .insert((app.owner.kind(), app.owner.id(), app.id.as_str()), ())?;
    Ok(())
}

/// Remove a team with its members and grants.
fn remove_team(t: &mut WriteTables<'_>, org: &str, team: &str) -> Result<(), StoreError> {
    for user in thirds(&t.team_members, org, team)? {
        t.team_members.remove((org, team, user.as_str()))?;
    }
    for app in thirds(&t.team_grants, org, team)? {
        t.team_grants.remove((org, team, app.as_str()))?;
    }
    t.teams.remove((org, team))?;
    Ok(())
}

/// Delete an org with its memberships, teams, grants and invitations. Refused when the org is
/// marked not deletable; while it still owns apps, refused unless `force`, which deletes the
/// apps too.
fn delete_org(t: &mut WriteTables<'_>, id: &str, force: bool) -> Result<Vec<IndexOp>, ApplyError> {
    let org = require_org(t, id)?;
    if !org.settings.deletable {
        return Err(Refusal::precondition(format!("org `{id}` is marked not deletable")).into());
    }
    let apps = thirds(&t.apps_by_owner, "org", id)?;
    if !apps.is_empty() && !force {
        return Err(Refusal::precondition(format!(
            "org `{id}` still owns {} app(s) (first: `{}`); delete or move them first, \
             or force the delete (needs `org:force_delete`)",
            apps.len(),
            apps[0]
        ))
        .into());
    }
    for app in &apps {
        if let Some(record) = get_json::<App>(&t.apps, "apps", app)? {
            super::sorted::unindex_app(t, &record)?;
        }
        t.apps.remove(app.as_str())?;
        t.apps_by_owner.remove(("org", id, app.as_str()))?;
        super::collaborators::drop_app(t, app)?;
        super::publishing::drop_app(t, app)?;
    }
    super::sorted::drop_members(t, id)?;
    for user in seconds(&t.memberships, id)? {
        t.memberships.remove((id, user.as_str()))?;
        t.user_orgs.remove((user.as_str(), id))?;
        t.org_admins.remove((id, user.as_str()))?;
    }
    for team in seconds(&t.teams, id)? {
        remove_team(t, id, &team)?;
    }
    invitations::remove_org(t, id)?;
    domains::remove_org(t, id)?;
    super::limits::forget_org(t, &org)?;
    let mut ops = super::tokens::drop_org_tokens(t, id)?;
    t.org_security.remove(id)?;
    t.orgs.remove(id)?;
    super::sorted::unindex_org(t, &org)?;
    ops.push(IndexOp::RemoveOrg { org: id.to_string() });
    Ok(ops)
}

/// Remove a membership with its index entries and the member's teams in that org.
fn remove_member(t: &mut WriteTables<'_>, org: &str, user: &str) -> Result<(), StoreError> {
    for team in seconds(&t.teams, org)? {
        t.team_members.remove((org, team.as_str(), user))?;
    }
    let old = t
        .memberships
        .remove((org, user))?
        .map(|old| decode::<Membership>("memberships", &format!("{org}/{user}"), old.value()))
        .transpose()?;
    super::sorted::member_written(t, old.as_ref(), None)?;
    t.user_orgs.remove((user, org))?;
    t.org_admins.remove((org, user))?;
    Ok(())
}
