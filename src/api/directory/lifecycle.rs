//! `warden.v1.OrgLifecycleService`: leaving an org, and the limits in force.
//!
//! Authorization: `LeaveOrg` needs `org:leave` in the org (checked by the store's rules,
//! which also keep the last admin); `GetLimits` shows instance configuration only and needs
//! nothing.

use super::Directory;
use crate::api::pb;
use crate::directory::Change;
use tonic::{Request, Response, Status};
use tracing::Instrument;

#[tonic::async_trait]
impl pb::org_lifecycle_service_server::OrgLifecycleService for Directory {
    async fn leave_org(
        &self,
        request: Request<pb::LeaveOrgRequest>,
    ) -> Result<Response<pb::LeaveOrgResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("LeaveOrg", org = %r.org_id, actor = %r.actor);
        async move {
            let revision = self
                .write(&r.actor, "", Change::LeaveOrg { org: r.org_id })
                .await?;
            Ok(Response::new(pb::LeaveOrgResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn get_limits(
        &self,
        _request: Request<pb::GetLimitsRequest>,
    ) -> Result<Response<pb::Limits>, Status> {
        let policy = self.engine.policy();
        let l = &policy.limits;
        Ok(Response::new(pb::Limits {
            users_can_create_orgs: l.users_can_create_orgs,
            max_orgs_created_per_user: l.max_orgs_created_per_user.unwrap_or(0),
            max_admin_orgs_per_user: l.max_admin_orgs_per_user.unwrap_or(0),
            one_org_per_user: l.one_org_per_user,
            default_membership_limit: l.default_membership_limit.unwrap_or(0),
            invitation_ttl_seconds: l.invitation_ttl_seconds.unwrap_or(0),
            plans: l
                .plans
                .iter()
                .map(|(id, p)| pb::Plan {
                    plan_id: id.clone(),
                    roles: p.roles.clone(),
                    max_orgs_per_user: p.max_orgs_per_user.unwrap_or(0),
                    teams: p.teams,
                })
                .collect(),
            default_plan: l.default_plan.clone(),
        }))
    }
}
