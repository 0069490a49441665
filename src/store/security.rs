//! Org security settings in the store, and SSO auto-join.
//!
//! `SsoJoin` is an `AddMember` whose authorization comes from the org's own settings instead of
//! the policy: the IdP the login layer names must be configured with an auto-join role. Once
//! that holds, the membership is applied by the very same rules as `AddMember` (user exists,
//! not yet a member, membership limit, plan roles, instance limits: the limits in force are
//! passed on), so the two can never drift apart.

use super::apply::{apply_change, require_org};
use super::tables::{self, WriteTables, decode, encode, get_json};
use super::{ApplyError, Store, StoreError};
use crate::directory::security::OrgSecurity;
use crate::directory::{ApplyContext, Change, ChangeEnvelope, Refusal};
use crate::engine::index::IndexOp;

fn allow_all(_: &str, _: &str, _: &str, _: &str) -> bool {
    true
}

pub(crate) fn apply(
    t: &mut WriteTables<'_>,
    env: &ChangeEnvelope,
    ctx: &ApplyContext<'_>,
) -> Result<Vec<IndexOp>, ApplyError> {
    match &env.change {
        Change::SetSecuritySettings { org, settings } => {
            require_org(t, org)?;
            for (i, idp) in settings.identity_providers.iter().enumerate() {
                if let Some(role) = &idp.auto_join_role
                    && !(ctx.is_role)(role)
                {
                    return Err(Refusal::invalid(
                        format!("identity_providers[{i}].auto_join_role"),
                        format!("unknown role `{role}`; roles are defined by the policy"),
                    )
                    .into());
                }
            }
            put(
                t,
                &OrgSecurity {
                    org: org.clone(),
                    settings: settings.clone(),
                    updated_by: env.actor.clone(),
                    updated_at_ms: env.at_ms,
                },
            )?;
            Ok(vec![])
        }
        Change::SsoJoin { org, idp } => {
            require_org(t, org)?;
            let security: Option<OrgSecurity> = get_json(&t.org_security, "org_security", org)?;
            let provider = security
                .as_ref()
                .and_then(|s| s.settings.identity_providers.iter().find(|p| &p.id == idp))
                .ok_or_else(|| Refusal::not_found(format!("identity provider `{idp}` of org `{org}`")))?;
            let role = provider.auto_join_role.clone().ok_or_else(|| {
                Refusal::precondition(format!(
                    "identity provider `{idp}` of org `{org}` has no auto-join role; an admin adds members"
                ))
            })?;
            let join = ChangeEnvelope {
                format: env.format,
                actor: env.actor.clone(),
                at_ms: env.at_ms,
                change: Change::AddMember {
                    org: org.clone(),
                    user: env.actor.clone(),
                    role,
                    terms_version: None,
                },
                operator: env.operator,
                request_id: env.request_id.clone(),
                policy: env.policy.clone(),
            };
            // Authorized above by the org's settings; the role must still be a policy role, and
            // the plan, the membership limit and the instance limits bind it like any join.
            let trusted = ApplyContext::new(&allow_all, ctx.is_role)
                .with_limits(ctx.limits)
                .as_operator(ctx.operator);
            apply_change(t, &join, &trusted)
        }
        other => {
            Err(Refusal::invalid("change", format!("`{}` is not a security change", other.kind())).into())
        }
    }
}

pub(crate) fn put(t: &mut WriteTables<'_>, s: &OrgSecurity) -> Result<(), StoreError> {
    t.org_security.insert(s.org.as_str(), encode(s)?.as_slice())?;
    Ok(())
}

impl Store {
    /// An org's security settings; the defaults (no policy, no IdP) if never set.
    pub fn get_security(&self, org: &str) -> Result<Option<OrgSecurity>, StoreError> {
        let txn = self.db.begin_read()?;
        get_json(&txn.open_table(tables::ORG_SECURITY)?, "org_security", org)
    }

    pub(crate) fn all_security(txn: &redb::ReadTransaction) -> Result<Vec<OrgSecurity>, StoreError> {
        use redb::ReadableTable;
        let mut out = Vec::new();
        for item in txn.open_table(tables::ORG_SECURITY)?.iter()? {
            let (key, value) = item?;
            out.push(decode("org_security", key.value(), value.value())?);
        }
        Ok(out)
    }
}
