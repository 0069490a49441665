//! Trust of identities, limits and plans through the real daemon (issue 11, items 6, 7, 8, 17
//! and 18): only an email the login layer verified joins an org by its domain, and domains
//! and emails are compared in a canonical form that refuses look-alikes; every path that
//! creates a membership obeys the plan and the membership limit, and the refusal names the
//! real setting; plans are not self-service and the default plan is a row of the plan table;
//! an org update changes only the settings it names.

use crate::common;

use common::directory::{Clients, assert_refused, clients};
use common::{Workdir, runtime};
use tonic::Code;
use tonic::transport::Channel;
use warden::api::client::connect;
use warden::api::pb;
use warden::api::pb::domain_service_client::DomainServiceClient;
use warden::api::pb::invitation_service_client::InvitationServiceClient;
use warden::api::pb::org_lifecycle_service_client::OrgLifecycleServiceClient;
use warden::api::pb::security_service_client::SecurityServiceClient;

type Dom = DomainServiceClient<Channel>;

/// A user as the login layer (Unix socket) records it: `verified` says it checked the email.
async fn login_user(
    unix: &mut Clients,
    id: &str,
    email: &str,
    verified: bool,
) -> Result<pb::User, tonic::Status> {
    unix.user
        .upsert_user(pb::UpsertUserRequest {
            actor: id.into(),
            user_id: id.into(),
            email: email.into(),
            email_verified: Some(verified),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().user.expect("user"))
}

/// A user changing their own profile over TCP.
async fn self_service(tcp: &mut Clients, id: &str, email: &str) -> Result<pb::User, tonic::Status> {
    tcp.user
        .upsert_user(pb::UpsertUserRequest {
            actor: id.into(),
            user_id: id.into(),
            email: email.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().user.expect("user"))
}

async fn create_org(c: &mut Clients, actor: &str, org: &str, plan: &str) -> Result<pb::Org, tonic::Status> {
    c.org
        .create_org(pb::CreateOrgRequest {
            actor: actor.into(),
            org_id: org.into(),
            name: org.into(),
            plan: plan.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().org.expect("org"))
}

/// Claim `domain` for `org` in `mode` and have the operator verify it.
async fn verified_domain(unix: &mut Dom, org: &str, domain: &str, mode: &str, role: &str) {
    let d = unix
        .add_domain(pb::AddDomainRequest {
            actor: "alice".into(),
            org_id: org.into(),
            domain: domain.into(),
            enrollment_mode: mode.into(),
            role: role.into(),
        })
        .await
        .expect("AddDomain")
        .into_inner()
        .domain
        .expect("domain");
    unix.verify_domain(pb::VerifyDomainRequest {
        actor: "alice".into(),
        org_id: org.into(),
        domain: d.domain,
        verification_token: d.verification_token,
    })
    .await
    .expect("VerifyDomain");
}

async fn join(d: &mut Dom, actor: &str, org: &str) -> Result<pb::JoinByDomainResponse, tonic::Status> {
    d.join_by_domain(pb::JoinByDomainRequest {
        actor: actor.into(),
        org_id: org.into(),
    })
    .await
    .map(|r| r.into_inner())
}

async fn update_org(
    c: &mut Clients,
    actor: &str,
    org: &str,
    r: pb::UpdateOrgRequest,
) -> Result<pb::Org, tonic::Status> {
    c.org
        .update_org(pb::UpdateOrgRequest {
            actor: actor.into(),
            org_id: org.into(),
            ..r
        })
        .await
        .map(|r| r.into_inner().org.expect("org"))
}

#[test]
fn domain_joins_need_an_email_the_login_layer_verified_in_canonical_form() {
    let daemon = Workdir::new().start();
    runtime().block_on(async {
        let mut unix = clients(&daemon.work.unix_target()).await;
        let mut tcp = clients(&daemon.work.tcp_target()).await;
        let mut dom_unix =
            DomainServiceClient::new(connect(&daemon.work.unix_target()).await.expect("connect"));
        let mut dom_tcp =
            DomainServiceClient::new(connect(&daemon.work.tcp_target()).await.expect("connect"));
        login_user(&mut unix, "alice", "alice@bank.io", true)
            .await
            .expect("alice");
        create_org(&mut unix, "alice", "bank", "")
            .await
            .expect("CreateOrg");
        verified_domain(&mut dom_unix, "bank", "bank.io", "automatic_invitation", "").await;

        // mallory sets `mallory@bank.io` on her own profile: it is unverified, so no join.
        login_user(&mut unix, "mallory", "mallory@elsewhere.io", true)
            .await
            .expect("mallory");
        let own = self_service(&mut tcp, "mallory", "mallory@bank.io")
            .await
            .expect("a user may change their own email");
        assert!(!own.email_verified, "a changed email is not verified");
        assert_refused(
            join(&mut dom_tcp, "mallory", "bank").await,
            Code::FailedPrecondition,
            &["mallory", "not verified"],
        );
        // Nor may she vouch for it herself over TCP.
        assert_refused(
            tcp.user
                .upsert_user(pb::UpsertUserRequest {
                    actor: "mallory".into(),
                    user_id: "mallory".into(),
                    email: "mallory@bank.io".into(),
                    email_verified: Some(true),
                    ..Default::default()
                })
                .await,
            Code::PermissionDenied,
            &["email_verified", "Unix socket"],
        );
        assert_refused(
            join(&mut dom_tcp, "mallory", "bank").await,
            Code::FailedPrecondition,
            &["not verified"],
        );

        // KELVIN SIGN folds to `k`: `ban\u{212A}.io` is refused, never taken for bank.io,
        // even when the login layer says verified.
        assert_refused(
            login_user(&mut unix, "kelvin", "kelvin@ban\u{212A}.io", true).await,
            Code::InvalidArgument,
            &["email"],
        );
        assert_refused(
            self_service(&mut tcp, "mallory", "mallory@ban\u{212A}.io").await,
            Code::InvalidArgument,
            &["email"],
        );
        assert_refused(
            dom_unix
                .add_domain(pb::AddDomainRequest {
                    actor: "alice".into(),
                    org_id: "bank".into(),
                    domain: "ban\u{212A}.io".into(),
                    enrollment_mode: "automatic_invitation".into(),
                    role: String::new(),
                })
                .await,
            Code::InvalidArgument,
            &["domain"],
        );
        // An international domain is claimed and compared as punycode.
        let idn = dom_unix
            .add_domain(pb::AddDomainRequest {
                actor: "alice".into(),
                org_id: "bank".into(),
                domain: "b\u{FC}cher.de".into(),
                enrollment_mode: String::new(),
                role: String::new(),
            })
            .await
            .expect("an IDN domain")
            .into_inner()
            .domain
            .expect("domain");
        assert_eq!(idn.domain, "xn--bcher-kva.de");

        // A verified address joins; case does not matter.
        login_user(&mut unix, "erin", "Erin@BANK.io", true)
            .await
            .expect("erin");
        let erin = tcp
            .user
            .get_user(pb::GetUserRequest {
                min_revision: 0,
                user_id: "erin".into(),
                actor: "erin".into(),
            })
            .await
            .expect("GetUser")
            .into_inner();
        assert!(erin.email_verified);
        join(&mut dom_tcp, "erin", "bank")
            .await
            .expect("a verified email joins");
        // A verification holds for the address it was given for: a profile update that
        // keeps the email keeps it, a new email loses it.
        let kept = self_service(&mut tcp, "erin", "Erin@BANK.io")
            .await
            .expect("same email");
        assert!(kept.email_verified);
        let moved = self_service(&mut tcp, "erin", "erin@bank.io.evil.example")
            .await
            .expect("new email");
        assert!(!moved.email_verified);
        // Membership requests (suggestion mode) need a verified email too.
        create_org(&mut unix, "alice", "bank2", "")
            .await
            .expect("CreateOrg");
        verified_domain(&mut dom_unix, "bank2", "bank.io", "automatic_suggestion", "").await;
        assert_refused(
            dom_tcp
                .request_membership(pb::RequestMembershipRequest {
                    actor: "mallory".into(),
                    org_id: "bank2".into(),
                })
                .await,
            Code::FailedPrecondition,
            &["not verified"],
        );
    });
}

/// The shipped limits.toml; `extra` lines go before its tables.
fn shipped_limits(extra: &str) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/limits.toml"))
        .expect("limits.toml");
    format!("{extra}\n{text}")
}

#[test]
fn every_path_that_creates_a_membership_obeys_the_plan_and_the_membership_limit() {
    let work = Workdir::new();
    let daemon = work.start();
    runtime().block_on(async {
        let unix_target = daemon.work.unix_target();
        let mut unix = clients(&unix_target).await;
        let mut tcp = clients(&daemon.work.tcp_target()).await;
        let mut dom = DomainServiceClient::new(connect(&unix_target).await.expect("connect"));
        let mut dom_tcp =
            DomainServiceClient::new(connect(&daemon.work.tcp_target()).await.expect("connect"));
        let mut inv =
            InvitationServiceClient::new(connect(&daemon.work.tcp_target()).await.expect("connect"));
        let mut sec = SecurityServiceClient::new(connect(&unix_target).await.expect("connect"));
        for (id, email) in [
            ("alice", "alice@corp.io"),
            ("bob", "bob@x.io"),
            ("carol", "carol@corp.io"),
            ("dave", "dave@corp.io"),
            ("erin", "erin@x.io"),
            ("frank", "frank@x.io"),
        ] {
            login_user(&mut unix, id, email, true).await.expect("user");
        }
        // On the free plan, one of each way in is prepared for an `org_user`.
        create_org(&mut unix, "alice", "co", "").await.expect("CreateOrg");
        let invitation = inv
            .create_invitation(pb::CreateInvitationRequest {
                actor: "alice".into(),
                org_id: "co".into(),
                invitee: Some(pb::InvitationSpec {
                    user_id: "bob".into(),
                    role: "org_user".into(),
                    ..Default::default()
                }),
                expires_in_seconds: 0,
            })
            .await
            .expect("invite bob")
            .into_inner();
        verified_domain(&mut dom, "co", "corp.io", "automatic_suggestion", "org_user").await;
        let request = dom_tcp
            .request_membership(pb::RequestMembershipRequest {
                actor: "carol".into(),
                org_id: "co".into(),
            })
            .await
            .expect("carol asks")
            .into_inner()
            .request
            .expect("request");
        dom.set_domain_enrollment(pb::SetDomainEnrollmentRequest {
            actor: "alice".into(),
            org_id: "co".into(),
            domain: "corp.io".into(),
            enrollment_mode: "automatic_invitation".into(),
        })
        .await
        .expect("invitation mode");
        sec.set_security_settings(pb::SetSecuritySettingsRequest {
            actor: "alice".into(),
            org_id: "co".into(),
            password: None,
            identity_providers: vec![pb::IdentityProvider {
                idp_id: "okta".into(),
                config: Some(pb::identity_provider::Config::Oidc(pb::OidcProvider {
                    issuer: "https://corp.okta.com".into(),
                    client_id: "0oa1client".into(),
                })),
                auto_join_role: "org_user".into(),
            }],
        })
        .await
        .expect("SSO auto-join as org_user");

        // Every path, once refused by one limit and then by the other: nothing joins.
        type Attempt<'a> = (&'a str, Result<u64, tonic::Status>);
        async fn attempts(
            tcp: &mut Clients,
            inv: &mut InvitationServiceClient<Channel>,
            dom: &mut Dom,
            dom_tcp: &mut Dom,
            sec: &mut SecurityServiceClient<Channel>,
            code: &str,
            request: &str,
        ) -> Vec<Attempt<'static>> {
            vec![
                (
                    "AddMember",
                    tcp.add_member("alice", "co", "erin", "org_user").await,
                ),
                (
                    "AcceptInvitation",
                    inv.accept_invitation(pb::AcceptInvitationRequest {
                        actor: "bob".into(),
                        code: code.into(),
                        accepted_terms_version: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner().revision),
                ),
                (
                    "JoinByDomain",
                    join(dom_tcp, "dave", "co").await.map(|r| r.revision),
                ),
                (
                    "ApproveMembershipRequest",
                    dom.approve_membership_request(pb::ApproveMembershipRequestRequest {
                        actor: "alice".into(),
                        org_id: "co".into(),
                        request_id: request.into(),
                        role: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner().revision),
                ),
                (
                    "SsoJoin",
                    sec.sso_join(pb::SsoJoinRequest {
                        actor: "frank".into(),
                        org_id: "co".into(),
                        idp_id: "okta".into(),
                    })
                    .await
                    .map(|r| r.into_inner().revision),
                ),
            ]
        }

        // The community plan allows only admins.
        update_org(
            &mut unix,
            "alice",
            "co",
            pb::UpdateOrgRequest {
                plan: Some("community".into()),
                ..Default::default()
            },
        )
        .await
        .expect("the operator moves co to community");
        let before = unix.stats().await.revision;
        for (path, outcome) in attempts(
            &mut tcp,
            &mut inv,
            &mut dom,
            &mut dom_tcp,
            &mut sec,
            &invitation.code,
            &request.request_id,
        )
        .await
        {
            match outcome {
                Err(s) => {
                    assert_eq!(s.code(), Code::FailedPrecondition, "{path}: {}", s.message());
                    assert!(
                        s.message().contains("plan `community`") && s.message().contains("org_user"),
                        "{path}: {}",
                        s.message()
                    );
                }
                Ok(rev) => panic!("{path}: joined a community org as org_user at revision {rev}"),
            }
        }
        assert_eq!(
            unix.stats().await.revision,
            before,
            "a refused join wrote something"
        );

        // Back on the free plan, the org's own limit: alice alone fills one seat.
        update_org(
            &mut unix,
            "alice",
            "co",
            pb::UpdateOrgRequest {
                plan: Some("free".into()),
                settings: Some(pb::OrgSettings {
                    max_memberships: Some(1),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .expect("free, one seat");
        for (path, outcome) in attempts(
            &mut tcp,
            &mut inv,
            &mut dom,
            &mut dom_tcp,
            &mut sec,
            &invitation.code,
            &request.request_id,
        )
        .await
        {
            match outcome {
                Err(s) => {
                    assert_eq!(s.code(), Code::FailedPrecondition, "{path}: {}", s.message());
                    // The refusal names the real field, never `membership_limit`.
                    assert!(
                        s.message().contains("membership limit of 1")
                            && s.message().contains("OrgSettings.max_memberships")
                            && !s.message().contains("`membership_limit`"),
                        "{path}: {}",
                        s.message()
                    );
                }
                Ok(rev) => panic!("{path}: joined past the membership limit at revision {rev}"),
            }
        }

        // The instance default of limits.toml, for an org without its own limit: named too.
        update_org(
            &mut unix,
            "alice",
            "co",
            pb::UpdateOrgRequest {
                settings: Some(pb::OrgSettings {
                    max_memberships: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .await
        .expect("no limit of its own");
        std::fs::write(
            daemon.work.policies().join("limits.toml"),
            shipped_limits("default_membership_limit = 1"),
        )
        .expect("write limits.toml");
        unix.admin
            .reload_policy(pb::ReloadPolicyRequest {})
            .await
            .expect("ReloadPolicy");
        let mut life = OrgLifecycleServiceClient::new(connect(&unix_target).await.expect("connect"));
        let deadline = std::time::Instant::now() + common::PATIENCE;
        while life
            .get_limits(pb::GetLimitsRequest {})
            .await
            .expect("GetLimits")
            .into_inner()
            .default_membership_limit
            != 1
        {
            assert!(std::time::Instant::now() < deadline, "limits.toml never reloaded");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        for (path, outcome) in attempts(
            &mut tcp,
            &mut inv,
            &mut dom,
            &mut dom_tcp,
            &mut sec,
            &invitation.code,
            &request.request_id,
        )
        .await
        {
            let s = outcome.expect_err(path);
            assert!(
                s.message().contains("default_membership_limit") && s.message().contains("limits.toml"),
                "{path}: {}",
                s.message()
            );
        }
        let members = tcp
            .member
            .list_members(pb::ListMembersRequest {
                order_by: String::new(),
                org_id: "co".into(),
                actor: "alice".into(),
                ..Default::default()
            })
            .await
            .expect("ListMembers")
            .into_inner()
            .members;
        assert_eq!(members.len(), 1, "{members:?}");
    });
}

#[test]
fn plans_are_chosen_by_the_operator_or_a_billing_manager_from_the_plan_table() {
    // A policy in which contributors may update the org (but hold no `billing:manage`).
    let work = Workdir::new();
    let policy = work.policies().join("policy.csv");
    let mut text = std::fs::read_to_string(&policy).expect("policy.csv");
    text.push_str("\np, role:org_contributor, org, org:update, org, allow\n");
    std::fs::write(&policy, text).expect("policy.csv");
    let daemon = work.start();
    runtime().block_on(async {
        let unix_target = daemon.work.unix_target();
        let mut unix = clients(&unix_target).await;
        let mut tcp = clients(&daemon.work.tcp_target()).await;
        for id in ["alice", "bob"] {
            login_user(&mut unix, id, &format!("{id}@x.io"), false)
                .await
                .expect("user");
        }
        let before = unix.stats().await.revision;
        // Any user may create an org, but only on the default plan.
        assert_refused(
            create_org(&mut tcp, "alice", "rich", "enterprise").await,
            Code::PermissionDenied,
            &["enterprise", "operator", "free"],
        );
        assert_refused(
            create_org(&mut unix, "alice", "gold", "gold").await,
            Code::InvalidArgument,
            &["plan", "unknown plan `gold`"],
        );
        assert_eq!(unix.stats().await.revision, before);
        let org = create_org(&mut tcp, "alice", "acme", "")
            .await
            .expect("CreateOrg");
        assert_eq!(org.plan, "free");
        create_org(&mut tcp, "alice", "acme2", "free")
            .await
            .expect("the default plan by name");
        tcp.add_member("alice", "acme", "bob", "org_contributor")
            .await
            .expect("bob");

        // bob holds `org:update` but not `billing:manage`.
        update_org(
            &mut tcp,
            "bob",
            "acme",
            pb::UpdateOrgRequest {
                name: Some("Acme Inc".into()),
                ..Default::default()
            },
        )
        .await
        .expect("bob renames");
        assert_refused(
            update_org(
                &mut tcp,
                "bob",
                "acme",
                pb::UpdateOrgRequest {
                    plan: Some("enterprise".into()),
                    ..Default::default()
                },
            )
            .await,
            Code::PermissionDenied,
            &["bob", "billing:manage", "acme"],
        );
        // The admin holds it; an unknown plan is refused even so.
        assert_refused(
            update_org(
                &mut tcp,
                "alice",
                "acme",
                pb::UpdateOrgRequest {
                    plan: Some("platinum".into()),
                    ..Default::default()
                },
            )
            .await,
            Code::InvalidArgument,
            &["unknown plan `platinum`"],
        );
        let moved = update_org(
            &mut tcp,
            "alice",
            "acme",
            pb::UpdateOrgRequest {
                plan: Some("enterprise".into()),
                ..Default::default()
            },
        )
        .await
        .expect("billing:manage changes the plan");
        assert_eq!(moved.plan, "enterprise");
        // The operator may, for an actor with `org:update`.
        let moved = update_org(
            &mut unix,
            "bob",
            "acme",
            pb::UpdateOrgRequest {
                plan: Some("free".into()),
                ..Default::default()
            },
        )
        .await
        .expect("the operator changes the plan");
        assert_eq!(moved.plan, "free");

        // The default plan is a row of the table: its rules apply once tightened.
        let mut life = OrgLifecycleServiceClient::new(connect(&unix_target).await.expect("connect"));
        let limits = life
            .get_limits(pb::GetLimitsRequest {})
            .await
            .expect("GetLimits")
            .into_inner();
        assert_eq!(limits.default_plan, "free");
        assert!(limits.plans.iter().any(|p| p.plan_id == "free"), "{limits:?}");
        let file = daemon.work.policies().join("limits.toml");
        let tightened = std::fs::read_to_string(&file).expect("limits.toml").replace(
            "[plans.free]\nroles = []\nteams = true",
            "[plans.free]\nroles = []\nteams = false",
        );
        assert!(
            tightened.contains("teams = false"),
            "the shipped [plans.free] changed shape"
        );
        std::fs::write(&file, tightened).expect("write");
        unix.admin
            .reload_policy(pb::ReloadPolicyRequest {})
            .await
            .expect("ReloadPolicy");
        let deadline = std::time::Instant::now() + common::PATIENCE;
        while life
            .get_limits(pb::GetLimitsRequest {})
            .await
            .expect("GetLimits")
            .into_inner()
            .plans
            .iter()
            .any(|p| p.plan_id == "free" && p.teams)
        {
            assert!(std::time::Instant::now() < deadline, "limits.toml never reloaded");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_refused(
            tcp.team
                .create_team(pb::CreateTeamRequest {
                    actor: "alice".into(),
                    org_id: "acme".into(),
                    team_id: "t".into(),
                    name: "T".into(),
                })
                .await,
            Code::FailedPrecondition,
            &["plan `free`", "no teams"],
        );
        // A limits.toml whose plan table lacks the default plan is refused at reload.
        std::fs::write(&file, "[plans.community]\nroles = [\"admin\"]\n").expect("write");
        let r = unix.admin.reload_policy(pb::ReloadPolicyRequest {}).await;
        let failed = match r {
            Err(s) => s.message().to_string(),
            Ok(resp) => format!("{:?}", resp.into_inner()),
        };
        assert!(failed.contains("default_plan"), "{failed}");
    });
}

#[test]
fn org_updates_change_only_the_settings_they_name_and_deletable_defaults_to_true() {
    let daemon = Workdir::new().start();
    runtime().block_on(async {
        let mut c = clients(&daemon.work.tcp_target()).await;
        c.upsert_user("alice", "alice").await;
        let settings = |o: &pb::Org| {
            let s = o.settings.clone().expect("settings");
            (
                s.max_memberships.unwrap_or(0),
                s.deletable.expect("deletable"),
                s.terms_version.unwrap_or_default(),
            )
        };
        // One default for `deletable`: true, with or without other settings.
        let bare = create_org(&mut c, "alice", "bare", "").await.expect("bare");
        assert_eq!(settings(&bare), (0, true, String::new()));
        let limited = c
            .org
            .create_org(pb::CreateOrgRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                name: "Acme".into(),
                settings: Some(pb::OrgSettings {
                    max_memberships: Some(5),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("CreateOrg")
            .into_inner()
            .org
            .expect("org");
        assert_eq!(settings(&limited), (5, true, String::new()));

        // Each update names one setting; the others stay.
        let one = |s: pb::OrgSettings| pb::UpdateOrgRequest {
            settings: Some(s),
            ..Default::default()
        };
        let o = update_org(
            &mut c,
            "alice",
            "acme",
            one(pb::OrgSettings {
                terms_version: Some("v2".into()),
                ..Default::default()
            }),
        )
        .await
        .expect("terms");
        assert_eq!(settings(&o), (5, true, "v2".to_string()));
        let o = update_org(
            &mut c,
            "alice",
            "acme",
            one(pb::OrgSettings {
                deletable: Some(false),
                ..Default::default()
            }),
        )
        .await
        .expect("deletable");
        assert_eq!(settings(&o), (5, false, "v2".to_string()));
        let o = update_org(
            &mut c,
            "alice",
            "acme",
            one(pb::OrgSettings {
                max_memberships: Some(0),
                ..Default::default()
            }),
        )
        .await
        .expect("no limit");
        assert_eq!(settings(&o), (0, false, "v2".to_string()));
        let o = update_org(&mut c, "alice", "acme", one(pb::OrgSettings::default()))
            .await
            .expect("empty settings change nothing");
        assert_eq!(settings(&o), (0, false, "v2".to_string()));
        let o = update_org(
            &mut c,
            "alice",
            "acme",
            one(pb::OrgSettings {
                terms_version: Some(String::new()),
                ..Default::default()
            }),
        )
        .await
        .expect("clear the terms");
        assert_eq!(settings(&o), (0, false, String::new()));
        // The org stays undeletable through all of it.
        assert_refused(
            c.org
                .delete_org(pb::DeleteOrgRequest {
                    actor: "alice".into(),
                    org_id: "acme".into(),
                    force: false,
                })
                .await,
            Code::FailedPrecondition,
            &["not deletable"],
        );
        assert_refused(
            update_org(
                &mut c,
                "alice",
                "acme",
                one(pb::OrgSettings {
                    terms_version: Some("Bad Version".into()),
                    ..Default::default()
                }),
            )
            .await,
            Code::InvalidArgument,
            &["terms_version"],
        );
    });
}
