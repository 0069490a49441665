//! Privilege escalation attempts against the real daemon (demo directory, callers on
//! TCP so no file-permission trust applies), for what the directory has today:
//! - a team contributor cannot give itself a role, join a team, reach an app not granted
//!   to its teams, or add members (the closest thing to inviting);
//! - an org contributor cannot change roles, billing or the org's settings, or delete it;
//! - a member of org A can do nothing in org B, including naming B's app in A's name;
//! - the last admin cannot be removed, demoted, or leave.
//!
//! Every refused call must be PERMISSION_DENIED (or FAILED_PRECONDITION for the last
//! admin), name the actor or the reason, and leave the revision where it was.

use crate::common;

use common::Workdir;
use common::directory::{Clients, clients, org_owner};
use std::future::Future;
use std::pin::Pin;
use tonic::{Code, Status};
use warden::api::pb;

type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

macro_rules! call {
    ($client:expr, $method:ident, $req:expr) => {{
        let mut client = $client.clone();
        let req = $req;
        Box::pin(async move { client.$method(req).await.map(|_| ()) }) as Call
    }};
}

fn update_member_role(c: &Clients, actor: &str, org: &str, user: &str, role: &str) -> Call {
    call!(
        c.member,
        update_member_role,
        pb::UpdateMemberRoleRequest {
            actor: actor.into(),
            org_id: org.into(),
            user_id: user.into(),
            role: role.into(),
        }
    )
}

fn add_member(c: &Clients, actor: &str, org: &str, user: &str, role: &str) -> Call {
    call!(
        c.member,
        add_member,
        pb::AddMemberRequest {
            actor: actor.into(),
            org_id: org.into(),
            user_id: user.into(),
            role: role.into(),
        }
    )
}

fn remove_member(c: &Clients, actor: &str, org: &str, user: &str) -> Call {
    call!(
        c.member,
        remove_member,
        pb::RemoveMemberRequest {
            actor: actor.into(),
            org_id: org.into(),
            user_id: user.into(),
        }
    )
}

fn add_team_member(c: &Clients, actor: &str, org: &str, team: &str, user: &str) -> Call {
    call!(
        c.team,
        add_team_member,
        pb::AddTeamMemberRequest {
            actor: actor.into(),
            org_id: org.into(),
            team_id: team.into(),
            user_id: user.into(),
        }
    )
}

fn grant_app(c: &Clients, actor: &str, org: &str, team: &str, app: &str) -> Call {
    call!(
        c.team,
        grant_app,
        pb::GrantAppRequest {
            actor: actor.into(),
            org_id: org.into(),
            team_id: team.into(),
            app_id: app.into(),
            role: String::new(),
        }
    )
}

fn update_org(c: &Clients, actor: &str, org: &str, change: pb::UpdateOrgRequest) -> Call {
    call!(
        c.org,
        update_org,
        pb::UpdateOrgRequest {
            actor: actor.into(),
            org_id: org.into(),
            ..change
        }
    )
}

/// The attempts that must be refused with PERMISSION_DENIED naming the actor.
fn denied(c: &Clients) -> Vec<(&'static str, Call)> {
    vec![
        // -------------------------------------------------- team contributor (carol)
        (
            "carol makes herself admin",
            update_member_role(c, "carol", "acme", "carol", "admin"),
        ),
        (
            "carol makes herself org contributor",
            update_member_role(c, "carol", "acme", "carol", "org_contributor"),
        ),
        (
            "carol adds herself to a team",
            add_team_member(c, "carol", "acme", "backend", "carol"),
        ),
        (
            "carol adds dave to her own team",
            add_team_member(c, "carol", "acme", "frontend", "dave"),
        ),
        (
            "carol grants her team app api",
            grant_app(c, "carol", "acme", "frontend", "api"),
        ),
        (
            "carol adds a member (invites)",
            add_member(c, "carol", "acme", "erin", "org_user"),
        ),
        ("carol removes dave", remove_member(c, "carol", "acme", "dave")),
        (
            "carol creates a team",
            call!(
                c.team,
                create_team,
                pb::CreateTeamRequest {
                    actor: "carol".into(),
                    org_id: "acme".into(),
                    team_id: "mine".into(),
                    name: "Mine".into(),
                }
            ),
        ),
        (
            "carol deletes app api",
            call!(
                c.app,
                delete_app,
                pb::DeleteAppRequest {
                    actor: "carol".into(),
                    app_id: "api".into()
                }
            ),
        ),
        // -------------------------------------------------- org contributor (bob)
        (
            "bob promotes dave",
            update_member_role(c, "bob", "acme", "dave", "org_contributor"),
        ),
        (
            "bob makes himself admin",
            update_member_role(c, "bob", "acme", "bob", "admin"),
        ),
        (
            "bob demotes alice",
            update_member_role(c, "bob", "acme", "alice", "org_user"),
        ),
        (
            "bob adds a member (invites)",
            add_member(c, "bob", "acme", "erin", "admin"),
        ),
        ("bob removes carol", remove_member(c, "bob", "acme", "carol")),
        (
            "bob changes billing email",
            update_org(
                c,
                "bob",
                "acme",
                pb::UpdateOrgRequest {
                    billing_email: Some("bob@evil.example".into()),
                    ..Default::default()
                },
            ),
        ),
        (
            "bob changes the plan",
            update_org(
                c,
                "bob",
                "acme",
                pb::UpdateOrgRequest {
                    plan: Some("enterprise".into()),
                    ..Default::default()
                },
            ),
        ),
        (
            "bob changes the org settings",
            update_org(
                c,
                "bob",
                "acme",
                pb::UpdateOrgRequest {
                    settings: Some(pb::OrgSettings {
                        max_memberships: Some(1_000_000),
                        deletable: Some(true),
                        terms_version: Some(String::new()),
                    }),
                    ..Default::default()
                },
            ),
        ),
        (
            "bob renames the org",
            update_org(
                c,
                "bob",
                "acme",
                pb::UpdateOrgRequest {
                    name: Some("Bob Corp".into()),
                    ..Default::default()
                },
            ),
        ),
        (
            "bob deletes the org",
            call!(
                c.org,
                delete_org,
                pb::DeleteOrgRequest {
                    actor: "bob".into(),
                    org_id: "acme".into(),
                    force: false,
                }
            ),
        ),
        // -------------------------------------------------- org user (dave)
        (
            "dave creates an app",
            call!(
                c.app,
                create_app,
                pb::CreateAppRequest {
                    actor: "dave".into(),
                    app_id: "daves".into(),
                    owner: org_owner("acme"),
                    name: "D".into(),
                    labels: vec![],
                }
            ),
        ),
        (
            "dave makes himself admin",
            update_member_role(c, "dave", "acme", "dave", "admin"),
        ),
        // -------------------------------------------------- acme's admin (alice) in globex
        (
            "alice reads globex",
            call!(
                c.org,
                get_org,
                pb::GetOrgRequest {
                    min_revision: 0,
                    actor: "alice".into(),
                    org_id: "globex".into(),
                }
            ),
        ),
        (
            "alice lists globex members",
            call!(
                c.member,
                list_members,
                pb::ListMembersRequest {
                    order_by: String::new(),
                    actor: "alice".into(),
                    org_id: "globex".into(),
                    ..Default::default()
                }
            ),
        ),
        (
            "alice joins globex",
            add_member(c, "alice", "globex", "alice", "admin"),
        ),
        (
            "alice adds bob to globex",
            add_member(c, "alice", "globex", "bob", "org_user"),
        ),
        (
            "alice demotes globex's admin",
            update_member_role(c, "alice", "globex", "erin", "org_user"),
        ),
        (
            "alice removes globex's admin",
            remove_member(c, "alice", "globex", "erin"),
        ),
        (
            "alice creates a team in globex",
            call!(
                c.team,
                create_team,
                pb::CreateTeamRequest {
                    actor: "alice".into(),
                    org_id: "globex".into(),
                    team_id: "moles".into(),
                    name: "Moles".into(),
                }
            ),
        ),
        (
            "alice creates an app in globex",
            call!(
                c.app,
                create_app,
                pb::CreateAppRequest {
                    actor: "alice".into(),
                    app_id: "mole".into(),
                    owner: org_owner("globex"),
                    name: "M".into(),
                    labels: vec![],
                }
            ),
        ),
        (
            "alice deletes globex's app",
            call!(
                c.app,
                delete_app,
                pb::DeleteAppRequest {
                    actor: "alice".into(),
                    app_id: "ledger".into()
                }
            ),
        ),
        (
            "alice reads globex's app",
            call!(
                c.app,
                get_app,
                pb::GetAppRequest {
                    min_revision: 0,
                    actor: "alice".into(),
                    app_id: "ledger".into()
                }
            ),
        ),
        (
            "alice changes globex's billing",
            update_org(
                c,
                "alice",
                "globex",
                pb::UpdateOrgRequest {
                    billing_email: Some("alice@acme.example".into()),
                    ..Default::default()
                },
            ),
        ),
        (
            "alice deletes globex",
            call!(
                c.org,
                delete_org,
                pb::DeleteOrgRequest {
                    actor: "alice".into(),
                    org_id: "globex".into(),
                    force: true,
                }
            ),
        ),
        (
            "alice moves her sandbox into globex",
            call!(
                c.app,
                transfer_app,
                pb::TransferAppRequest {
                    actor: "alice".into(),
                    app_id: "alice-sandbox".into(),
                    to_org_id: "globex".into(),
                    ..Default::default()
                }
            ),
        ),
        (
            "alice lists erin's orgs",
            call!(
                c.org,
                list_orgs,
                pb::ListOrgsRequest {
                    order_by: String::new(),
                    actor: "alice".into(),
                    user_id: "erin".into(),
                    ..Default::default()
                }
            ),
        ),
        (
            "alice rewrites erin's profile",
            call!(
                c.user,
                upsert_user,
                pb::UpsertUserRequest {
                    actor: "alice".into(),
                    user_id: "erin".into(),
                    email: "erin@evil.example".into(),
                    ..Default::default()
                }
            ),
        ),
        (
            "erin grants her team acme's app",
            grant_app(c, "erin", "acme", "frontend", "web"),
        ),
    ]
}

/// Checks that must deny: (subject, org, resource, action).
const DENIED_CHECKS: &[(&str, &str, &str, &str)] = &[
    // A team contributor reaches only apps granted to its teams.
    ("carol", "acme", "apps/api", "app:read"),
    ("carol", "acme", "apps/api/models/m1", "app:write"),
    ("carol", "acme", "org", "member:manage"),
    ("carol", "acme", "org", "member:invite"),
    // An org contributor holds no admin actions.
    ("bob", "acme", "org", "member:manage"),
    ("bob", "acme", "org", "billing:manage"),
    ("bob", "acme", "org", "security:manage"),
    ("bob", "acme", "org", "org:update"),
    ("bob", "acme", "org", "org:delete"),
    // Org B is out of reach of org A's admin, by B's name and by A's.
    ("alice", "globex", "org", "org:read"),
    ("alice", "globex", "apps/ledger", "app:read"),
    ("alice", "acme", "apps/ledger", "app:read"),
    ("alice", "acme", "apps/ledger", "app:write"),
    ("alice", "acme", "apps/ledger/models/m1", "app:write"),
    ("bob", "acme", "apps/ledger", "app:write"),
    ("erin", "acme", "apps/web", "app:read"),
    ("erin", "globex", "apps/web", "app:read"),
    // Another user's personal app, in the name of one's own org.
    ("alice", "acme", "apps/alice-sandbox", "app:write"),
    ("erin", "globex", "apps/alice-sandbox", "app:read"),
];

/// Checks that must allow, so the denials above are not a daemon that denies everything.
const ALLOWED_CHECKS: &[(&str, &str, &str, &str)] = &[
    ("carol", "acme", "apps/web", "app:write"),
    ("bob", "acme", "apps/api", "app:write"),
    ("alice", "acme", "org", "billing:manage"),
    ("alice", "acme", "apps/web", "app:delete"),
    ("erin", "globex", "apps/ledger", "app:write"),
];

#[test]
fn no_role_reaches_past_itself() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = common::runtime();
    let mut c = rt.block_on(clients(&daemon.work.tcp_target()));
    // A team without carol, for her to try to join.
    rt.block_on(async {
        c.team
            .create_team(pb::CreateTeamRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "backend".into(),
                name: "Backend".into(),
            })
            .await
            .expect("CreateTeam backend");
    });
    let start = rt.block_on(c.stats()).revision;
    let mut wrong = Vec::new();

    let attempts = denied(&c);
    let tried = attempts.len();
    for (name, call) in attempts {
        match rt.block_on(call) {
            Err(s) if s.code() == Code::PermissionDenied && s.message().contains("actor `") => {}
            other => wrong.push(format!(
                "{name}: expected PERMISSION_DENIED naming the actor, got {other:?}"
            )),
        }
        if rt.block_on(c.stats()).revision != start {
            wrong.push(format!("{name}: the revision moved"));
        }
    }
    let mut checks = 0;
    for (want, list) in [(false, DENIED_CHECKS), (true, ALLOWED_CHECKS)] {
        for (sub, org, res, act) in list {
            checks += 1;
            if rt.block_on(c.check(sub, org, res, act, 0)) != want {
                wrong.push(format!("check {sub} {org} {res} {act}: expected {want}"));
            }
        }
    }
    // Lookups agree: alice's apps in acme are acme's, none of globex's.
    let apps = rt.block_on(async {
        c.authz
            .lookup_resources(pb::LookupResourcesRequest {
                subject: "alice".into(),
                org: "acme".into(),
                action: "app:write".into(),
                ..Default::default()
            })
            .await
            .expect("LookupResources")
            .into_inner()
            .resources
    });
    if apps.iter().any(|a| a.contains("ledger") || a.contains("sandbox")) {
        wrong.push(format!(
            "alice's writable apps in acme include foreign ones: {apps:?}"
        ));
    }
    let subjects = rt.block_on(async {
        c.authz
            .lookup_subjects(pb::LookupSubjectsRequest {
                org: "acme".into(),
                resource: "apps/ledger".into(),
                action: "app:read".into(),
                ..Default::default()
            })
            .await
            .expect("LookupSubjects")
            .into_inner()
            .subjects
    });
    if !subjects.is_empty() {
        wrong.push(format!("acme members may read globex's ledger: {subjects:?}"));
    }

    // The last admin stays: not removed, not demoted, cannot leave.
    let last_admin: Vec<(&str, Call)> = vec![
        ("alice leaves acme", remove_member(&c, "alice", "acme", "alice")),
        (
            "alice demotes herself",
            update_member_role(&c, "alice", "acme", "alice", "org_contributor"),
        ),
        ("erin leaves globex", remove_member(&c, "erin", "globex", "erin")),
        (
            "erin demotes herself",
            update_member_role(&c, "erin", "globex", "erin", "org_user"),
        ),
    ];
    let tried = tried + last_admin.len();
    for (name, call) in last_admin {
        match rt.block_on(call) {
            Err(s) if s.code() == Code::FailedPrecondition && s.message().contains("admin") => {}
            other => wrong.push(format!(
                "{name}: expected FAILED_PRECONDITION (last admin), got {other:?}"
            )),
        }
        if rt.block_on(c.stats()).revision != start {
            wrong.push(format!("{name}: the revision moved"));
        }
    }
    // With a second admin, the first may go: the rule is about the last one.
    rt.block_on(async {
        let r = add_member(&c, "alice", "acme", "erin", "admin").await;
        assert!(r.is_ok(), "alice adds erin as a second admin: {r:?}");
        let r = remove_member(&c, "alice", "acme", "alice").await;
        assert!(r.is_ok(), "alice may leave once erin is admin too: {r:?}");
        let r = remove_member(&c, "erin", "acme", "erin").await;
        assert!(
            matches!(&r, Err(s) if s.code() == Code::FailedPrecondition),
            "erin is now the last admin: {r:?}"
        );
    });

    println!("{tried} escalation attempts refused, {checks} checks as expected");
    assert!(
        wrong.is_empty(),
        "{} problems:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
