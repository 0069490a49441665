//! `warden.v1.InvitationService`.
//!
//! Authorization: create, bulk create, revoke and the org's list need `member:invite` in the
//! org (creates and revokes are checked by the store's rules, the list here). Accepting and
//! declining are the invitee's own acts: the store checks that the actor is the user, or has
//! the email, the invitation was made out to. A person's list is for that person (or a
//! caller on the Unix socket).
//!
//! The secret code and the invitation id are drawn here, before the change is built (DESIGN
//! §6): the code from the OS-seeded CSPRNG, 32 bytes, returned once and stored only as its
//! SHA-256.

use super::convert::member_pb;
use super::members::teams_of;
use super::{Directory, check_actor, check_slug, check_user, now_ms, on_unix_socket, vanished};
use crate::api::pb;
use crate::directory::domain::{email_key, normalize_email};
use crate::directory::invitation::{MAX_BULK_INVITATIONS, MAX_INVITATION_TTL_MS, code_hash};
use crate::directory::{Change, Invitation, InvitationStatus, Invitee};
use rand::RngCore;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// How long an invitation stays open when neither the request nor the instance says.
pub const DEFAULT_INVITATION_TTL_MS: u64 = 7 * 24 * 3600 * 1000;

/// Prefix of every invitation code, so a leaked one is recognizable in logs and scanners.
const CODE_PREFIX: &str = "wdn_inv_";

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

pub fn invitation_pb(inv: Invitation, at_ms: u64) -> pb::Invitation {
    let status = inv.status_at(at_ms).as_str().to_string();
    let (email, user_id) = match inv.invitee {
        Invitee::Email(e) => (e, String::new()),
        Invitee::User(u) => (String::new(), u),
    };
    pb::Invitation {
        invitation_id: inv.id,
        org_id: inv.org,
        email,
        user_id,
        role: inv.role,
        team_ids: inv.teams,
        status,
        invited_by: inv.invited_by,
        created_at_unix_ms: inv.created_at_ms,
        expires_at_unix_ms: inv.expires_at_ms,
        resolved_at_unix_ms: inv.resolved_at_ms.unwrap_or(0),
        resolved_by: inv.resolved_by.unwrap_or_default(),
    }
}

/// The invitee of a spec: exactly one of `email` (matched in canonical form) and `user_id`.
fn invitee_from_pb(spec: &pb::InvitationSpec) -> Result<Invitee, Status> {
    match (spec.email.is_empty(), spec.user_id.is_empty()) {
        (false, true) => Ok(Invitee::Email(
            normalize_email("email", &spec.email).map_err(super::invalid_status)?,
        )),
        (true, false) => Ok(Invitee::User(spec.user_id.clone())),
        _ => Err(Status::invalid_argument(
            "invitee: set exactly one of email and user_id",
        )),
    }
}

fn status_filter(field: &str, text: &str) -> Result<Option<InvitationStatus>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    InvitationStatus::parse(field, text)
        .map(Some)
        .map_err(super::invalid_status)
}

/// The code's hash, or INVALID_ARGUMENT naming `code`.
fn hash_of(code: &str) -> Result<String, Status> {
    if code.is_empty() || code.len() > 256 {
        return Err(Status::invalid_argument(
            "code: must be the code returned when the invitation was created",
        ));
    }
    Ok(code_hash(code))
}

impl Directory {
    /// Expiry for an invitation made at `at_ms`.
    fn expiry(&self, at_ms: u64, expires_in_seconds: u64) -> Result<u64, Status> {
        let ttl_ms = if expires_in_seconds == 0 {
            self.engine
                .policy()
                .limits
                .invitation_ttl_seconds
                .map_or(DEFAULT_INVITATION_TTL_MS, |s| s.saturating_mul(1000))
        } else {
            expires_in_seconds.saturating_mul(1000)
        };
        if ttl_ms > MAX_INVITATION_TTL_MS {
            return Err(Status::invalid_argument(format!(
                "expires_in_seconds: at most {} (90 days)",
                MAX_INVITATION_TTL_MS / 1000
            )));
        }
        Ok(at_ms.saturating_add(ttl_ms))
    }

    /// Create one invitation: returns it, its code and the revision.
    async fn create_one(
        &self,
        actor: &str,
        org: &str,
        spec: &pb::InvitationSpec,
        expires_in_seconds: u64,
    ) -> Result<(pb::Invitation, String, u64), Status> {
        let invitee = invitee_from_pb(spec)?;
        let code = format!("{CODE_PREFIX}{}", random_hex(32));
        let id = format!("inv-{}", random_hex(10));
        let at_ms = now_ms();
        let expires_at_ms = self.expiry(at_ms, expires_in_seconds)?;
        let change = Change::CreateInvitation {
            id: id.clone(),
            org: org.to_string(),
            invitee,
            role: spec.role.clone(),
            teams: spec.team_ids.clone(),
            code_sha256: code_hash(&code),
            expires_at_ms,
        };
        let revision = self
            .write_at(actor, "invitation_id", change, false, at_ms)
            .await?;
        let lookup = id.clone();
        let inv = self
            .read(actor, "", move |s| Ok(s.get_invitation(&lookup)?))
            .await?
            .ok_or_else(|| vanished(&format!("invitation `{id}`"), revision))?;
        Ok((invitation_pb(inv, now_ms()), code, revision))
    }

    async fn invitation_by_code(
        &self,
        actor: &str,
        hash: String,
        revision: u64,
    ) -> Result<Invitation, Status> {
        self.read(actor, "", move |s| Ok(s.invitation_by_code(&hash)?))
            .await?
            .ok_or_else(|| vanished("the invitation", revision))
    }
}

#[tonic::async_trait]
impl pb::invitation_service_server::InvitationService for Directory {
    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::CreateInvitationResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("CreateInvitation", org = %r.org_id, actor = %r.actor);
        async move {
            let spec = r
                .invitee
                .ok_or_else(|| Status::invalid_argument("invitee: required"))?;
            let (invitation, code, revision) = self
                .create_one(&r.actor, &r.org_id, &spec, r.expires_in_seconds)
                .await?;
            Ok(Response::new(pb::CreateInvitationResponse {
                invitation: Some(invitation),
                code,
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn bulk_create_invitations(
        &self,
        request: Request<pb::BulkCreateInvitationsRequest>,
    ) -> Result<Response<pb::BulkCreateInvitationsResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("BulkCreateInvitations", org = %r.org_id, actor = %r.actor, items = r.invitees.len());
        async move {
            check_actor(&r.actor)?;
            check_slug("org_id", &r.org_id)?;
            if r.invitees.is_empty() || r.invitees.len() > MAX_BULK_INVITATIONS {
                return Err(Status::invalid_argument(format!(
                    "invitees: 1 to {MAX_BULK_INVITATIONS} per call, got {}",
                    r.invitees.len()
                )));
            }
            let mut revision = self.revision();
            let mut results = Vec::with_capacity(r.invitees.len());
            for (i, spec) in r.invitees.iter().enumerate() {
                let result = match self
                    .create_one(&r.actor, &r.org_id, spec, r.expires_in_seconds)
                    .await
                {
                    Ok((invitation, code, rev)) => {
                        revision = rev;
                        pb::BulkInvitationResult {
                            invitation: Some(invitation),
                            code,
                            ..Default::default()
                        }
                    }
                    Err(status) => pb::BulkInvitationResult {
                        error_code: format!("{:?}", status.code()),
                        error_message: format!("invitees[{i}]: {}", status.message()),
                        ..Default::default()
                    },
                };
                results.push(result);
            }
            Ok(Response::new(pb::BulkCreateInvitationsResponse {
                results,
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::RevokeInvitationResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("RevokeInvitation", org = %r.org_id, invitation = %r.invitation_id, actor = %r.actor);
        async move {
            let change = Change::RevokeInvitation {
                org: r.org_id,
                id: r.invitation_id,
            };
            let revision = self.write(&r.actor, "invitation_id", change).await?;
            Ok(Response::new(pb::RevokeInvitationResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn list_org_invitations(
        &self,
        mut request: Request<pb::ListOrgInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListOrgInvitations", org = %r.org_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            check_slug("org_id", &r.org_id)?;
            let status = status_filter("status", &r.status)?;
            self.require(&r.actor, &r.org_id, "org", "member:invite")?;
            let revision = self.revision();
            let at_ms = now_ms();
            let page = self
                .read(&r.actor, "", move |s| {
                    s.list_org_invitations(&r.org_id, status, at_ms, &r.page_token, r.page_size)
                })
                .await?;
            Ok(Response::new(pb::ListInvitationsResponse {
                invitations: page.items.into_iter().map(|i| invitation_pb(i, at_ms)).collect(),
                next_page_token: page.next_page_token,
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn list_user_invitations(
        &self,
        mut request: Request<pb::ListUserInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let trusted = on_unix_socket(&request);
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListUserInvitations", actor = %r.actor, user = %r.user_id);
        async move {
            check_actor(&r.actor)?;
            let status = match status_filter("status", &r.status)? {
                None => Some(InvitationStatus::Pending),
                some => some,
            };
            let actor = r.actor.clone();
            let actor_user = self.read(&r.actor, "", move |s| Ok(s.get_user(&actor)?)).await?;
            let invitees = match (r.user_id.is_empty(), r.email.is_empty()) {
                (false, true) => {
                    check_user("user_id", &r.user_id)?;
                    if r.user_id != r.actor && !trusted {
                        return Err(Status::permission_denied(format!(
                            "actor `{}` may only list its own invitations (user_id `{}`)",
                            r.actor, r.user_id
                        )));
                    }
                    let id = r.user_id.clone();
                    let user = self.read(&r.actor, "", move |s| Ok(s.get_user(&id)?)).await?;
                    let mut v = vec![Invitee::User(r.user_id.clone())];
                    if let Some(u) = user {
                        v.push(Invitee::Email(email_key(&u.email)));
                    }
                    v
                }
                (true, false) => {
                    let email = normalize_email("email", &r.email).map_err(super::invalid_status)?;
                    let own = actor_user.as_ref().is_some_and(|u| email_key(&u.email) == email);
                    if !own && !trusted {
                        return Err(Status::permission_denied(format!(
                            "actor `{}` may only list invitations to its own email",
                            r.actor
                        )));
                    }
                    vec![Invitee::Email(email)]
                }
                _ => {
                    return Err(Status::invalid_argument(
                        "user_id: set exactly one of user_id and email",
                    ));
                }
            };
            let revision = self.revision();
            let at_ms = now_ms();
            let list = self
                .read(&r.actor, "", move |s| {
                    Ok(s.list_invitee_invitations(&invitees, status, at_ms)?)
                })
                .await?;
            Ok(Response::new(pb::ListInvitationsResponse {
                invitations: list.into_iter().map(|i| invitation_pb(i, at_ms)).collect(),
                next_page_token: String::new(),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::AcceptInvitationRequest>,
    ) -> Result<Response<pb::AcceptInvitationResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("AcceptInvitation", actor = %r.actor);
        async move {
            let hash = hash_of(&r.code)?;
            let change = Change::AcceptInvitation {
                code_sha256: hash.clone(),
                terms_version: super::convert::opt(r.accepted_terms_version),
            };
            let revision = self.write(&r.actor, "", change).await?;
            let inv = self.invitation_by_code(&r.actor, hash, revision).await?;
            let (org, user) = (inv.org.clone(), r.actor.clone());
            let member = self
                .read(&r.actor, "", move |s| {
                    let Some(m) = s.get_membership(&org, &user)? else {
                        return Ok(None);
                    };
                    let teams = teams_of(s, &org, &[user.as_str()])?
                        .remove(&user)
                        .unwrap_or_default();
                    Ok(Some(member_pb(m, teams)))
                })
                .await?
                .ok_or_else(|| vanished("the new membership", revision))?;
            Ok(Response::new(pb::AcceptInvitationResponse {
                member: Some(member),
                invitation: Some(invitation_pb(inv, now_ms())),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn decline_invitation(
        &self,
        request: Request<pb::DeclineInvitationRequest>,
    ) -> Result<Response<pb::DeclineInvitationResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("DeclineInvitation", actor = %r.actor);
        async move {
            let hash = hash_of(&r.code)?;
            let change = Change::DeclineInvitation {
                code_sha256: hash.clone(),
            };
            let revision = self.write(&r.actor, "", change).await?;
            let inv = self.invitation_by_code(&r.actor, hash, revision).await?;
            Ok(Response::new(pb::DeclineInvitationResponse {
                invitation: Some(invitation_pb(inv, now_ms())),
                revision,
            }))
        }
        .instrument(span)
        .await
    }
}
