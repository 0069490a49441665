//! `warden.v1.AuditService`: the change log as an audit trail, and followed as a stream
//! (`WatchChanges`, in `watch.rs`).
//!
//! Authorization: `audit:read` on `org` in the org asked about (admins, by default); the
//! instance-wide log (no org) only for callers on the Unix socket, who are trusted by file
//! permission like the other instance-wide listings.

use super::{Directory, check_actor, check_slug, check_user, on_unix_socket};
use crate::api::pb;
use crate::store::audit::AuditQuery;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// Change types an audit query may filter on.
fn known_change_type(t: &str) -> bool {
    // `kind()` names are snake_case words; an unknown one would silently match nothing.
    const KNOWN: &[&str] = &[
        "upsert_user",
        "create_org",
        "update_org",
        "delete_org",
        "add_member",
        "change_role",
        "remove_member",
        "create_team",
        "rename_team",
        "delete_team",
        "add_team_member",
        "remove_team_member",
        "grant_app",
        "revoke_app",
        "create_app",
        "delete_app",
        "transfer_app",
        "import",
        "create_token",
        "revoke_token",
        "add_collaborator",
        "remove_collaborator",
        "submit_app_version",
        "review_app_version",
        "set_security_settings",
        "sso_join",
        "create_invitation",
        "revoke_invitation",
        "accept_invitation",
        "decline_invitation",
        "force_delete_org",
        "leave_org",
        "add_domain",
        "verify_domain",
        "set_domain_enrollment",
        "remove_domain",
        "join_by_domain",
        "request_membership",
        "approve_membership_request",
        "reject_membership_request",
    ];
    KNOWN.contains(&t)
}

impl Directory {
    pub fn audit_server(&self) -> pb::audit_service_server::AuditServiceServer<Self> {
        pb::audit_service_server::AuditServiceServer::new(self.clone())
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for Directory {
    type WatchChangesStream = super::watch::WatchStream;

    async fn watch_changes(
        &self,
        request: Request<pb::WatchChangesRequest>,
    ) -> Result<Response<Self::WatchChangesStream>, Status> {
        let span = tracing::info_span!("WatchChanges");
        self.watch(request).instrument(span).await
    }

    async fn list_audit_entries(
        &self,
        request: Request<pb::ListAuditEntriesRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let trusted = on_unix_socket(&request);
        let r = request.into_inner();
        let span = tracing::info_span!("ListAuditEntries", org = %r.org_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            if r.org_id.is_empty() {
                if !trusted {
                    return Err(Status::permission_denied(
                        "org_id: the instance-wide audit log is only served on the Unix socket; name an org",
                    ));
                }
            } else {
                check_slug("org_id", &r.org_id)?;
                self.require(&r.actor, &r.org_id, "org", "audit:read")?;
            }
            if !r.by.is_empty() {
                check_user("by", &r.by)?;
            }
            if !r.change_type.is_empty() && !known_change_type(&r.change_type) {
                return Err(Status::invalid_argument(format!(
                    "change_type: `{}` is not a change type (e.g. `add_member`, `create_token`)",
                    r.change_type
                )));
            }
            if r.until_unix_ms != 0 && r.until_unix_ms <= r.since_unix_ms {
                return Err(Status::invalid_argument(
                    "until_unix_ms: must be after since_unix_ms (or 0 for no bound)",
                ));
            }
            let q = AuditQuery {
                org: r.org_id,
                actor: r.by,
                change_type: r.change_type,
                since_ms: r.since_unix_ms,
                until_ms: r.until_unix_ms,
            };
            let revision = self.revision();
            let (page_token, page_size) = (r.page_token, r.page_size);
            let page = self
                .read(&r.actor, "", move |s| s.audit(&q, &page_token, page_size))
                .await?;
            let entries = page
                .entries
                .into_iter()
                .map(|e| pb::AuditEntry {
                    revision: e.record.revision,
                    at_unix_ms: e.record.at_ms,
                    actor: e.record.actor,
                    change_type: e.record.change.kind().to_string(),
                    org_id: e.org.unwrap_or_default(),
                    change_json: serde_json::to_string(&e.record.change).unwrap_or_default(),
                })
                .collect();
            Ok(Response::new(pb::ListAuditEntriesResponse {
                entries,
                next_page_token: page.next_page_token,
                revision,
            }))
        }
        .instrument(span)
        .await
    }
}
