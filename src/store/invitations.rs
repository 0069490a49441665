//! Invitations in the store: applying the four invitation changes, the seat count behind the
//! membership limit, reads, and the cascade when an org goes.
//!
//! Records live in `invitations` (by id) with two key-only indexes (`org_invitations`,
//! `invitee_invitations`) and `invitation_codes` (code hash → id). Everything here runs inside
//! the caller's write transaction (see `apply.rs`) or a read transaction of its own; like the
//! rest of `apply`, the only time it knows is the envelope's `at_ms`.

use super::apply::{put_membership, require_org, require_team, require_user};
use super::read::Page;
use super::tables::{self, WriteTables, decode, encode, get_json};
use super::{ApplyError, Store, StoreError};
use crate::directory::domain::email_key;
use crate::directory::invitation::MAX_INVITATION_TTL_MS;
use crate::directory::{
    ApplyContext, Invitation, InvitationStatus, Invitee, Membership, Org, Refusal, TermsAcceptance, User,
};
use crate::engine::index::IndexOp;
use redb::ReadableTable;

/// The invitation `id`, if any.
fn load(t: &WriteTables<'_>, id: &str) -> Result<Option<Invitation>, StoreError> {
    get_json(&t.invitations, "invitations", id)
}

fn save(t: &mut WriteTables<'_>, inv: &Invitation) -> Result<(), StoreError> {
    t.invitations.insert(inv.id.as_str(), encode(inv)?.as_slice())?;
    Ok(())
}

/// Write a new invitation with its index entries (also used by import).
pub(crate) fn put_invitation(t: &mut WriteTables<'_>, inv: &Invitation) -> Result<(), StoreError> {
    save(t, inv)?;
    t.org_invitations
        .insert((inv.org.as_str(), inv.id.as_str()), ())?;
    t.invitee_invitations
        .insert((inv.invitee.key().as_str(), inv.id.as_str()), ())?;
    t.invitation_codes
        .insert(inv.code_sha256.as_str(), inv.id.as_str())?;
    Ok(())
}

/// Refuse a new member of `org` when its members plus its pending invitations (other than
/// `excluding`, the invitation being accepted) already fill `limit`. Stops counting at the
/// limit, so a big org without a limit is never scanned.
pub(crate) fn check_membership_limit(
    t: &WriteTables<'_>,
    org: &Org,
    limit: Option<u32>,
    at_ms: u64,
    excluding: Option<&str>,
) -> Result<(), ApplyError> {
    let Some(limit) = limit else {
        return Ok(());
    };
    let limit = u64::from(limit);
    let id = org.id.as_str();
    let mut members: u64 = 0;
    for item in t.memberships.range((id, "")..)? {
        let (key, _) = item?;
        if key.value().0 != id || members >= limit {
            break;
        }
        members += 1;
    }
    let mut pending: u64 = 0;
    if members < limit {
        for item in t.org_invitations.range((id, "")..)? {
            let (key, _) = item?;
            let (o, inv_id) = key.value();
            if o != id || members + pending >= limit {
                break;
            }
            if excluding == Some(inv_id) {
                continue;
            }
            if let Some(inv) = load(t, inv_id)?
                && inv.holds_seat(at_ms)
                && !invitee_is_member(t, id, &inv.invitee)?
            {
                pending += 1;
            }
        }
    }
    if members + pending >= limit {
        let source = match org.settings.membership_limit {
            Some(_) => "the org's `OrgSettings.max_memberships`".to_string(),
            None => {
                "`default_membership_limit` in limits.toml (the org sets no `OrgSettings.max_memberships`)"
                    .to_string()
            }
        };
        return Err(Refusal::precondition(format!(
            "org `{id}` has reached its membership limit of {limit}, set by {source} \
             ({members} members, {pending} pending invitations); raise `OrgSettings.max_memberships` \
             (UpdateOrg) or revoke invitations"
        ))
        .into());
    }
    Ok(())
}

/// Whether the invitee already is a member of `org` (added directly while the invitation
/// was pending): such an invitation holds no seat, or the member would count twice.
fn invitee_is_member(t: &WriteTables<'_>, org: &str, invitee: &Invitee) -> Result<bool, StoreError> {
    match invitee {
        Invitee::User(user) => Ok(t.memberships.get((org, user.as_str()))?.is_some()),
        Invitee::Email(email) => {
            for user in users_with_email(t, email)? {
                if t.memberships.get((org, user.as_str()))?.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

/// Users whose email is `email` (lowercased).
fn users_with_email(t: &WriteTables<'_>, email: &str) -> Result<Vec<String>, StoreError> {
    tables::seconds(&t.users_by_email, email)
}

/// Already a member: the invited user, or any user holding the invited email.
fn refuse_existing_member(t: &WriteTables<'_>, org: &str, invitee: &Invitee) -> Result<(), ApplyError> {
    let users = match invitee {
        Invitee::User(u) => vec![u.clone()],
        Invitee::Email(e) => users_with_email(t, e)?,
    };
    for user in users {
        if t.memberships.get((org, user.as_str()))?.is_some() {
            return Err(Refusal::already_exists(format!(
                "membership of `{user}` ({invitee}) in org `{org}`"
            ))
            .into());
        }
    }
    Ok(())
}

/// The pending invitation of `invitee` to `org`, if there is one at `at_ms`.
fn pending_for(
    t: &WriteTables<'_>,
    org: &str,
    invitee: &Invitee,
    at_ms: u64,
) -> Result<Option<String>, StoreError> {
    for id in tables::seconds(&t.invitee_invitations, &invitee.key())? {
        if let Some(inv) = load(t, &id)?
            && inv.org == org
            && inv.holds_seat(at_ms)
        {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Everything a `CreateInvitation` needs besides authorization (already done).
pub(crate) struct NewInvitation<'a> {
    pub id: &'a str,
    pub org: &'a str,
    pub invitee: &'a Invitee,
    pub role: &'a str,
    pub teams: &'a [String],
    pub code_sha256: &'a str,
    pub expires_at_ms: u64,
    /// The org's membership limit in force (its own, or the instance default).
    pub limit_of: &'a dyn Fn(&Org) -> Option<u32>,
}

pub(crate) fn create(
    t: &mut WriteTables<'_>,
    actor: &str,
    at_ms: u64,
    n: NewInvitation<'_>,
    ctx: &ApplyContext<'_>,
) -> Result<Vec<IndexOp>, ApplyError> {
    let org = require_org(t, n.org)?;
    if n.expires_at_ms <= at_ms || n.expires_at_ms - at_ms > MAX_INVITATION_TTL_MS {
        return Err(Refusal::invalid(
            "expires_in_seconds",
            format!(
                "an invitation must expire after it is made and within {} days",
                MAX_INVITATION_TTL_MS / (24 * 3600 * 1000)
            ),
        )
        .into());
    }
    if t.invitations.get(n.id)?.is_some() {
        return Err(Refusal::already_exists(format!("invitation `{}`", n.id)).into());
    }
    if t.invitation_codes.get(n.code_sha256)?.is_some() {
        return Err(Refusal::already_exists("an invitation with this code").into());
    }
    if let Invitee::User(u) = n.invitee {
        require_user(t, u, "user")?;
    }
    refuse_existing_member(t, n.org, n.invitee)?;
    if let Some(other) = pending_for(t, n.org, n.invitee, at_ms)? {
        return Err(Refusal::already_exists(format!(
            "pending invitation `{other}` of {} to org `{}` (revoke it to invite again)",
            n.invitee, n.org
        ))
        .into());
    }
    for team in n.teams {
        require_team(t, n.org, team)?;
    }
    check_membership_limit(t, &org, (n.limit_of)(&org), at_ms, None)?;
    super::limits::check_plan_role(ctx, &org, n.role)?;
    let inv = Invitation {
        id: n.id.to_string(),
        org: n.org.to_string(),
        invitee: n.invitee.clone(),
        role: n.role.to_string(),
        teams: n.teams.to_vec(),
        code_sha256: n.code_sha256.to_string(),
        invited_by: actor.to_string(),
        created_at_ms: at_ms,
        expires_at_ms: n.expires_at_ms,
        status: InvitationStatus::Pending,
        resolved_at_ms: None,
        resolved_by: None,
    };
    put_invitation(t, &inv)?;
    Ok(vec![])
}

pub(crate) fn revoke(
    t: &mut WriteTables<'_>,
    actor: &str,
    at_ms: u64,
    org: &str,
    id: &str,
) -> Result<Vec<IndexOp>, ApplyError> {
    let mut inv = load(t, id)?
        .filter(|inv| inv.org == org)
        .ok_or_else(|| Refusal::not_found(format!("invitation `{id}` in org `{org}`")))?;
    inv.require_pending(at_ms)?;
    resolve(&mut inv, InvitationStatus::Revoked, actor, at_ms);
    save(t, &inv)?;
    Ok(vec![])
}

fn resolve(inv: &mut Invitation, status: InvitationStatus, actor: &str, at_ms: u64) {
    inv.status = status;
    inv.resolved_at_ms = Some(at_ms);
    inv.resolved_by = Some(actor.to_string());
}

/// The invitation a code names, pending, and made out to `actor`.
fn redeemable(
    t: &WriteTables<'_>,
    actor: &str,
    at_ms: u64,
    code_sha256: &str,
) -> Result<Invitation, ApplyError> {
    let id = t
        .invitation_codes
        .get(code_sha256)?
        .map(|v| v.value().to_string())
        .ok_or_else(|| Refusal::not_found("invitation for this code"))?;
    let inv = load(t, &id)?.ok_or_else(|| Refusal::not_found(format!("invitation `{id}`")))?;
    inv.require_pending(at_ms)?;
    let user: User = get_json(&t.users, "users", actor)?
        .ok_or_else(|| Refusal::not_found(format!("user `{actor}` (actor)")))?;
    let matches = match &inv.invitee {
        Invitee::User(u) => *u == user.id,
        Invitee::Email(e) => email_key(&user.email) == *e,
    };
    if !matches {
        return Err(Refusal::PermissionDenied {
            permission: format!(
                "the identity invitation `{}` was made out to (the invitee's user id or email)",
                inv.id
            ),
            org: String::new(),
        }
        .into());
    }
    Ok(inv)
}

pub(crate) fn accept(
    t: &mut WriteTables<'_>,
    actor: &str,
    at_ms: u64,
    code_sha256: &str,
    terms_version: Option<&str>,
    limit_of: &dyn Fn(&Org) -> Option<u32>,
    ctx: &ApplyContext<'_>,
) -> Result<Vec<IndexOp>, ApplyError> {
    let mut inv = redeemable(t, actor, at_ms, code_sha256)?;
    let org = require_org(t, &inv.org)?;
    let terms_accepted = match org.settings.terms_version.as_deref() {
        Some(required) if terms_version == Some(required) => Some(TermsAcceptance {
            version: required.to_string(),
            at_ms,
        }),
        Some(required) => {
            return Err(Refusal::precondition(format!(
                "org `{}` requires accepting its terms of use version `{required}` \
                 (pass it as accepted_terms_version){}",
                org.id,
                terms_version.map_or(String::new(), |v| format!("; got `{v}`"))
            ))
            .into());
        }
        None => None,
    };
    if t.memberships.get((org.id.as_str(), actor))?.is_some() {
        return Err(Refusal::already_exists(format!("membership of `{actor}` in org `{}`", org.id)).into());
    }
    check_membership_limit(t, &org, limit_of(&org), at_ms, Some(&inv.id))?;
    super::limits::check_join(t, ctx, &org, actor, &inv.role)?;
    let m = Membership {
        org: org.id.clone(),
        user: actor.to_string(),
        role: inv.role.clone(),
        joined_at_ms: at_ms,
        terms_accepted,
        updated_at_ms: None,
    };
    put_membership(t, &m)?;
    let mut ops = vec![IndexOp::SetMember {
        org: m.org.clone(),
        user: m.user.clone(),
        role: m.role.clone(),
    }];
    // Teams deleted since the invitation was made are skipped: the invitation promised a
    // membership first, and the admin removed the team knowingly.
    for team in &inv.teams {
        if t.teams.get((org.id.as_str(), team.as_str()))?.is_some() {
            t.team_members
                .insert((org.id.as_str(), team.as_str(), actor), ())?;
            ops.push(IndexOp::AddTeamMember {
                org: org.id.clone(),
                team: team.clone(),
                user: actor.to_string(),
            });
        }
    }
    resolve(&mut inv, InvitationStatus::Accepted, actor, at_ms);
    save(t, &inv)?;
    Ok(ops)
}

pub(crate) fn decline(
    t: &mut WriteTables<'_>,
    actor: &str,
    at_ms: u64,
    code_sha256: &str,
) -> Result<Vec<IndexOp>, ApplyError> {
    let mut inv = redeemable(t, actor, at_ms, code_sha256)?;
    resolve(&mut inv, InvitationStatus::Declined, actor, at_ms);
    save(t, &inv)?;
    Ok(vec![])
}

/// Remove every invitation of `org` with its index entries and codes (the org is going).
pub(crate) fn remove_org(t: &mut WriteTables<'_>, org: &str) -> Result<(), ApplyError> {
    for id in tables::seconds(&t.org_invitations, org)? {
        if let Some(inv) = load(t, &id)? {
            t.invitee_invitations
                .remove((inv.invitee.key().as_str(), id.as_str()))?;
            t.invitation_codes.remove(inv.code_sha256.as_str())?;
        }
        t.invitations.remove(id.as_str())?;
        t.org_invitations.remove((org, id.as_str()))?;
    }
    Ok(())
}

/// Most invitations one person-level list returns.
pub const MAX_INVITEE_LIST: usize = 1000;

impl Store {
    pub fn get_invitation(&self, id: &str) -> Result<Option<Invitation>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json(&txn.open_table(tables::INVITATIONS)?, "invitations", id)
    }

    /// The invitation a code hash names, whatever its status.
    pub fn invitation_by_code(&self, code_sha256: &str) -> Result<Option<Invitation>, StoreError> {
        let txn = self.db.begin_read()?;
        let Some(id) = txn
            .open_table(tables::INVITATION_CODES)?
            .get(code_sha256)?
            .map(|v| v.value().to_string())
        else {
            return Ok(None);
        };
        get_json(&txn.open_table(tables::INVITATIONS)?, "invitations", &id)
    }

    /// Invitations of `org` in id order, keeping those whose status at `at_ms` is `status`
    /// (all when `None`). Pages may come back shorter than `page_size` when filtered.
    pub fn list_org_invitations(
        &self,
        org: &str,
        status: Option<InvitationStatus>,
        at_ms: u64,
        page_token: &str,
        page_size: u32,
    ) -> Result<Page<Invitation>, ApplyError> {
        let txn = self.db.begin_read()?;
        let ids = super::read::page_seconds(
            &txn.open_table(tables::ORG_INVITATIONS)?,
            org,
            page_token,
            page_size,
        )?;
        let invitations = txn.open_table(tables::INVITATIONS)?;
        let mut items = Vec::with_capacity(ids.items.len());
        for id in &ids.items {
            if let Some(inv) = get_json::<Invitation>(&invitations, "invitations", id)?
                && status.is_none_or(|s| inv.status_at(at_ms) == s)
            {
                items.push(inv);
            }
        }
        Ok(Page {
            items,
            next_page_token: ids.next_page_token,
        })
    }

    /// Invitations made out to any of `invitees`, oldest first, filtered by status at `at_ms`;
    /// at most [`MAX_INVITEE_LIST`].
    pub fn list_invitee_invitations(
        &self,
        invitees: &[Invitee],
        status: Option<InvitationStatus>,
        at_ms: u64,
    ) -> Result<Vec<Invitation>, StoreError> {
        let txn = self.db.begin_read()?;
        let index = txn.open_table(tables::INVITEE_INVITATIONS)?;
        let invitations = txn.open_table(tables::INVITATIONS)?;
        let mut out = Vec::new();
        for invitee in invitees {
            for id in tables::seconds(&index, &invitee.key())? {
                if let Some(inv) = get_json::<Invitation>(&invitations, "invitations", &id)?
                    && status.is_none_or(|s| inv.status_at(at_ms) == s)
                {
                    out.push(inv);
                }
            }
        }
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        out.dedup_by(|a, b| a.id == b.id);
        out.truncate(MAX_INVITEE_LIST);
        Ok(out)
    }

    /// Every invitation, in id order (export).
    pub(crate) fn all_invitations(txn: &redb::ReadTransaction) -> Result<Vec<Invitation>, StoreError> {
        let mut out = Vec::new();
        for item in txn.open_table(tables::INVITATIONS)?.iter()? {
            let (key, value) = item?;
            out.push(decode("invitations", key.value(), value.value())?);
        }
        Ok(out)
    }
}
