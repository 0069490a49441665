//! The lifecycle changes in the store itself: replaying the change log on a second store
//! reproduces the directory byte for byte (apply is deterministic), and deleting an org takes
//! its invitations, domains and membership requests with it.

use crate::store_support;

use store_support::*;
use warden::directory::invitation::code_hash;
use warden::directory::{ApplyContext, Change, ChangeEnvelope, Enrollment, Invitee};

/// Apply as `actor` at `at` with full rights, as the operator.
fn trusted(f: &Fixture, actor: &str, at: u64, change: Change) {
    let what = format!("{change:?}");
    f.store
        .apply_and_index(
            ChangeEnvelope::new(actor, at, change),
            &ApplyContext::trusted(),
            &f.index,
        )
        .unwrap_or_else(|e| panic!("{what}: {e}"));
}

fn lifecycle() -> Fixture {
    let f = Fixture::new();
    let mut at = 1_000;
    let mut next = |f: &Fixture, actor: &str, change: Change| {
        at += 1;
        trusted(f, actor, at, change);
    };
    for u in ["alice", "bob", "carol"] {
        next(&f, u, user(u));
    }
    next(
        &f,
        "dave",
        Change::UpsertUser {
            id: "dave".into(),
            email: "dave@acme.com".into(),
            username: None,
            // The operator vouches for it: dave joins through the acme.com domain.
            email_verified: Some(true),
        },
    );
    next(&f, "alice", create_org("acme"));
    next(
        &f,
        "alice",
        Change::CreateInvitation {
            id: "inv-1".into(),
            org: "acme".into(),
            invitee: Invitee::User("bob".into()),
            role: "org_user".into(),
            teams: vec![],
            code_sha256: code_hash("code-1"),
            expires_at_ms: 1_000_000,
        },
    );
    next(
        &f,
        "alice",
        Change::CreateInvitation {
            id: "inv-2".into(),
            org: "acme".into(),
            invitee: Invitee::Email("carol@example.com".into()),
            role: "org_contributor".into(),
            teams: vec![],
            code_sha256: code_hash("code-2"),
            expires_at_ms: 1_000_000,
        },
    );
    next(
        &f,
        "bob",
        Change::AcceptInvitation {
            code_sha256: code_hash("code-1"),
            terms_version: None,
        },
    );
    next(
        &f,
        "alice",
        Change::AddDomain {
            org: "acme".into(),
            domain: "acme.com".into(),
            verification_token: "tok".into(),
            enrollment: Enrollment::AutomaticSuggestion,
            role: "org_user".into(),
        },
    );
    next(
        &f,
        "alice",
        Change::VerifyDomain {
            org: "acme".into(),
            domain: "acme.com".into(),
            verification_token: "tok".into(),
        },
    );
    next(
        &f,
        "dave",
        Change::RequestMembership {
            id: "req-1".into(),
            org: "acme".into(),
        },
    );
    next(
        &f,
        "alice",
        Change::ApproveMembershipRequest {
            org: "acme".into(),
            id: "req-1".into(),
            role: None,
        },
    );
    next(&f, "bob", Change::LeaveOrg { org: "acme".into() });
    f
}

#[test]
fn replaying_lifecycle_changes_reproduces_the_directory() {
    let a = lifecycle();
    let b = Fixture::new();
    for record in a.store.changes_since(0, 0).unwrap() {
        b.store
            .apply_and_index(record.envelope(), &ApplyContext::trusted(), &b.index)
            .unwrap();
    }
    let dump = a.store.export().unwrap();
    assert_eq!(dump.invitations.len(), 2);
    assert_eq!((dump.domains.len(), dump.membership_requests.len()), (1, 1));
    assert_eq!(
        dump.to_json().unwrap(),
        b.store.export().unwrap().to_json().unwrap()
    );
    // dave joined through the approved request, bob left after accepting.
    assert!(a.store.get_membership("acme", "dave").unwrap().is_some());
    assert!(a.store.get_membership("acme", "bob").unwrap().is_none());
}

#[test]
fn deleting_an_org_takes_its_invitations_domains_and_requests() {
    let f = lifecycle();
    trusted(&f, "alice", 5_000, org_app("web", "acme"));
    trusted(&f, "alice", 5_001, Change::ForceDeleteOrg { id: "acme".into() });
    let dump = f.store.export().unwrap();
    assert!(dump.orgs.is_empty() && dump.apps.is_empty(), "{dump:?}");
    assert!(dump.invitations.is_empty() && dump.domains.is_empty() && dump.membership_requests.is_empty());
    // The code index went too: the code is now unknown, not "accepted".
    assert!(
        f.store
            .invitation_by_code(&code_hash("code-1"))
            .unwrap()
            .is_none()
    );
    // The org id can be reused from scratch.
    trusted(&f, "carol", 5_002, create_org("acme"));
}
