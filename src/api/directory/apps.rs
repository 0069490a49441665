//! `warden.v1.AppService`.
//!
//! Authorization: mutations follow the store's rules (`app:create` in the owning org or the
//! owner itself for personal apps; `app:delete` on `apps/<app>`; transfer needs ownership and
//! `app:transfer` in the destination org; relabelling needs `app:label` on `apps/<app>`).
//! `GetApp` of an org app needs `app:read` on
//! `apps/<app>` in its org; of a personal app, the owner. `ListApps` of an org needs
//! `org:read` there and returns only the apps the actor may `app:read`; of a user, the actor
//! must be that user (or call on the Unix socket).

use super::convert::{app_pb, opt, owner_from_pb};
use super::{Directory, check_actor, check_slug, check_user, on_unix_socket, vanished};
use crate::api::pb;
use crate::directory::{App, Change, Owner};
use crate::store::ListFilter;
use tonic::{Request, Response, Status};
use tracing::Instrument;

fn not_owner(actor: &str, owner: &str, app: &str) -> Status {
    Status::permission_denied(format!(
        "actor `{actor}` lacks ownership of personal app `{app}` (owned by `{owner}`)"
    ))
}

impl Directory {
    async fn app_after_write(&self, actor: &str, id: String, revision: u64) -> Result<pb::App, Status> {
        let lookup = id.clone();
        self.read(actor, "app_id", move |s| Ok(s.get_app(&lookup)?))
            .await?
            .map(app_pb)
            .ok_or_else(|| vanished(&format!("app `{id}`"), revision))
    }

    /// May `actor` read `app`? Org apps ask the policy; personal apps only their owner.
    fn may_read_app(&self, actor: &str, app: &App) -> Result<(), Status> {
        match &app.owner {
            Owner::Org(org) => self.require(actor, org, &format!("apps/{}", app.id), "app:read"),
            Owner::User(user) if user == actor => Ok(()),
            Owner::User(user) => Err(not_owner(actor, user, &app.id)),
        }
    }
}

#[tonic::async_trait]
impl pb::app_service_server::AppService for Directory {
    async fn create_app(
        &self,
        request: Request<pb::CreateAppRequest>,
    ) -> Result<Response<pb::CreateAppResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("CreateApp", app = %r.app_id, actor = %r.actor);
        async move {
            let change = Change::CreateApp {
                id: r.app_id.clone(),
                owner: owner_from_pb(r.owner)?,
                name: r.name,
                labels: r.labels,
            };
            let revision = self.write(&r.actor, "app_id", change).await?;
            let app = self.app_after_write(&r.actor, r.app_id, revision).await?;
            Ok(Response::new(pb::CreateAppResponse {
                app: Some(app),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn set_app_labels(
        &self,
        request: Request<pb::SetAppLabelsRequest>,
    ) -> Result<Response<pb::SetAppLabelsResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("SetAppLabels", app = %r.app_id, actor = %r.actor);
        async move {
            let change = Change::SetAppLabels {
                app: r.app_id.clone(),
                labels: r.labels,
            };
            let revision = self.write(&r.actor, "app_id", change).await?;
            let app = self.app_after_write(&r.actor, r.app_id, revision).await?;
            Ok(Response::new(pb::SetAppLabelsResponse {
                app: Some(app),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_app(&self, mut request: Request<pb::GetAppRequest>) -> Result<Response<pb::App>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("GetApp", app = %r.app_id, actor = %r.actor);
        async move {
            check_slug("app_id", &r.app_id)?;
            check_actor(&r.actor)?;
            let id = r.app_id.clone();
            let app = self
                .read(&r.actor, "app_id", move |s| Ok(s.get_app(&id)?))
                .await?
                .ok_or_else(|| Status::not_found(format!("app `{}` not found", r.app_id)))?;
            self.may_read_app(&r.actor, &app)?;
            Ok(Response::new(app_pb(app)))
        }
        .instrument(span)
        .await
    }

    async fn delete_app(
        &self,
        request: Request<pb::DeleteAppRequest>,
    ) -> Result<Response<pb::DeleteAppResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("DeleteApp", app = %r.app_id, actor = %r.actor);
        async move {
            let revision = self
                .write(&r.actor, "app_id", Change::DeleteApp { id: r.app_id })
                .await?;
            Ok(Response::new(pb::DeleteAppResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn list_apps(
        &self,
        mut request: Request<pb::ListAppsRequest>,
    ) -> Result<Response<pb::ListAppsResponse>, Status> {
        let trusted = on_unix_socket(&request);
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListApps", actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            let owner = owner_from_pb(r.owner)?;
            match &owner {
                Owner::Org(org) => {
                    check_slug("owner", org)?;
                    self.require(&r.actor, org, "org", "org:read")?;
                }
                Owner::User(user) => {
                    check_user("owner", user)?;
                    if user != &r.actor && !trusted {
                        return Err(Status::permission_denied(format!(
                            "actor `{}` may only list its own personal apps (owner `{user}`)",
                            r.actor
                        )));
                    }
                }
            }
            let order = super::list_order(&r.order_by, false)?;
            crate::api::validate::bounded("query", &r.query)?;
            if r.labels.len() > 32 {
                return Err(Status::invalid_argument(format!(
                    "labels: {} given, at most 32 allowed",
                    r.labels.len()
                )));
            }
            for label in &r.labels {
                crate::api::validate::bounded("labels", label)?;
            }
            let revision = self.revision();
            let filter = ListFilter {
                query: r.query,
                labels: r.labels,
            };
            let (page_token, page_size) = (r.page_token, r.page_size);
            let page = self
                .read(&r.actor, "app_id", move |s| {
                    s.list_apps_sorted(&owner, &filter, order, &page_token, page_size)
                })
                .await?;
            // Within an org, show only what the actor could open: team contributors see
            // their teams' apps. Pages may therefore be shorter than `page_size`.
            let apps = page
                .items
                .into_iter()
                .filter(|app| match app.owner {
                    // Authorized above for the whole list.
                    Owner::User(_) => true,
                    Owner::Org(_) => self.may_read_app(&r.actor, app).is_ok(),
                })
                .map(app_pb)
                .collect();
            Ok(Response::new(pb::ListAppsResponse {
                apps,
                next_page_token: page.next_page_token,
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn transfer_app(
        &self,
        request: Request<pb::TransferAppRequest>,
    ) -> Result<Response<pb::TransferAppResponse>, Status> {
        let r = request.into_inner();
        let span =
            tracing::info_span!("TransferApp", app = %r.app_id, to_org = %r.to_org_id, actor = %r.actor);
        async move {
            if !r.new_app_id.is_empty() && r.new_app_id != r.app_id {
                return Err(Status::invalid_argument(
                    "new_app_id: app ids are kept on transfer (policies name apps by id); \
                     leave it empty and use new_name to rename",
                ));
            }
            let change = Change::TransferApp {
                app: r.app_id.clone(),
                to_org: r.to_org_id,
                rename: opt(r.new_name),
            };
            let revision = self.write(&r.actor, "app_id", change).await?;
            let app = self.app_after_write(&r.actor, r.app_id, revision).await?;
            Ok(Response::new(pb::TransferAppResponse {
                app: Some(app),
                revision,
            }))
        }
        .instrument(span)
        .await
    }
}
