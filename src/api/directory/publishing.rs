//! `warden.v1.PublishingService`: submit app versions for publishing, review them.
//!
//! Authorization: submit needs `app:publish`, review `app:approve`, on `apps/<app>` in the
//! app's org (the store asks); listing needs `app:read` there (asked here).

use super::convert::opt;
use super::{Directory, check_actor, check_slug, vanished};
use crate::api::pb;
use crate::directory::{AppVersion, Change, VersionState};
use tonic::{Request, Response, Status};
use tracing::Instrument;

fn version_pb(v: AppVersion) -> pb::AppVersion {
    pb::AppVersion {
        app_id: v.app,
        version: v.version,
        state: v.state.as_str().to_string(),
        note: v.note.unwrap_or_default(),
        submitted_by: v.submitted_by,
        submitted_at_unix_ms: v.submitted_at_ms,
        reviewed_by: v.reviewed_by.unwrap_or_default(),
        reviewed_at_unix_ms: v.reviewed_at_ms.unwrap_or(0),
        reason: v.reason.unwrap_or_default(),
    }
}

impl Directory {
    pub fn publishing_server(&self) -> pb::publishing_service_server::PublishingServiceServer<Self> {
        pb::publishing_service_server::PublishingServiceServer::new(self.clone())
    }

    async fn version_after_write(
        &self,
        actor: &str,
        app: String,
        version: String,
        revision: u64,
    ) -> Result<pb::AppVersion, Status> {
        let (a, v) = (app.clone(), version.clone());
        self.read(actor, "app_id", move |s| Ok(s.get_app_version(&a, &v)?))
            .await?
            .map(version_pb)
            .ok_or_else(|| vanished(&format!("version `{version}` of app `{app}`"), revision))
    }
}

#[tonic::async_trait]
impl pb::publishing_service_server::PublishingService for Directory {
    async fn submit_app_version(
        &self,
        request: Request<pb::SubmitAppVersionRequest>,
    ) -> Result<Response<pb::SubmitAppVersionResponse>, Status> {
        let r = request.into_inner();
        let span =
            tracing::info_span!("SubmitAppVersion", app = %r.app_id, version = %r.version, actor = %r.actor);
        async move {
            let change = Change::SubmitAppVersion {
                app: r.app_id.clone(),
                version: r.version.clone(),
                note: opt(r.note),
            };
            let revision = self.write(&r.actor, "app_id", change).await?;
            let version = self
                .version_after_write(&r.actor, r.app_id, r.version, revision)
                .await?;
            Ok(Response::new(pb::SubmitAppVersionResponse {
                version: Some(version),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn review_app_version(
        &self,
        request: Request<pb::ReviewAppVersionRequest>,
    ) -> Result<Response<pb::ReviewAppVersionResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("ReviewAppVersion", app = %r.app_id, version = %r.version, approve = r.approve, actor = %r.actor);
        async move {
            let change = Change::ReviewAppVersion {
                app: r.app_id.clone(),
                version: r.version.clone(),
                approve: r.approve,
                reason: opt(r.reason),
            };
            let revision = self.write(&r.actor, "app_id", change).await?;
            let version = self
                .version_after_write(&r.actor, r.app_id, r.version, revision)
                .await?;
            Ok(Response::new(pb::ReviewAppVersionResponse {
                version: Some(version),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn list_app_versions(
        &self,
        mut request: Request<pb::ListAppVersionsRequest>,
    ) -> Result<Response<pb::ListAppVersionsResponse>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListAppVersions", app = %r.app_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            check_slug("app_id", &r.app_id)?;
            let state = match r.state.as_str() {
                "" => None,
                "pending" => Some(VersionState::Pending),
                "approved" => Some(VersionState::Approved),
                "rejected" => Some(VersionState::Rejected),
                other => {
                    return Err(Status::invalid_argument(format!(
                        "state: `{other}` is not one of pending, approved, rejected"
                    )));
                }
            };
            let app = self
                .readable_org_app(&r.actor, &r.app_id, "publishing review")
                .await?;
            let revision = self.revision();
            let (page_token, page_size) = (r.page_token, r.page_size);
            let page = self
                .read(&r.actor, "app_id", move |s| {
                    s.list_app_versions(&app.id, state, &page_token, page_size)
                })
                .await?;
            Ok(Response::new(pb::ListAppVersionsResponse {
                versions: page.items.into_iter().map(version_pb).collect(),
                next_page_token: page.next_page_token,
                revision,
            }))
        }
        .instrument(span)
        .await
    }
}
