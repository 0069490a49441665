//! Verified domains and membership requests in the store: applying their changes, reads, the
//! cascade when an org goes, and import.
//!
//! A domain is keyed `(org, domain)` with the reverse `(domain, org)` index, so "which orgs
//! claim the domain of this email" is one range scan. Requests live by id with `(org, id)` and
//! `(user, id)` indexes. As everywhere in `apply`, the only time known is the envelope's.

use super::apply::{put_membership, require_org, require_user};
use super::invitations::check_membership_limit;
use super::tables::{self, WriteTables, decode, encode, get_json, get_json2, seconds};
use super::{ApplyError, Store, StoreError};
use crate::directory::domain::email_domain;
use crate::directory::{
    ApplyContext, Domain, Enrollment, Membership, MembershipRequest, Org, Refusal, RequestStatus, User,
};
use crate::engine::index::IndexOp;
use redb::ReadableTable;

type Ops = Result<Vec<IndexOp>, ApplyError>;

fn require_domain(t: &WriteTables<'_>, org: &str, domain: &str) -> Result<Domain, ApplyError> {
    get_json2(&t.domains, "domains", (org, domain))?
        .ok_or_else(|| Refusal::not_found(format!("domain `{domain}` of org `{org}`")).into())
}

pub(crate) fn put_domain(t: &mut WriteTables<'_>, d: &Domain) -> Result<(), StoreError> {
    t.domains
        .insert((d.org.as_str(), d.domain.as_str()), encode(d)?.as_slice())?;
    t.domain_orgs.insert((d.domain.as_str(), d.org.as_str()), ())?;
    Ok(())
}

pub(crate) fn put_request(t: &mut WriteTables<'_>, r: &MembershipRequest) -> Result<(), StoreError> {
    t.membership_requests
        .insert(r.id.as_str(), encode(r)?.as_slice())?;
    t.org_requests.insert((r.org.as_str(), r.id.as_str()), ())?;
    t.user_requests.insert((r.user.as_str(), r.id.as_str()), ())?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn add(
    t: &mut WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    at_ms: u64,
    org: &str,
    domain: &str,
    token: &str,
    enrollment: Enrollment,
    role: &str,
) -> Ops {
    let o = require_org(t, org)?;
    if !(ctx.is_role)(role) {
        return Err(Refusal::invalid(
            "role",
            format!("unknown role `{role}`; roles are defined by the policy"),
        )
        .into());
    }
    super::limits::check_plan_role(ctx, &o, role)?;
    if t.domains.get((org, domain))?.is_some() {
        return Err(Refusal::already_exists(format!("domain `{domain}` of org `{org}`")).into());
    }
    let d = Domain {
        org: org.to_string(),
        domain: domain.to_string(),
        verification_token: token.to_string(),
        verified_at_ms: None,
        verified_by: None,
        enrollment,
        role: role.to_string(),
        created_at_ms: at_ms,
    };
    put_domain(t, &d)?;
    Ok(vec![])
}

pub(crate) fn verify(
    t: &mut WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    actor: &str,
    at_ms: u64,
    org: &str,
    domain: &str,
    token: &str,
) -> Ops {
    if !ctx.operator {
        return Err(Refusal::PermissionDenied {
            permission: "the operator's role: domains are verified by a caller on the Unix socket, \
                         after it checked the published verification token"
                .into(),
            org: String::new(),
        }
        .into());
    }
    let mut d = require_domain(t, org, domain)?;
    if d.verified() {
        return Err(
            Refusal::precondition(format!("domain `{domain}` of org `{org}` is already verified")).into(),
        );
    }
    if d.verification_token != token {
        return Err(Refusal::precondition(format!(
            "verification token does not match the one stored for domain `{domain}` of org `{org}`"
        ))
        .into());
    }
    d.verified_at_ms = Some(at_ms);
    d.verified_by = Some(actor.to_string());
    put_domain(t, &d)?;
    Ok(vec![])
}

pub(crate) fn set_enrollment(
    t: &mut WriteTables<'_>,
    org: &str,
    domain: &str,
    enrollment: Enrollment,
) -> Ops {
    let mut d = require_domain(t, org, domain)?;
    d.enrollment = enrollment;
    put_domain(t, &d)?;
    Ok(vec![])
}

pub(crate) fn remove(t: &mut WriteTables<'_>, org: &str, domain: &str) -> Ops {
    require_domain(t, org, domain)?;
    t.domains.remove((org, domain))?;
    t.domain_orgs.remove((domain, org))?;
    Ok(vec![])
}

/// The verified domain of `org` that `actor`'s email is on, in `mode`.
fn matching_domain(
    t: &WriteTables<'_>,
    actor: &str,
    org: &str,
    mode: Enrollment,
) -> Result<Domain, ApplyError> {
    let user: User = get_json(&t.users, "users", actor)?
        .ok_or_else(|| Refusal::not_found(format!("user `{actor}` (actor)")))?;
    // A self-set address proves nothing: only one the login layer vouched for may join.
    if user.email_verified.is_none() {
        return Err(Refusal::precondition(format!(
            "the email of `{actor}` is not verified; only an email the login layer verified \
             (UpsertUser with email_verified, on the Unix socket) may join an org by its domain"
        ))
        .into());
    }
    let Some(domain) = email_domain(&user.email) else {
        return Err(Refusal::precondition(format!(
            "`{actor}` has no email domain in canonical form (a domain must not fold into another's)"
        ))
        .into());
    };
    match get_json2::<Domain>(&t.domains, "domains", (org, &domain))? {
        Some(d) if d.verified() && d.enrollment == mode => Ok(d),
        Some(d) if !d.verified() => {
            Err(Refusal::precondition(format!("domain `{domain}` of org `{org}` is not verified yet")).into())
        }
        Some(d) => Err(Refusal::precondition(format!(
            "domain `{domain}` of org `{org}` is in `{}` mode, not `{}`",
            d.enrollment.as_str(),
            mode.as_str()
        ))
        .into()),
        None => Err(Refusal::precondition(format!(
            "org `{org}` has no verified domain matching the email of `{actor}`"
        ))
        .into()),
    }
}

/// Create a membership for `user` in `org` with `role`, under the limits.
fn join(
    t: &mut WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    at_ms: u64,
    org: &Org,
    user: &str,
    role: &str,
    limit: Option<u32>,
) -> Ops {
    if t.memberships.get((org.id.as_str(), user))?.is_some() {
        return Err(Refusal::already_exists(format!("membership of `{user}` in org `{}`", org.id)).into());
    }
    if !(ctx.is_role)(role) {
        return Err(Refusal::invalid(
            "role",
            format!("unknown role `{role}`; roles are defined by the policy"),
        )
        .into());
    }
    check_membership_limit(t, org, limit, at_ms, None)?;
    super::limits::check_join(t, ctx, org, user, role)?;
    let m = Membership {
        org: org.id.clone(),
        user: user.to_string(),
        role: role.to_string(),
        joined_at_ms: at_ms,
        terms_accepted: None,
        updated_at_ms: None,
    };
    put_membership(t, &m)?;
    Ok(vec![IndexOp::SetMember {
        org: m.org,
        user: m.user,
        role: m.role,
    }])
}

pub(crate) fn join_by_domain(
    t: &mut WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    actor: &str,
    at_ms: u64,
    org: &str,
    limit_of: &dyn Fn(&Org) -> Option<u32>,
) -> Ops {
    let o = require_org(t, org)?;
    if o.settings.terms_version.is_some() {
        return Err(Refusal::precondition(format!(
            "org `{org}` has terms of use to accept; join it through an invitation"
        ))
        .into());
    }
    let d = matching_domain(t, actor, org, Enrollment::AutomaticInvitation)?;
    join(t, ctx, at_ms, &o, actor, &d.role, limit_of(&o))
}

pub(crate) fn request(t: &mut WriteTables<'_>, actor: &str, at_ms: u64, id: &str, org: &str) -> Ops {
    let o = require_org(t, org)?;
    if o.settings.terms_version.is_some() {
        return Err(Refusal::precondition(format!(
            "org `{org}` has terms of use to accept; join it through an invitation"
        ))
        .into());
    }
    let d = matching_domain(t, actor, org, Enrollment::AutomaticSuggestion)?;
    if t.memberships.get((org, actor))?.is_some() {
        return Err(Refusal::already_exists(format!("membership of `{actor}` in org `{org}`")).into());
    }
    if t.membership_requests.get(id)?.is_some() {
        return Err(Refusal::already_exists(format!("membership request `{id}`")).into());
    }
    for other in seconds(&t.user_requests, actor)? {
        if let Some(r) = get_json::<MembershipRequest>(&t.membership_requests, "membership_requests", &other)?
            && r.org == org
            && r.status == RequestStatus::Pending
        {
            return Err(Refusal::already_exists(format!(
                "pending membership request `{other}` of `{actor}` to org `{org}`"
            ))
            .into());
        }
    }
    let r = MembershipRequest {
        id: id.to_string(),
        org: org.to_string(),
        user: actor.to_string(),
        domain: d.domain,
        status: RequestStatus::Pending,
        created_at_ms: at_ms,
        resolved_at_ms: None,
        resolved_by: None,
        role: None,
    };
    put_request(t, &r)?;
    Ok(vec![])
}

fn pending_request(t: &WriteTables<'_>, org: &str, id: &str) -> Result<MembershipRequest, ApplyError> {
    let r: MembershipRequest = get_json(&t.membership_requests, "membership_requests", id)?
        .filter(|r: &MembershipRequest| r.org == org)
        .ok_or_else(|| Refusal::not_found(format!("membership request `{id}` in org `{org}`")))?;
    if r.status != RequestStatus::Pending {
        return Err(Refusal::precondition(format!(
            "membership request `{id}` to org `{org}` was already {}",
            r.status.as_str()
        ))
        .into());
    }
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn approve(
    t: &mut WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    actor: &str,
    at_ms: u64,
    org: &str,
    id: &str,
    role: Option<&str>,
    limit_of: &dyn Fn(&Org) -> Option<u32>,
) -> Ops {
    let mut r = pending_request(t, org, id)?;
    let o = require_org(t, org)?;
    require_user(t, &r.user, "user")?;
    // The domain's role unless the approver names one; a removed domain leaves `org_user`.
    let default_role = get_json2::<Domain>(&t.domains, "domains", (org, &r.domain))?
        .map_or_else(|| "org_user".to_string(), |d| d.role);
    let role = role.map_or(default_role, str::to_string);
    let ops = join(t, ctx, at_ms, &o, &r.user, &role, limit_of(&o))?;
    r.status = RequestStatus::Approved;
    r.resolved_at_ms = Some(at_ms);
    r.resolved_by = Some(actor.to_string());
    r.role = Some(role);
    put_request(t, &r)?;
    Ok(ops)
}

pub(crate) fn reject(t: &mut WriteTables<'_>, actor: &str, at_ms: u64, org: &str, id: &str) -> Ops {
    let mut r = pending_request(t, org, id)?;
    r.status = RequestStatus::Rejected;
    r.resolved_at_ms = Some(at_ms);
    r.resolved_by = Some(actor.to_string());
    put_request(t, &r)?;
    Ok(vec![])
}

/// Remove every domain and membership request of `org` (the org is going).
pub(crate) fn remove_org(t: &mut WriteTables<'_>, org: &str) -> Result<(), ApplyError> {
    for domain in seconds(&t.domains, org)? {
        t.domains.remove((org, domain.as_str()))?;
        t.domain_orgs.remove((domain.as_str(), org))?;
    }
    for id in seconds(&t.org_requests, org)? {
        if let Some(r) = get_json::<MembershipRequest>(&t.membership_requests, "membership_requests", &id)? {
            t.user_requests.remove((r.user.as_str(), id.as_str()))?;
        }
        t.membership_requests.remove(id.as_str())?;
        t.org_requests.remove((org, id.as_str()))?;
    }
    Ok(())
}

/// What a user's email offers: an org with a verified domain in an automatic mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainOffer {
    pub domain: Domain,
    /// Whether the user is already a member (offers are listed anyway, marked).
    pub member: bool,
}

impl Store {
    /// Domains of `org`, in name order.
    pub fn list_domains(&self, org: &str) -> Result<Vec<Domain>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(tables::DOMAINS)?;
        let mut out = Vec::new();
        for item in table.range((org, "")..)? {
            let (key, value) = item?;
            let (o, d) = key.value();
            if o != org {
                break;
            }
            out.push(decode("domains", d, value.value())?);
        }
        Ok(out)
    }

    /// Verified domains in an automatic mode that `email` is on, with whether `user` is a
    /// member of each org already.
    pub fn domain_offers(&self, user: &str, email: &str) -> Result<Vec<DomainOffer>, StoreError> {
        let Some(domain) = email_domain(email) else {
            return Ok(vec![]);
        };
        let txn = self.db.begin_read()?;
        let orgs = tables::seconds(&txn.open_table(tables::DOMAIN_ORGS)?, &domain)?;
        let domains = txn.open_table(tables::DOMAINS)?;
        let memberships = txn.open_table(tables::MEMBERSHIPS)?;
        let mut out = Vec::new();
        for org in orgs {
            if let Some(d) = get_json2::<Domain>(&domains, "domains", (&org, &domain))?
                && d.verified()
                && d.enrollment != Enrollment::Manual
            {
                let member = memberships.get((org.as_str(), user))?.is_some();
                out.push(DomainOffer { domain: d, member });
            }
        }
        Ok(out)
    }

    /// Membership requests of an org (`by_org`) or of a user, oldest id first, filtered by
    /// status; at most 1000.
    pub fn list_membership_requests(
        &self,
        by_org: bool,
        key: &str,
        status: Option<RequestStatus>,
    ) -> Result<Vec<MembershipRequest>, StoreError> {
        let txn = self.db.begin_read()?;
        let index = if by_org {
            txn.open_table(tables::ORG_REQUESTS)?
        } else {
            txn.open_table(tables::USER_REQUESTS)?
        };
        let requests = txn.open_table(tables::MEMBERSHIP_REQUESTS)?;
        let mut out = Vec::new();
        for id in tables::seconds(&index, key)? {
            if let Some(r) = get_json::<MembershipRequest>(&requests, "membership_requests", &id)?
                && status.is_none_or(|s| r.status == s)
            {
                out.push(r);
                if out.len() == 1000 {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub fn get_membership_request(&self, id: &str) -> Result<Option<MembershipRequest>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json(
            &txn.open_table(tables::MEMBERSHIP_REQUESTS)?,
            "membership_requests",
            id,
        )
    }

    /// Every domain and every request, in key order (export).
    pub(crate) fn all_domains_and_requests(
        txn: &redb::ReadTransaction,
    ) -> Result<(Vec<Domain>, Vec<MembershipRequest>), StoreError> {
        let mut domains = Vec::new();
        for item in txn.open_table(tables::DOMAINS)?.iter()? {
            let (key, value) = item?;
            domains.push(decode("domains", key.value().1, value.value())?);
        }
        let mut requests = Vec::new();
        for item in txn.open_table(tables::MEMBERSHIP_REQUESTS)?.iter()? {
            let (key, value) = item?;
            requests.push(decode("membership_requests", key.value(), value.value())?);
        }
        Ok((domains, requests))
    }
}
