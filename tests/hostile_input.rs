//! Hostile input, RPC by RPC, against the real daemon seeded with the demo directory:
//! empty, oversized (1 KiB + 1 and 1 MiB) and odd-charset ids, unknown orgs, users,
//! teams and apps, duplicate creates and calls out of order. Each case must get its
//! documented status code with a message naming the field or the thing, and must leave
//! the directory exactly as it was (same revision, same export); the daemon must keep
//! serving throughout.

use crate::common;

use common::Workdir;
use common::directory::{Clients, clients, org_owner};
use std::future::Future;
use std::pin::Pin;
use tonic::{Code, Status};
use warden::api::pb;

type Call = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// One hostile call and what it must get: a code and words its message must contain
/// (`Code::Ok` for calls that must succeed without writing, e.g. a check that denies).
struct Case {
    name: String,
    call: Call,
    code: Code,
    words: Vec<String>,
}

fn case(name: impl Into<String>, call: Call, code: Code, words: &[&str]) -> Case {
    Case {
        name: name.into(),
        call,
        code,
        words: words.iter().map(|w| w.to_string()).collect(),
    }
}

macro_rules! call {
    ($client:expr, $method:ident, $req:expr) => {{
        let mut client = $client.clone();
        let req = $req;
        Box::pin(async move { client.$method(req).await.map(|_| ()) }) as Call
    }};
}

/// Ids that no id grammar accepts, with a label.
fn odd_ids() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("1 KiB + 1", "a".repeat(1025)),
        ("1 MiB", "a".repeat(1 << 20)),
        ("slash", "a/b".into()),
        ("dot-dot", "../etc".into()),
        ("space", "a b".into()),
        ("NUL", "a\0b".into()),
        ("newline", "a\nb".into()),
        ("non-ASCII", "ünïcode".into()),
        ("emoji", "🦀".into()),
    ]
}

/// Org/team/app ids additionally refuse upper case and a leading punctuation mark.
fn odd_slugs() -> Vec<(&'static str, String)> {
    let mut v = odd_ids();
    v.push(("upper case", "Acme2".into()));
    v.push(("leading dash", "-x".into()));
    v.push(("65 bytes", "a".repeat(65)));
    v
}

fn cases(c: &Clients) -> Vec<Case> {
    use Code::*;
    let mut out = Vec::new();
    let a = || "alice".to_string();
    let meg = "x".repeat(1 << 20);

    // ---------------------------------------------------------------- users
    for (what, id) in odd_ids()
        .into_iter()
        .chain([("reserved prefix", "role:admin".to_string())])
    {
        out.push(case(
            format!("UpsertUser user_id {what}"),
            call!(
                c.user,
                upsert_user,
                pb::UpsertUserRequest {
                    actor: id.clone(),
                    user_id: id.clone(),
                    email: "x@example.com".into(),
                    ..Default::default()
                }
            ),
            InvalidArgument,
            &[],
        ));
        out.push(case(
            format!("GetUser user_id {what}"),
            call!(
                c.user,
                get_user,
                pb::GetUserRequest {
                    min_revision: 0,
                    user_id: id.clone(),
                    actor: id.clone()
                }
            ),
            InvalidArgument,
            &[],
        ));
    }
    out.push(case(
        "UpsertUser 1 MiB email",
        call!(
            c.user,
            upsert_user,
            pb::UpsertUserRequest {
                actor: "zed".into(),
                user_id: "zed".into(),
                email: meg.clone(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["email"],
    ));
    out.push(case(
        "UpsertUser 1 MiB name",
        call!(
            c.user,
            upsert_user,
            pb::UpsertUserRequest {
                actor: "zed".into(),
                user_id: "zed".into(),
                email: "zed@example.com".into(),
                name: meg.clone(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["name"],
    ));
    out.push(case(
        "UpsertUser for someone else",
        call!(
            c.user,
            upsert_user,
            pb::UpsertUserRequest {
                actor: "dave".into(),
                user_id: "alice".into(),
                email: "evil@example.com".into(),
                ..Default::default()
            }
        ),
        PermissionDenied,
        &[],
    ));
    out.push(case(
        "GetUser unknown",
        call!(
            c.user,
            get_user,
            pb::GetUserRequest {
                min_revision: 0,
                user_id: "nobody".into(),
                actor: "nobody".into()
            }
        ),
        NotFound,
        &["nobody"],
    ));

    // ---------------------------------------------------------------- orgs
    for (what, id) in odd_slugs() {
        out.push(case(
            format!("CreateOrg org_id {what}"),
            call!(
                c.org,
                create_org,
                pb::CreateOrgRequest {
                    actor: a(),
                    org_id: id.clone(),
                    name: "X".into(),
                    ..Default::default()
                }
            ),
            InvalidArgument,
            &["org_id"],
        ));
        out.push(case(
            format!("GetOrg org_id {what}"),
            call!(
                c.org,
                get_org,
                pb::GetOrgRequest {
                    min_revision: 0,
                    org_id: id.clone(),
                    actor: a()
                }
            ),
            InvalidArgument,
            &["org_id"],
        ));
        out.push(case(
            format!("DeleteOrg org_id {what}"),
            call!(
                c.org,
                delete_org,
                pb::DeleteOrgRequest {
                    org_id: id.clone(),
                    actor: a(),
                    force: false,
                }
            ),
            InvalidArgument,
            &["org_id"],
        ));
    }
    out.push(case(
        "CreateOrg duplicate",
        call!(
            c.org,
            create_org,
            pb::CreateOrgRequest {
                actor: a(),
                org_id: "acme".into(),
                name: "Again".into(),
                ..Default::default()
            }
        ),
        AlreadyExists,
        &["acme"],
    ));
    out.push(case(
        "CreateOrg by an unknown user",
        call!(
            c.org,
            create_org,
            pb::CreateOrgRequest {
                actor: "ghost".into(),
                org_id: "ghostco".into(),
                name: "Ghost".into(),
                ..Default::default()
            }
        ),
        NotFound,
        &["ghost"],
    ));
    for (field, req) in [
        (
            "name",
            pb::CreateOrgRequest {
                name: meg.clone(),
                ..Default::default()
            },
        ),
        (
            "billing_email",
            pb::CreateOrgRequest {
                billing_email: meg.clone(),
                ..Default::default()
            },
        ),
        (
            "logo_url",
            pb::CreateOrgRequest {
                logo_url: meg.clone(),
                ..Default::default()
            },
        ),
        (
            "public_metadata",
            pb::CreateOrgRequest {
                public_metadata: meg.clone(),
                ..Default::default()
            },
        ),
        (
            "private_metadata",
            pb::CreateOrgRequest {
                private_metadata: "{not json".into(),
                ..Default::default()
            },
        ),
    ] {
        let req = pb::CreateOrgRequest {
            actor: a(),
            org_id: "newco".into(),
            name: if req.name.is_empty() {
                "New".into()
            } else {
                req.name.clone()
            },
            ..req
        };
        out.push(case(
            format!("CreateOrg bad {field}"),
            call!(c.org, create_org, req),
            InvalidArgument,
            &[field],
        ));
    }
    out.push(case(
        "GetOrg unknown (no role there: denied, existence not revealed)",
        call!(
            c.org,
            get_org,
            pb::GetOrgRequest {
                min_revision: 0,
                org_id: "nope".into(),
                actor: a()
            }
        ),
        PermissionDenied,
        &["nope"],
    ));
    out.push(case(
        "UpdateOrg unknown (no role there: denied, existence not revealed)",
        call!(
            c.org,
            update_org,
            pb::UpdateOrgRequest {
                actor: a(),
                org_id: "nope".into(),
                name: Some("N".into()),
                ..Default::default()
            }
        ),
        PermissionDenied,
        &["nope"],
    ));
    out.push(case(
        "UpdateOrg 1 MiB name",
        call!(
            c.org,
            update_org,
            pb::UpdateOrgRequest {
                actor: a(),
                org_id: "acme".into(),
                name: Some(meg.clone()),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["name"],
    ));
    out.push(case(
        "DeleteOrg unknown (no role there: denied, existence not revealed)",
        call!(
            c.org,
            delete_org,
            pb::DeleteOrgRequest {
                org_id: "nope".into(),
                actor: a(),
                force: false,
            }
        ),
        PermissionDenied,
        &["nope"],
    ));
    out.push(case(
        "ListOrgs 1 MiB query",
        call!(
            c.org,
            list_orgs,
            pb::ListOrgsRequest {
                order_by: String::new(),
                query: meg.clone(),
                user_id: a(),
                actor: a(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["query"],
    ));
    out.push(case(
        "ListOrgs garbage page_token",
        call!(
            c.org,
            list_orgs,
            pb::ListOrgsRequest {
                order_by: String::new(),
                page_token: "\u{1}\u{2}garbage".into(),
                user_id: a(),
                actor: a(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["page_token"],
    ));

    // ---------------------------------------------------------------- members
    for (what, id) in odd_ids() {
        out.push(case(
            format!("AddMember user_id {what}"),
            call!(
                c.member,
                add_member,
                pb::AddMemberRequest {
                    actor: a(),
                    org_id: "acme".into(),
                    user_id: id.clone(),
                    role: "org_user".into(),
                }
            ),
            InvalidArgument,
            &["user_id"],
        ));
        out.push(case(
            format!("RemoveMember user_id {what}"),
            call!(
                c.member,
                remove_member,
                pb::RemoveMemberRequest {
                    actor: a(),
                    org_id: "acme".into(),
                    user_id: id.clone(),
                }
            ),
            InvalidArgument,
            &["user_id"],
        ));
        out.push(case(
            format!("UpdateMemberRole role {what}"),
            call!(
                c.member,
                update_member_role,
                pb::UpdateMemberRoleRequest {
                    actor: a(),
                    org_id: "acme".into(),
                    user_id: "dave".into(),
                    role: id.clone(),
                }
            ),
            InvalidArgument,
            &["role"],
        ));
    }
    out.push(case(
        "AddMember unknown role",
        call!(
            c.member,
            add_member,
            pb::AddMemberRequest {
                actor: a(),
                org_id: "acme".into(),
                user_id: "erin".into(),
                role: "superuser".into(),
            }
        ),
        InvalidArgument,
        &["role"],
    ));
    out.push(case(
        "AddMember unknown user",
        call!(
            c.member,
            add_member,
            pb::AddMemberRequest {
                actor: a(),
                org_id: "acme".into(),
                user_id: "nobody".into(),
                role: "org_user".into(),
            }
        ),
        NotFound,
        &["nobody"],
    ));
    out.push(case(
        "AddMember unknown org (no role there: denied, existence not revealed)",
        call!(
            c.member,
            add_member,
            pb::AddMemberRequest {
                actor: a(),
                org_id: "nope".into(),
                user_id: "erin".into(),
                role: "org_user".into(),
            }
        ),
        PermissionDenied,
        &["nope"],
    ));
    out.push(case(
        "AddMember duplicate",
        call!(
            c.member,
            add_member,
            pb::AddMemberRequest {
                actor: a(),
                org_id: "acme".into(),
                user_id: "dave".into(),
                role: "org_user".into(),
            }
        ),
        AlreadyExists,
        &["dave"],
    ));
    out.push(case(
        "UpdateMemberRole of a non-member",
        call!(
            c.member,
            update_member_role,
            pb::UpdateMemberRoleRequest {
                actor: a(),
                org_id: "acme".into(),
                user_id: "erin".into(),
                role: "admin".into(),
            }
        ),
        NotFound,
        &["erin"],
    ));
    out.push(case(
        "RemoveMember of a non-member",
        call!(
            c.member,
            remove_member,
            pb::RemoveMemberRequest {
                actor: a(),
                org_id: "acme".into(),
                user_id: "erin".into(),
            }
        ),
        NotFound,
        &["erin"],
    ));
    out.push(case(
        "ListMembers unknown org (no role there: denied, existence not revealed)",
        call!(
            c.member,
            list_members,
            pb::ListMembersRequest {
                order_by: String::new(),
                org_id: "nope".into(),
                actor: a(),
                ..Default::default()
            }
        ),
        PermissionDenied,
        &["nope"],
    ));
    out.push(case(
        "ListMembers 1 MiB query",
        call!(
            c.member,
            list_members,
            pb::ListMembersRequest {
                order_by: String::new(),
                org_id: "acme".into(),
                query: meg.clone(),
                actor: a(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["query"],
    ));

    // ---------------------------------------------------------------- teams
    for (what, id) in odd_slugs() {
        out.push(case(
            format!("CreateTeam team_id {what}"),
            call!(
                c.team,
                create_team,
                pb::CreateTeamRequest {
                    actor: a(),
                    org_id: "acme".into(),
                    team_id: id.clone(),
                    name: "T".into(),
                }
            ),
            InvalidArgument,
            &["team_id"],
        ));
        out.push(case(
            format!("GrantApp app_id {what}"),
            call!(
                c.team,
                grant_app,
                pb::GrantAppRequest {
                    actor: a(),
                    org_id: "acme".into(),
                    team_id: "frontend".into(),
                    app_id: id.clone(),
                    role: String::new(),
                }
            ),
            InvalidArgument,
            &["app_id"],
        ));
    }
    out.push(case(
        "CreateTeam duplicate",
        call!(
            c.team,
            create_team,
            pb::CreateTeamRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                name: "F".into(),
            }
        ),
        AlreadyExists,
        &["frontend"],
    ));
    out.push(case(
        "CreateTeam 1 MiB name",
        call!(
            c.team,
            create_team,
            pb::CreateTeamRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "big".into(),
                name: meg.clone(),
            }
        ),
        InvalidArgument,
        &["name"],
    ));
    out.push(case(
        "CreateTeam unknown org (no role there: denied, existence not revealed)",
        call!(
            c.team,
            create_team,
            pb::CreateTeamRequest {
                actor: a(),
                org_id: "nope".into(),
                team_id: "t".into(),
                name: "T".into(),
            }
        ),
        PermissionDenied,
        &["nope"],
    ));
    out.push(case(
        "RenameTeam unknown team",
        call!(
            c.team,
            rename_team,
            pb::RenameTeamRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "ghosts".into(),
                name: "G".into(),
            }
        ),
        NotFound,
        &["ghosts"],
    ));
    out.push(case(
        "DeleteTeam unknown team",
        call!(
            c.team,
            delete_team,
            pb::DeleteTeamRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "ghosts".into(),
            }
        ),
        NotFound,
        &["ghosts"],
    ));
    out.push(case(
        "ListTeams unknown org (no role there: denied, existence not revealed)",
        call!(
            c.team,
            list_teams,
            pb::ListTeamsRequest {
                org_id: "nope".into(),
                actor: a(),
                ..Default::default()
            }
        ),
        PermissionDenied,
        &["nope"],
    ));
    out.push(case(
        "AddTeamMember who is not an org member (out of order)",
        call!(
            c.team,
            add_team_member,
            pb::AddTeamMemberRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                user_id: "erin".into(),
            }
        ),
        FailedPrecondition,
        &["erin"],
    ));
    out.push(case(
        "AddTeamMember duplicate",
        call!(
            c.team,
            add_team_member,
            pb::AddTeamMemberRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                user_id: "carol".into(),
            }
        ),
        AlreadyExists,
        &["carol"],
    ));
    out.push(case(
        "AddTeamMember unknown team",
        call!(
            c.team,
            add_team_member,
            pb::AddTeamMemberRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "ghosts".into(),
                user_id: "dave".into(),
            }
        ),
        NotFound,
        &["ghosts"],
    ));
    out.push(case(
        "RemoveTeamMember not in the team",
        call!(
            c.team,
            remove_team_member,
            pb::RemoveTeamMemberRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                user_id: "dave".into(),
            }
        ),
        NotFound,
        &["dave"],
    ));
    out.push(case(
        "GrantApp of another org's app",
        call!(
            c.team,
            grant_app,
            pb::GrantAppRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                app_id: "ledger".into(),
                role: String::new(),
            }
        ),
        FailedPrecondition,
        &["ledger"],
    ));
    out.push(case(
        "GrantApp unknown app",
        call!(
            c.team,
            grant_app,
            pb::GrantAppRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                app_id: "nope".into(),
                role: String::new(),
            }
        ),
        NotFound,
        &["nope"],
    ));
    out.push(case(
        "GrantApp duplicate",
        call!(
            c.team,
            grant_app,
            pb::GrantAppRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                app_id: "web".into(),
                role: String::new(),
            }
        ),
        AlreadyExists,
        &["web"],
    ));
    out.push(case(
        "GrantApp with a per-grant role",
        call!(
            c.team,
            grant_app,
            pb::GrantAppRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                app_id: "api".into(),
                role: "admin".into(),
            }
        ),
        InvalidArgument,
        &["role"],
    ));
    out.push(case(
        "RevokeApp never granted",
        call!(
            c.team,
            revoke_app,
            pb::RevokeAppRequest {
                actor: a(),
                org_id: "acme".into(),
                team_id: "frontend".into(),
                app_id: "api".into(),
            }
        ),
        NotFound,
        &["api"],
    ));

    // ---------------------------------------------------------------- apps
    for (what, id) in odd_slugs() {
        out.push(case(
            format!("CreateApp app_id {what}"),
            call!(
                c.app,
                create_app,
                pb::CreateAppRequest {
                    actor: a(),
                    app_id: id.clone(),
                    owner: org_owner("acme"),
                    name: "A".into(),
                    labels: vec![],
                }
            ),
            InvalidArgument,
            &["app_id"],
        ));
        out.push(case(
            format!("GetApp app_id {what}"),
            call!(
                c.app,
                get_app,
                pb::GetAppRequest {
                    min_revision: 0,
                    app_id: id.clone(),
                    actor: a()
                }
            ),
            InvalidArgument,
            &["app_id"],
        ));
        out.push(case(
            format!("DeleteApp app_id {what}"),
            call!(
                c.app,
                delete_app,
                pb::DeleteAppRequest {
                    app_id: id.clone(),
                    actor: a()
                }
            ),
            InvalidArgument,
            &["app_id"],
        ));
    }
    out.push(case(
        "CreateApp duplicate",
        call!(
            c.app,
            create_app,
            pb::CreateAppRequest {
                actor: a(),
                app_id: "web".into(),
                owner: org_owner("acme"),
                name: "W".into(),
                labels: vec![],
            }
        ),
        AlreadyExists,
        &["web"],
    ));
    out.push(case(
        "CreateApp without an owner",
        call!(
            c.app,
            create_app,
            pb::CreateAppRequest {
                actor: a(),
                app_id: "orphan".into(),
                owner: None,
                name: "O".into(),
                labels: vec![],
            }
        ),
        InvalidArgument,
        &["owner"],
    ));
    out.push(case(
        "CreateApp in an unknown org (no role there: denied, existence not revealed)",
        call!(
            c.app,
            create_app,
            pb::CreateAppRequest {
                actor: a(),
                app_id: "lost".into(),
                owner: org_owner("nope"),
                name: "L".into(),
                labels: vec![],
            }
        ),
        PermissionDenied,
        &["nope"],
    ));
    out.push(case(
        "CreateApp 1 MiB label",
        call!(
            c.app,
            create_app,
            pb::CreateAppRequest {
                actor: a(),
                app_id: "labelled".into(),
                owner: org_owner("acme"),
                name: "L".into(),
                labels: vec![meg.clone()],
            }
        ),
        InvalidArgument,
        &["labels"],
    ));
    out.push(case(
        "CreateApp 100,000 labels",
        call!(
            c.app,
            create_app,
            pb::CreateAppRequest {
                actor: a(),
                app_id: "labelled".into(),
                owner: org_owner("acme"),
                name: "L".into(),
                labels: vec!["l".into(); 100_000],
            }
        ),
        InvalidArgument,
        &["labels"],
    ));
    out.push(case(
        "GetApp unknown",
        call!(
            c.app,
            get_app,
            pb::GetAppRequest {
                min_revision: 0,
                app_id: "nope".into(),
                actor: a()
            }
        ),
        NotFound,
        &["nope"],
    ));
    out.push(case(
        "DeleteApp unknown",
        call!(
            c.app,
            delete_app,
            pb::DeleteAppRequest {
                app_id: "nope".into(),
                actor: a()
            }
        ),
        NotFound,
        &["nope"],
    ));
    out.push(case(
        "TransferApp an org's app (out of order: only personal apps move)",
        call!(
            c.app,
            transfer_app,
            pb::TransferAppRequest {
                actor: a(),
                app_id: "web".into(),
                to_org_id: "acme".into(),
                ..Default::default()
            }
        ),
        FailedPrecondition,
        &["web"],
    ));
    out.push(case(
        "TransferApp to an unknown org (no role there: denied, existence not revealed)",
        call!(
            c.app,
            transfer_app,
            pb::TransferAppRequest {
                actor: a(),
                app_id: "alice-sandbox".into(),
                to_org_id: "nope".into(),
                ..Default::default()
            }
        ),
        PermissionDenied,
        &["nope"],
    ));
    out.push(case(
        "TransferApp with a new id (ids are kept on transfer)",
        call!(
            c.app,
            transfer_app,
            pb::TransferAppRequest {
                actor: a(),
                app_id: "alice-sandbox".into(),
                to_org_id: "acme".into(),
                new_app_id: "web".into(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["new_app_id"],
    ));
    out.push(case(
        "ListApps without an owner",
        call!(
            c.app,
            list_apps,
            pb::ListAppsRequest {
                query: String::new(),
                order_by: String::new(),
                labels: vec![],
                owner: None,
                actor: a(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["owner"],
    ));

    // ---------------------------------------------------------------- authz
    let check = |subject: &str, org: &str, resource: &str, action: &str| pb::CheckRequest {
        subject: subject.into(),
        org: org.into(),
        resource: resource.into(),
        action: action.into(),
        ..Default::default()
    };
    for (field, req) in [
        ("subject", check("", "acme", "apps/web", "app:read")),
        ("org", check("alice", "", "apps/web", "app:read")),
        ("resource", check("alice", "acme", "", "app:read")),
        ("action", check("alice", "acme", "apps/web", "")),
        ("subject", check(&meg, "acme", "apps/web", "app:read")),
        ("org", check("alice", &meg, "apps/web", "app:read")),
        ("resource", check("alice", "acme", &meg, "app:read")),
        ("action", check("alice", "acme", "apps/web", &meg)),
        // Outside the resource grammar (issue 11, item 2) and reserved subjects (item 15).
        ("resource", check("alice", "acme", "apps/🦀/../..", "app:read")),
        (
            "resource",
            check("carol", "acme", "apps/web//secrets", "app:read"),
        ),
        ("subject", check("role:admin", "acme", "apps/web", "app:read")),
    ] {
        out.push(case(
            format!("Check bad {field}"),
            call!(c.authz, check, req),
            InvalidArgument,
            &[field],
        ));
    }
    // Unknown things and odd characters are questions with an answer: deny.
    for (what, req) in [
        ("unknown org", check("alice", "nope", "apps/web", "app:read")),
        ("unknown subject", check("nobody", "acme", "apps/web", "app:read")),
        ("unknown app", check("carol", "acme", "apps/nope", "app:read")),
        (
            "another org's app",
            check("carol", "acme", "apps/ledger", "app:read"),
        ),
        ("odd charset", check("a\0b", "ü", "apps/🦀/ü", "app:read\n")),
    ] {
        let mut client = c.authz.clone();
        out.push(case(
            format!("Check {what} denies"),
            Box::pin(async move {
                let r = client.check(req).await?.into_inner();
                if r.allowed {
                    Err(Status::internal("allowed!"))
                } else {
                    Result::Ok(())
                }
            }),
            Code::Ok,
            &[],
        ));
    }
    out.push(case(
        "Check min_revision from the future",
        call!(
            c.authz,
            check,
            pb::CheckRequest {
                min_revision: u64::MAX,
                ..check("alice", "acme", "apps/web", "app:read")
            }
        ),
        FailedPrecondition,
        &["revision"],
    ));
    out.push(case(
        "BatchCheck 1,001 items",
        call!(
            c.authz,
            batch_check,
            pb::BatchCheckRequest {
                items: vec![check("alice", "acme", "apps/web", "app:read"); 1001],
                min_revision: 0,
            }
        ),
        InvalidArgument,
        &["items"],
    ));
    out.push(case(
        "BatchCheck empty (an empty answer)",
        call!(
            c.authz,
            batch_check,
            pb::BatchCheckRequest {
                items: vec![],
                min_revision: 0
            }
        ),
        Code::Ok,
        &[],
    ));
    out.push(case(
        "LookupResources 1 MiB subject",
        call!(
            c.authz,
            lookup_resources,
            pb::LookupResourcesRequest {
                subject: meg.clone(),
                org: "acme".into(),
                action: "app:read".into(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["subject"],
    ));
    out.push(case(
        "LookupResources garbage page_token",
        call!(
            c.authz,
            lookup_resources,
            pb::LookupResourcesRequest {
                subject: "alice".into(),
                org: "acme".into(),
                action: "app:read".into(),
                page_token: "zz\u{7f}".into(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["page_token"],
    ));
    out.push(case(
        "LookupSubjects empty resource",
        call!(
            c.authz,
            lookup_subjects,
            pb::LookupSubjectsRequest {
                org: "acme".into(),
                action: "app:read".into(),
                ..Default::default()
            }
        ),
        InvalidArgument,
        &["resource"],
    ));
    out
}

#[test]
fn every_rpc_refuses_hostile_input_with_its_code_and_writes_nothing() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = common::runtime();
    // TCP: its callers are not trusted by file permission, so every actor rule applies.
    let target = daemon.work.tcp_target();
    let c = rt.block_on(clients(&target));
    let mut local = rt.block_on(clients(&daemon.work.unix_target()));
    let export = |c: &mut Clients| {
        rt.block_on(async {
            let orgs = c
                .org
                .list_orgs(pb::ListOrgsRequest {
                    order_by: String::new(),
                    actor: "alice".into(),
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .expect("ListOrgs")
                .into_inner();
            let members = c
                .member
                .list_members(pb::ListMembersRequest {
                    order_by: String::new(),
                    org_id: "acme".into(),
                    actor: "alice".into(),
                    page_size: 1000,
                    ..Default::default()
                })
                .await
                .expect("ListMembers")
                .into_inner();
            format!("{orgs:?}\n{members:?}")
        })
    };
    let start_revision = rt.block_on(local.stats()).revision;
    let start_export = export(&mut local);
    let all = cases(&c);
    let tried = all.len();
    let mut wrong = Vec::new();
    for Case {
        name,
        call,
        code,
        words,
    } in all
    {
        let result = rt.block_on(call);
        let (got, message) = match &result {
            Ok(()) => (Code::Ok, String::new()),
            Err(s) => (s.code(), s.message().to_string()),
        };
        let missing: Vec<_> = words.iter().filter(|w| !message.contains(w.as_str())).collect();
        if got != code || !missing.is_empty() {
            let shown: String = message.chars().take(200).collect();
            wrong.push(format!(
                "{name}: expected {code:?} naming {words:?}, got {got:?}: {shown}"
            ));
        }
        let revision = rt.block_on(local.stats()).revision;
        if revision != start_revision {
            wrong.push(format!("{name}: moved the revision to {revision}"));
        }
    }
    println!(
        "{tried} hostile calls, {} answered as documented",
        tried - wrong.len()
    );
    assert_eq!(export(&mut local), start_export, "the directory changed");
    assert!(rt.block_on(local.check("alice", "acme", "apps/web", "app:write", 0)));
    assert!(
        wrong.is_empty(),
        "{} of {tried} cases:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
