//! `warden.v1.MemberService`.
//!
//! Authorization: mutations need `member:manage` in the org (checked by the store's rules,
//! which also keep the last admin); `ListMembers` needs `member:read` in the org.

use super::convert::member_pb;
use super::{Directory, check_actor, check_slug, vanished};
use crate::api::pb;
use crate::directory::Change;
use crate::directory::ids::validate_role;
use crate::store::{ApplyError, ListFilter, Store};
use std::collections::BTreeMap;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Team ids of `users` in `org`, by user.
pub(super) fn teams_of(
    store: &Store,
    org: &str,
    users: &[&str],
) -> Result<BTreeMap<String, Vec<String>>, ApplyError> {
    Ok(store.member_teams(org, users)?)
}

impl Directory {
    async fn member_after_write(
        &self,
        actor: &str,
        org: String,
        user: String,
        revision: u64,
    ) -> Result<pb::Member, Status> {
        let (o, u) = (org.clone(), user.clone());
        self.read(actor, "", move |s| {
            let Some(m) = s.get_membership(&o, &u)? else {
                return Ok(None);
            };
            let teams = teams_of(s, &o, &[u.as_str()])?.remove(&u).unwrap_or_default();
            Ok(Some(member_pb(m, teams)))
        })
        .await?
        .ok_or_else(|| vanished(&format!("membership of `{user}` in org `{org}`"), revision))
    }
}

#[tonic::async_trait]
impl pb::member_service_server::MemberService for Directory {
    async fn add_member(
        &self,
        request: Request<pb::AddMemberRequest>,
    ) -> Result<Response<pb::AddMemberResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("AddMember", org = %r.org_id, user = %r.user_id, actor = %r.actor);
        async move {
            let change = Change::AddMember {
                org: r.org_id.clone(),
                user: r.user_id.clone(),
                role: r.role,
                terms_version: None,
            };
            let revision = self.write(&r.actor, "", change).await?;
            let member = self
                .member_after_write(&r.actor, r.org_id, r.user_id, revision)
                .await?;
            Ok(Response::new(pb::AddMemberResponse {
                member: Some(member),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn update_member_role(
        &self,
        request: Request<pb::UpdateMemberRoleRequest>,
    ) -> Result<Response<pb::UpdateMemberRoleResponse>, Status> {
        let r = request.into_inner();
        let span =
            tracing::info_span!("UpdateMemberRole", org = %r.org_id, user = %r.user_id, actor = %r.actor);
        async move {
            let change = Change::ChangeRole {
                org: r.org_id.clone(),
                user: r.user_id.clone(),
                role: r.role,
            };
            let revision = self.write(&r.actor, "", change).await?;
            let member = self
                .member_after_write(&r.actor, r.org_id, r.user_id, revision)
                .await?;
            Ok(Response::new(pb::UpdateMemberRoleResponse {
                member: Some(member),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("RemoveMember", org = %r.org_id, user = %r.user_id, actor = %r.actor);
        async move {
            let change = Change::RemoveMember {
                org: r.org_id,
                user: r.user_id,
            };
            let revision = self.write(&r.actor, "", change).await?;
            Ok(Response::new(pb::RemoveMemberResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn list_members(
        &self,
        mut request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListMembers", org = %r.org_id, actor = %r.actor);
        async move {
            check_slug("org_id", &r.org_id)?;
            check_actor(&r.actor)?;
            crate::api::validate::bounded("query", &r.query)?;
            if !r.role.is_empty() {
                validate_role("role", &r.role).map_err(super::invalid_status)?;
            }
            let order = super::list_order(&r.order_by, false)?;
            self.require(&r.actor, &r.org_id, "org", "member:read")?;
            let revision = self.revision();
            let (members, next_page_token) = self
                .read(&r.actor, "", move |s| {
                    let filter = ListFilter {
                        query: r.query.clone(),
                        labels: Vec::new(),
                    };
                    let page = s.list_members_sorted(
                        &r.org_id,
                        &filter,
                        &r.role,
                        order,
                        &r.page_token,
                        r.page_size,
                    )?;
                    let users: Vec<&str> = page.items.iter().map(|m| m.membership.user.as_str()).collect();
                    let mut teams = teams_of(s, &r.org_id, &users)?;
                    let members = page
                        .items
                        .into_iter()
                        .map(|m| {
                            let team_ids = teams.remove(&m.membership.user).unwrap_or_default();
                            member_pb(m.membership, team_ids)
                        })
                        .collect();
                    Ok((members, page.next_page_token))
                })
                .await?;
            Ok(Response::new(pb::ListMembersResponse {
                members,
                next_page_token,
                revision,
            }))
        }
        .instrument(span)
        .await
    }
}
