//! The default policies' role × action table (policies/README.md), cell by cell,
//! against the real engine and a directory index fed the way the store feeds it.

use std::sync::Arc;
use warden::engine::index::{DirectoryIndex, IndexOp};
use warden::engine::{CheckInput, Engine};

fn engine() -> Engine {
    let index = Arc::new(DirectoryIndex::new());
    let s = |x: &str| x.to_string();
    let mut ops = vec![];
    for (org, user, role) in [
        ("acme", "alice", "admin"),
        ("acme", "bob", "org_contributor"),
        ("acme", "carol", "team_contributor"),
        ("acme", "dave", "org_user"),
        ("acme", "tina", "team_contributor"), // in no team
        ("globex", "erin", "admin"),
        // A user whose id is a role name gets nothing from the name alone.
        ("globex", "admin", "org_user"),
    ] {
        ops.push(IndexOp::SetMember {
            org: s(org),
            user: s(user),
            role: s(role),
        });
    }
    for (org, app) in [("acme", "web"), ("acme", "api"), ("globex", "ledger")] {
        ops.push(IndexOp::AddApp {
            org: s(org),
            app: s(app),
            labels: vec![],
        });
    }
    ops.push(IndexOp::AddTeamMember {
        org: s("acme"),
        team: s("frontend"),
        user: s("carol"),
    });
    ops.push(IndexOp::GrantApp {
        org: s("acme"),
        team: s("frontend"),
        app: s("web"),
    });
    index.apply(7, &ops);
    let policy = warden::policy::load_defaults().expect("default policies compile");
    Engine::new(Arc::new(policy), index)
}

fn check(e: &Engine, subject: &str, org: &str, resource: &str, action: &str) -> bool {
    e.check(&CheckInput {
        subject,
        org,
        resource,
        action,
    })
    .expect("check")
    .allowed
}

const ORG_ACTIONS: &[&str] = &[
    "org:read",
    "org:update",
    "org:delete",
    "billing:manage",
    "security:manage",
    "member:read",
    "member:invite",
    "member:manage",
    "team:read",
    "team:manage",
    "app:create",
    "app:transfer",
    "usage:read",
    "org:leave",
    "org:force_delete",
    "domain:manage",
    "token:manage",
    "audit:read",
];
const APP_ACTIONS: &[&str] = &[
    "app:read",
    "app:write",
    "app:delete",
    "app:approve",
    "app:publish",
    "app:label",
    "collaborator:manage",
];

/// Expected answer for a member of acme holding `role`, on `resource`.
fn expected(role: &str, resource: &str, action: &str, granted_to_team: bool) -> bool {
    let secret = resource.contains("/secrets");
    if resource == "org" {
        return match role {
            "admin" => true,
            "org_contributor" => [
                "org:read",
                "member:read",
                "team:read",
                "app:create",
                "app:transfer",
                "usage:read",
                "org:leave",
            ]
            .contains(&action),
            _ => ["org:read", "member:read", "team:read", "org:leave"].contains(&action),
        };
    }
    if secret && action == "app:read" {
        return false; // deny beats allow, for every role
    }
    match role {
        "admin" => true,
        // `app:publish` is granted on the app itself, not on what is below it.
        "org_contributor" => {
            ["app:read", "app:write"].contains(&action)
                || (action == "app:publish" && resource.matches('/').count() == 1)
        }
        "org_user" => action == "app:read",
        "team_contributor" => {
            granted_to_team
                && (["app:read", "app:write"].contains(&action)
                    || (action == "app:publish" && resource.matches('/').count() == 1))
        }
        _ => false,
    }
}

#[test]
fn every_cell_of_the_role_action_table() {
    let e = engine();
    let members = [
        ("alice", "admin"),
        ("bob", "org_contributor"),
        ("carol", "team_contributor"),
        ("dave", "org_user"),
        ("tina", "team_contributor"),
    ];
    let resources = [
        "org",
        "apps/web",
        "apps/web/models/m1",
        "apps/api",
        "apps/api/workflows/w",
        "apps/web/secrets/k",
    ];
    let mut cells = 0;
    for (user, role) in members {
        for resource in resources {
            let actions = if resource == "org" {
                ORG_ACTIONS
            } else {
                APP_ACTIONS
            };
            for action in actions {
                let granted = user == "carol" && resource.starts_with("apps/web");
                let want = expected(role, resource, action, granted);
                assert_eq!(
                    check(&e, user, "acme", resource, action),
                    want,
                    "{user} ({role}) {action} on {resource}"
                );
                cells += 1;
            }
        }
    }
    assert!(cells > 100);
}

#[test]
fn non_members_and_other_orgs_get_nothing() {
    let e = engine();
    for action in ORG_ACTIONS.iter().chain(APP_ACTIONS) {
        for resource in ["org", "apps/web", "apps/web/models/m1", "apps/ledger"] {
            assert!(
                !check(&e, "mallory", "acme", resource, action),
                "non-member {action} {resource}"
            );
            // erin is admin of globex, not a member of acme.
            assert!(
                !check(&e, "erin", "acme", resource, action),
                "globex admin in acme: {action} {resource}"
            );
            // alice is admin of acme, not a member of globex.
            assert!(
                !check(&e, "alice", "globex", resource, action),
                "acme admin in globex: {action} {resource}"
            );
        }
    }
    // Unknown org, empty strings (an empty resource is outside the resource grammar: an
    // error, never an answer).
    assert!(!check(&e, "alice", "nope", "org", "org:read"));
    assert!(!check(&e, "", "", "org", ""));
    let err = e
        .check(&CheckInput {
            subject: "",
            org: "",
            resource: "",
            action: "",
        })
        .unwrap_err();
    assert!(err.to_string().starts_with("resource: "), "{err}");
}

#[test]
fn a_user_named_like_a_role_or_an_app_gains_nothing_from_the_name() {
    let e = engine();
    // `admin` is an org_user of globex: read, but not update.
    assert!(check(&e, "admin", "globex", "apps/ledger", "app:read"));
    assert!(!check(&e, "admin", "globex", "org", "org:update"));
    assert!(!check(&e, "admin", "acme", "org", "org:read"));
    // Names spelled like directory nodes are refused outright (deny with a reason).
    for subject in ["role:admin", "team:frontend", "app:web", "label:hipaa"] {
        let err = e
            .check(&CheckInput {
                subject,
                org: "acme",
                resource: "apps/web",
                action: "app:read",
            })
            .unwrap_err();
        assert!(err.to_string().contains("reserved prefix"), "{err}");
    }
}

#[test]
fn team_grants_follow_the_index_incrementally() {
    let e = engine();
    let s = |x: &str| x.to_string();
    assert!(!check(&e, "carol", "acme", "apps/api", "app:write"));
    e.index().apply(
        8,
        &[IndexOp::GrantApp {
            org: s("acme"),
            team: s("frontend"),
            app: s("api"),
        }],
    );
    assert!(check(&e, "carol", "acme", "apps/api", "app:write"));
    e.index().apply(
        9,
        &[IndexOp::RemoveTeamMember {
            org: s("acme"),
            team: s("frontend"),
            user: s("carol"),
        }],
    );
    assert!(!check(&e, "carol", "acme", "apps/web", "app:read"));
    e.index().apply(
        10,
        &[IndexOp::SetMember {
            org: s("acme"),
            user: s("carol"),
            role: s("org_user"),
        }],
    );
    assert!(check(&e, "carol", "acme", "apps/web", "app:read"));
    e.index().apply(
        11,
        &[IndexOp::RemoveMember {
            org: s("acme"),
            user: s("carol"),
        }],
    );
    assert!(!check(&e, "carol", "acme", "apps/web", "app:read"));
    assert_eq!(e.index().revision(), 11);
}

#[test]
fn explain_names_the_rule_and_the_role_path() {
    let e = engine();
    let x = e
        .explain(&CheckInput {
            subject: "alice",
            org: "acme",
            resource: "apps/web",
            action: "app:write",
        })
        .unwrap();
    assert!(x.allowed);
    assert_eq!(x.effect, "allow");
    let rule = x.rule.expect("a decisive rule");
    assert_eq!(rule.file, "policy.csv");
    assert!(
        rule.text.contains("role:org_contributor, apps/:app, app:write"),
        "{}",
        rule.text
    );
    assert_eq!(
        x.role_path,
        "alice -[role:admin@acme]-> role:admin -> role:org_contributor"
    );

    let d = e
        .explain(&CheckInput {
            subject: "alice",
            org: "acme",
            resource: "apps/web/secrets/k",
            action: "app:read",
        })
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(d.effect, "deny");
    assert!(d.rule.unwrap().text.contains("secrets/*"));

    let n = e
        .explain(&CheckInput {
            subject: "mallory",
            org: "acme",
            resource: "org",
            action: "org:read",
        })
        .unwrap();
    assert_eq!(n.effect, "default deny");
    assert!(n.rule.is_none());
    assert_eq!(x.revision, 7);
}

#[test]
fn lookups_are_complete_and_paginated() {
    let e = engine();
    let p = e.lookup_resources("dave", "acme", "app:read", "", 1).unwrap();
    assert_eq!(p.items, vec!["apps/api"]);
    assert!(!p.next_page_token.is_empty());
    let p2 = e
        .lookup_resources("dave", "acme", "app:read", &p.next_page_token, 1)
        .unwrap();
    assert_eq!(p2.items, vec!["apps/web"]);
    assert!(p2.next_page_token.is_empty());
    assert_eq!(
        e.lookup_resources("carol", "acme", "app:write", "", 100)
            .unwrap()
            .items,
        vec!["apps/web"]
    );
    assert!(
        e.lookup_resources("mallory", "acme", "app:read", "", 100)
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        e.lookup_resources("dave", "acme", "app:read", "garbage", 10)
            .is_err()
    );

    let s = e
        .lookup_subjects("acme", "apps/web", "app:write", "", 100)
        .unwrap();
    assert_eq!(s.items, vec!["alice", "bob", "carol"]);
    let first = e.lookup_subjects("acme", "apps/web", "app:read", "", 2).unwrap();
    assert_eq!(first.items, vec!["alice", "bob"]);
    let rest = e
        .lookup_subjects("acme", "apps/web", "app:read", &first.next_page_token, 2)
        .unwrap();
    assert_eq!(rest.items, vec!["carol", "dave"]);
    assert!(rest.next_page_token.is_empty());
}

#[test]
fn batch_keeps_order_and_one_revision() {
    let e = engine();
    let qs = [
        CheckInput {
            subject: "alice",
            org: "acme",
            resource: "org",
            action: "org:delete",
        },
        CheckInput {
            subject: "dave",
            org: "acme",
            resource: "org",
            action: "org:delete",
        },
        CheckInput {
            subject: "dave",
            org: "acme",
            resource: "apps/web",
            action: "app:read",
        },
    ];
    let (results, rev) = e.batch_check(&qs, false);
    let got: Vec<bool> = results.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(got, vec![true, false, true]);
    assert_eq!(rev, 7);
}

#[test]
fn the_policy_names_its_org_roles() {
    let p = warden::policy::load_defaults().unwrap();
    let roles: Vec<String> = p.org_roles().into_iter().collect();
    assert_eq!(
        roles,
        vec!["admin", "org_contributor", "org_user", "team_contributor"]
    );
}
