//! The directory services of a running daemon, over the Unix socket and TCP: every
//! mutation's happy path, refusals that name the missing permission or the bad field and
//! change nothing, the last-admin rule, and read-your-writes through `Check`.

use crate::common;

use common::directory::{Clients, assert_refused, clients, org_owner, user_owner};
use common::{Workdir, runtime};
use tonic::Code;
use warden::api::pb;

/// Tracks the expected revision: each acknowledged write is exactly the next one.
struct Revisions(u64);

impl Revisions {
    #[track_caller]
    fn next(&mut self, got: u64) -> u64 {
        assert_eq!(got, self.0 + 1, "revisions must advance by one per write");
        self.0 = got;
        got
    }
}

#[test]
fn every_mutation_succeeds_over_unix_socket_and_tcp() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    for (target, s) in [(daemon.work.unix_target(), "u"), (daemon.work.tcp_target(), "t")] {
        rt.block_on(async {
            let mut c = clients(&target).await;
            let mut rev = Revisions(c.stats().await.revision);
            let (owner, mate) = (format!("owner-{s}"), format!("mate-{s}"));
            let (org, app, personal) = (format!("org-{s}"), format!("app-{s}"), format!("mine-{s}"));

            // Users manage their own profiles, over either transport.
            rev.next(c.upsert_user(&owner, &owner).await);
            rev.next(c.upsert_user(&mate, &mate).await);
            let me = c
                .user
                .get_user(pb::GetUserRequest {
                    min_revision: 0,
                    user_id: owner.clone(),
                    actor: owner.clone(),
                })
                .await
                .expect("GetUser")
                .into_inner();
            assert_eq!(me.email, format!("{owner}@example.com"));

            let created = c
                .org
                .create_org(pb::CreateOrgRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    name: "Org".into(),
                    public_metadata: r#"{"tier":"gold"}"#.into(),
                    ..Default::default()
                })
                .await
                .expect("CreateOrg")
                .into_inner();
            rev.next(created.revision);
            let o = created.org.expect("org");
            assert_eq!(
                (o.created_by.as_str(), o.member_count, o.plan.as_str()),
                (owner.as_str(), 1, "free")
            );
            assert_eq!(o.public_metadata, r#"{"tier":"gold"}"#);

            let updated = c
                .org
                .update_org(pb::UpdateOrgRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    name: Some("Renamed".into()),
                    ..Default::default()
                })
                .await
                .expect("UpdateOrg")
                .into_inner();
            rev.next(updated.revision);
            let got = c
                .org
                .get_org(pb::GetOrgRequest {
                    min_revision: 0,
                    org_id: org.clone(),
                    actor: owner.clone(),
                })
                .await
                .expect("GetOrg")
                .into_inner();
            assert_eq!(
                (got.name.as_str(), got.public_metadata.as_str()),
                ("Renamed", r#"{"tier":"gold"}"#)
            );

            let r = rev.next(
                c.add_member(&owner, &org, &mate, "org_user")
                    .await
                    .expect("AddMember"),
            );
            assert!(c.check(&mate, &org, "org", "org:read", r).await);
            let role = c
                .member
                .update_member_role(pb::UpdateMemberRoleRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    user_id: mate.clone(),
                    role: "org_contributor".into(),
                })
                .await
                .expect("UpdateMemberRole")
                .into_inner();
            rev.next(role.revision);
            assert_eq!(role.member.expect("member").role, "org_contributor");
            let listed = c
                .member
                .list_members(pb::ListMembersRequest {
                    order_by: String::new(),
                    org_id: org.clone(),
                    query: "MATE".into(),
                    actor: mate.clone(),
                    ..Default::default()
                })
                .await
                .expect("ListMembers")
                .into_inner();
            let ids: Vec<_> = listed
                .members
                .iter()
                .map(|m| (m.user_id.as_str(), m.role.as_str()))
                .collect();
            assert_eq!(ids, [(mate.as_str(), "org_contributor")]);

            let made = c
                .app
                .create_app(pb::CreateAppRequest {
                    actor: mate.clone(),
                    app_id: app.clone(),
                    owner: org_owner(&org),
                    name: "App".into(),
                    labels: vec!["pii".into()],
                })
                .await
                .expect("CreateApp")
                .into_inner();
            let r = rev.next(made.revision);
            assert!(c.check(&mate, &org, &format!("apps/{app}"), "app:write", r).await);

            let team = c
                .team
                .create_team(pb::CreateTeamRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    team_id: "core".into(),
                    name: "Core".into(),
                })
                .await
                .expect("CreateTeam")
                .into_inner();
            rev.next(team.revision);
            let renamed = c
                .team
                .rename_team(pb::RenameTeamRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    team_id: "core".into(),
                    name: "Core team".into(),
                })
                .await
                .expect("RenameTeam")
                .into_inner();
            rev.next(renamed.revision);
            assert_eq!(renamed.team.expect("team").name, "Core team");
            let added = c
                .team
                .add_team_member(pb::AddTeamMemberRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    team_id: "core".into(),
                    user_id: mate.clone(),
                })
                .await
                .expect("AddTeamMember");
            rev.next(added.into_inner().revision);
            let granted = c
                .team
                .grant_app(pb::GrantAppRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    team_id: "core".into(),
                    app_id: app.clone(),
                    role: String::new(),
                })
                .await
                .expect("GrantApp");
            rev.next(granted.into_inner().revision);
            let teams = c
                .team
                .list_teams(pb::ListTeamsRequest {
                    org_id: org.clone(),
                    actor: mate.clone(),
                    ..Default::default()
                })
                .await
                .expect("ListTeams")
                .into_inner()
                .teams;
            assert_eq!(teams.len(), 1);
            assert_eq!(teams[0].member_ids, [mate.as_str()]);
            assert_eq!(
                teams[0]
                    .app_grants
                    .iter()
                    .map(|g| g.app_id.as_str())
                    .collect::<Vec<_>>(),
                [app.as_str()]
            );

            // As a team contributor, the mate writes the app only through the team grant.
            let demoted = c
                .member
                .update_member_role(pb::UpdateMemberRoleRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    user_id: mate.clone(),
                    role: "team_contributor".into(),
                })
                .await
                .expect("UpdateMemberRole")
                .into_inner();
            let r = rev.next(demoted.revision);
            assert_eq!(demoted.member.expect("member").team_ids, ["core"]);
            assert!(c.check(&mate, &org, &format!("apps/{app}"), "app:write", r).await);
            let revoked = c
                .team
                .revoke_app(pb::RevokeAppRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    team_id: "core".into(),
                    app_id: app.clone(),
                })
                .await
                .expect("RevokeApp");
            let r = rev.next(revoked.into_inner().revision);
            assert!(!c.check(&mate, &org, &format!("apps/{app}"), "app:write", r).await);
            let removed = c
                .team
                .remove_team_member(pb::RemoveTeamMemberRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    team_id: "core".into(),
                    user_id: mate.clone(),
                })
                .await
                .expect("RemoveTeamMember");
            rev.next(removed.into_inner().revision);
            let deleted = c
                .team
                .delete_team(pb::DeleteTeamRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    team_id: "core".into(),
                })
                .await
                .expect("DeleteTeam");
            rev.next(deleted.into_inner().revision);

            // A personal app, moved into the org.
            let mine = c
                .app
                .create_app(pb::CreateAppRequest {
                    actor: owner.clone(),
                    app_id: personal.clone(),
                    owner: user_owner(&owner),
                    name: "Mine".into(),
                    labels: vec![],
                })
                .await
                .expect("CreateApp personal")
                .into_inner();
            rev.next(mine.revision);
            let moved = c
                .app
                .transfer_app(pb::TransferAppRequest {
                    actor: owner.clone(),
                    app_id: personal.clone(),
                    to_org_id: org.clone(),
                    new_app_id: String::new(),
                    new_name: "Moved".into(),
                })
                .await
                .expect("TransferApp")
                .into_inner();
            let r = rev.next(moved.revision);
            let moved = moved.app.expect("app");
            assert_eq!((moved.name.as_str(), moved.owner), ("Moved", org_owner(&org)));
            assert!(
                c.check(&owner, &org, &format!("apps/{personal}"), "app:delete", r)
                    .await
            );
            let fetched = c
                .app
                .get_app(pb::GetAppRequest {
                    min_revision: 0,
                    app_id: personal.clone(),
                    actor: owner.clone(),
                })
                .await
                .expect("GetApp")
                .into_inner();
            assert_eq!(fetched.owner, org_owner(&org));
            let apps = c
                .app
                .list_apps(pb::ListAppsRequest {
                    query: String::new(),
                    order_by: String::new(),
                    labels: vec![],
                    owner: org_owner(&org),
                    actor: owner.clone(),
                    ..Default::default()
                })
                .await
                .expect("ListApps")
                .into_inner()
                .apps;
            let mut ids: Vec<_> = apps.into_iter().map(|a| a.app_id).collect();
            ids.sort();
            let mut want = vec![app.clone(), personal.clone()];
            want.sort();
            assert_eq!(ids, want);

            for id in [&app, &personal] {
                let d = c
                    .app
                    .delete_app(pb::DeleteAppRequest {
                        actor: owner.clone(),
                        app_id: id.clone(),
                    })
                    .await
                    .expect("DeleteApp");
                rev.next(d.into_inner().revision);
            }
            let gone = c
                .member
                .remove_member(pb::RemoveMemberRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    user_id: mate.clone(),
                })
                .await
                .expect("RemoveMember");
            let r = rev.next(gone.into_inner().revision);
            assert!(!c.check(&mate, &org, "org", "org:read", r).await);

            let orgs = c
                .org
                .list_orgs(pb::ListOrgsRequest {
                    order_by: String::new(),
                    user_id: owner.clone(),
                    actor: owner.clone(),
                    ..Default::default()
                })
                .await
                .expect("ListOrgs")
                .into_inner()
                .orgs;
            assert_eq!(
                orgs.iter().map(|o| o.org_id.as_str()).collect::<Vec<_>>(),
                [org.as_str()]
            );

            let d = c
                .org
                .delete_org(pb::DeleteOrgRequest {
                    actor: owner.clone(),
                    org_id: org.clone(),
                    force: false,
                })
                .await
                .expect("DeleteOrg");
            let r = rev.next(d.into_inner().revision);
            assert!(!c.check(&owner, &org, "org", "org:read", r).await);
            assert_eq!(c.stats().await.revision, rev.0);
        });
    }
}

/// Stats before and after a refused call must be identical: nothing was written.
async fn unchanged<T: std::fmt::Debug>(
    c: &mut Clients,
    call: impl AsyncFnOnce(&mut Clients) -> Result<T, tonic::Status>,
    code: Code,
    words: &[&str],
) {
    let before = c.stats().await;
    let result = call(c).await;
    assert_refused(result, code, words);
    assert_eq!(c.stats().await, before, "a refused call changed the directory");
}

#[test]
fn refused_mutations_name_the_reason_and_change_nothing() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    for target in [daemon.work.unix_target(), daemon.work.tcp_target()] {
        rt.block_on(async {
            let mut c = clients(&target).await;
            let denied = Code::PermissionDenied;
            // An org_user may not manage members.
            unchanged(
                &mut c,
                async |c| c.add_member("dave", "acme", "erin", "org_user").await,
                denied,
                &["dave", "member:manage", "acme"],
            )
            .await;
            // An admin of globex has no rights in acme, and the reverse.
            unchanged(
                &mut c,
                async |c| {
                    c.team
                        .create_team(pb::CreateTeamRequest {
                            actor: "erin".into(),
                            org_id: "acme".into(),
                            team_id: "spies".into(),
                            name: "Spies".into(),
                        })
                        .await
                },
                denied,
                &["erin", "team:manage", "acme"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| c.add_member("alice", "globex", "bob", "admin").await,
                denied,
                &["member:manage", "globex"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| {
                    c.app
                        .delete_app(pb::DeleteAppRequest {
                            actor: "bob".into(),
                            app_id: "ledger".into(),
                        })
                        .await
                },
                denied,
                &["app:delete", "globex"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| {
                    c.app
                        .transfer_app(pb::TransferAppRequest {
                            actor: "bob".into(),
                            app_id: "alice-sandbox".into(),
                            to_org_id: "acme".into(),
                            ..Default::default()
                        })
                        .await
                },
                denied,
                &["ownership", "alice-sandbox"],
            )
            .await;

            // Malformed requests name the proto field.
            let invalid = Code::InvalidArgument;
            unchanged(
                &mut c,
                async |c| c.add_member("alice", "acme", "bad user", "org_user").await,
                invalid,
                &["user_id:"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| c.add_member("alice", "acme", "role:admin", "org_user").await,
                invalid,
                &["user_id:", "role:"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| c.add_member("alice", "acme", "erin", "overlord").await,
                invalid,
                &["role:", "overlord"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| c.add_member("", "acme", "erin", "org_user").await,
                invalid,
                &["actor:"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| {
                    c.org
                        .create_org(pb::CreateOrgRequest {
                            actor: "alice".into(),
                            org_id: "Bad Org".into(),
                            name: "X".into(),
                            ..Default::default()
                        })
                        .await
                },
                invalid,
                &["org_id:"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| {
                    c.org
                        .update_org(pb::UpdateOrgRequest {
                            actor: "alice".into(),
                            org_id: "acme".into(),
                            public_metadata: Some("{not json".into()),
                            ..Default::default()
                        })
                        .await
                },
                invalid,
                &["public_metadata:"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| {
                    c.app
                        .create_app(pb::CreateAppRequest {
                            actor: "alice".into(),
                            app_id: "ownerless".into(),
                            name: "X".into(),
                            ..Default::default()
                        })
                        .await
                },
                invalid,
                &["owner:"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| {
                    c.team
                        .grant_app(pb::GrantAppRequest {
                            actor: "alice".into(),
                            org_id: "acme".into(),
                            team_id: "frontend".into(),
                            app_id: "api".into(),
                            role: "admin".into(),
                        })
                        .await
                },
                invalid,
                &["role:"],
            )
            .await;

            // State refusals.
            unchanged(
                &mut c,
                async |c| c.add_member("alice", "acme", "bob", "org_user").await,
                Code::AlreadyExists,
                &["bob"],
            )
            .await;
            unchanged(
                &mut c,
                async |c| c.add_member("alice", "acme", "nobody", "org_user").await,
                Code::NotFound,
                &["nobody"],
            )
            .await;
        });
    }
}

#[test]
fn reads_are_authorized() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let mut unix = clients(&daemon.work.unix_target()).await;
        let mut tcp = clients(&daemon.work.tcp_target()).await;
        for c in [&mut unix, &mut tcp] {
            let org = c
                .org
                .get_org(pb::GetOrgRequest {
                    min_revision: 0,
                    org_id: "acme".into(),
                    actor: "dave".into(),
                })
                .await
                .expect("a member reads its org")
                .into_inner();
            assert_eq!((org.name.as_str(), org.member_count), ("Acme Corp", 4));
            assert_refused(
                c.org
                    .get_org(pb::GetOrgRequest {
                        min_revision: 0,
                        org_id: "acme".into(),
                        actor: "erin".into(),
                    })
                    .await,
                Code::PermissionDenied,
                &["org:read", "acme"],
            );
            assert_refused(
                c.member
                    .list_members(pb::ListMembersRequest {
                        order_by: String::new(),
                        org_id: "globex".into(),
                        actor: "alice".into(),
                        ..Default::default()
                    })
                    .await,
                Code::PermissionDenied,
                &["member:read", "globex"],
            );
            assert_refused(
                c.team
                    .list_teams(pb::ListTeamsRequest {
                        org_id: "acme".into(),
                        actor: "erin".into(),
                        ..Default::default()
                    })
                    .await,
                Code::PermissionDenied,
                &["team:read", "acme"],
            );
            // A team contributor lists only the apps its teams were granted.
            let apps = c
                .app
                .list_apps(pb::ListAppsRequest {
                    query: String::new(),
                    order_by: String::new(),
                    labels: vec![],
                    owner: org_owner("acme"),
                    actor: "carol".into(),
                    ..Default::default()
                })
                .await
                .expect("ListApps")
                .into_inner()
                .apps;
            assert_eq!(
                apps.iter().map(|a| a.app_id.as_str()).collect::<Vec<_>>(),
                ["web"]
            );
            assert_refused(
                c.app
                    .get_app(pb::GetAppRequest {
                        min_revision: 0,
                        app_id: "alice-sandbox".into(),
                        actor: "bob".into(),
                    })
                    .await,
                Code::PermissionDenied,
                &["alice-sandbox"],
            );
        }

        // Profiles and the all-orgs list: the user itself, or the trusted Unix socket.
        let other = pb::GetUserRequest {
            min_revision: 0,
            user_id: "alice".into(),
            actor: "bob".into(),
        };
        assert_refused(
            tcp.user.get_user(other.clone()).await,
            Code::PermissionDenied,
            &["bob", "alice"],
        );
        assert_eq!(
            unix.user
                .get_user(other)
                .await
                .expect("unix GetUser")
                .into_inner()
                .user_id,
            "alice"
        );
        let takeover = pb::UpsertUserRequest {
            actor: "bob".into(),
            user_id: "alice".into(),
            email: "bob@evil.example".into(),
            ..Default::default()
        };
        let before = tcp.stats().await;
        assert_refused(
            tcp.user.upsert_user(takeover).await,
            Code::PermissionDenied,
            &["alice"],
        );
        assert_eq!(tcp.stats().await, before);
        let all = pb::ListOrgsRequest {
            order_by: String::new(),
            actor: "bob".into(),
            ..Default::default()
        };
        assert_refused(
            tcp.org.list_orgs(all.clone()).await,
            Code::PermissionDenied,
            &["Unix socket"],
        );
        let orgs = unix
            .org
            .list_orgs(all)
            .await
            .expect("unix ListOrgs")
            .into_inner()
            .orgs;
        assert_eq!(
            orgs.iter().map(|o| o.org_id.as_str()).collect::<Vec<_>>(),
            ["acme", "globex"]
        );
    });
}

#[test]
fn the_last_admin_cannot_leave_or_be_demoted() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let mut c = clients(&daemon.work.tcp_target()).await;
        let remove = |user: &str| pb::RemoveMemberRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            user_id: user.into(),
        };
        let demote = pb::UpdateMemberRoleRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            user_id: "alice".into(),
            role: "org_user".into(),
        };
        let before = c.stats().await;
        assert_refused(
            c.member.remove_member(remove("alice")).await,
            Code::FailedPrecondition,
            &["admin"],
        );
        assert_refused(
            c.member.update_member_role(demote.clone()).await,
            Code::FailedPrecondition,
            &["admin"],
        );
        assert_eq!(c.stats().await, before);
        assert!(
            c.check("alice", "acme", "org", "member:manage", before.revision)
                .await
        );

        // With a second admin, the first may step down.
        let promote = pb::UpdateMemberRoleRequest {
            user_id: "bob".into(),
            role: "admin".into(),
            ..demote.clone()
        };
        c.member.update_member_role(promote).await.expect("promote bob");
        let r = c
            .member
            .update_member_role(demote)
            .await
            .expect("demote alice")
            .into_inner()
            .revision;
        assert!(!c.check("alice", "acme", "org", "member:manage", r).await);
        assert!(c.check("bob", "acme", "org", "member:manage", r).await);
        let bob_alone = pb::RemoveMemberRequest {
            actor: "bob".into(),
            ..remove("bob")
        };
        assert_refused(
            c.member.remove_member(bob_alone).await,
            Code::FailedPrecondition,
            &["admin"],
        );
    });
}

#[test]
fn a_write_is_visible_to_check_at_its_revision() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let mut writer = clients(&daemon.work.unix_target()).await;
        let mut reader = clients(&daemon.work.tcp_target()).await;
        for i in 0..20 {
            let user = format!("user{i}");
            writer.upsert_user(&user, &user).await;
            let r = writer
                .add_member("alice", "acme", &user, "org_contributor")
                .await
                .expect("AddMember");
            assert!(
                reader.check(&user, "acme", "apps/web", "app:write", r).await,
                "{user} at {r}"
            );
            let r = writer
                .member
                .remove_member(pb::RemoveMemberRequest {
                    actor: "alice".into(),
                    org_id: "acme".into(),
                    user_id: user.clone(),
                })
                .await
                .expect("RemoveMember")
                .into_inner()
                .revision;
            assert!(
                !reader.check(&user, "acme", "apps/web", "app:write", r).await,
                "{user} at {r}"
            );
        }
    });
}
