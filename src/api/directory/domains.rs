//! `warden.v1.DomainService`: verified domains and membership requests.
//!
//! Authorization: adding, re-moding, removing and listing an org's domains need
//! `domain:manage` (the mutations are checked by the store's rules, the list here);
//! verifying is the operator's (a Unix-socket caller), checked by the store with the
//! stored token; joining by domain and requesting membership are the user's own acts (the
//! store checks the actor's email against a verified domain); approving and rejecting need
//! `member:manage`. A user's offers and requests are for that user (or the Unix socket).

use super::convert::{member_pb, opt};
use super::{Directory, check_actor, check_slug, check_user, on_unix_socket, vanished};
use crate::api::pb;
use crate::directory::domain::normalize_domain;
use crate::directory::{Change, Domain, Enrollment, MembershipRequest, RequestStatus};
use rand::RngCore;
use tonic::{Request, Response, Status};
use tracing::Instrument;

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

fn domain_pb(d: Domain) -> pb::Domain {
    pb::Domain {
        verified: d.verified(),
        verified_at_unix_ms: d.verified_at_ms.unwrap_or(0),
        enrollment_mode: d.enrollment.as_str().to_string(),
        org_id: d.org,
        domain: d.domain,
        role: d.role,
        verification_token: d.verification_token,
        created_at_unix_ms: d.created_at_ms,
    }
}

fn request_pb(r: MembershipRequest) -> pb::MembershipRequest {
    pb::MembershipRequest {
        request_id: r.id,
        org_id: r.org,
        user_id: r.user,
        domain: r.domain,
        status: r.status.as_str().to_string(),
        created_at_unix_ms: r.created_at_ms,
        resolved_at_unix_ms: r.resolved_at_ms.unwrap_or(0),
        resolved_by: r.resolved_by.unwrap_or_default(),
        role: r.role.unwrap_or_default(),
    }
}

/// A domain as sent, in canonical form (ASCII lowercase, international names as punycode);
/// a look-alike that only folds into a domain is INVALID_ARGUMENT naming `domain`.
fn domain_arg(text: &str) -> Result<String, Status> {
    normalize_domain("domain", text).map_err(super::invalid_status)
}

fn enrollment_arg(text: &str) -> Result<Enrollment, Status> {
    if text.is_empty() {
        return Ok(Enrollment::Manual);
    }
    Enrollment::parse("enrollment_mode", text).map_err(super::invalid_status)
}

impl Directory {
    async fn domain_after_write(
        &self,
        actor: &str,
        org: String,
        domain: String,
        revision: u64,
    ) -> Result<pb::Domain, Status> {
        let (o, d) = (org.clone(), domain.clone());
        self.read(actor, "", move |s| {
            Ok(s.list_domains(&o)?.into_iter().find(|x| x.domain == d))
        })
        .await?
        .map(domain_pb)
        .ok_or_else(|| vanished(&format!("domain `{domain}` of org `{org}`"), revision))
    }

    async fn request_after_write(
        &self,
        actor: &str,
        id: String,
        revision: u64,
    ) -> Result<pb::MembershipRequest, Status> {
        let lookup = id.clone();
        self.read(actor, "", move |s| Ok(s.get_membership_request(&lookup)?))
            .await?
            .map(request_pb)
            .ok_or_else(|| vanished(&format!("membership request `{id}`"), revision))
    }
}

#[tonic::async_trait]
impl pb::domain_service_server::DomainService for Directory {
    async fn add_domain(
        &self,
        request: Request<pb::AddDomainRequest>,
    ) -> Result<Response<pb::AddDomainResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("AddDomain", org = %r.org_id, domain = %r.domain, actor = %r.actor);
        async move {
            let domain = domain_arg(&r.domain)?;
            let change = Change::AddDomain {
                org: r.org_id.clone(),
                domain: domain.clone(),
                verification_token: format!("warden-verify-{}", random_hex(16)),
                enrollment: enrollment_arg(&r.enrollment_mode)?,
                role: opt(r.role).unwrap_or_else(|| "org_user".to_string()),
            };
            let revision = self.write(&r.actor, "", change).await?;
            let domain = self
                .domain_after_write(&r.actor, r.org_id, domain, revision)
                .await?;
            Ok(Response::new(pb::AddDomainResponse {
                domain: Some(domain),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn verify_domain(
        &self,
        request: Request<pb::VerifyDomainRequest>,
    ) -> Result<Response<pb::DomainResponse>, Status> {
        let operator = on_unix_socket(&request);
        let r = request.into_inner();
        let span = tracing::info_span!("VerifyDomain", org = %r.org_id, domain = %r.domain, actor = %r.actor);
        async move {
            let domain = domain_arg(&r.domain)?;
            let change = Change::VerifyDomain {
                org: r.org_id.clone(),
                domain: domain.clone(),
                verification_token: r.verification_token,
            };
            let revision = self.write_as(&r.actor, "", change, operator).await?;
            let domain = self
                .domain_after_write(&r.actor, r.org_id, domain, revision)
                .await?;
            Ok(Response::new(pb::DomainResponse {
                domain: Some(domain),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn set_domain_enrollment(
        &self,
        request: Request<pb::SetDomainEnrollmentRequest>,
    ) -> Result<Response<pb::DomainResponse>, Status> {
        let r = request.into_inner();
        let span =
            tracing::info_span!("SetDomainEnrollment", org = %r.org_id, domain = %r.domain, actor = %r.actor);
        async move {
            let domain = domain_arg(&r.domain)?;
            if r.enrollment_mode.is_empty() {
                return Err(Status::invalid_argument("enrollment_mode: required"));
            }
            let change = Change::SetDomainEnrollment {
                org: r.org_id.clone(),
                domain: domain.clone(),
                enrollment: enrollment_arg(&r.enrollment_mode)?,
            };
            let revision = self.write(&r.actor, "", change).await?;
            let domain = self
                .domain_after_write(&r.actor, r.org_id, domain, revision)
                .await?;
            Ok(Response::new(pb::DomainResponse {
                domain: Some(domain),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn remove_domain(
        &self,
        request: Request<pb::RemoveDomainRequest>,
    ) -> Result<Response<pb::RemoveDomainResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("RemoveDomain", org = %r.org_id, domain = %r.domain, actor = %r.actor);
        async move {
            let change = Change::RemoveDomain {
                org: r.org_id,
                domain: domain_arg(&r.domain)?,
            };
            let revision = self.write(&r.actor, "", change).await?;
            Ok(Response::new(pb::RemoveDomainResponse { revision }))
        }
        .instrument(span)
        .await
    }

    async fn list_domains(
        &self,
        mut request: Request<pb::ListDomainsRequest>,
    ) -> Result<Response<pb::ListDomainsResponse>, Status> {
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListDomains", org = %r.org_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            check_slug("org_id", &r.org_id)?;
            self.require(&r.actor, &r.org_id, "org", "domain:manage")?;
            let revision = self.revision();
            let domains = self
                .read(&r.actor, "", move |s| Ok(s.list_domains(&r.org_id)?))
                .await?;
            Ok(Response::new(pb::ListDomainsResponse {
                domains: domains.into_iter().map(domain_pb).collect(),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn list_domain_offers(
        &self,
        mut request: Request<pb::ListDomainOffersRequest>,
    ) -> Result<Response<pb::ListDomainOffersResponse>, Status> {
        let trusted = on_unix_socket(&request);
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListDomainOffers", user = %r.user_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            check_user("user_id", &r.user_id)?;
            if r.user_id != r.actor && !trusted {
                return Err(Status::permission_denied(format!(
                    "actor `{}` may only list its own domain offers (user_id `{}`)",
                    r.actor, r.user_id
                )));
            }
            let revision = self.revision();
            let user_id = r.user_id.clone();
            let offers = self
                .read(&r.actor, "", move |s| {
                    let Some(user) = s.get_user(&user_id)? else {
                        return Ok(None);
                    };
                    // An unverified email is offered nothing: it could not join.
                    if user.email_verified.is_none() {
                        return Ok(Some(Vec::new()));
                    }
                    Ok(Some(s.domain_offers(&user.id, &user.email)?))
                })
                .await?
                .ok_or_else(|| Status::not_found(format!("user `{}` not found", r.user_id)))?;
            let offers = offers
                .into_iter()
                .map(|o| pb::DomainOffer {
                    kind: match o.domain.enrollment {
                        Enrollment::AutomaticInvitation => "invitation",
                        _ => "suggestion",
                    }
                    .to_string(),
                    org_id: o.domain.org,
                    domain: o.domain.domain,
                    role: o.domain.role,
                    member: o.member,
                })
                .collect();
            Ok(Response::new(pb::ListDomainOffersResponse { offers, revision }))
        }
        .instrument(span)
        .await
    }

    async fn join_by_domain(
        &self,
        request: Request<pb::JoinByDomainRequest>,
    ) -> Result<Response<pb::JoinByDomainResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("JoinByDomain", org = %r.org_id, actor = %r.actor);
        async move {
            let revision = self
                .write(
                    &r.actor,
                    "",
                    Change::JoinByDomain {
                        org: r.org_id.clone(),
                    },
                )
                .await?;
            let (org, user) = (r.org_id.clone(), r.actor.clone());
            let member = self
                .read(&r.actor, "", move |s| Ok(s.get_membership(&org, &user)?))
                .await?
                .map(|m| member_pb(m, vec![]))
                .ok_or_else(|| vanished("the new membership", revision))?;
            Ok(Response::new(pb::JoinByDomainResponse {
                member: Some(member),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn request_membership(
        &self,
        request: Request<pb::RequestMembershipRequest>,
    ) -> Result<Response<pb::MembershipRequestResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("RequestMembership", org = %r.org_id, actor = %r.actor);
        async move {
            let id = format!("req-{}", random_hex(10));
            let change = Change::RequestMembership {
                id: id.clone(),
                org: r.org_id,
            };
            let revision = self.write(&r.actor, "", change).await?;
            let request = self.request_after_write(&r.actor, id, revision).await?;
            Ok(Response::new(pb::MembershipRequestResponse {
                request: Some(request),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn list_membership_requests(
        &self,
        mut request: Request<pb::ListMembershipRequestsRequest>,
    ) -> Result<Response<pb::ListMembershipRequestsResponse>, Status> {
        let trusted = on_unix_socket(&request);
        let admission = crate::api::limits::Admission::of(&mut request);
        let r = request.into_inner();
        self.reflect(admission.as_ref(), r.min_revision).await?;
        let span = tracing::info_span!("ListMembershipRequests", org = %r.org_id, user = %r.user_id, actor = %r.actor);
        async move {
            check_actor(&r.actor)?;
            let status = if r.status.is_empty() {
                None
            } else {
                Some(RequestStatus::parse("status", &r.status).map_err(super::invalid_status)?)
            };
            let (by_org, key) = match (r.org_id.is_empty(), r.user_id.is_empty()) {
                (false, true) => {
                    check_slug("org_id", &r.org_id)?;
                    self.require(&r.actor, &r.org_id, "org", "member:manage")?;
                    (true, r.org_id)
                }
                (true, false) => {
                    check_user("user_id", &r.user_id)?;
                    if r.user_id != r.actor && !trusted {
                        return Err(Status::permission_denied(format!(
                            "actor `{}` may only list its own membership requests",
                            r.actor
                        )));
                    }
                    (false, r.user_id)
                }
                _ => {
                    return Err(Status::invalid_argument(
                        "org_id: set exactly one of org_id and user_id",
                    ));
                }
            };
            let revision = self.revision();
            let list = self
                .read(&r.actor, "", move |s| {
                    Ok(s.list_membership_requests(by_org, &key, status)?)
                })
                .await?;
            Ok(Response::new(pb::ListMembershipRequestsResponse {
                requests: list.into_iter().map(request_pb).collect(),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn approve_membership_request(
        &self,
        request: Request<pb::ApproveMembershipRequestRequest>,
    ) -> Result<Response<pb::MembershipRequestResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("ApproveMembershipRequest", org = %r.org_id, request = %r.request_id, actor = %r.actor);
        async move {
            let change = Change::ApproveMembershipRequest {
                org: r.org_id,
                id: r.request_id.clone(),
                role: opt(r.role),
            };
            let revision = self.write(&r.actor, "request_id", change).await?;
            let request = self.request_after_write(&r.actor, r.request_id, revision).await?;
            Ok(Response::new(pb::MembershipRequestResponse {
                request: Some(request),
                revision,
            }))
        }
        .instrument(span)
        .await
    }

    async fn reject_membership_request(
        &self,
        request: Request<pb::RejectMembershipRequestRequest>,
    ) -> Result<Response<pb::MembershipRequestResponse>, Status> {
        let r = request.into_inner();
        let span = tracing::info_span!("RejectMembershipRequest", org = %r.org_id, request = %r.request_id, actor = %r.actor);
        async move {
            let change = Change::RejectMembershipRequest {
                org: r.org_id,
                id: r.request_id.clone(),
            };
            let revision = self.write(&r.actor, "request_id", change).await?;
            let request = self.request_after_write(&r.actor, r.request_id, revision).await?;
            Ok(Response::new(pb::MembershipRequestResponse {
                request: Some(request),
                revision,
            }))
        }
        .instrument(span)
        .await
    }
}
