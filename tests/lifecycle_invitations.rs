//! Invitations through a running daemon: invite by email and by user id, accept into the
//! org and its teams, refusals that name why (permission, wrong invitee, twice, revoked,
//! declined, expired, membership limit, terms of use), bulk invites with per-item errors,
//! the CLI, and export → import → export keeping invitations (codes only as hashes).

use crate::common;

use common::directory::{Clients, assert_refused, clients};
use common::{WARDEN, Workdir, runtime};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;
use tonic::transport::Channel;
use warden::api::client::connect;
use warden::api::pb;
use warden::api::pb::invitation_service_client::InvitationServiceClient;

type Inv = InvitationServiceClient<Channel>;

async fn inv_client(target: &str) -> Inv {
    InvitationServiceClient::new(connect(target).await.expect("connect"))
}

fn by_email(email: &str, role: &str, teams: &[&str]) -> pb::InvitationSpec {
    pb::InvitationSpec {
        email: email.into(),
        role: role.into(),
        team_ids: teams.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    }
}

fn by_user(user: &str, role: &str) -> pb::InvitationSpec {
    pb::InvitationSpec {
        user_id: user.into(),
        role: role.into(),
        ..Default::default()
    }
}

async fn invite(
    inv: &mut Inv,
    actor: &str,
    org: &str,
    spec: pb::InvitationSpec,
    expires_in_seconds: u64,
) -> Result<pb::CreateInvitationResponse, tonic::Status> {
    inv.create_invitation(pb::CreateInvitationRequest {
        actor: actor.into(),
        org_id: org.into(),
        invitee: Some(spec),
        expires_in_seconds,
    })
    .await
    .map(|r| r.into_inner())
}

async fn accept(
    inv: &mut Inv,
    actor: &str,
    code: &str,
    terms: &str,
) -> Result<pb::AcceptInvitationResponse, tonic::Status> {
    inv.accept_invitation(pb::AcceptInvitationRequest {
        actor: actor.into(),
        code: code.into(),
        accepted_terms_version: terms.into(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn org_invitations(inv: &mut Inv, actor: &str, org: &str, status: &str) -> Vec<pb::Invitation> {
    inv.list_org_invitations(pb::ListOrgInvitationsRequest {
        actor: actor.into(),
        org_id: org.into(),
        status: status.into(),
        ..Default::default()
    })
    .await
    .expect("ListOrgInvitations")
    .into_inner()
    .invitations
}

/// Org `acme` created by alice (its admin) with `settings`, users alice and `users` (with
/// `<id>@example.com`), and the clients to drive it.
async fn acme(target: &str, settings: Option<pb::OrgSettings>, users: &[&str]) -> (Clients, Inv) {
    let mut c = clients(target).await;
    c.upsert_user("alice", "alice").await;
    for u in users {
        c.upsert_user(u, u).await;
    }
    c.org
        .create_org(pb::CreateOrgRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            name: "Org".into(),
            settings,
            ..Default::default()
        })
        .await
        .expect("CreateOrg");
    (c, inv_client(target).await)
}

/// Deletable org settings with a membership limit of `max`.
fn seats(max: u32) -> pb::OrgSettings {
    pb::OrgSettings {
        max_memberships: Some(max),
        deletable: Some(true),
        ..Default::default()
    }
}

#[test]
fn an_invitation_by_email_is_accepted_into_the_org_and_its_teams_once() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    rt.block_on(async {
        let (mut c, mut inv) = acme(&daemon.work.tcp_target(), None, &["bob"]).await;
        c.team
            .create_team(pb::CreateTeamRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                name: "Frontend".into(),
            })
            .await
            .expect("CreateTeam");

        // Emails match case-insensitively; the invitation stores them lowercased.
        let created = invite(
            &mut inv,
            "alice",
            "acme",
            by_email("Bob@Example.com", "team_contributor", &["frontend"]),
            0,
        )
        .await
        .expect("CreateInvitation");
        let i = created.invitation.expect("invitation");
        assert_eq!(
            (i.email.as_str(), i.status.as_str(), i.invited_by.as_str()),
            ("bob@example.com", "pending", "alice")
        );
        assert!(
            created.code.starts_with("wdn_inv_") && created.code.len() > 40,
            "{}",
            created.code
        );
        // Seven days by default (limits.toml), give or take the call.
        let ttl = i.expires_at_unix_ms - i.created_at_unix_ms;
        assert_eq!(ttl, 7 * 24 * 3600 * 1000);

        // Listed for the org's inviters and for the invitee (by user id: their email matches).
        let listed = org_invitations(&mut inv, "alice", "acme", "pending").await;
        assert_eq!(listed.len(), 1);
        let mine = inv
            .list_user_invitations(pb::ListUserInvitationsRequest {
                actor: "bob".into(),
                user_id: "bob".into(),
                ..Default::default()
            })
            .await
            .expect("ListUserInvitations")
            .into_inner()
            .invitations;
        assert_eq!(
            mine.iter().map(|i| i.invitation_id.as_str()).collect::<Vec<_>>(),
            [i.invitation_id.as_str()]
        );
        // Not a member yet.
        assert!(!c.check("bob", "acme", "org", "org:read", 0).await);

        let accepted = accept(&mut inv, "bob", &created.code, "")
            .await
            .expect("AcceptInvitation");
        let m = accepted.member.expect("member");
        assert_eq!(
            (m.role.as_str(), m.team_ids.clone()),
            ("team_contributor", vec!["frontend".to_string()])
        );
        assert_eq!(accepted.invitation.expect("invitation").status, "accepted");
        assert!(c.check("bob", "acme", "org", "org:read", accepted.revision).await);

        // Single use: the second acceptance is refused, naming why, and changes nothing.
        let before = c.stats().await.revision;
        assert_refused(
            accept(&mut inv, "bob", &created.code, "").await,
            Code::FailedPrecondition,
            &["already accepted"],
        );
        assert_eq!(c.stats().await.revision, before);
        // Nor can the code be used to decline afterwards.
        assert_refused(
            inv.decline_invitation(pb::DeclineInvitationRequest {
                actor: "bob".into(),
                code: created.code.clone(),
            })
            .await,
            Code::FailedPrecondition,
            &["already accepted"],
        );
        let all = org_invitations(&mut inv, "alice", "acme", "").await;
        assert_eq!(
            (all.len(), all[0].status.as_str(), all[0].resolved_by.as_str()),
            (1, "accepted", "bob")
        );
        // A code nobody issued is not found.
        assert_refused(
            accept(&mut inv, "bob", "wdn_inv_nonsense", "").await,
            Code::NotFound,
            &["invitation"],
        );
    });
}

#[test]
fn only_inviters_invite_and_only_the_invitee_accepts() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    rt.block_on(async {
        let target = daemon.work.unix_target();
        let (mut c, mut inv) = acme(&target, None, &["bob", "carol", "dave"]).await;
        c.add_member("alice", "acme", "bob", "org_user")
            .await
            .expect("AddMember");
        let before = c.stats().await.revision;

        // An org_user may not invite, nor see the org's invitations.
        assert_refused(
            invite(&mut inv, "bob", "acme", by_user("carol", "org_user"), 0).await,
            Code::PermissionDenied,
            &["bob", "member:invite", "acme"],
        );
        assert_refused(
            inv.list_org_invitations(pb::ListOrgInvitationsRequest {
                actor: "bob".into(),
                org_id: "acme".into(),
                ..Default::default()
            })
            .await,
            Code::PermissionDenied,
            &["member:invite"],
        );
        assert_eq!(
            c.stats().await.revision,
            before,
            "a refused invitation writes nothing"
        );

        // Made out to carol's user id: dave, holding the code, cannot use it.
        let made = invite(&mut inv, "alice", "acme", by_user("carol", "org_contributor"), 0)
            .await
            .expect("invite carol");
        assert_refused(
            accept(&mut inv, "dave", &made.code, "").await,
            Code::PermissionDenied,
            &["dave", "made out to"],
        );
        assert!(!c.check("dave", "acme", "org", "org:read", 0).await);
        // Nor list carol's invitations over TCP... the Unix socket is trusted, so ask over TCP.
        let mut tcp = inv_client(&daemon.work.tcp_target()).await;
        assert_refused(
            tcp.list_user_invitations(pb::ListUserInvitationsRequest {
                actor: "dave".into(),
                user_id: "carol".into(),
                ..Default::default()
            })
            .await,
            Code::PermissionDenied,
            &["own invitations"],
        );
        assert_refused(
            tcp.list_user_invitations(pb::ListUserInvitationsRequest {
                actor: "dave".into(),
                email: "carol@example.com".into(),
                ..Default::default()
            })
            .await,
            Code::PermissionDenied,
            &["own email"],
        );
        let r = accept(&mut inv, "carol", &made.code, "")
            .await
            .expect("carol accepts");
        assert!(c.check("carol", "acme", "org", "app:create", r.revision).await);

        // Revoked: refused with the reason; only inviters revoke.
        let made = invite(&mut inv, "alice", "acme", by_user("dave", "org_user"), 0)
            .await
            .expect("invite dave");
        let id = made.invitation.expect("invitation").invitation_id;
        assert_refused(
            inv.revoke_invitation(pb::RevokeInvitationRequest {
                actor: "bob".into(),
                org_id: "acme".into(),
                invitation_id: id.clone(),
            })
            .await,
            Code::PermissionDenied,
            &["member:invite"],
        );
        inv.revoke_invitation(pb::RevokeInvitationRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            invitation_id: id.clone(),
        })
        .await
        .expect("RevokeInvitation");
        assert_refused(
            accept(&mut inv, "dave", &made.code, "").await,
            Code::FailedPrecondition,
            &["revoked"],
        );
        assert_refused(
            inv.revoke_invitation(pb::RevokeInvitationRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                invitation_id: id,
            })
            .await,
            Code::FailedPrecondition,
            &["revoked"],
        );

        // Declined: then it cannot be accepted.
        let made = invite(&mut inv, "alice", "acme", by_user("dave", "org_user"), 0)
            .await
            .expect("invite dave again");
        let declined = inv
            .decline_invitation(pb::DeclineInvitationRequest {
                actor: "dave".into(),
                code: made.code.clone(),
            })
            .await
            .expect("DeclineInvitation")
            .into_inner();
        assert_eq!(declined.invitation.expect("invitation").status, "declined");
        assert_refused(
            accept(&mut inv, "dave", &made.code, "").await,
            Code::FailedPrecondition,
            &["declined"],
        );
        assert!(!c.check("dave", "acme", "org", "org:read", 0).await);
    });
}

#[test]
fn invalid_invitations_are_refused_naming_the_field() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    rt.block_on(async {
        let (mut c, mut inv) = acme(&daemon.work.tcp_target(), None, &["bob"]).await;
        c.add_member("alice", "acme", "bob", "org_user")
            .await
            .expect("AddMember");
        let before = c.stats().await.revision;
        let cases: Vec<(pb::InvitationSpec, u64, Code, &[&str])> = vec![
            (
                by_email("not-an-email", "org_user", &[]),
                0,
                Code::InvalidArgument,
                &["email"],
            ),
            (
                pb::InvitationSpec {
                    email: "x@y.z".into(),
                    user_id: "bob".into(),
                    role: "org_user".into(),
                    ..Default::default()
                },
                0,
                Code::InvalidArgument,
                &["invitee", "exactly one"],
            ),
            (
                by_email("x@y.z", "overlord", &[]),
                0,
                Code::InvalidArgument,
                &["role", "overlord"],
            ),
            (
                by_email("x@y.z", "org_user", &["Bad Team"]),
                0,
                Code::InvalidArgument,
                &["team_ids"],
            ),
            (
                by_email("x@y.z", "org_user", &["ghosts"]),
                0,
                Code::NotFound,
                &["team `ghosts`"],
            ),
            (
                by_email("x@y.z", "org_user", &[]),
                91 * 24 * 3600,
                Code::InvalidArgument,
                &["expires_in_seconds"],
            ),
            (
                by_user("nobody", "org_user"),
                0,
                Code::NotFound,
                &["user `nobody`"],
            ),
            // Already a member, by user id and by email.
            (
                by_user("bob", "org_user"),
                0,
                Code::AlreadyExists,
                &["bob", "acme"],
            ),
            (
                by_email("bob@example.com", "org_user", &[]),
                0,
                Code::AlreadyExists,
                &["bob", "acme"],
            ),
        ];
        for (spec, ttl, code, words) in cases {
            assert_refused(invite(&mut inv, "alice", "acme", spec, ttl).await, code, words);
        }
        // A second pending invitation of the same person is refused.
        invite(&mut inv, "alice", "acme", by_email("new@y.z", "org_user", &[]), 0)
            .await
            .expect("first");
        assert_refused(
            invite(&mut inv, "alice", "acme", by_email("NEW@y.z", "org_user", &[]), 0).await,
            Code::AlreadyExists,
            &["pending invitation"],
        );
        assert_eq!(
            c.stats().await.revision,
            before + 1,
            "only the one valid invitation was written"
        );
        assert_refused(
            accept(&mut inv, "bob", "", "").await,
            Code::InvalidArgument,
            &["code"],
        );
        assert_refused(
            inv.list_org_invitations(pb::ListOrgInvitationsRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                status: "maybe".into(),
                ..Default::default()
            })
            .await,
            Code::InvalidArgument,
            &["status"],
        );
        assert_refused(
            inv.bulk_create_invitations(pb::BulkCreateInvitationsRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                invitees: (0..101)
                    .map(|i| by_email(&format!("u{i}@y.z"), "org_user", &[]))
                    .collect(),
                expires_in_seconds: 0,
            })
            .await,
            Code::InvalidArgument,
            &["invitees", "100"],
        );
    });
}

#[test]
fn expired_invitations_cannot_be_accepted() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    rt.block_on(async {
        let (_, mut inv) = acme(&daemon.work.tcp_target(), None, &["bob"]).await;
        let made = invite(&mut inv, "alice", "acme", by_user("bob", "org_user"), 1)
            .await
            .expect("invite");
        // Wait for the outcome (the list says `expired`), not for a duration.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let all = org_invitations(&mut inv, "alice", "acme", "expired").await;
            if all.len() == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "the invitation never expired");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_refused(
            accept(&mut inv, "bob", &made.code, "").await,
            Code::FailedPrecondition,
            &["expired"],
        );
        // An expired invitation no longer blocks a new one.
        invite(&mut inv, "alice", "acme", by_user("bob", "org_user"), 0)
            .await
            .expect("invite again");
    });
}

#[test]
fn pending_invitations_count_toward_the_membership_limit() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    rt.block_on(async {
        let (mut c, mut inv) = acme(&daemon.work.tcp_target(), Some(seats(2)), &["bob", "carol"]).await;
        let made = invite(&mut inv, "alice", "acme", by_user("bob", "org_user"), 0)
            .await
            .expect("one seat left");
        assert_refused(
            invite(&mut inv, "alice", "acme", by_user("carol", "org_user"), 0).await,
            Code::FailedPrecondition,
            &["membership limit of 2", "1 pending"],
        );
        assert_refused(
            c.add_member("alice", "acme", "carol", "org_user").await,
            Code::FailedPrecondition,
            &["membership limit"],
        );
        // The invitation's own seat lets it be accepted.
        accept(&mut inv, "bob", &made.code, "")
            .await
            .expect("accept within the limit");
    });
}

/// A person added directly while their invitation is pending takes one seat, not two: the
/// invitation stops holding a seat once its invitee is a member (by user id or by email).
#[test]
fn an_invitee_added_directly_counts_once_toward_the_limit() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    rt.block_on(async {
        let (mut c, mut inv) = acme(
            &daemon.work.tcp_target(),
            Some(seats(4)),
            &["bob", "carol", "dave", "erin"],
        )
        .await;
        // alice + two pending invitations (bob by id, carol by email) = 3 of 4 seats.
        invite(&mut inv, "alice", "acme", by_user("bob", "org_user"), 0)
            .await
            .expect("invite bob");
        invite(
            &mut inv,
            "alice",
            "acme",
            by_email("carol@example.com", "org_user", &[]),
            0,
        )
        .await
        .expect("invite carol");
        // Both are then added directly: 3 members, and their invitations hold no seat.
        for user in ["bob", "carol"] {
            c.add_member("alice", "acme", user, "org_user")
                .await
                .expect("add an invitee directly");
        }
        c.add_member("alice", "acme", "dave", "org_user")
            .await
            .expect("the fourth seat is free: bob and carol count once each");
        assert_refused(
            c.add_member("alice", "acme", "erin", "org_user").await,
            Code::FailedPrecondition,
            &["membership limit of 4", "4 members", "0 pending"],
        );
    });
}

#[test]
fn terms_of_use_must_be_accepted_when_the_org_has_them() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    rt.block_on(async {
        let settings = pb::OrgSettings {
            deletable: Some(true),
            terms_version: Some("2026-01".into()),
            ..Default::default()
        };
        let (mut c, mut inv) = acme(&daemon.work.tcp_target(), Some(settings), &["bob"]).await;
        let got = c
            .org
            .get_org(pb::GetOrgRequest {
                min_revision: 0,
                org_id: "acme".into(),
                actor: "alice".into(),
            })
            .await
            .expect("GetOrg")
            .into_inner();
        assert_eq!(
            got.settings.expect("settings").terms_version.as_deref(),
            Some("2026-01")
        );
        let made = invite(&mut inv, "alice", "acme", by_user("bob", "org_user"), 0)
            .await
            .expect("invite");
        assert_refused(
            accept(&mut inv, "bob", &made.code, "").await,
            Code::FailedPrecondition,
            &["terms of use", "2026-01"],
        );
        assert_refused(
            accept(&mut inv, "bob", &made.code, "2025-01").await,
            Code::FailedPrecondition,
            &["2026-01", "got `2025-01`"],
        );
        let ok = accept(&mut inv, "bob", &made.code, "2026-01")
            .await
            .expect("accept with terms");
        let m = ok.member.expect("member");
        assert!(m.terms_accepted_at_unix_ms > 0 && m.terms_accepted_at_unix_ms == m.created_at_unix_ms);
        // The version accepted is readable on the membership, not only the time (item 20).
        assert_eq!(m.terms_version, "2026-01");
        let listed = c
            .member
            .list_members(pb::ListMembersRequest {
                order_by: String::new(),
                org_id: "acme".into(),
                actor: "alice".into(),
                ..Default::default()
            })
            .await
            .expect("ListMembers")
            .into_inner()
            .members;
        let bob = listed.iter().find(|m| m.user_id == "bob").expect("bob listed");
        assert_eq!(bob.terms_version, "2026-01");
        let alice = listed
            .iter()
            .find(|m| m.user_id == "alice")
            .expect("alice listed");
        assert_eq!(alice.terms_version, "", "the creator accepted no terms");
    });
}

#[test]
fn bulk_invitations_report_each_item() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    rt.block_on(async {
        let (mut c, mut inv) = acme(&daemon.work.tcp_target(), None, &["bob"]).await;
        c.add_member("alice", "acme", "bob", "org_user")
            .await
            .expect("AddMember");
        let before = c.stats().await.revision;
        let r = inv
            .bulk_create_invitations(pb::BulkCreateInvitationsRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                invitees: vec![
                    by_email("one@y.z", "org_user", &[]),
                    by_user("bob", "org_user"),
                    by_email("broken", "org_user", &[]),
                    by_email("two@y.z", "org_contributor", &[]),
                ],
                expires_in_seconds: 0,
            })
            .await
            .expect("BulkCreateInvitations")
            .into_inner();
        let summary: Vec<(bool, &str)> = r
            .results
            .iter()
            .map(|x| (x.invitation.is_some(), x.error_code.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (true, ""),
                (false, "AlreadyExists"),
                (false, "InvalidArgument"),
                (true, "")
            ]
        );
        assert!(
            r.results[2].error_message.starts_with("invitees[2]: email"),
            "{}",
            r.results[2].error_message
        );
        assert_eq!(r.revision, before + 2);
        let codes: Vec<&str> = r
            .results
            .iter()
            .map(|x| x.code.as_str())
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(codes.len(), 2);
        assert_ne!(codes[0], codes[1]);
        assert_eq!(
            org_invitations(&mut inv, "alice", "acme", "pending").await.len(),
            2
        );
        // A non-inviter's bulk call creates nothing; each item says why.
        let r = inv
            .bulk_create_invitations(pb::BulkCreateInvitationsRequest {
                actor: "bob".into(),
                org_id: "acme".into(),
                invitees: vec![by_email("three@y.z", "org_user", &[])],
                expires_in_seconds: 0,
            })
            .await
            .expect("BulkCreateInvitations")
            .into_inner();
        assert_eq!(r.results[0].error_code, "PermissionDenied");
        assert_eq!(r.revision, before + 2);
    });
}

fn warden(args: &[&str]) -> Output {
    Command::new(WARDEN)
        .args(args)
        .env_remove("WARDEN_CONNECT")
        .env_remove("WARDEN_ACTOR")
        .env_remove("WARDEN_DATA")
        .stdin(Stdio::null())
        .output()
        .expect("run warden")
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cli_invites_and_accepts_and_export_import_keeps_invitations() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    let t = target.as_str();
    // alice (admin of acme) invites erin by user id and an email; erin accepts by code.
    let out = ok(&warden(&[
        "invitation",
        "create",
        "acme",
        "--user",
        "erin",
        "--role",
        "org_user",
        "--team",
        "frontend",
        "--actor",
        "alice",
        "--connect",
        t,
    ]));
    let code = out
        .lines()
        .find_map(|l| l.strip_prefix("code: "))
        .expect("code line")
        .to_string();
    ok(&warden(&[
        "invitation",
        "create",
        "acme",
        "--email",
        "zed@example.com",
        "--role",
        "org_user",
        "--actor",
        "alice",
        "--connect",
        t,
    ]));
    let mine = ok(&warden(&[
        "invitation",
        "mine",
        "--user",
        "erin",
        "--actor",
        "erin",
        "--connect",
        t,
    ]));
    assert!(
        mine.contains("to user erin in acme as org_user (pending)"),
        "{mine}"
    );
    // Refused by the directory: exit 1.
    let denied = warden(&["invitation", "accept", &code, "--actor", "dave", "--connect", t]);
    assert_eq!(denied.status.code(), Some(1));
    let accepted = ok(&warden(&[
        "invitation",
        "accept",
        &code,
        "--actor",
        "erin",
        "--connect",
        t,
    ]));
    assert!(
        accepted.contains("member: erin in acme as org_user (teams: frontend)"),
        "{accepted}"
    );
    let twice = warden(&["invitation", "accept", &code, "--actor", "erin", "--connect", t]);
    assert_eq!(twice.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already accepted"));
    let listed = ok(&warden(&[
        "invitation",
        "list",
        "acme",
        "--actor",
        "alice",
        "--connect",
        t,
    ]));
    assert!(
        listed.contains("(accepted)") && listed.contains("email zed@example.com"),
        "{listed}"
    );

    // Offline: export, import into a new store, export again: same bytes, codes only hashed.
    daemon.stop();
    let data = daemon.work.data();
    let first = ok(&warden(&["export", "--data", data.to_str().expect("utf-8 path")]));
    assert!(
        first.contains("\"invitations\"") && first.contains("code_sha256"),
        "{first}"
    );
    assert!(!first.contains(&code), "the code itself must never be exported");
    let dump = daemon.work.dir.path().join("dump.json");
    std::fs::write(&dump, &first).expect("write dump");
    let fresh = daemon.work.dir.path().join("fresh");
    ok(&warden(&[
        "import",
        dump.to_str().expect("utf-8"),
        "--data",
        fresh.to_str().expect("utf-8"),
    ]));
    let second = ok(&warden(&["export", "--data", fresh.to_str().expect("utf-8")]));
    assert_eq!(first, second);
}
