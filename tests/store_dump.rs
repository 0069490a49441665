//! Export and import: round trips, and what an import refuses.

use crate::store_support;

use store_support::*;
use warden::directory::Refusal;
use warden::store::{ApplyError, Dump, Store};

fn fresh() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("w.redb")).unwrap();
    (dir, store)
}

#[test]
fn export_import_export_is_byte_exact_json() {
    let f = Fixture::with_demo();
    let first = f.store.export().unwrap().to_json().unwrap();
    let (_dir, other) = fresh();
    let revision = other
        .import(&Dump::from_json(&first).unwrap(), "ops", 42)
        .unwrap();
    assert_eq!(revision, f.store.revision().unwrap());
    let second = other.export().unwrap().to_json().unwrap();
    assert_eq!(first, second);
    assert_eq!(other.stats().unwrap(), f.store.stats().unwrap());
    let log = other.changes_since(0, 0).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].revision, revision);
    assert!(matches!(log[0].change, warden::directory::Change::Import { ref counts } if counts.users == 5));
}

#[test]
fn export_import_export_is_byte_exact_yaml() {
    let f = Fixture::with_demo();
    let first = f.store.export().unwrap().to_yaml().unwrap();
    let (_dir, other) = fresh();
    other
        .import(&Dump::from_yaml(&first).unwrap(), "ops", 42)
        .unwrap();
    assert_eq!(first, other.export().unwrap().to_yaml().unwrap());
}

#[test]
fn imported_store_keeps_working_and_numbering() {
    let f = Fixture::with_demo();
    let dump = f.store.export().unwrap();
    let g = Fixture::new();
    g.store.import(&dump, "ops", 1).unwrap();
    g.store.load_index(&g.index).unwrap();
    assert_eq!(g.index.read().role_of("acme", "carol"), Some("team_contributor"));
    let next = g.ok_as("alice", add("acme", "erin", "org_user"));
    assert_eq!(next.revision, dump.revision + 1);
}

#[test]
fn import_refuses_a_non_empty_store() {
    let f = Fixture::with_demo();
    let dump = f.store.export().unwrap();
    let before = f.store.export().unwrap();
    match f.store.import(&dump, "ops", 1) {
        Err(ApplyError::Refused(Refusal::FailedPrecondition { .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(f.store.export().unwrap(), before);
}

#[test]
fn import_refuses_broken_references_and_leaves_nothing() {
    let f = Fixture::with_demo();
    let good = f.store.export().unwrap();

    let mut no_user = good.clone();
    no_user.users.retain(|u| u.id != "bob");
    let mut orphan_team_member = good.clone();
    orphan_team_member.memberships.retain(|m| m.user != "carol");
    let mut headless = good.clone();
    headless
        .memberships
        .retain(|m| !(m.org == "globex" && m.role == "admin"));
    let mut foreign_grant = good.clone();
    foreign_grant.team_grants[0].app = "ledger".into();
    // Issue 11, item 5: collaborators are users outside the app's org.
    let mut member_collaborator = good.clone();
    member_collaborator
        .collaborators
        .push(warden::directory::Collaborator {
            app: "api".into(),
            user: "dave".into(),
            role: "admin".into(),
            added_by: "alice".into(),
            added_at_ms: 1,
        });

    for (name, dump) in [
        ("membership of unknown user", no_user),
        ("team member outside the org", orphan_team_member),
        ("org without admin", headless),
        ("grant of another org's app", foreign_grant),
        ("a member as a collaborator of its org's app", member_collaborator),
    ] {
        let (_dir, store) = fresh();
        let err = store
            .import(&dump, "ops", 1)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        assert!(matches!(err, ApplyError::Refused(_)), "{name}: {err}");
        assert_eq!(
            store.stats().unwrap(),
            Default::default(),
            "{name}: left data behind"
        );
    }
}

#[test]
fn malformed_dump_text_is_refused() {
    let err = Dump::from_json("{\"format\": 1,").unwrap_err();
    assert!(
        matches!(&err, Refusal::InvalidArgument { field, .. } if field == "dump"),
        "{err}"
    );
}

#[test]
fn empty_store_round_trips() {
    let (_d1, a) = fresh();
    let dump = a.export().unwrap();
    let (_d2, b) = fresh();
    assert_eq!(b.import(&dump, "ops", 1).unwrap(), 0);
    assert_eq!(b.export().unwrap().to_json().unwrap(), dump.to_json().unwrap());
}
