//! Verified domains and membership requests through a running daemon: an admin claims a
//! domain, only the operator verifies it (with the token), users on the domain see offers,
//! ask to join (suggestion) or join (automatic invitation), admins approve or reject once;
//! refusals name why; the CLI; and export → import → export keeping domains and requests.

use crate::common;

use common::directory::{Clients, assert_refused, clients};
use common::{WARDEN, Workdir, runtime};
use std::process::{Command, Stdio};
use tonic::Code;
use tonic::transport::Channel;
use warden::api::client::connect;
use warden::api::pb;
use warden::api::pb::domain_service_client::DomainServiceClient;

type Dom = DomainServiceClient<Channel>;

async fn dom(target: &str) -> Dom {
    DomainServiceClient::new(connect(target).await.expect("connect"))
}

/// A user whose email the login layer verified (only a Unix-socket caller may say so).
async fn user(c: &mut Clients, id: &str, email: &str) {
    c.user
        .upsert_user(pb::UpsertUserRequest {
            actor: id.into(),
            user_id: id.into(),
            email: email.into(),
            email_verified: Some(true),
            ..Default::default()
        })
        .await
        .expect("UpsertUser");
}

async fn add_domain(d: &mut Dom, actor: &str, domain: &str, mode: &str) -> Result<pb::Domain, tonic::Status> {
    d.add_domain(pb::AddDomainRequest {
        actor: actor.into(),
        org_id: "acme".into(),
        domain: domain.into(),
        enrollment_mode: mode.into(),
        role: String::new(),
    })
    .await
    .map(|r| r.into_inner().domain.expect("domain"))
}

async fn verify(d: &mut Dom, domain: &str, token: &str) -> Result<pb::Domain, tonic::Status> {
    d.verify_domain(pb::VerifyDomainRequest {
        actor: "alice".into(),
        org_id: "acme".into(),
        domain: domain.into(),
        verification_token: token.into(),
    })
    .await
    .map(|r| r.into_inner().domain.expect("domain"))
}

async fn ask(d: &mut Dom, actor: &str) -> Result<pb::MembershipRequest, tonic::Status> {
    d.request_membership(pb::RequestMembershipRequest {
        actor: actor.into(),
        org_id: "acme".into(),
    })
    .await
    .map(|r| r.into_inner().request.expect("request"))
}

async fn approve(d: &mut Dom, actor: &str, id: &str) -> Result<pb::MembershipRequestResponse, tonic::Status> {
    d.approve_membership_request(pb::ApproveMembershipRequestRequest {
        actor: actor.into(),
        org_id: "acme".into(),
        request_id: id.into(),
        role: String::new(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn offers(d: &mut Dom, user: &str) -> Vec<(String, String, bool)> {
    d.list_domain_offers(pb::ListDomainOffersRequest {
        min_revision: 0,
        actor: user.into(),
        user_id: user.into(),
    })
    .await
    .expect("ListDomainOffers")
    .into_inner()
    .offers
    .into_iter()
    .map(|o| (o.org_id, o.kind, o.member))
    .collect()
}

#[test]
fn domains_are_verified_by_the_operator_and_requests_approved_once() {
    let mut daemon = Workdir::new().start();
    let code = runtime().block_on(async {
        let mut c = clients(&daemon.work.tcp_target()).await;
        let mut tcp = dom(&daemon.work.tcp_target()).await;
        let mut unix = dom(&daemon.work.unix_target()).await;
        let mut login = clients(&daemon.work.unix_target()).await;
        user(&mut login, "alice", "alice@acme.com").await;
        user(&mut login, "bob", "Bob@ACME.com").await;
        user(&mut login, "carol", "carol@acme.com").await;
        user(&mut login, "dave", "dave@other.org").await;
        c.org
            .create_org(pb::CreateOrgRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                name: "Acme".into(),
                ..Default::default()
            })
            .await
            .expect("CreateOrg");

        // Claiming: admins only; the domain and the mode are checked.
        let before = c.stats().await.revision;
        assert_refused(
            add_domain(&mut tcp, "bob", "acme.com", "").await,
            Code::PermissionDenied,
            &["domain:manage"],
        );
        assert_refused(
            add_domain(&mut tcp, "alice", "acme", "").await,
            Code::InvalidArgument,
            &["domain"],
        );
        assert_refused(
            add_domain(&mut tcp, "alice", "acme.com", "both").await,
            Code::InvalidArgument,
            &["enrollment_mode"],
        );
        assert_eq!(c.stats().await.revision, before);
        let d = add_domain(&mut tcp, "alice", "ACME.com", "automatic_suggestion")
            .await
            .expect("AddDomain");
        assert_eq!(
            (d.domain.as_str(), d.verified, d.role.as_str()),
            ("acme.com", false, "org_user")
        );
        assert!(
            d.verification_token.starts_with("warden-verify-"),
            "{}",
            d.verification_token
        );
        assert_refused(
            add_domain(&mut tcp, "alice", "acme.com", "").await,
            Code::AlreadyExists,
            &["acme.com"],
        );

        // Unverified: no offers, no requests.
        assert!(offers(&mut tcp, "bob").await.is_empty());
        assert_refused(
            ask(&mut tcp, "bob").await,
            Code::FailedPrecondition,
            &["not verified"],
        );

        // Verifying is the operator's, with the stored token.
        assert_refused(
            verify(&mut tcp, "acme.com", &d.verification_token).await,
            Code::PermissionDenied,
            &["operator"],
        );
        assert_refused(
            verify(&mut unix, "acme.com", "wrong-token").await,
            Code::FailedPrecondition,
            &["token"],
        );
        let v = verify(&mut unix, "acme.com", &d.verification_token)
            .await
            .expect("VerifyDomain");
        assert!(v.verified && v.verified_at_unix_ms > 0);
        assert_refused(
            verify(&mut unix, "acme.com", &d.verification_token).await,
            Code::FailedPrecondition,
            &["already verified"],
        );

        // Suggestions: bob (email case ignored) sees one, dave (other domain) none.
        assert_eq!(
            offers(&mut tcp, "bob").await,
            [("acme".to_string(), "suggestion".to_string(), false)]
        );
        assert!(offers(&mut tcp, "dave").await.is_empty());
        assert_refused(
            tcp.list_domain_offers(pb::ListDomainOffersRequest {
                min_revision: 0,
                actor: "dave".into(),
                user_id: "bob".into(),
            })
            .await,
            Code::PermissionDenied,
            &["own domain offers"],
        );
        // A suggestion does not let bob join directly.
        assert_refused(
            tcp.join_by_domain(pb::JoinByDomainRequest {
                actor: "bob".into(),
                org_id: "acme".into(),
            })
            .await,
            Code::FailedPrecondition,
            &["automatic_suggestion", "not `automatic_invitation`"],
        );

        let req = ask(&mut tcp, "bob").await.expect("RequestMembership");
        assert_eq!(
            (req.status.as_str(), req.domain.as_str()),
            ("pending", "acme.com")
        );
        assert_refused(
            ask(&mut tcp, "bob").await,
            Code::AlreadyExists,
            &["pending membership request"],
        );
        assert_refused(
            ask(&mut tcp, "dave").await,
            Code::FailedPrecondition,
            &["no verified domain"],
        );
        let listed = tcp
            .list_membership_requests(pb::ListMembershipRequestsRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                status: "pending".into(),
                ..Default::default()
            })
            .await
            .expect("ListMembershipRequests")
            .into_inner()
            .requests;
        assert_eq!(listed.len(), 1);
        assert_refused(
            tcp.list_membership_requests(pb::ListMembershipRequestsRequest {
                actor: "bob".into(),
                org_id: "acme".into(),
                ..Default::default()
            })
            .await,
            Code::PermissionDenied,
            &["member:manage"],
        );

        // Approving: admins only, once.
        assert_refused(
            approve(&mut tcp, "bob", &req.request_id).await,
            Code::PermissionDenied,
            &["member:manage"],
        );
        let ok = approve(&mut tcp, "alice", &req.request_id)
            .await
            .expect("approve");
        let r = ok.request.expect("request");
        assert_eq!(
            (r.status.as_str(), r.role.as_str(), r.resolved_by.as_str()),
            ("approved", "org_user", "alice")
        );
        assert!(c.check("bob", "acme", "org", "member:read", ok.revision).await);
        assert_refused(
            approve(&mut tcp, "alice", &req.request_id).await,
            Code::FailedPrecondition,
            &["already approved"],
        );
        assert_refused(
            approve(&mut tcp, "alice", "req-nope").await,
            Code::NotFound,
            &["req-nope"],
        );

        // Rejecting: then neither approve nor reject again.
        let req = ask(&mut tcp, "carol").await.expect("carol asks");
        tcp.reject_membership_request(pb::RejectMembershipRequestRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            request_id: req.request_id.clone(),
        })
        .await
        .expect("reject");
        assert_refused(
            approve(&mut tcp, "alice", &req.request_id).await,
            Code::FailedPrecondition,
            &["already rejected"],
        );
        assert!(!c.check("carol", "acme", "org", "org:read", 0).await);

        // Automatic invitation: carol joins by herself, once.
        tcp.set_domain_enrollment(pb::SetDomainEnrollmentRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            domain: "acme.com".into(),
            enrollment_mode: "automatic_invitation".into(),
        })
        .await
        .expect("SetDomainEnrollment");
        assert_eq!(
            offers(&mut tcp, "carol").await,
            [("acme".to_string(), "invitation".to_string(), false)]
        );
        let joined = tcp
            .join_by_domain(pb::JoinByDomainRequest {
                actor: "carol".into(),
                org_id: "acme".into(),
            })
            .await
            .expect("JoinByDomain")
            .into_inner();
        assert_eq!(joined.member.expect("member").role, "org_user");
        assert!(c.check("carol", "acme", "org", "org:read", joined.revision).await);
        assert_refused(
            tcp.join_by_domain(pb::JoinByDomainRequest {
                actor: "carol".into(),
                org_id: "acme".into(),
            })
            .await,
            Code::AlreadyExists,
            &["carol"],
        );
        assert_refused(
            tcp.join_by_domain(pb::JoinByDomainRequest {
                actor: "dave".into(),
                org_id: "acme".into(),
            })
            .await,
            Code::FailedPrecondition,
            &["no verified domain"],
        );
        d.verification_token
    });

    // The CLI sees the same; export → import → export keeps domains and requests.
    let t = daemon.work.unix_target();
    let out = Command::new(WARDEN)
        .args(["domain", "list", "acme", "--actor", "alice", "--connect", &t])
        .stdin(Stdio::null())
        .output()
        .expect("warden domain list");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("domain: acme.com of acme (verified, automatic_invitation, role org_user)"),
        "{text}"
    );
    daemon.stop();
    let run = |args: &[&str]| {
        let out = Command::new(WARDEN)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("warden");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let data = daemon.work.data();
    let first = run(&["export", "--data", data.to_str().expect("utf-8")]);
    assert!(
        first.contains("\"domains\"") && first.contains("\"membership_requests\"") && first.contains(&code)
    );
    let dump = daemon.work.dir.path().join("dump.json");
    std::fs::write(&dump, &first).expect("write dump");
    let fresh = daemon.work.dir.path().join("fresh");
    run(&[
        "import",
        dump.to_str().expect("utf-8"),
        "--data",
        fresh.to_str().expect("utf-8"),
    ]);
    assert_eq!(run(&["export", "--data", fresh.to_str().expect("utf-8")]), first);
}

/// An org with terms of use is joined only through invitations (which record acceptance):
/// neither a domain join nor a membership request gets around them.
#[test]
fn orgs_with_terms_of_use_are_not_joined_through_domains() {
    let daemon = Workdir::new().start();
    runtime().block_on(async {
        let mut c = clients(&daemon.work.unix_target()).await;
        let mut d = dom(&daemon.work.unix_target()).await;
        user(&mut c, "alice", "alice@acme.com").await;
        user(&mut c, "bob", "bob@acme.com").await;
        c.org
            .create_org(pb::CreateOrgRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                name: "Acme".into(),
                settings: Some(pb::OrgSettings {
                    deletable: Some(true),
                    terms_version: Some("v1".into()),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("CreateOrg");
        let added = add_domain(&mut d, "alice", "acme.com", "automatic_invitation")
            .await
            .expect("AddDomain");
        verify(&mut d, "acme.com", &added.verification_token)
            .await
            .expect("VerifyDomain");
        assert_refused(
            d.join_by_domain(pb::JoinByDomainRequest {
                actor: "bob".into(),
                org_id: "acme".into(),
            })
            .await,
            Code::FailedPrecondition,
            &["terms of use", "invitation"],
        );
        d.set_domain_enrollment(pb::SetDomainEnrollmentRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            domain: "acme.com".into(),
            enrollment_mode: "automatic_suggestion".into(),
        })
        .await
        .expect("SetDomainEnrollment");
        assert_refused(
            ask(&mut d, "bob").await,
            Code::FailedPrecondition,
            &["terms of use"],
        );
        assert!(!c.check("bob", "acme", "org", "org:read", 0).await);
    });
}
