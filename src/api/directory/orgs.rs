//! `warden.v1.OrgService`.
//!
//! Authorization: create needs only an existing user as actor (instance limits apply, and a
//! plan other than the default needs the operator); update/delete need
//! `org:update`/`org:delete`, and a plan change also `billing:manage` or the operator (checked
//! by the store's rules); `GetOrg` needs `org:read` in the org; `ListOrgs` with a `user_id` needs the
//! actor to be that user, and listing every org is reserved to Unix-socket callers and, with
//! `all`, to actors the policy grants `org:list_all` on `instance` in the instance domain `*`.

use super::convert::{metadata, opt, org_pb, patch_from_pb, settings_from_pb};
use super::{Directory, check_actor, check_slug, check_user, on_unix_socket, vanished};
use crate::api::pb;
use crate::directory::Change;
use crate::store::{ApplyError, ListFilter, Store};
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// How many members `org` has (kept by the store beside the memberships).
fn member_count(store: &Store, org: &str) -> Result<u32, ApplyError> {
    Ok(u32::try_from(store.member_count(org)?).unwrap_or(u32::MAX))
}

/// The org with its member count, as the API shows it.
fn load_org(store: &Store, id: &str) -> Result<Option<pb::Org>, ApplyError> {
    match store.get_org(id)? {
        Some(org) => Ok(Some(org_pb(org.clone(), member_count(store, &org.id)?))),
        None => Ok(None),
    }
}

impl Directory {
    async fn org_after_write(&self, actor: &str, id: String, revision: u64) -> Result<pb::Org, Status> {
        let lookup = id.clone();
        self.read(actor, "org_id", move |s| load_org(s, &lookup))
            .await?
            .ok_or_else(|| vanished(&format!("org `{id}`"), revision))
    }
}

/// The domain of instance-wide permissions: no org id can be `*`, so only a static link
/// of the policy (`g, <user>, role:<r>, *`) gives anyone a role there, never the directory.
const INSTANCE_DOMAIN: &str = "*";

/// The action that lets a platform admin list every org over any listener (`ListOrgs.all`).
const LIST_ALL: &str = "org:list_all";

#[tonic::async_trait]
impl pb::org_service_server::OrgService for Directory {
    async fn create_org(
        &self,
        request: Request<pb::CreateOrgRequest>,
    ) -> Result<Response<pb::CreateOrgResponse>, Status> {
        let operator = on_unix_socket(&request);
        let r = request.into_inner();
        let span = tracing::info_span!("CreateOrg", org = %r.org_id, actor = %r.actor);
        async move {
            let change = Change::CreateOrg {
                public_metadata: metadata("public_metadata", &r.public_metadata)?,
                private_metadata: metadata("private_metadata", &r.private_metadata)?,
                id: r.org_id.clone(),
                name: r.name,
                billing_email: opt(r.billing_email),
                // An org without a plan is on the default plan of limits.toml.
                plan: opt(r.plan).unwrap_or_else(|| self.engine.policy().limits.default_plan.clone()),
                logo_url: opt(r.logo_url),
                settings: r.settings.map(settings_from_pb).unwrap_or_default(),
            };
            let revision = self.write_as(&r.actor, "org_id", change, operator).await?;
            let org = self.org_after_write(&r.actor, r.org_id, revision).await?;
            Ok(Response::new(pb::CreateOrgResponse {
                org: Some(org),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn get_org(&self, mut request: Request<pb::GetOrgRequest>) -> Result<Response<pb::Org>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("GetOrg", org = %r.org_id, actor = %r.actor);
        async move {
            check_slug("org_id", &r.org_id)?;
            check_actor(&r.actor)?;
            self.require(&r.actor, &r.org_id, "org", "org:read")?;
            let id = r.org_id.clone();
            self.read(&r.actor, "org_id", move |s| load_org(s, &id))
                .await?
                .map(Response::new)
                .ok_or_else(|| Status::not_found(format!("org `{}` not found", r.org_id)))
        }
        .instrument(span)
        .await
    }

    async fn update_org(
        &self,
        request: Request<pb::UpdateOrgRequest>,
    ) -> Result<Response<pb::UpdateOrgResponse>, Status> {
        let operator = on_unix_socket(&request);
        let r = request.into_inner();
        let span = tracing::info_span!("UpdateOrg", org = %r.org_id, actor = %r.actor);
        async move {
            let meta = |field: &str, text: Option<&String>| text.map(|t| metadata(field, t)).transpose();
            let change = Change::UpdateOrg {
                public_metadata: meta("public_metadata", r.public_metadata.as_ref())?,
                private_metadata: meta("private_metadata", r.private_metadata.as_ref())?,
                id: r.org_id.clone(),
                name: r.name,
                billing_email: r.billing_email,
                plan: r.plan,
                logo_url: r.logo_url,
                settings: None,
                settings_patch: r.settings.map(patch_from_pb),
            };
            let revision = self.write_as(&r.actor, "org_id", change, operator).await?;
            let org = self.org_after_write(&r.actor, r.org_id, revision).await?;
            Ok(Response::new(pb::UpdateOrgResponse {
                org: Some(org),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn delete_org(
        &self,
        request: Request<pb::DeleteOrgRequest>,
    ) -> Result<Response<pb::DeleteOrgResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("DeleteOrg", org = %r.org_id, actor = %r.actor);
        async move {
            let change = if r.force {
                Change::ForceDeleteOrg { id: r.org_id }
            } else {
                Change::DeleteOrg { id: r.org_id }
            };
            let revision = self.write(&r.actor, "org_id", change).await?;
            Ok(Response::new(pb::DeleteOrgResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn list_orgs(
        &self,
        mut request: Request<pb::ListOrgsRequest>,
    ) -> Result<Response<pb::ListOrgsResponse>, Status> {
        let trusted = on_unix_socket(&request);
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListOrgs", actor = %r.actor, user = %r.user_id);
        async move {
            check_actor(&r.actor)?;
            crate::api::validate::bounded("query", &r.query)?;
            if r.all {
                if !r.user_id.is_empty() {
                    return Err(Status::invalid_argument(
                        "all: lists every org; leave user_id empty (or list one user's orgs without all)",
                    ));
                }
                if !trusted {
                    self.require(&r.actor, INSTANCE_DOMAIN, "instance", LIST_ALL)
                        .map_err(|_| {
                            Status::permission_denied(format!(
                                "all: actor `{}` lacks `{LIST_ALL}` on `instance` in domain \
                                 `{INSTANCE_DOMAIN}`; a policy rule grants it to platform admins",
                                r.actor
                            ))
                        })?;
                }
            } else if r.user_id.is_empty() {
                if !trusted {
                    return Err(Status::permission_denied(format!(
                        "actor `{}` may not list every org over TCP; set user_id to the actor, \
                         or call on the Unix socket",
                        r.actor
                    )));
                }
            } else {
                check_user("user_id", &r.user_id)?;
                if r.user_id != r.actor && !trusted {
                    return Err(Status::permission_denied(format!(
                        "actor `{}` may only list its own orgs (user_id `{}`)",
                        r.actor, r.user_id
                    )));
                }
            }
            let order = super::list_order(&r.order_by, true)?;
            let revision = self.revision();
            let filter = ListFilter {
                query: r.query.clone(),
                labels: Vec::new(),
            };
            let (orgs, next_page_token) = self
                .read(&r.actor, "org_id", move |s| {
                    // Full pages in the chosen order: the store filters and sorts (`store::sorted`).
                    let page = if r.user_id.is_empty() {
                        s.list_orgs_sorted(&filter, order, &r.page_token, r.page_size)?
                    } else {
                        s.list_user_orgs_sorted(&r.user_id, &filter, order, &r.page_token, r.page_size)?
                    };
                    let orgs = page
                        .items
                        .into_iter()
                        .map(|(org, n)| org_pb(org, u32::try_from(n).unwrap_or(u32::MAX)))
                        .collect();
                    Ok((orgs, page.next_page_token))
                })
                .await?;
            Ok(Response::new(pb::ListOrgsResponse {
                orgs,
                next_page_token,
                revision,
            }))
        }
        .instrument(span)
        .await
    }
}
