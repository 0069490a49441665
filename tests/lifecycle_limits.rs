//! Org rules and instance limits through a running daemon: leaving an org (never as its last
//! admin), deleting an org that owns apps (refused unless an admin forces it), `deletable`,
//! the membership limit (per-instance default, per-org override), and `policies/limits.toml`:
//! who may create orgs, how many, how many to administer, one org per user, the plans, and a
//! hot reload where a broken file keeps the last good limits.

use crate::common;

use common::directory::{Clients, assert_refused, clients};
use common::{Daemon, Workdir, runtime};
use tonic::Code;
use tonic::transport::Channel;
use warden::api::client::connect;
use warden::api::pb;
use warden::api::pb::admin_service_client::AdminServiceClient;
use warden::api::pb::org_lifecycle_service_client::OrgLifecycleServiceClient;

type Life = OrgLifecycleServiceClient<Channel>;

async fn life(target: &str) -> Life {
    OrgLifecycleServiceClient::new(connect(target).await.expect("connect"))
}

/// A daemon whose `policies/limits.toml` is `limits` (the rest of the shipped policy kept).
fn with_limits(limits: &str) -> Daemon {
    let work = Workdir::new();
    std::fs::write(work.policies().join("limits.toml"), limits).expect("write limits.toml");
    work.start()
}

async fn create_org(c: &mut Clients, actor: &str, org: &str, plan: &str) -> Result<u64, tonic::Status> {
    c.org
        .create_org(pb::CreateOrgRequest {
            actor: actor.into(),
            org_id: org.into(),
            name: org.into(),
            plan: plan.into(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner().revision)
}

async fn leave(l: &mut Life, actor: &str, org: &str) -> Result<u64, tonic::Status> {
    l.leave_org(pb::LeaveOrgRequest {
        actor: actor.into(),
        org_id: org.into(),
    })
    .await
    .map(|r| r.into_inner().revision)
}

async fn delete_org(c: &mut Clients, actor: &str, org: &str, force: bool) -> Result<u64, tonic::Status> {
    c.org
        .delete_org(pb::DeleteOrgRequest {
            actor: actor.into(),
            org_id: org.into(),
            force,
        })
        .await
        .map(|r| r.into_inner().revision)
}

async fn users(c: &mut Clients, ids: &[&str]) {
    for id in ids {
        c.upsert_user(id, id).await;
    }
}

#[test]
fn members_leave_but_the_last_admin_stays() {
    let daemon = Workdir::new().start();
    runtime().block_on(async {
        let target = daemon.work.tcp_target();
        let mut c = clients(&target).await;
        let mut l = life(&target).await;
        users(&mut c, &["alice", "bob", "mallory"]).await;
        create_org(&mut c, "alice", "acme", "").await.expect("CreateOrg");
        c.add_member("alice", "acme", "bob", "org_user")
            .await
            .expect("AddMember");
        c.team
            .create_team(pb::CreateTeamRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "t".into(),
                name: "T".into(),
            })
            .await
            .expect("CreateTeam");
        c.team
            .add_team_member(pb::AddTeamMemberRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "t".into(),
                user_id: "bob".into(),
            })
            .await
            .expect("AddTeamMember");

        let before = c.stats().await.revision;
        assert_refused(
            leave(&mut l, "alice", "acme").await,
            Code::FailedPrecondition,
            &["last admin", "alice"],
        );
        assert_refused(
            leave(&mut l, "mallory", "acme").await,
            Code::PermissionDenied,
            &["org:leave"],
        );
        assert_refused(
            leave(&mut l, "Bad Actor", "acme").await,
            Code::InvalidArgument,
            &["actor"],
        );
        assert_eq!(c.stats().await.revision, before);

        let r = leave(&mut l, "bob", "acme").await.expect("bob leaves");
        assert!(!c.check("bob", "acme", "org", "org:read", r).await);
        let team = c
            .team
            .list_teams(pb::ListTeamsRequest {
                org_id: "acme".into(),
                actor: "alice".into(),
                ..Default::default()
            })
            .await
            .expect("ListTeams")
            .into_inner()
            .teams;
        assert!(team[0].member_ids.is_empty(), "leaving the org leaves its teams");
        // With a second admin, the first may leave.
        c.add_member("alice", "acme", "bob", "admin")
            .await
            .expect("bob back as admin");
        leave(&mut l, "alice", "acme")
            .await
            .expect("alice leaves, bob stays admin");
    });
}

#[test]
fn an_org_with_apps_is_deleted_only_when_an_admin_forces_it() {
    let daemon = Workdir::new().start();
    runtime().block_on(async {
        let target = daemon.work.tcp_target();
        let mut c = clients(&target).await;
        users(&mut c, &["alice", "bob"]).await;
        create_org(&mut c, "alice", "acme", "").await.expect("CreateOrg");
        c.add_member("alice", "acme", "bob", "org_contributor")
            .await
            .expect("AddMember");
        c.app
            .create_app(pb::CreateAppRequest {
                actor: "alice".into(),
                app_id: "web".into(),
                owner: Some(pb::Owner {
                    owner: Some(pb::owner::Owner::OrgId("acme".into())),
                }),
                name: "Web".into(),
                labels: vec![],
            })
            .await
            .expect("CreateApp");
        assert_refused(
            delete_org(&mut c, "alice", "acme", false).await,
            Code::FailedPrecondition,
            &["owns 1 app", "web", "force"],
        );
        assert_refused(
            delete_org(&mut c, "bob", "acme", true).await,
            Code::PermissionDenied,
            &["org:force_delete"],
        );
        let r = delete_org(&mut c, "alice", "acme", true)
            .await
            .expect("forced delete");
        assert!(!c.check("alice", "acme", "apps/web", "app:read", r).await);
        assert_refused(
            c.app
                .get_app(pb::GetAppRequest {
                    min_revision: 0,
                    app_id: "web".into(),
                    actor: "alice".into(),
                })
                .await,
            Code::NotFound,
            &["web"],
        );

        // Not deletable: even forced.
        c.org
            .create_org(pb::CreateOrgRequest {
                actor: "alice".into(),
                org_id: "keep".into(),
                name: "Keep".into(),
                settings: Some(pb::OrgSettings {
                    deletable: Some(false),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("CreateOrg keep");
        assert_refused(
            delete_org(&mut c, "alice", "keep", true).await,
            Code::FailedPrecondition,
            &["not deletable"],
        );
    });
}

#[test]
fn the_instance_membership_limit_applies_unless_the_org_sets_its_own() {
    let daemon = with_limits("default_membership_limit = 2\n");
    runtime().block_on(async {
        let target = daemon.work.tcp_target();
        let mut c = clients(&target).await;
        users(&mut c, &["alice", "bob", "carol"]).await;
        create_org(&mut c, "alice", "acme", "").await.expect("CreateOrg");
        c.add_member("alice", "acme", "bob", "org_user")
            .await
            .expect("second member");
        assert_refused(
            c.add_member("alice", "acme", "carol", "org_user").await,
            Code::FailedPrecondition,
            &["membership limit of 2"],
        );
        c.org
            .update_org(pb::UpdateOrgRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                settings: Some(pb::OrgSettings {
                    max_memberships: Some(3),
                    deletable: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("raise the org's own limit");
        c.add_member("alice", "acme", "carol", "org_user")
            .await
            .expect("within the org's limit");
    });
}

const STRICT: &str = r#"
users_can_create_orgs = false
max_orgs_created_per_user = 3
max_admin_orgs_per_user = 3
[plans.free]
[plans.community]
roles = ["admin"]
max_orgs_per_user = 1
teams = false
[plans.enterprise]
roles = ["admin", "org_contributor", "team_contributor"]
teams = true
"#;

#[test]
fn instance_limits_refuse_writes_naming_the_limit() {
    let daemon = with_limits(STRICT);
    runtime().block_on(async {
        let mut tcp = clients(&daemon.work.tcp_target()).await;
        let mut unix = clients(&daemon.work.unix_target()).await;
        users(&mut unix, &["alice", "bob"]).await;
        // Users may not create orgs; the operator (Unix socket) still may.
        assert_refused(
            create_org(&mut tcp, "alice", "a1", "").await,
            Code::FailedPrecondition,
            &["users_can_create_orgs"],
        );
        create_org(&mut unix, "alice", "a1", "enterprise")
            .await
            .expect("operator creates");
        create_org(&mut unix, "alice", "a2", "community")
            .await
            .expect("second org");
        // Community: one org per user.
        assert_refused(
            create_org(&mut unix, "alice", "a3", "community").await,
            Code::FailedPrecondition,
            &["plan `community` allows 1", "alice"],
        );
        create_org(&mut unix, "alice", "a3", "enterprise")
            .await
            .expect("third org");
        assert_refused(
            create_org(&mut unix, "alice", "a4", "").await,
            Code::FailedPrecondition,
            &["max_orgs_created_per_user", "alice", "3"],
        );
        // Admin of three orgs already: bob cannot make alice admin of a fourth.
        create_org(&mut unix, "bob", "b1", "enterprise")
            .await
            .expect("bob's org");
        tcp.add_member("bob", "b1", "alice", "org_contributor")
            .await
            .expect("alice joins b1");
        assert_refused(
            tcp.member
                .update_member_role(pb::UpdateMemberRoleRequest {
                    actor: "bob".into(),
                    org_id: "b1".into(),
                    user_id: "alice".into(),
                    role: "admin".into(),
                })
                .await,
            Code::FailedPrecondition,
            &["max_admin_orgs_per_user", "alice"],
        );

        // Plans: community has only admins, no teams, one org per user.
        assert_refused(
            tcp.add_member("alice", "a2", "bob", "org_contributor").await,
            Code::FailedPrecondition,
            &["plan `community`", "org_contributor"],
        );
        assert_refused(
            tcp.team
                .create_team(pb::CreateTeamRequest {
                    actor: "alice".into(),
                    org_id: "a2".into(),
                    team_id: "t".into(),
                    name: "T".into(),
                })
                .await,
            Code::FailedPrecondition,
            &["plan `community`", "no teams"],
        );
        // Moving an org with an org_contributor to community is refused, naming the member.
        assert_refused(
            tcp.org
                .update_org(pb::UpdateOrgRequest {
                    actor: "bob".into(),
                    org_id: "b1".into(),
                    plan: Some("community".into()),
                    ..Default::default()
                })
                .await,
            Code::FailedPrecondition,
            &["plan `community`", "alice", "org_contributor"],
        );
        // Invitations respect the plan's roles too.
        let mut inv = warden::api::pb::invitation_service_client::InvitationServiceClient::new(
            connect(&daemon.work.tcp_target()).await.expect("connect"),
        );
        assert_refused(
            inv.create_invitation(pb::CreateInvitationRequest {
                actor: "alice".into(),
                org_id: "a2".into(),
                invitee: Some(pb::InvitationSpec {
                    user_id: "bob".into(),
                    role: "org_user".into(),
                    ..Default::default()
                }),
                expires_in_seconds: 0,
            })
            .await,
            Code::FailedPrecondition,
            &["plan `community`"],
        );
    });
}

#[test]
fn one_org_per_user_means_leaving_first() {
    let daemon = with_limits("one_org_per_user = true\n");
    runtime().block_on(async {
        let target = daemon.work.tcp_target();
        let mut c = clients(&target).await;
        let mut l = life(&target).await;
        users(&mut c, &["alice", "bob", "carol"]).await;
        create_org(&mut c, "alice", "acme", "").await.expect("acme");
        create_org(&mut c, "bob", "globex", "").await.expect("globex");
        c.add_member("alice", "acme", "carol", "org_user")
            .await
            .expect("carol in acme");
        assert_refused(
            c.add_member("bob", "globex", "carol", "org_user").await,
            Code::FailedPrecondition,
            &["one_org_per_user", "carol", "acme", "leave"],
        );
        assert_refused(
            create_org(&mut c, "carol", "mine", "").await,
            Code::FailedPrecondition,
            &["one_org_per_user"],
        );
        // An invitation can be made, but accepting it is refused until carol leaves acme.
        let mut inv = warden::api::pb::invitation_service_client::InvitationServiceClient::new(
            connect(&target).await.expect("connect"),
        );
        let made = inv
            .create_invitation(pb::CreateInvitationRequest {
                actor: "bob".into(),
                org_id: "globex".into(),
                invitee: Some(pb::InvitationSpec {
                    user_id: "carol".into(),
                    role: "org_user".into(),
                    ..Default::default()
                }),
                expires_in_seconds: 0,
            })
            .await
            .expect("invite carol")
            .into_inner();
        let accept = |code: String| pb::AcceptInvitationRequest {
            actor: "carol".into(),
            code,
            accepted_terms_version: String::new(),
        };
        assert_refused(
            inv.accept_invitation(accept(made.code.clone())).await,
            Code::FailedPrecondition,
            &["one_org_per_user"],
        );
        leave(&mut l, "carol", "acme").await.expect("carol leaves acme");
        inv.accept_invitation(accept(made.code))
            .await
            .expect("then joins globex");
    });
}

#[test]
fn limits_reload_with_the_policy_and_a_broken_file_keeps_the_last_good_one() {
    let daemon = Workdir::new().start();
    runtime().block_on(async {
        let target = daemon.work.unix_target();
        let mut c = clients(&target).await;
        let mut l = life(&target).await;
        let mut admin = AdminServiceClient::new(connect(&target).await.expect("connect"));
        // The shipped defaults.
        let limits = l
            .get_limits(pb::GetLimitsRequest {})
            .await
            .expect("GetLimits")
            .into_inner();
        assert_eq!(
            (limits.max_orgs_created_per_user, limits.max_admin_orgs_per_user),
            (100, 20)
        );
        let plans: Vec<&str> = limits.plans.iter().map(|p| p.plan_id.as_str()).collect();
        assert_eq!(
            plans,
            ["community", "enterprise", "essential", "free", "professional"]
        );

        let file = daemon.work.policies().join("limits.toml");
        std::fs::write(&file, "max_orgs_created_per_user = 1\n").expect("write");
        admin
            .reload_policy(pb::ReloadPolicyRequest {})
            .await
            .expect("reload good limits");
        users(&mut c, &["alice"]).await;
        create_org(&mut c, "alice", "one", "").await.expect("first org");
        assert_refused(
            create_org(&mut c, "alice", "two", "").await,
            Code::FailedPrecondition,
            &["max_orgs_created_per_user"],
        );

        // Broken: reported as `file:line: reason`, and the last good limits keep applying.
        std::fs::write(&file, "max_orgs_created_per_user = 1\nmax_orgs = \"many\"\n").expect("write");
        assert_refused(
            admin.reload_policy(pb::ReloadPolicyRequest {}).await,
            Code::FailedPrecondition,
            &["limits.toml:2", "max_orgs"],
        );
        let status = admin
            .get_policy_status(pb::GetPolicyStatusRequest {})
            .await
            .expect("status")
            .into_inner();
        assert!(
            status.last_reload_error.contains("limits.toml:2"),
            "{}",
            status.last_reload_error
        );
        assert_refused(
            create_org(&mut c, "alice", "two", "").await,
            Code::FailedPrecondition,
            &["max_orgs_created_per_user"],
        );

        std::fs::write(&file, "max_orgs_created_per_user = 5\n").expect("write");
        admin
            .reload_policy(pb::ReloadPolicyRequest {})
            .await
            .expect("reload fixed limits");
        create_org(&mut c, "alice", "two", "")
            .await
            .expect("allowed under the new limit");
    });
}

#[test]
fn without_limits_toml_the_embedded_defaults_apply() {
    let work = Workdir::new();
    std::fs::remove_file(work.policies().join("limits.toml")).expect("remove limits.toml");
    let daemon = work.start_with(&["--demo"]);
    runtime().block_on(async {
        let mut l = life(&daemon.work.tcp_target()).await;
        let limits = l
            .get_limits(pb::GetLimitsRequest {})
            .await
            .expect("GetLimits")
            .into_inner();
        assert_eq!(
            (
                limits.max_orgs_created_per_user,
                limits.max_admin_orgs_per_user,
                limits.plans.len()
            ),
            (100, 20, 5)
        );
        let mut c = clients(&daemon.work.tcp_target()).await;
        assert!(
            c.check("alice", "acme", "apps/web", "app:write", 0).await,
            "the demo still serves"
        );
    });
}

/// A broken `limits.toml` is a policy error everywhere: `policy validate` names it, and
/// the daemon refuses to start on it rather than run without limits.
#[test]
fn a_broken_limits_toml_is_reported_like_a_broken_policy_file() {
    let work = Workdir::new();
    std::fs::write(
        work.policies().join("limits.toml"),
        "one_org_per_user = true\n[plans.community]\nroles = [\"Admin\"]\n",
    )
    .expect("write limits.toml");
    let (status, stderr) = common::run_to_exit(
        std::process::Command::new(common::WARDEN)
            .args(["policy", "validate"])
            .arg(work.policies()),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("limits.toml") && stderr.contains("plans.community"),
        "{stderr}"
    );
    let (status, stderr) = common::run_to_exit(&mut work.serve_command());
    assert!(!status.success(), "serve must refuse a broken limits.toml");
    assert!(stderr.contains("limits.toml"), "{stderr}");
}

/// Saving `limits.toml` is enough: the policy watcher reloads it like the other files.
#[test]
fn saving_limits_toml_reloads_it_without_a_signal() {
    let daemon = Workdir::new().start();
    runtime().block_on(async {
        let mut l = life(&daemon.work.tcp_target()).await;
        let file = daemon.work.policies().join("limits.toml");
        let tmp = daemon.work.policies().join(".limits.toml.tmp");
        std::fs::write(&tmp, "max_admin_orgs_per_user = 3\n").expect("write");
        std::fs::rename(&tmp, &file).expect("rename");
        // Wait for the outcome, not for a duration.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let limits = l
                .get_limits(pb::GetLimitsRequest {})
                .await
                .expect("GetLimits")
                .into_inner();
            if limits.max_admin_orgs_per_user == 3 {
                assert!(limits.plans.is_empty(), "the new file has no plans");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "limits.toml was never reloaded"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    });
}
