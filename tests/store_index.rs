//! The index built at startup equals the one built write by write.

use crate::store_support;

use store_support::*;
use warden::directory::Change;
use warden::engine::index::DirectoryIndex;
use warden::store::Store;

/// Every (org, user) pair the store knows, with the index's answer for each.
fn roles(store: &Store, index: &DirectoryIndex) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let page = store.list_orgs(&token, 1).unwrap();
        for org in page.items {
            for m in store.list_members(&org.id, "", "", 1000).unwrap().items {
                let role = index
                    .read()
                    .role_of(&org.id, &m.membership.user)
                    .map(str::to_string);
                assert_eq!(role.as_deref(), Some(m.membership.role.as_str()));
                out.push((org.id.clone(), m.membership.user.clone(), role));
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    out
}

#[test]
fn load_index_matches_incremental_apply() {
    let f = Fixture::with_demo();
    f.ok_as(
        "alice",
        Change::ChangeRole {
            org: "acme".into(),
            user: "dave".into(),
            role: "org_contributor".into(),
        },
    );
    f.ok_as(
        "alice",
        Change::RemoveMember {
            org: "acme".into(),
            user: "bob".into(),
        },
    );
    f.ok_as(
        "erin",
        Change::CreateTeam {
            org: "globex".into(),
            team: "ops".into(),
            name: "Ops".into(),
        },
    );

    let loaded = DirectoryIndex::new();
    let revision = f.store.load_index(&loaded).unwrap();
    assert_eq!(revision, f.store.revision().unwrap());
    assert_eq!(loaded.revision(), f.index.revision());
    let incremental = roles(&f.store, &f.index);
    assert_eq!(incremental, roles(&f.store, &loaded));
    assert_eq!(incremental.len(), 4);
    assert_eq!(loaded.read().role_of("acme", "bob"), None);
    assert_eq!(f.index.read().role_of("acme", "bob"), None);
    let (a, b) = (loaded.read(), f.index.read());
    assert_eq!(
        (a.membership_count(), a.org_count()),
        (b.membership_count(), b.org_count())
    );
}

#[test]
fn load_index_streams_many_memberships() {
    let f = Fixture::new();
    f.ok_as("root", user("root"));
    f.ok_as("root", create_org("big"));
    for i in 0..300 {
        let id = format!("u{i:04}");
        f.ok_as(&id, user(&id));
        f.ok_as("root", add("big", &id, "org_user"));
    }
    let loaded = DirectoryIndex::new();
    f.store.load_index(&loaded).unwrap();
    assert_eq!(loaded.read().membership_count(), 301);
    assert_eq!(loaded.revision(), 602);
}

#[test]
fn demo_directory_has_the_documented_shape() {
    let f = Fixture::with_demo();
    let idx = f.index.read();
    for (org, user, role) in [
        ("acme", "alice", "admin"),
        ("acme", "bob", "org_contributor"),
        ("acme", "carol", "team_contributor"),
        ("acme", "dave", "org_user"),
        ("globex", "erin", "admin"),
    ] {
        assert_eq!(idx.role_of(org, user), Some(role), "{user}@{org}");
    }
    assert_eq!(idx.role_of("acme", "erin"), None);
    drop(idx);
    assert_eq!(
        f.store
            .list_team_members("acme", "frontend", "", 0)
            .unwrap()
            .items,
        vec!["carol".to_string()]
    );
    assert_eq!(
        f.store.list_team_grants("acme", "frontend", "", 0).unwrap().items,
        vec!["web".to_string()]
    );
    assert_eq!(
        f.store.get_app("alice-sandbox").unwrap().unwrap().owner,
        warden::directory::Owner::User("alice".into())
    );
    assert_eq!(
        f.store.get_app("ledger").unwrap().unwrap().owner,
        warden::directory::Owner::Org("globex".into())
    );
    let s = f.store.stats().unwrap();
    assert_eq!((s.users, s.orgs, s.memberships, s.teams, s.apps), (5, 2, 5, 1, 4));
}

/// Issue 11, items 1 and 12: `check_index` compares every fact of the live index with the
/// tables (collaborators, labels and tokens included), from a read snapshot, and names the
/// facts that differ.
#[test]
fn check_index_names_any_stale_entry() {
    use warden::engine::index::{IndexOp, TokenSubject};
    let f = Fixture::with_demo();
    let clean = f.store.check_index(&f.index).unwrap();
    assert!(clean.consistent(), "{clean:?}");
    assert!(clean.differences.is_empty());
    let stale = [
        (
            IndexOp::SetCollaborator {
                app: "billing".into(),
                user: "frank".into(),
                role: "admin".into(),
            },
            "collaborator billing frank role:admin",
        ),
        (
            IndexOp::AddApp {
                org: "acme".into(),
                app: "web".into(),
                labels: vec!["hipaa".into()],
            },
            "label acme app:web label:hipaa",
        ),
        (
            IndexOp::AddToken {
                hash: [7; 32],
                id: "tok_stale".into(),
                subject: TokenSubject::OrgRole {
                    org: "acme".into(),
                    role: "admin".into(),
                },
                scopes: vec!["app:read".into()],
                expires_at_ms: None,
                last_used_ms: 0,
            },
            "token tok_stale 0707070707070707 role:admin acme scopes=app:read expires=never",
        ),
    ];
    for (op, fact) in stale {
        let f = Fixture::with_demo();
        f.index.apply(0, std::slice::from_ref(&op));
        let check = f.store.check_index(&f.index).unwrap();
        assert!(!check.consistent(), "{op:?} went unnoticed: {check:?}");
        assert_eq!(
            check.differences,
            vec![format!("only in the live index: {fact}")],
            "{op:?}"
        );
        assert_eq!(check.live_facts, check.rebuilt_facts + 1);
    }
}
