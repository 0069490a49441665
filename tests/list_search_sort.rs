//! Search and sort in `ListOrgs`, `ListApps` and `ListMembers` (issue 15), against the real
//! daemon over gRPC and the HTTP/JSON gateway: every order gives every record exactly once
//! across small pages, in the order a user would expect (ties by id), also while writes land
//! between pages; `updated_at` moves with every change that touches an org, app or member;
//! `query` and the label filter are applied by the server; a bad `order_by` or a token from
//! another order is INVALID_ARGUMENT naming the field. `ListTeams` can answer with member
//! counts only, and `ListTeamMembers` pages one team's members (no page loads more than it
//! shows). A platform admin (a policy rule granting `org:list_all` on `instance`) lists every
//! org over TCP with `all`; anyone else is refused, org admins included.

use crate::common;

use common::directory::{Clients, assert_refused, clients, org_owner};
use common::{Workdir, free_port, runtime};
use serde_json::{Value, json};
use std::time::Duration;
use tonic::Code;
use warden::api::pb;

/// Every page of `ListOrgs` (operator, all orgs) in `order_by`, `size` at a time; the ids.
async fn all_orgs(c: &mut Clients, query: &str, order_by: &str, size: u32) -> Vec<pb::Org> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = c
            .org
            .list_orgs(pb::ListOrgsRequest {
                actor: "op".into(),
                query: query.into(),
                order_by: order_by.into(),
                page_size: size,
                page_token: token,
                ..Default::default()
            })
            .await
            .expect("ListOrgs")
            .into_inner();
        assert!(r.orgs.len() <= size as usize);
        out.extend(r.orgs);
        if r.next_page_token.is_empty() {
            return out;
        }
        token = r.next_page_token;
    }
}

fn ids(orgs: &[pb::Org]) -> Vec<String> {
    orgs.iter().map(|o| o.org_id.clone()).collect()
}

/// A clock tick, so two writes get different times (the store keeps milliseconds).
async fn tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

#[test]
fn orgs_apps_and_members_page_completely_in_every_order() {
    let daemon = Workdir::new().start();
    let rt = runtime();
    rt.block_on(async {
        let mut c = clients(&daemon.work.unix_target()).await;
        c.upsert_user("op", "op").await;
        for i in 0..8 {
            c.upsert_user("op", &format!("u{i}")).await;
        }
        // Names sort differently from ids, and two share a name (ties break by id).
        let orgs = [
            ("o-a", "Zeta"),
            ("o-b", "alpha"),
            ("o-c", "Mango"),
            ("o-d", "beta"),
            ("o-e", "Mango"),
        ];
        for (id, name) in orgs {
            tick().await;
            c.org
                .create_org(pb::CreateOrgRequest {
                    actor: "op".into(),
                    org_id: id.into(),
                    name: name.into(),
                    ..Default::default()
                })
                .await
                .expect("CreateOrg");
        }
        // Sizes: o-c 4 members, o-a 3, the others 1 (the creator).
        for u in ["u0", "u1", "u2"] {
            c.add_member("op", "o-c", u, "org_user").await.expect("AddMember");
        }
        for u in ["u3", "u4"] {
            c.add_member("op", "o-a", u, "org_user").await.expect("AddMember");
        }

        assert_eq!(
            ids(&all_orgs(&mut c, "", "", 2).await),
            ["o-a", "o-b", "o-c", "o-d", "o-e"]
        );
        assert_eq!(
            ids(&all_orgs(&mut c, "", "name", 2).await),
            ["o-b", "o-d", "o-c", "o-e", "o-a"]
        );
        assert_eq!(
            ids(&all_orgs(&mut c, "", "name desc", 2).await),
            ["o-a", "o-e", "o-c", "o-d", "o-b"]
        );
        assert_eq!(
            ids(&all_orgs(&mut c, "", "created_at desc", 3).await),
            ["o-e", "o-d", "o-c", "o-b", "o-a"]
        );
        let by_size = all_orgs(&mut c, "", "member_count desc", 2).await;
        assert_eq!(
            ids(&by_size),
            ["o-c", "o-a", "o-e", "o-d", "o-b"],
            "ties by id, descending too"
        );
        assert_eq!(by_size[0].member_count, 4);
        // The last change touched o-a (a member joined): it was updated last.
        assert_eq!(ids(&all_orgs(&mut c, "", "updated_at desc", 2).await)[0], "o-a");
        // Search: id or name, case-insensitively, on the server; pages stay full.
        assert_eq!(ids(&all_orgs(&mut c, "MANGO", "name", 1).await), ["o-c", "o-e"]);
        assert_eq!(ids(&all_orgs(&mut c, "o-d", "", 1).await), ["o-d"]);

        // A write between pages moves an org it touched, never duplicates or loses another.
        let first = c
            .org
            .list_orgs(pb::ListOrgsRequest {
                actor: "op".into(),
                order_by: "updated_at".into(),
                page_size: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        tick().await;
        let before = all_orgs(&mut c, "", "", 10).await;
        let b_updated = before
            .iter()
            .find(|o| o.org_id == "o-b")
            .unwrap()
            .updated_at_unix_ms;
        c.add_member("op", "o-b", "u5", "org_user")
            .await
            .expect("AddMember");
        let mut seen = ids(&first.orgs);
        let mut token = first.next_page_token;
        while !token.is_empty() {
            let r = c
                .org
                .list_orgs(pb::ListOrgsRequest {
                    actor: "op".into(),
                    order_by: "updated_at".into(),
                    page_size: 2,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            seen.extend(ids(&r.orgs));
            token = r.next_page_token;
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 5, "every org once or more: {seen:?}");
        let after = all_orgs(&mut c, "", "", 10).await;
        let b = after.iter().find(|o| o.org_id == "o-b").unwrap();
        assert!(
            b.updated_at_unix_ms > b_updated,
            "a new member moves the org's updated_at"
        );
        assert_eq!(b.member_count, 2);

        // Refusals name the field.
        let bad = c
            .org
            .list_orgs(pb::ListOrgsRequest {
                actor: "op".into(),
                order_by: "size".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(bad.code(), Code::InvalidArgument);
        assert!(bad.message().starts_with("order_by"), "{}", bad.message());
        let name_token = c
            .org
            .list_orgs(pb::ListOrgsRequest {
                actor: "op".into(),
                order_by: "name".into(),
                page_size: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .next_page_token;
        let mixed = c
            .org
            .list_orgs(pb::ListOrgsRequest {
                actor: "op".into(),
                order_by: "name desc".into(),
                page_token: name_token,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(mixed.code(), Code::InvalidArgument);
        assert!(mixed.message().starts_with("page_token"), "{}", mixed.message());

        // Apps: search, labels, sort, and updated_at following a label change.
        for (id, name, labels) in [
            ("web", "Web shop", vec!["pii"]),
            ("api", "Public API", vec!["pii", "prod"]),
            ("docs", "docs site", vec![]),
        ] {
            tick().await;
            c.app
                .create_app(pb::CreateAppRequest {
                    actor: "op".into(),
                    app_id: id.into(),
                    owner: org_owner("o-c"),
                    name: name.into(),
                    labels: labels.into_iter().map(String::from).collect(),
                })
                .await
                .expect("CreateApp");
        }
        let list_apps = |c: &mut Clients, query: &str, labels: &[&str], order_by: &str| {
            let mut c = c.clone();
            let req = pb::ListAppsRequest {
                actor: "op".into(),
                owner: org_owner("o-c"),
                query: query.into(),
                labels: labels.iter().map(|l| l.to_string()).collect(),
                order_by: order_by.into(),
                page_size: 1,
                ..Default::default()
            };
            async move {
                let mut out = Vec::new();
                let mut req = req;
                loop {
                    let r = c.app.list_apps(req.clone()).await.expect("ListApps").into_inner();
                    out.extend(r.apps.into_iter().map(|a| a.app_id));
                    if r.next_page_token.is_empty() {
                        return out;
                    }
                    req.page_token = r.next_page_token;
                }
            }
        };
        assert_eq!(list_apps(&mut c, "", &[], "name").await, ["docs", "api", "web"]);
        assert_eq!(
            list_apps(&mut c, "", &[], "name desc").await,
            ["web", "api", "docs"]
        );
        assert_eq!(list_apps(&mut c, "", &["pii"], "id").await, ["api", "web"]);
        assert_eq!(list_apps(&mut c, "", &["pii", "prod"], "").await, ["api"]);
        assert_eq!(list_apps(&mut c, "SHOP", &[], "").await, ["web"]);
        assert_eq!(
            list_apps(&mut c, "", &[], "updated_at desc").await,
            ["docs", "api", "web"]
        );
        tick().await;
        c.app
            .set_app_labels(pb::SetAppLabelsRequest {
                actor: "op".into(),
                app_id: "web".into(),
                labels: vec!["prod".into()],
            })
            .await
            .expect("SetAppLabels");
        assert_eq!(
            list_apps(&mut c, "", &[], "updated_at desc").await,
            ["web", "docs", "api"]
        );
        assert_eq!(
            list_apps(&mut c, "", &["prod"], "created_at").await,
            ["web", "api"]
        );

        // Members: joined order both ways, a role change moves updated_at, search by email.
        let list_members = |c: &mut Clients, query: &str, order_by: &str| {
            let mut c = c.clone();
            let mut req = pb::ListMembersRequest {
                actor: "op".into(),
                org_id: "o-c".into(),
                query: query.into(),
                order_by: order_by.into(),
                page_size: 1,
                ..Default::default()
            };
            async move {
                let mut out = Vec::new();
                loop {
                    let r = c
                        .member
                        .list_members(req.clone())
                        .await
                        .expect("ListMembers")
                        .into_inner();
                    out.extend(r.members.into_iter().map(|m| m.user_id));
                    if r.next_page_token.is_empty() {
                        return out;
                    }
                    req.page_token = r.next_page_token;
                }
            }
        };
        assert_eq!(list_members(&mut c, "", "").await, ["op", "u0", "u1", "u2"]);
        assert_eq!(
            list_members(&mut c, "", "name desc").await,
            ["u2", "u1", "u0", "op"]
        );
        assert_eq!(
            list_members(&mut c, "", "created_at desc").await,
            ["u2", "u1", "u0", "op"]
        );
        assert_eq!(list_members(&mut c, "u1@EXAMPLE", "").await, ["u1"]);
        tick().await;
        c.member
            .update_member_role(pb::UpdateMemberRoleRequest {
                actor: "op".into(),
                org_id: "o-c".into(),
                user_id: "u0".into(),
                role: "org_contributor".into(),
            })
            .await
            .expect("UpdateMemberRole");
        assert_eq!(list_members(&mut c, "", "updated_at desc").await[0], "u0");
        c.member
            .remove_member(pb::RemoveMemberRequest {
                actor: "op".into(),
                org_id: "o-c".into(),
                user_id: "u1".into(),
            })
            .await
            .expect("RemoveMember");
        assert_eq!(list_members(&mut c, "", "created_at").await, ["op", "u0", "u2"]);
        assert_eq!(all_orgs(&mut c, "o-c", "", 1).await[0].member_count, 3);
    });
}

/// The same lists over the HTTP/JSON gateway (what the console calls), on the demo directory.
#[test]
fn the_gateway_searches_and_sorts_too() {
    let addr = free_port();
    let _daemon = Workdir::new().start_with(&["--demo", "--http", &format!("tcp:{addr}")]);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |path: &str, body: Value| -> (u16, Value) {
        let mut resp = agent
            .post(&format!("http://{addr}/warden.v1.{path}"))
            .header("content-type", "application/json")
            .send(body.to_string())
            .expect("POST");
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap())
    };
    let names = |v: &Value, list: &str, field: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|x| x[field].as_str().unwrap().to_string())
            .collect()
    };
    let (status, apps) = post(
        "AppService/ListApps",
        json!({"actor": "alice", "owner": {"org_id": "acme"}, "order_by": "name desc"}),
    );
    assert_eq!(status, 200, "{apps}");
    let got = names(&apps, "apps", "app_id");
    let mut want = got.clone();
    want.sort_by_key(|id| {
        let app = apps["apps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["app_id"] == *id)
            .unwrap();
        std::cmp::Reverse((app["name"].as_str().unwrap().to_lowercase(), id.clone()))
    });
    assert!(got.len() >= 2, "{apps}");
    assert_eq!(got, want);
    assert!(apps["apps"][0]["updated_at_unix_ms"].as_str().is_some(), "{apps}");

    let (status, members) = post(
        "MemberService/ListMembers",
        json!({"actor": "alice", "org_id": "acme", "query": "CAR", "order_by": "created_at"}),
    );
    assert_eq!(status, 200, "{members}");
    assert_eq!(names(&members, "members", "user_id"), ["carol"]);

    let (status, orgs) = post(
        "OrgService/ListOrgs",
        json!({"actor": "alice", "user_id": "alice", "query": "ACME", "order_by": "member_count desc"}),
    );
    assert_eq!(status, 200, "{orgs}");
    assert_eq!(names(&orgs, "orgs", "org_id"), ["acme"]);
    assert_eq!(orgs["orgs"][0]["member_count"], 4, "{orgs}");
    let (status, none) = post(
        "OrgService/ListOrgs",
        json!({"actor": "alice", "user_id": "alice", "query": "globex"}),
    );
    assert_eq!(status, 200, "{none}");
    assert!(names(&none, "orgs", "org_id").is_empty(), "{none}");

    let (status, bad) = post(
        "OrgService/ListOrgs",
        json!({"actor": "alice", "user_id": "alice", "order_by": "name sideways"}),
    );
    assert_eq!(status, 400, "{bad}");
    assert!(bad["message"].as_str().unwrap().starts_with("order_by"), "{bad}");
}

/// A store written before sorted lists existed (no `sorted`, no `member_counts`) is indexed
/// once when opened: the same digest as a store that kept them all along, and sorted lists work.
#[test]
fn a_store_from_before_sorted_lists_is_indexed_on_open() {
    use crate::store_support::Fixture;
    use warden::store::{ListFilter, ListOrder, SortField, Store};
    let f = Fixture::with_demo();
    let want = f.store.digest().unwrap();
    let path = f.path();
    drop(f.store);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        for name in ["sorted", "member_counts"] {
            assert!(
                txn.delete_table(redb::TableDefinition::<&str, ()>::new(name))
                    .unwrap()
            );
        }
        txn.commit().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.digest().unwrap(),
        want,
        "the rebuilt index equals the kept one"
    );
    let order = ListOrder {
        field: SortField::MemberCount,
        descending: true,
    };
    let page = store
        .list_orgs_sorted(&ListFilter::default(), order, "", 10)
        .unwrap();
    let got: Vec<(String, u64)> = page.items.into_iter().map(|(o, n)| (o.id, n)).collect();
    assert_eq!(got, [("acme".to_string(), 4), ("globex".to_string(), 1)]);
}

/// A team's members: `ListTeams` keeps sending every id by default (existing clients), sends
/// only the count with `omit_member_ids`, and `ListTeamMembers` pages the ids completely, with
/// the count on every page; an unknown team is NOT_FOUND naming it, a reader without
/// `team:read` is refused.
#[test]
fn teams_come_with_counts_and_their_members_page() {
    let addr = free_port();
    let daemon = Workdir::new().start_with(&["--demo", "--http", &format!("tcp:{addr}")]);
    let rt = runtime();
    let crowd: Vec<String> = (0..7).map(|i| format!("u{i}")).collect();
    rt.block_on(async {
        let mut c = clients(&daemon.work.unix_target()).await;
        c.team
            .create_team(pb::CreateTeamRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                team_id: "crowd".into(),
                name: "Crowd".into(),
            })
            .await
            .expect("CreateTeam");
        for u in &crowd {
            c.upsert_user(u, u).await;
            c.add_member("alice", "acme", u, "org_user")
                .await
                .expect("AddMember");
            c.team
                .add_team_member(pb::AddTeamMemberRequest {
                    actor: "alice".into(),
                    org_id: "acme".into(),
                    team_id: "crowd".into(),
                    user_id: u.clone(),
                })
                .await
                .expect("AddTeamMember");
        }
        let list = |omit: bool| pb::ListTeamsRequest {
            org_id: "acme".into(),
            actor: "alice".into(),
            omit_member_ids: omit,
            ..Default::default()
        };
        let full = c
            .team
            .list_teams(list(false))
            .await
            .expect("ListTeams")
            .into_inner()
            .teams;
        let team = |teams: &[pb::Team], id: &str| teams.iter().find(|t| t.team_id == id).cloned().unwrap();
        assert_eq!(team(&full, "crowd").member_ids, crowd);
        assert_eq!(team(&full, "crowd").member_count, 7);
        assert_eq!(team(&full, "frontend").member_ids, ["carol"]);

        let counts = c
            .team
            .list_teams(list(true))
            .await
            .expect("ListTeams")
            .into_inner()
            .teams;
        assert!(counts.iter().all(|t| t.member_ids.is_empty()), "{counts:?}");
        assert_eq!(team(&counts, "crowd").member_count, 7);
        assert_eq!(team(&counts, "frontend").member_count, 1);
        assert_eq!(team(&counts, "frontend").app_grants[0].app_id, "web");

        let mut got = Vec::new();
        let mut token = String::new();
        loop {
            let r = c
                .team
                .list_team_members(pb::ListTeamMembersRequest {
                    org_id: "acme".into(),
                    team_id: "crowd".into(),
                    actor: "alice".into(),
                    page_size: 3,
                    page_token: token,
                    ..Default::default()
                })
                .await
                .expect("ListTeamMembers")
                .into_inner();
            assert!(r.user_ids.len() <= 3, "{r:?}");
            assert_eq!(r.member_count, 7);
            got.extend(r.user_ids);
            if r.next_page_token.is_empty() {
                break;
            }
            token = r.next_page_token;
        }
        assert_eq!(got, crowd);

        let members_of = |team: &str, actor: &str| pb::ListTeamMembersRequest {
            org_id: "acme".into(),
            team_id: team.into(),
            actor: actor.into(),
            ..Default::default()
        };
        assert_refused(
            c.team.list_team_members(members_of("ghost", "alice")).await,
            Code::NotFound,
            &["team_id", "ghost"],
        );
        assert_refused(
            c.team.list_team_members(members_of("crowd", "erin")).await,
            Code::PermissionDenied,
            &["team:read", "acme"],
        );
    });

    // Over the gateway, as the console asks: counts, and no member id in the answer.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .post(&format!("http://{addr}/warden.v1.TeamService/ListTeams"))
        .header("content-type", "application/json")
        .send(json!({"actor": "alice", "org_id": "acme", "omit_member_ids": true}).to_string())
        .expect("POST");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.body_mut().read_to_string().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let crowd_json = v["teams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["team_id"] == "crowd")
        .unwrap();
    assert_eq!(crowd_json["member_count"], 7, "{text}");
    assert!(
        !text.contains("u0") && !text.contains("member_ids\":[\""),
        "{text}"
    );
}

/// `ListOrgs.all`: every org of the instance over TCP for an actor the policy grants
/// `org:list_all` on `instance` in domain `*`; denied by default, also to an org's admin;
/// INVALID_ARGUMENT beside a `user_id`.
#[test]
fn a_platform_admin_lists_every_org_and_no_one_else_does() {
    let work = Workdir::new();
    let csv = work.policies().join("policy.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    text.push_str(
        "g, ops-ann, role:platform_admin, *\np, role:platform_admin, instance, org:list_all, org, allow\n",
    );
    std::fs::write(&csv, text).unwrap();
    let daemon = work.start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let mut c = clients(&daemon.work.tcp_target()).await;
        let all = |actor: &str| pb::ListOrgsRequest {
            actor: actor.into(),
            all: true,
            order_by: "name".into(),
            ..Default::default()
        };
        // What the console asks to choose its list: the same decision ListOrgs makes.
        assert!(c.check("ops-ann", "*", "instance", "org:list_all", 0).await);
        assert!(!c.check("alice", "*", "instance", "org:list_all", 0).await);
        let orgs = c
            .org
            .list_orgs(all("ops-ann"))
            .await
            .expect("ListOrgs all")
            .into_inner()
            .orgs;
        assert_eq!(ids(&orgs), ["acme", "globex"], "{orgs:?}");
        assert_eq!(orgs[0].member_count, 4);
        // alice administers acme: that is not the instance.
        assert_refused(
            c.org.list_orgs(all("alice")).await,
            Code::PermissionDenied,
            &["all", "alice", "org:list_all"],
        );
        assert_refused(
            c.org
                .list_orgs(pb::ListOrgsRequest {
                    user_id: "ops-ann".into(),
                    ..all("ops-ann")
                })
                .await,
            Code::InvalidArgument,
            &["all", "user_id"],
        );
        // Without `all`, an empty user_id over TCP stays refused, for everyone.
        assert_refused(
            c.org
                .list_orgs(pb::ListOrgsRequest {
                    actor: "ops-ann".into(),
                    ..Default::default()
                })
                .await,
            Code::PermissionDenied,
            &["every org"],
        );
    });
}
