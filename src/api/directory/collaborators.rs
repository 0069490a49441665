//! `warden.v1.CollaboratorService`: users outside an org who hold a role on one of its apps.
//!
//! Authorization: add and remove need `collaborator:manage` on `apps/<app>` in the app's org
//! (the store asks); listing needs `app:read` there (asked here).

use super::{Directory, check_actor, check_slug, vanished};
use crate::api::pb;
use crate::directory::{Change, Collaborator};
use tonic::{Request, Response, Status};
use tracing::Instrument;

fn collaborator_pb(c: Collaborator) -> pb::Collaborator {
    pb::Collaborator {
        app_id: c.app,
        user_id: c.user,
        role: c.role,
        added_by: c.added_by,
        added_at_unix_ms: c.added_at_ms,
    }
}

impl Directory {
    pub fn collaborator_server(&self) -> pb::collaborator_service_server::CollaboratorServiceServer<Self> {
        pb::collaborator_service_server::CollaboratorServiceServer::new(self.clone())
    }
}

#[tonic::async_trait]
impl pb::collaborator_service_server::CollaboratorService for Directory {
    async fn add_collaborator(
        &self,
        request: Request<pb::AddCollaboratorRequest>,
    ) -> Result<Response<pb::AddCollaboratorResponse>, Status> {
        let r = request.into_inner();
        let span =
            tracing::info_span!("AddCollaborator", app = %r.app_id, user = %r.user_id, actor = %r.actor);
        async move {
            let change = Change::AddCollaborator {
                app: r.app_id.clone(),
                user: r.user_id.clone(),
                role: r.role,
            };
            let revision = self.write(&r.actor, "app_id", change).await?;
            let (app, user) = (r.app_id.clone(), r.user_id.clone());
            let c = self
                .read(&r.actor, "app_id", move |s| Ok(s.get_collaborator(&app, &user)?))
                .await?
                .ok_or_else(|| {
                    vanished(
                        &format!("collaborator `{}` on app `{}`", r.user_id, r.app_id),
                        revision,
                    )
                })?;
            Ok(Response::new(pb::AddCollaboratorResponse {
                collaborator: Some(collaborator_pb(c)),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn remove_collaborator(
        &self,
        request: Request<pb::RemoveCollaboratorRequest>,
    ) -> Result<Response<pb::RemoveCollaboratorResponse>, Status> {
        let r = request.into_inner();
        let span =
            tracing::info_span!("RemoveCollaborator", app = %r.app_id, user = %r.user_id, actor = %r.actor);
        async move {
            let change = Change::RemoveCollaborator {
                app: r.app_id,
                user: r.user_id,
            };
            let revision = self.write(&r.actor, "app_id", change).await?;
            Ok(Response::new(pb::RemoveCollaboratorResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn list_collaborators(
        &self,
        mut request: Request<pb::ListCollaboratorsRequest>,
    ) -> Result<Response<pb::ListCollaboratorsResponse>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListCollaborators", app = %r.app_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            check_slug("app_id", &r.app_id)?;
            let app = self
                .readable_org_app(&r.actor, &r.app_id, "collaborators")
                .await?;
            let revision = self.revision();
            let (page_token, page_size) = (r.page_token, r.page_size);
            let page = self
                .read(&r.actor, "app_id", move |s| {
                    s.list_collaborators(&app.id, &page_token, page_size)
                })
                .await?;
            Ok(Response::new(pb::ListCollaboratorsResponse {
                collaborators: page.items.into_iter().map(collaborator_pb).collect(),
                next_page_token: page.next_page_token,
                revision,
            }))
        }
        .instrument(span)
        .await
    }
}
