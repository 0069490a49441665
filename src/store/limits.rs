//! Instance limits and plans (`policies/limits.toml`), enforced inside the write transaction.
//!
//! Each check reads the directory through the caller's tables and the [`Limits`] in the
//! [`ApplyContext`], and refuses with FAILED_PRECONDITION naming the limit, so the same
//! state, change and limits always give the same outcome. Counting walks only one user's
//! orgs (`user_orgs`, `orgs_by_creator`) or, for a plan change, one org's members.

use super::apply::require_org;
use super::tables::{WriteTables, get_json, seconds};
use super::{ApplyError, StoreError};
use crate::directory::{ADMIN_ROLE, ApplyContext, Org, Permission, Refusal};
use redb::ReadableTable;

fn refuse(reason: String) -> ApplyError {
    Refusal::precondition(reason).into()
}

/// Orgs `user` belongs to.
fn orgs_of(t: &WriteTables<'_>, user: &str) -> Result<Vec<String>, StoreError> {
    seconds(&t.user_orgs, user)
}

/// How many orgs `user` is admin of.
fn admin_count(t: &WriteTables<'_>, user: &str) -> Result<u64, StoreError> {
    let mut n = 0;
    for org in orgs_of(t, user)? {
        if t.org_admins.get((org.as_str(), user))?.is_some() {
            n += 1;
        }
    }
    Ok(n)
}

/// `max_admin_orgs_per_user`: may `user` become admin of one more org?
fn check_admin_count(t: &WriteTables<'_>, ctx: &ApplyContext<'_>, user: &str) -> Result<(), ApplyError> {
    if let Some(max) = ctx.limits.max_admin_orgs_per_user {
        let n = admin_count(t, user)?;
        if n >= u64::from(max) {
            return Err(refuse(format!(
                "limit max_admin_orgs_per_user: `{user}` is already admin of {n} orgs (at most {max})"
            )));
        }
    }
    Ok(())
}

/// `one_org_per_user`: may `user` join `org`?
fn check_one_org(
    t: &WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    user: &str,
    org: &str,
) -> Result<(), ApplyError> {
    if ctx.limits.one_org_per_user
        && let Some(other) = orgs_of(t, user)?.into_iter().find(|o| o != org)
    {
        return Err(refuse(format!(
            "limit one_org_per_user: `{user}` is already a member of org `{other}`; leave it first"
        )));
    }
    Ok(())
}

/// The plan's roles: may a member of `org` hold `role`?
pub(crate) fn check_plan_role(ctx: &ApplyContext<'_>, org: &Org, role: &str) -> Result<(), ApplyError> {
    if let Some(plan) = ctx.limits.plan(&org.plan)
        && !plan.roles.is_empty()
        && !plan.roles.iter().any(|r| r == role)
    {
        return Err(refuse(format!(
            "plan `{}` of org `{}` allows only the roles {} (not `{role}`)",
            org.plan,
            org.id,
            plan.roles.join(", ")
        )));
    }
    Ok(())
}

/// Everything that limits a new member: plan roles, one org per user, admin count.
pub(crate) fn check_join(
    t: &WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    org: &Org,
    user: &str,
    role: &str,
) -> Result<(), ApplyError> {
    check_plan_role(ctx, org, role)?;
    check_one_org(t, ctx, user, &org.id)?;
    if role == ADMIN_ROLE {
        check_admin_count(t, ctx, user)?;
    }
    Ok(())
}

/// A member's new role: plan roles, and the admin count when they become admin.
pub(crate) fn check_role_change(
    t: &WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    org: &Org,
    user: &str,
    old_role: &str,
    role: &str,
) -> Result<(), ApplyError> {
    check_plan_role(ctx, org, role)?;
    if role == ADMIN_ROLE && old_role != ADMIN_ROLE {
        check_admin_count(t, ctx, user)?;
    }
    Ok(())
}

/// Who may create an org on `plan`: the instance switch, one org per user, orgs created,
/// orgs on the plan, and the admin count (the creator becomes admin).
pub(crate) fn check_create_org(
    t: &WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    actor: &str,
    id: &str,
    plan: &str,
) -> Result<(), ApplyError> {
    let limits = ctx.limits;
    if !limits.users_can_create_orgs && !ctx.operator {
        return Err(refuse(
            "limit users_can_create_orgs: users may not create orgs on this instance; ask the operator"
                .into(),
        ));
    }
    check_one_org(t, ctx, actor, id)?;
    let created = seconds(&t.orgs_by_creator, actor)?;
    if let Some(max) = limits.max_orgs_created_per_user
        && created.len() as u64 >= u64::from(max)
    {
        return Err(refuse(format!(
            "limit max_orgs_created_per_user: `{actor}` has created {} orgs (at most {max})",
            created.len()
        )));
    }
    if let Some(p) = limits.plan(plan) {
        if !p.roles.is_empty() && !p.roles.iter().any(|r| r == ADMIN_ROLE) {
            return Err(refuse(format!(
                "plan `{plan}` does not allow the `{ADMIN_ROLE}` role its creator would hold"
            )));
        }
        if let Some(max) = p.max_orgs_per_user {
            let mut on_plan = 0u64;
            for org in &created {
                if get_json::<Org>(&t.orgs, "orgs", org)?.is_some_and(|o| o.plan == plan) {
                    on_plan += 1;
                }
            }
            if on_plan >= u64::from(max) {
                return Err(refuse(format!(
                    "plan `{plan}` allows {max} org(s) per user; `{actor}` has created {on_plan}"
                )));
            }
        }
    }
    check_admin_count(t, ctx, actor)
}

/// Choosing `plan` for an org: it must be a row of the plan table (when the instance has one),
/// and the choice is not self-service. At creation (`changer` `None`) anything but the default
/// plan needs the operator; a change of an existing org's plan needs `billing:manage` on it
/// (`changer` = the actor and the org), or the operator.
pub(crate) fn check_plan_choice(
    ctx: &ApplyContext<'_>,
    plan: &str,
    changer: Option<(&str, &str)>,
) -> Result<(), ApplyError> {
    let limits = ctx.limits;
    if !limits.plans.is_empty() && limits.plan(plan).is_none() {
        return Err(Refusal::invalid(
            "plan",
            format!(
                "unknown plan `{plan}`; the plans of limits.toml are {}",
                limits.plans.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .into());
    }
    if ctx.operator {
        return Ok(());
    }
    match changer {
        None if plan != limits.default_plan => Err(Refusal::PermissionDenied {
            permission: format!(
                "the operator's role to create an org on plan `{plan}`: orgs are created on the \
                 default plan `{}`, and a holder of `billing:manage` changes the plan",
                limits.default_plan
            ),
            org: String::new(),
        }
        .into()),
        None => Ok(()),
        Some((actor, org)) => Ok(ctx.check(actor, &Permission::new(org, "org", "billing:manage"))?),
    }
}

/// Moving `org` to `plan`: every member's role and the org's teams must fit the new plan.
pub(crate) fn check_plan_change(
    t: &WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    org: &Org,
) -> Result<(), ApplyError> {
    let Some(plan) = ctx.limits.plan(&org.plan) else {
        return Ok(());
    };
    if !plan.teams && !seconds(&t.teams, &org.id)?.is_empty() {
        return Err(refuse(format!(
            "plan `{}` has no teams and org `{}` has some; delete them first",
            org.plan, org.id
        )));
    }
    if !plan.roles.is_empty() {
        for item in t.memberships.range((org.id.as_str(), "")..)? {
            let (key, value) = item?;
            let (o, user) = key.value();
            if o != org.id {
                break;
            }
            let m: crate::directory::Membership = super::tables::decode("memberships", user, value.value())?;
            if !plan.roles.contains(&m.role) {
                return Err(refuse(format!(
                    "plan `{}` allows only the roles {}; `{user}` holds `{}` in org `{}`",
                    org.plan,
                    plan.roles.join(", "),
                    m.role,
                    org.id
                )));
            }
        }
    }
    Ok(())
}

/// May `org` have teams on its plan?
pub(crate) fn check_teams_allowed(
    t: &WriteTables<'_>,
    ctx: &ApplyContext<'_>,
    org: &str,
) -> Result<(), ApplyError> {
    let o = require_org(t, org)?;
    if let Some(plan) = ctx.limits.plan(&o.plan)
        && !plan.teams
    {
        return Err(refuse(format!("plan `{}` of org `{org}` has no teams", o.plan)));
    }
    Ok(())
}

/// Record the creator of a new org (for `max_orgs_created_per_user` and plan counts).
pub(crate) fn remember_org(t: &mut WriteTables<'_>, org: &Org) -> Result<(), StoreError> {
    t.orgs_by_creator
        .insert((org.created_by.as_str(), org.id.as_str()), ())?;
    Ok(())
}

/// Forget a deleted org's creator entry.
pub(crate) fn forget_org(t: &mut WriteTables<'_>, org: &Org) -> Result<(), StoreError> {
    t.orgs_by_creator
        .remove((org.created_by.as_str(), org.id.as_str()))?;
    Ok(())
}
