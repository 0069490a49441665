//! `min_revision` on directory reads, through the daemon: the same meaning, the same wait and
//! the same FAILED_PRECONDITION as Check's. A read asked for a revision the directory has not
//! reached waits for it and then sees the write; one asked for a revision it never reaches
//! fails naming `min_revision`, on every directory read RPC.

use crate::common;

use common::directory::{clients, org_owner, user_owner};
use common::{Workdir, runtime};
use std::future::Future;
use std::pin::Pin;
use tonic::{Code, Status};
use warden::api::client::connect;
use warden::api::pb;
use warden::api::pb::collaborator_service_client::CollaboratorServiceClient;
use warden::api::pb::domain_service_client::DomainServiceClient;
use warden::api::pb::invitation_service_client::InvitationServiceClient;
use warden::api::pb::publishing_service_client::PublishingServiceClient;
use warden::api::pb::security_service_client::SecurityServiceClient;
use warden::api::pb::token_service_client::TokenServiceClient;

type Read = Pin<Box<dyn Future<Output = (&'static str, Result<(), Status>)> + Send>>;

#[test]
fn directory_reads_wait_for_min_revision_or_fail_naming_it() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    runtime().block_on(async {
        let target = daemon.work.unix_target();
        let mut c = clients(&target).await;
        let now = c.stats().await.revision;

        // A read that asks for the next revision waits for the write that makes it.
        let mut reader = c.clone();
        let read = tokio::spawn(async move {
            reader
                .member
                .list_members(pb::ListMembersRequest {
                    order_by: String::new(),
                    actor: "alice".into(),
                    org_id: "acme".into(),
                    min_revision: now + 1,
                    ..Default::default()
                })
                .await
        });
        let written = c
            .add_member("alice", "acme", "erin", "org_user")
            .await
            .expect("alice adds erin");
        assert_eq!(written, now + 1);
        let members = read
            .await
            .unwrap()
            .expect("the read answers once the write landed");
        assert!(
            members.into_inner().members.iter().any(|m| m.user_id == "erin"),
            "a read at min_revision sees the write"
        );
        // At or below the current revision: answered at once, as Check is.
        c.user
            .get_user(pb::GetUserRequest {
                actor: "erin".into(),
                user_id: "erin".into(),
                min_revision: written,
            })
            .await
            .expect("a reached revision is answered");

        // Beyond what will ever be written: every directory read fails like Check.
        let far = written + 1_000;
        let ch = connect(&target).await.expect("connect");
        let (org, member, team, app, user) = (
            c.org.clone(),
            c.member.clone(),
            c.team.clone(),
            c.app.clone(),
            c.user.clone(),
        );
        let invitations = InvitationServiceClient::new(ch.clone());
        let domains = DomainServiceClient::new(ch.clone());
        let security = SecurityServiceClient::new(ch.clone());
        let tokens = TokenServiceClient::new(ch.clone());
        let collaborators = CollaboratorServiceClient::new(ch.clone());
        let publishing = PublishingServiceClient::new(ch);
        macro_rules! read {
            ($name:literal, $client:expr, $method:ident, $req:expr) => {{
                let mut client = $client.clone();
                Box::pin(async move { ($name, client.$method($req).await.map(|_| ())) }) as Read
            }};
        }
        let alice = || "alice".to_string();
        let reads: Vec<Read> = vec![
            read!(
                "GetOrg",
                org,
                get_org,
                pb::GetOrgRequest {
                    actor: alice(),
                    org_id: "acme".into(),
                    min_revision: far
                }
            ),
            read!(
                "ListOrgs",
                org,
                list_orgs,
                pb::ListOrgsRequest {
                    order_by: String::new(),
                    actor: alice(),
                    user_id: alice(),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "ListMembers",
                member,
                list_members,
                pb::ListMembersRequest {
                    order_by: String::new(),
                    actor: alice(),
                    org_id: "acme".into(),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "ListTeams",
                team,
                list_teams,
                pb::ListTeamsRequest {
                    actor: alice(),
                    org_id: "acme".into(),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "ListTeamMembers",
                team,
                list_team_members,
                pb::ListTeamMembersRequest {
                    actor: alice(),
                    org_id: "acme".into(),
                    team_id: "frontend".into(),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "GetApp",
                app,
                get_app,
                pb::GetAppRequest {
                    actor: alice(),
                    app_id: "web".into(),
                    min_revision: far
                }
            ),
            read!(
                "ListApps",
                app,
                list_apps,
                pb::ListAppsRequest {
                    query: String::new(),
                    order_by: String::new(),
                    labels: vec![],
                    actor: alice(),
                    owner: org_owner("acme"),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "GetUser",
                user,
                get_user,
                pb::GetUserRequest {
                    actor: alice(),
                    user_id: alice(),
                    min_revision: far
                }
            ),
            read!(
                "ListOrgInvitations",
                invitations,
                list_org_invitations,
                pb::ListOrgInvitationsRequest {
                    actor: alice(),
                    org_id: "acme".into(),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "ListUserInvitations",
                invitations,
                list_user_invitations,
                pb::ListUserInvitationsRequest {
                    actor: alice(),
                    user_id: alice(),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "ListDomains",
                domains,
                list_domains,
                pb::ListDomainsRequest {
                    actor: alice(),
                    org_id: "acme".into(),
                    min_revision: far
                }
            ),
            read!(
                "ListDomainOffers",
                domains,
                list_domain_offers,
                pb::ListDomainOffersRequest {
                    actor: alice(),
                    user_id: alice(),
                    min_revision: far
                }
            ),
            read!(
                "ListMembershipRequests",
                domains,
                list_membership_requests,
                pb::ListMembershipRequestsRequest {
                    actor: alice(),
                    org_id: "acme".into(),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "GetSecuritySettings",
                security,
                get_security_settings,
                pb::GetSecuritySettingsRequest {
                    actor: alice(),
                    org_id: "acme".into(),
                    min_revision: far
                }
            ),
            read!(
                "ListTokens",
                tokens,
                list_tokens,
                pb::ListTokensRequest {
                    actor: alice(),
                    owner: user_owner("alice"),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "ListCollaborators",
                collaborators,
                list_collaborators,
                pb::ListCollaboratorsRequest {
                    actor: alice(),
                    app_id: "web".into(),
                    min_revision: far,
                    ..Default::default()
                }
            ),
            read!(
                "ListAppVersions",
                publishing,
                list_app_versions,
                pb::ListAppVersionsRequest {
                    actor: alice(),
                    app_id: "web".into(),
                    min_revision: far,
                    ..Default::default()
                }
            ),
        ];
        let handles: Vec<_> = reads.into_iter().map(tokio::spawn).collect();
        for h in handles {
            let (name, result) = h.await.unwrap();
            match result {
                Err(s) => {
                    assert_eq!(s.code(), Code::FailedPrecondition, "{name}: {}", s.message());
                    assert!(
                        s.message().starts_with("min_revision:"),
                        "{name}: {}",
                        s.message()
                    );
                    assert!(s.message().contains(&far.to_string()), "{name}: {}", s.message());
                }
                Ok(()) => panic!("{name} answered at revision {written} although asked for {far}"),
            }
        }
    });
}
