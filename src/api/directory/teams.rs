//! `warden.v1.TeamService`.
//!
//! Authorization: mutations need `team:manage` in the org (checked by the store's rules);
//! `ListTeams` and `ListTeamMembers` need `team:read` in the org.
//!
//! A team's member ids can be many (every member of a 10,000-member org): `ListTeams` sends
//! them unless the caller asks for counts only (`omit_member_ids`), and `ListTeamMembers`
//! pages them.

use super::convert::team_pb;
use super::{Directory, WALK_PAGE, check_actor, check_slug, vanished, walk};
use crate::api::pb;
use crate::directory::{Change, Refusal, Team};
use crate::store::{ApplyError, Store};
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// A team with its member count, its app grants and, unless `omit_member_ids`, every member id.
fn full_team(store: &Store, team: Team, omit_member_ids: bool) -> Result<pb::Team, ApplyError> {
    let (members, count) = if omit_member_ids {
        (Vec::new(), store.count_team_members(&team.org, &team.id)?)
    } else {
        let members = walk(|token| store.list_team_members(&team.org, &team.id, token, WALK_PAGE))?;
        let count = u32::try_from(members.len()).unwrap_or(u32::MAX);
        (members, count)
    };
    let apps = walk(|token| store.list_team_grants(&team.org, &team.id, token, WALK_PAGE))?;
    Ok(team_pb(team, members, count, apps))
}

impl Directory {
    async fn team_after_write(
        &self,
        actor: &str,
        org: String,
        team: String,
        revision: u64,
    ) -> Result<pb::Team, Status> {
        let (o, t) = (org.clone(), team.clone());
        self.read(actor, "", move |s| match s.get_team(&o, &t)? {
            Some(team) => full_team(s, team, false).map(Some),
            None => Ok(None),
        })
        .await?
        .ok_or_else(|| vanished(&format!("team `{team}` in org `{org}`"), revision))
    }
}

#[tonic::async_trait]
impl pb::team_service_server::TeamService for Directory {
    async fn create_team(
        &self,
        request: Request<pb::CreateTeamRequest>,
    ) -> Result<Response<pb::CreateTeamResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("CreateTeam", org = %r.org_id, team = %r.team_id, actor = %r.actor);
        async move {
            let change = Change::CreateTeam {
                org: r.org_id.clone(),
                team: r.team_id.clone(),
                name: r.name,
            };
            let revision = self.write(&r.actor, "", change).await?;
            let team = self
                .team_after_write(&r.actor, r.org_id, r.team_id, revision)
                .await?;
            Ok(Response::new(pb::CreateTeamResponse {
                team: Some(team),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn rename_team(
        &self,
        request: Request<pb::RenameTeamRequest>,
    ) -> Result<Response<pb::RenameTeamResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("RenameTeam", org = %r.org_id, team = %r.team_id, actor = %r.actor);
        async move {
            let change = Change::RenameTeam {
                org: r.org_id.clone(),
                team: r.team_id.clone(),
                name: r.name,
            };
            let revision = self.write(&r.actor, "", change).await?;
            let team = self
                .team_after_write(&r.actor, r.org_id, r.team_id, revision)
                .await?;
            Ok(Response::new(pb::RenameTeamResponse {
                team: Some(team),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn delete_team(
        &self,
        request: Request<pb::DeleteTeamRequest>,
    ) -> Result<Response<pb::DeleteTeamResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("DeleteTeam", org = %r.org_id, team = %r.team_id, actor = %r.actor);
        async move {
            let change = Change::DeleteTeam {
                org: r.org_id,
                team: r.team_id,
            };
            let revision = self.write(&r.actor, "", change).await?;
            Ok(Response::new(pb::DeleteTeamResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn list_teams(
        &self,
        mut request: Request<pb::ListTeamsRequest>,
    ) -> Result<Response<pb::ListTeamsResponse>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListTeams", org = %r.org_id, actor = %r.actor);
        async move {
            check_slug("org_id", &r.org_id)?;
            check_actor(&r.actor)?;
            self.require(&r.actor, &r.org_id, "org", "team:read")?;
            let revision = self.revision();
            let (teams, next_page_token) = self
                .read(&r.actor, "", move |s| {
                    let page = s.list_teams(&r.org_id, &r.page_token, r.page_size)?;
                    let teams = page
                        .items
                        .into_iter()
                        .map(|t| full_team(s, t, r.omit_member_ids))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((teams, page.next_page_token))
                })
                .await?;
            Ok(Response::new(pb::ListTeamsResponse {
                teams,
                next_page_token,
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn list_team_members(
        &self,
        mut request: Request<pb::ListTeamMembersRequest>,
    ) -> Result<Response<pb::ListTeamMembersResponse>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span =
            tracing::info_span!("ListTeamMembers", org = %r.org_id, team = %r.team_id, actor = %r.actor);
        async move {
            check_slug("org_id", &r.org_id)?;
            check_slug("team_id", &r.team_id)?;
            check_actor(&r.actor)?;
            self.require(&r.actor, &r.org_id, "org", "team:read")?;
            let revision = self.revision();
            let (user_ids, next_page_token, member_count) = self
                .read(&r.actor, "", move |s| {
                    if s.get_team(&r.org_id, &r.team_id)?.is_none() {
                        return Err(Refusal::not_found(format!(
                            "team_id `{}` in org `{}`",
                            r.team_id, r.org_id
                        ))
                        .into());
                    }
                    let page = s.list_team_members(&r.org_id, &r.team_id, &r.page_token, r.page_size)?;
                    let count = s.count_team_members(&r.org_id, &r.team_id)?;
                    Ok((page.items, page.next_page_token, count))
                })
                .await?;
            Ok(Response::new(pb::ListTeamMembersResponse {
                user_ids,
                next_page_token,
                revision,
                member_count,
            }))
        }
        .instrument(span)
        .await
    }

    async fn add_team_member(
        &self,
        request: Request<pb::AddTeamMemberRequest>,
    ) -> Result<Response<pb::AddTeamMemberResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("AddTeamMember", org = %r.org_id, team = %r.team_id, user = %r.user_id, actor = %r.actor);
        async move {
            let change = Change::AddTeamMember {
                org: r.org_id,
                team: r.team_id,
                user: r.user_id,
            };
            let revision = self.write(&r.actor, "", change).await?;
            Ok(Response::new(pb::AddTeamMemberResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn remove_team_member(
        &self,
        request: Request<pb::RemoveTeamMemberRequest>,
    ) -> Result<Response<pb::RemoveTeamMemberResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("RemoveTeamMember", org = %r.org_id, team = %r.team_id, user = %r.user_id, actor = %r.actor);
        async move {
            let change = Change::RemoveTeamMember {
                org: r.org_id,
                team: r.team_id,
                user: r.user_id,
            };
            let revision = self.write(&r.actor, "", change).await?;
            Ok(Response::new(pb::RemoveTeamMemberResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn grant_app(
        &self,
        request: Request<pb::GrantAppRequest>,
    ) -> Result<Response<pb::GrantAppResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("GrantApp", org = %r.org_id, team = %r.team_id, app = %r.app_id, actor = %r.actor);
        async move {
            if !r.role.is_empty() {
                return Err(Status::invalid_argument(
                    "role: per-grant roles are not supported; leave it empty (a grant gives the team's \
                     members what their org role allows on the app)",
                ));
            }
            let change = Change::GrantApp {
                org: r.org_id,
                team: r.team_id,
                app: r.app_id,
            };
            let revision = self.write(&r.actor, "", change).await?;
            Ok(Response::new(pb::GrantAppResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn revoke_app(
        &self,
        request: Request<pb::RevokeAppRequest>,
    ) -> Result<Response<pb::RevokeAppResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("RevokeApp", org = %r.org_id, team = %r.team_id, app = %r.app_id, actor = %r.actor);
        async move {
            let change = Change::RevokeApp {
                org: r.org_id,
                team: r.team_id,
                app: r.app_id,
            };
            let revision = self.write(&r.actor, "", change).await?;
            Ok(Response::new(pb::RevokeAppResponse { revision }))
        }
        .instrument(span)
        .await
    }
}
