//! Every change through the write path: happy paths, each refusal kind, invariants, revisions.

use crate::store_support;

use store_support::*;
use warden::directory::{Change, OrgSettings, Owner, Refusal};
use warden::engine::index::IndexOp;
use warden::store::ApplyError;

fn refusal(result: Result<warden::store::Applied, ApplyError>) -> Refusal {
    match result {
        Err(ApplyError::Refused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// acme with alice as admin and bob as org_user.
fn acme() -> Fixture {
    let f = Fixture::new();
    f.ok_as("alice", user("alice"));
    f.ok_as("bob", user("bob"));
    f.ok_as("alice", create_org("acme"));
    f.ok_as("alice", add("acme", "bob", "org_user"));
    f
}

/// A refused change leaves the same revision, the same counts and the same export behind.
fn assert_unchanged_after(f: &Fixture, actor: &str, change: Change) -> Refusal {
    let before = (
        f.store.stats().unwrap(),
        f.store.export().unwrap().to_json().unwrap(),
    );
    let r = refusal(f.try_as(actor, change));
    let after = (
        f.store.stats().unwrap(),
        f.store.export().unwrap().to_json().unwrap(),
    );
    assert_eq!(before, after, "refused change left something behind: {r}");
    assert_eq!(f.index.revision(), before.0.revision);
    r
}

#[test]
fn user_upsert_creates_then_replaces() {
    let f = Fixture::new();
    let a = f.ok_as("alice", user("alice"));
    assert_eq!(a.revision, 1);
    assert!(a.index_ops.is_empty());
    f.ok_as(
        "alice",
        Change::UpsertUser {
            id: "alice".into(),
            email: "new@x.io".into(),
            username: None,
            email_verified: None,
        },
    );
    let u = f.store.get_user("alice").unwrap().unwrap();
    assert_eq!(u.email, "new@x.io");
    assert_eq!(
        f.store.users_by_email("NEW@x.io").unwrap(),
        vec!["alice".to_string()]
    );
    assert!(f.store.users_by_email("alice@example.com").unwrap().is_empty());
}

#[test]
fn org_creator_becomes_admin() {
    let f = Fixture::new();
    f.ok_as("alice", user("alice"));
    let a = f.ok_as("alice", create_org("acme"));
    assert_eq!(
        a.index_ops,
        vec![IndexOp::SetMember {
            org: "acme".into(),
            user: "alice".into(),
            role: "admin".into()
        }]
    );
    let org = f.store.get_org("acme").unwrap().unwrap();
    assert_eq!((org.created_by.as_str(), org.created_at_ms), ("alice", 1002));
    assert_eq!(
        f.store.get_membership("acme", "alice").unwrap().unwrap().role,
        "admin"
    );
    assert_eq!(f.index.read().role_of("acme", "alice"), Some("admin"));
}

#[test]
fn org_update_and_delete() {
    let f = acme();
    let mut upd = update_org("acme");
    if let Change::UpdateOrg {
        name,
        billing_email,
        settings,
        ..
    } = &mut upd
    {
        *name = Some("Acme 2".into());
        *billing_email = Some("pay@acme.io".into());
        *settings = Some(OrgSettings {
            membership_limit: Some(10),
            deletable: true,
            ..Default::default()
        });
    }
    f.ok_as("alice", upd);
    let org = f.store.get_org("acme").unwrap().unwrap();
    assert_eq!(
        (org.name.as_str(), org.billing_email.as_deref()),
        ("Acme 2", Some("pay@acme.io"))
    );
    assert_eq!(org.settings.membership_limit, Some(10));

    f.ok_as(
        "alice",
        Change::CreateTeam {
            org: "acme".into(),
            team: "t".into(),
            name: "T".into(),
        },
    );
    f.ok_as("alice", team_member("acme", "t", "bob"));
    let a = f.ok_as("alice", Change::DeleteOrg { id: "acme".into() });
    assert_eq!(a.index_ops, vec![IndexOp::RemoveOrg { org: "acme".into() }]);
    assert!(f.store.get_org("acme").unwrap().is_none());
    assert!(f.store.get_team("acme", "t").unwrap().is_none());
    assert!(f.store.list_user_orgs("bob", "", 0).unwrap().items.is_empty());
    let s = f.store.stats().unwrap();
    assert_eq!((s.orgs, s.memberships, s.teams), (0, 0, 0));
    assert_eq!(f.index.read().role_of("acme", "bob"), None);
}

#[test]
fn org_with_apps_or_not_deletable_is_kept() {
    let f = acme();
    f.ok_as("alice", org_app("web", "acme"));
    let r = assert_unchanged_after(&f, "alice", Change::DeleteOrg { id: "acme".into() });
    assert!(
        matches!(&r, Refusal::FailedPrecondition { reason } if reason.contains("web")),
        "{r}"
    );

    f.ok_as("alice", Change::DeleteApp { id: "web".into() });
    let mut upd = update_org("acme");
    if let Change::UpdateOrg { settings, .. } = &mut upd {
        *settings = Some(OrgSettings {
            membership_limit: None,
            deletable: false,
            ..Default::default()
        });
    }
    f.ok_as("alice", upd);
    let r = assert_unchanged_after(&f, "alice", Change::DeleteOrg { id: "acme".into() });
    assert!(matches!(r, Refusal::FailedPrecondition { .. }), "{r}");
}

#[test]
fn members_are_added_changed_removed() {
    let f = acme();
    f.ok_as("carol", user("carol"));
    let a = f.ok_as(
        "alice",
        Change::AddMember {
            org: "acme".into(),
            user: "carol".into(),
            role: "org_user".into(),
            terms_version: Some("v2".into()),
        },
    );
    let m = f.store.get_membership("acme", "carol").unwrap().unwrap();
    assert_eq!(
        m.terms_accepted.map(|t| (t.version, t.at_ms)),
        Some(("v2".to_string(), m.joined_at_ms))
    );
    assert_eq!(a.index_ops.len(), 1);
    f.ok_as(
        "alice",
        Change::ChangeRole {
            org: "acme".into(),
            user: "carol".into(),
            role: "admin".into(),
        },
    );
    assert_eq!(f.index.read().role_of("acme", "carol"), Some("admin"));
    // Two admins now, so alice may step down.
    f.ok_as(
        "carol",
        Change::ChangeRole {
            org: "acme".into(),
            user: "alice".into(),
            role: "org_user".into(),
        },
    );
    let a = f.ok_as(
        "carol",
        Change::RemoveMember {
            org: "acme".into(),
            user: "alice".into(),
        },
    );
    assert_eq!(
        a.index_ops,
        vec![IndexOp::RemoveMember {
            org: "acme".into(),
            user: "alice".into()
        }]
    );
    assert_eq!(f.index.read().role_of("acme", "alice"), None);
    assert!(f.store.get_membership("acme", "alice").unwrap().is_none());
}

#[test]
fn last_admin_can_be_neither_demoted_nor_removed() {
    let f = acme();
    let r = assert_unchanged_after(
        &f,
        "alice",
        Change::ChangeRole {
            org: "acme".into(),
            user: "alice".into(),
            role: "org_user".into(),
        },
    );
    assert!(
        matches!(&r, Refusal::FailedPrecondition { reason } if reason.contains("last admin")),
        "{r}"
    );
    let r = assert_unchanged_after(
        &f,
        "alice",
        Change::RemoveMember {
            org: "acme".into(),
            user: "alice".into(),
        },
    );
    assert!(
        matches!(&r, Refusal::FailedPrecondition { reason } if reason.contains("last admin")),
        "{r}"
    );
    // Non-admins are free to go.
    f.ok_as(
        "alice",
        Change::RemoveMember {
            org: "acme".into(),
            user: "bob".into(),
        },
    );
}

#[test]
fn removing_a_member_removes_their_team_memberships() {
    let f = acme();
    for team in ["a", "b"] {
        f.ok_as(
            "alice",
            Change::CreateTeam {
                org: "acme".into(),
                team: team.into(),
                name: team.into(),
            },
        );
        f.ok_as("alice", team_member("acme", team, "bob"));
        f.ok_as("alice", team_member("acme", team, "alice"));
    }
    f.ok_as(
        "alice",
        Change::RemoveMember {
            org: "acme".into(),
            user: "bob".into(),
        },
    );
    for team in ["a", "b"] {
        let members = f.store.list_team_members("acme", team, "", 0).unwrap().items;
        assert_eq!(members, vec!["alice".to_string()], "team {team}");
    }
    // Re-adding bob to the org does not bring the team memberships back.
    f.ok_as("alice", add("acme", "bob", "org_user"));
    assert_eq!(
        f.store.list_team_members("acme", "a", "", 0).unwrap().items.len(),
        1
    );
}

#[test]
fn teams_members_and_grants() {
    let f = acme();
    f.ok_as("alice", org_app("web", "acme"));
    f.ok_as(
        "alice",
        Change::CreateTeam {
            org: "acme".into(),
            team: "fe".into(),
            name: "Front".into(),
        },
    );
    f.ok_as(
        "alice",
        Change::RenameTeam {
            org: "acme".into(),
            team: "fe".into(),
            name: "Frontend".into(),
        },
    );
    assert_eq!(f.store.get_team("acme", "fe").unwrap().unwrap().name, "Frontend");
    let a = f.ok_as("alice", team_member("acme", "fe", "bob"));
    assert_eq!(
        a.index_ops,
        vec![IndexOp::AddTeamMember {
            org: "acme".into(),
            team: "fe".into(),
            user: "bob".into()
        }]
    );
    let a = f.ok_as(
        "alice",
        Change::GrantApp {
            org: "acme".into(),
            team: "fe".into(),
            app: "web".into(),
        },
    );
    assert_eq!(
        a.index_ops,
        vec![IndexOp::GrantApp {
            org: "acme".into(),
            team: "fe".into(),
            app: "web".into(),
        }]
    );
    assert_eq!(
        f.store.list_team_grants("acme", "fe", "", 0).unwrap().items,
        vec!["web".to_string()]
    );
    f.ok_as(
        "alice",
        Change::RevokeApp {
            org: "acme".into(),
            team: "fe".into(),
            app: "web".into(),
        },
    );
    assert!(
        f.store
            .list_team_grants("acme", "fe", "", 0)
            .unwrap()
            .items
            .is_empty()
    );
    f.ok_as(
        "alice",
        Change::RemoveTeamMember {
            org: "acme".into(),
            team: "fe".into(),
            user: "bob".into(),
        },
    );
    f.ok_as("alice", team_member("acme", "fe", "bob"));
    f.ok_as(
        "alice",
        Change::GrantApp {
            org: "acme".into(),
            team: "fe".into(),
            app: "web".into(),
        },
    );
    let a = f.ok_as(
        "alice",
        Change::DeleteTeam {
            org: "acme".into(),
            team: "fe".into(),
        },
    );
    assert_eq!(
        a.index_ops,
        vec![IndexOp::RemoveTeam {
            org: "acme".into(),
            team: "fe".into()
        }]
    );
    assert!(
        f.store
            .list_team_members("acme", "fe", "", 0)
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        f.store
            .list_team_grants("acme", "fe", "", 0)
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn team_rules() {
    let f = acme();
    f.ok_as("carol", user("carol"));
    f.ok_as(
        "alice",
        Change::CreateTeam {
            org: "acme".into(),
            team: "fe".into(),
            name: "Front".into(),
        },
    );
    // carol is not an org member.
    let r = assert_unchanged_after(&f, "alice", team_member("acme", "fe", "carol"));
    assert!(matches!(r, Refusal::FailedPrecondition { .. }), "{r}");
    // A personal app cannot be granted to a team.
    f.ok_as(
        "alice",
        Change::CreateApp {
            id: "mine".into(),
            owner: Owner::User("alice".into()),
            name: "M".into(),
            labels: vec![],
        },
    );
    let r = assert_unchanged_after(
        &f,
        "alice",
        Change::GrantApp {
            org: "acme".into(),
            team: "fe".into(),
            app: "mine".into(),
        },
    );
    assert!(matches!(r, Refusal::FailedPrecondition { .. }), "{r}");
    let r = assert_unchanged_after(
        &f,
        "alice",
        Change::CreateTeam {
            org: "acme".into(),
            team: "fe".into(),
            name: "X".into(),
        },
    );
    assert!(matches!(r, Refusal::AlreadyExists { .. }), "{r}");
    f.ok_as("alice", team_member("acme", "fe", "bob"));
    let r = assert_unchanged_after(&f, "alice", team_member("acme", "fe", "bob"));
    assert!(matches!(r, Refusal::AlreadyExists { .. }), "{r}");
    let r = assert_unchanged_after(&f, "alice", team_member("acme", "nope", "bob"));
    assert!(matches!(r, Refusal::NotFound { .. }), "{r}");
}

#[test]
fn apps_are_created_deleted_and_transferred() {
    let f = acme();
    let a = f.ok_as("alice", org_app("web", "acme"));
    assert_eq!(
        a.index_ops,
        vec![IndexOp::AddApp {
            org: "acme".into(),
            app: "web".into(),
            labels: vec![]
        }]
    );
    let personal = Change::CreateApp {
        id: "sandbox".into(),
        owner: Owner::User("bob".into()),
        name: "Sandbox".into(),
        labels: vec!["hipaa".into()],
    };
    let a = f.ok_as("bob", personal);
    assert!(a.index_ops.is_empty());
    let apps = f
        .store
        .list_apps(&Owner::User("bob".into()), "", 0)
        .unwrap()
        .items;
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].labels, vec!["hipaa".to_string()]);

    // bob owns the app but is only org_user in acme: no app:transfer there.
    let transfer = Change::TransferApp {
        app: "sandbox".into(),
        to_org: "acme".into(),
        rename: Some("Prod".into()),
    };
    let r = assert_unchanged_after(&f, "bob", transfer.clone());
    assert!(
        matches!(&r, Refusal::PermissionDenied { org, .. } if org == "acme"),
        "{r}"
    );
    f.ok_as(
        "alice",
        Change::ChangeRole {
            org: "acme".into(),
            user: "bob".into(),
            role: "org_contributor".into(),
        },
    );
    let a = f.ok_as("bob", transfer);
    assert_eq!(
        a.index_ops,
        vec![IndexOp::AddApp {
            org: "acme".into(),
            app: "sandbox".into(),
            // The labels travel with the app.
            labels: vec!["hipaa".into()]
        }]
    );
    let app = f.store.get_app("sandbox").unwrap().unwrap();
    assert_eq!(
        (app.owner, app.name.as_str()),
        (Owner::Org("acme".into()), "Prod")
    );
    assert!(
        f.store
            .list_apps(&Owner::User("bob".into()), "", 0)
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        f.store
            .list_apps(&Owner::Org("acme".into()), "", 0)
            .unwrap()
            .items
            .len(),
        2
    );

    // Deleting an org app revokes its grants.
    f.ok_as(
        "alice",
        Change::CreateTeam {
            org: "acme".into(),
            team: "fe".into(),
            name: "F".into(),
        },
    );
    f.ok_as(
        "alice",
        Change::GrantApp {
            org: "acme".into(),
            team: "fe".into(),
            app: "web".into(),
        },
    );
    let a = f.ok_as("alice", Change::DeleteApp { id: "web".into() });
    assert_eq!(
        a.index_ops,
        vec![IndexOp::RemoveApp {
            org: "acme".into(),
            app: "web".into(),
        }]
    );
    assert!(
        f.store
            .list_team_grants("acme", "fe", "", 0)
            .unwrap()
            .items
            .is_empty()
    );
    assert!(f.store.get_app("web").unwrap().is_none());
}

#[test]
fn personal_apps_belong_to_their_owner_only() {
    let f = acme();
    let theirs = Change::CreateApp {
        id: "x".into(),
        owner: Owner::User("alice".into()),
        name: "X".into(),
        labels: vec![],
    };
    let r = assert_unchanged_after(&f, "bob", theirs);
    assert!(matches!(r, Refusal::PermissionDenied { .. }), "{r}");
    f.ok_as(
        "alice",
        Change::CreateApp {
            id: "x".into(),
            owner: Owner::User("alice".into()),
            name: "X".into(),
            labels: vec![],
        },
    );
    let r = assert_unchanged_after(&f, "bob", Change::DeleteApp { id: "x".into() });
    assert!(matches!(r, Refusal::PermissionDenied { .. }), "{r}");
    f.ok_as("alice", Change::DeleteApp { id: "x".into() });
}

#[test]
fn permission_denied_names_the_permission_and_org() {
    let f = acme();
    let r = assert_unchanged_after(&f, "bob", add("acme", "bob", "admin"));
    assert_eq!(
        r,
        Refusal::PermissionDenied {
            permission: "`member:manage` on `org`".into(),
            org: "acme".into()
        }
    );
    assert!(
        r.to_string().contains("member:manage") && r.to_string().contains("acme"),
        "{r}"
    );
    let r = assert_unchanged_after(&f, "bob", org_app("web", "acme"));
    assert!(matches!(&r, Refusal::PermissionDenied { permission, .. } if permission.contains("app:create")));
}

#[test]
fn each_refusal_kind_leaves_the_store_unchanged() {
    let f = acme();
    let r = assert_unchanged_after(&f, "alice", add("acme", "Not Valid", "org_user"));
    assert!(
        matches!(&r, Refusal::InvalidArgument { field, .. } if field == "user"),
        "{r}"
    );
    let r = assert_unchanged_after(&f, "alice", add("acme", "bob", "wizard"));
    assert!(
        matches!(&r, Refusal::InvalidArgument { field, .. } if field == "role"),
        "{r}"
    );
    let r = assert_unchanged_after(&f, "alice", add("acme", "zed", "org_user"));
    assert!(
        matches!(&r, Refusal::NotFound { what } if what.contains("zed")),
        "{r}"
    );
    let r = assert_unchanged_after(&f, "alice", add("acme", "bob", "org_user"));
    assert!(matches!(r, Refusal::AlreadyExists { .. }), "{r}");
    let r = assert_unchanged_after(&f, "alice", create_org("acme"));
    assert!(matches!(r, Refusal::AlreadyExists { .. }), "{r}");
    let r = assert_unchanged_after(&f, "nobody", create_org("other"));
    assert!(matches!(r, Refusal::NotFound { .. }), "{r}");
    let r = assert_unchanged_after(&f, "alice", Change::DeleteApp { id: "ghost".into() });
    assert!(matches!(r, Refusal::NotFound { .. }), "{r}");
    let r = assert_unchanged_after(
        &f,
        "alice",
        Change::Import {
            counts: Default::default(),
        },
    );
    assert!(matches!(r, Refusal::InvalidArgument { .. }), "{r}");
}

#[test]
fn membership_limit_caps_new_members() {
    let f = acme();
    f.ok_as("carol", user("carol"));
    f.ok_as("dave", user("dave"));
    let mut upd = update_org("acme");
    if let Change::UpdateOrg { settings, .. } = &mut upd {
        *settings = Some(OrgSettings {
            membership_limit: Some(3),
            deletable: true,
            ..Default::default()
        });
    }
    f.ok_as("alice", upd);
    f.ok_as("alice", add("acme", "carol", "org_user"));
    let r = assert_unchanged_after(&f, "alice", add("acme", "dave", "org_user"));
    assert!(
        matches!(&r, Refusal::FailedPrecondition { reason } if reason.contains("limit of 3")),
        "{r}"
    );
}

#[test]
fn revisions_are_gap_free_across_refusals() {
    let f = acme();
    let start = f.store.revision().unwrap();
    let _ = f.try_as("bob", add("acme", "bob", "admin"));
    let _ = f.try_as("alice", add("acme", "ghost", "admin"));
    f.ok_as("carol", user("carol"));
    let _ = f.try_as("alice", add("acme", "carol", "nope"));
    let last = f.ok_as("alice", add("acme", "carol", "org_user"));
    assert_eq!(last.revision, start + 2);
    let log = f.store.changes_since(0, 0).unwrap();
    let revisions: Vec<u64> = log.iter().map(|r| r.revision).collect();
    assert_eq!(revisions, (1..=start + 2).collect::<Vec<_>>());
    assert_eq!(log.last().unwrap().actor, "alice");
    assert_eq!(f.store.changes_since(start, 1).unwrap().len(), 1);
    assert_eq!(f.index.revision(), start + 2);
}

#[test]
fn apply_is_deterministic_for_the_same_changes() {
    // Two stores fed the same change log end in byte-identical exports.
    let a = Fixture::with_demo();
    let b = Fixture::new();
    for record in a.store.changes_since(0, 0).unwrap() {
        b.store
            .apply_and_index(
                record.envelope(),
                &warden::directory::ApplyContext::trusted(),
                &b.index,
            )
            .unwrap();
    }
    assert_eq!(
        a.store.export().unwrap().to_json().unwrap(),
        b.store.export().unwrap().to_json().unwrap()
    );
}

#[test]
fn a_newer_change_format_halts_instead_of_being_refused() {
    let f = acme();
    let before = f.store.changes_since(0, 0).unwrap();
    let mut env = warden::directory::ChangeEnvelope::new("alice", 9_000, add("acme", "carol", "org_user"));
    env.format = warden::directory::CHANGE_FORMAT + 1;
    let ctx = warden::directory::ApplyContext::trusted();
    match f.store.apply_and_index(env.clone(), &ctx, &f.index) {
        Err(ApplyError::UnsupportedFormat { found, supported }) => {
            assert_eq!(found, warden::directory::CHANGE_FORMAT + 1);
            assert_eq!(supported, warden::directory::CHANGE_FORMAT);
        }
        other => panic!("a newer format must stop the caller, got {other:?}"),
    }
    // An older (unknown) format is refused the same way by every build.
    env.format = 0;
    assert!(matches!(
        refusal(f.store.apply_and_index(env, &ctx, &f.index)),
        Refusal::InvalidArgument { .. }
    ));
    assert_eq!(
        f.store.changes_since(0, 0).unwrap(),
        before,
        "nothing was written"
    );
}

#[test]
fn the_change_log_keeps_the_operator_bit_and_reads_records_without_it() {
    let f = Fixture::new();
    let ctx = warden::directory::ApplyContext::trusted();
    let env = warden::directory::ChangeEnvelope::new("alice", 5, user("alice"))
        .as_operator(true)
        .with_policy("abc");
    f.store.apply_and_index(env.clone(), &ctx, &f.index).unwrap();
    let authorize = |_: &str, _: &str, _: &str, _: &str| true;
    let plain = warden::directory::ApplyContext::new(&authorize, &warden::directory::is_default_role);
    f.store
        .apply_and_index(
            warden::directory::ChangeEnvelope::new("bob", 6, user("bob")),
            &plain,
            &f.index,
        )
        .unwrap();
    let log = f.store.changes_since(0, 0).unwrap();
    assert!(log[0].operator);
    assert_eq!(log[0].policy.as_deref(), Some("abc"));
    assert_eq!(log[0].envelope(), env);
    assert!(!log[1].operator);
    assert!(!log[1].envelope().operator);
    // A record written before the operator bit existed still reads, as not the operator's.
    let old = r#"{"revision":1,"format":1,"actor":"alice","at_ms":5,
        "change":{"type":"delete_org","id":"acme"}}"#;
    let rec: warden::store::ChangeRecord = serde_json::from_str(old).unwrap();
    assert!(!rec.operator);
    assert_eq!(rec.request_id, None);
    assert_eq!(rec.policy, None);
}

#[test]
fn one_pinned_policy_judges_a_write_even_when_a_reload_lands_mid_write() {
    use std::sync::Arc;
    use warden::engine::Engine;
    use warden::policy::{DEFAULT_ENGINE, DEFAULT_MODEL, DEFAULT_POLICY};
    let before = Arc::new(warden::policy::load_defaults().unwrap());
    // The same policy without the admins' rights on the org itself (managing members).
    let stripped: String = DEFAULT_POLICY
        .lines()
        .filter(|l| !l.starts_with("p, role:admin, org,"))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = warden::policy::parse_engine_config("engine.toml", DEFAULT_ENGINE).unwrap();
    let after = Arc::new(
        warden::policy::compile_texts("model.conf", DEFAULT_MODEL, "policy.csv", &stripped, &config).unwrap(),
    );
    let f = Fixture::new();
    let engine = Engine::new(
        before.clone(),
        Arc::new(warden::engine::index::DirectoryIndex::new()),
    );
    let trusted = warden::directory::ApplyContext::trusted();
    for change in [user("alice"), user("bob"), user("carol"), create_org("acme")] {
        f.store
            .apply_and_index(
                warden::directory::ChangeEnvelope::new("alice", 1, change),
                &trusted,
                engine.index(),
            )
            .unwrap();
    }
    // The reload lands after the write pinned `before`: the write is judged by `before` alone.
    let applied = warden::store::with_policy_context(&engine, &before, false, |ctx| {
        engine.swap_policy(after.clone());
        f.store.apply_and_index(
            warden::directory::ChangeEnvelope::new("alice", 2, add("acme", "bob", "org_user")),
            ctx,
            engine.index(),
        )
    });
    assert!(applied.is_ok(), "{applied:?}");
    // The next write pins `after`, which denies it.
    let refused = warden::store::with_policy_context(&engine, &engine.policy(), false, |ctx| {
        f.store.apply_and_index(
            warden::directory::ChangeEnvelope::new("alice", 3, add("acme", "carol", "org_user")),
            ctx,
            engine.index(),
        )
    });
    assert!(matches!(refusal(refused), Refusal::PermissionDenied { .. }));
}
