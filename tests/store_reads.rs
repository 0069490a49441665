//! Paginated lists, member search and page-token validation.

use crate::store_support;

use store_support::*;
use warden::directory::{Owner, Refusal};
use warden::store::ApplyError;

fn big_org() -> Fixture {
    let f = Fixture::new();
    f.ok_as("root", user("root"));
    f.ok_as("root", create_org("big"));
    for i in 0..25 {
        let id = format!("m{i:02}");
        f.ok_as(&id, user(&id));
        f.ok_as("root", add("big", &id, "org_user"));
    }
    f
}

#[test]
fn members_page_through_without_gaps_or_repeats() {
    let f = big_org();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = f.store.list_members("big", "", &token, 10).unwrap();
        pages += 1;
        seen.extend(page.items.into_iter().map(|m| m.membership.user));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (0..25).map(|i| format!("m{i:02}")).collect();
    expected.push("root".into());
    assert_eq!(seen, expected);
}

#[test]
fn exact_page_has_no_next_token() {
    let f = big_org();
    let page = f.store.list_members("big", "", "", 26).unwrap();
    assert_eq!(page.items.len(), 26);
    assert!(page.next_page_token.is_empty());
}

#[test]
fn member_search_matches_id_email_and_username() {
    let f = big_org();
    f.ok_as(
        "zed",
        warden::directory::Change::UpsertUser {
            id: "zed".into(),
            email: "Z@Corp.io".into(),
            username: Some("Zorro".into()),
            email_verified: None,
        },
    );
    f.ok_as("root", add("big", "zed", "org_user"));
    let by = |q: &str| -> Vec<String> {
        f.store
            .list_members("big", q, "", 0)
            .unwrap()
            .items
            .into_iter()
            .map(|m| m.membership.user)
            .collect()
    };
    assert_eq!(by("corp.IO"), vec!["zed"]);
    assert_eq!(by("zorr"), vec!["zed"]);
    assert_eq!(by("m1"), (10..20).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(by("nobody-here").is_empty());
    // Search and pagination together.
    let first = f.store.list_members("big", "m1", "", 4).unwrap();
    let second = f
        .store
        .list_members("big", "m1", &first.next_page_token, 4)
        .unwrap();
    assert_eq!(second.items[0].membership.user, "m14");
}

#[test]
fn bad_page_tokens_are_invalid_arguments() {
    let f = big_org();
    for bad in ["not-hex", "zz", "c3"] {
        let result = if bad == "c3" {
            // Valid hex, invalid UTF-8.
            f.store.list_orgs(bad, 0).map(|_| ())
        } else {
            f.store.list_members("big", "", bad, 0).map(|_| ())
        };
        match result {
            Err(ApplyError::Refused(Refusal::InvalidArgument { field, .. })) => {
                assert_eq!(field, "page_token")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn orgs_teams_apps_and_user_orgs_list_in_order() {
    let f = Fixture::with_demo();
    let orgs = f.store.list_orgs("", 1).unwrap();
    assert_eq!(orgs.items[0].id, "acme");
    let rest = f.store.list_orgs(&orgs.next_page_token, 1).unwrap();
    assert_eq!(rest.items[0].id, "globex");
    assert!(rest.next_page_token.is_empty());
    assert_eq!(f.store.list_teams("acme", "", 0).unwrap().items[0].id, "frontend");
    let apps: Vec<String> = f
        .store
        .list_apps(&Owner::Org("acme".into()), "", 0)
        .unwrap()
        .items
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(apps, vec!["api", "web"]);
    let alice_orgs = f.store.list_user_orgs("alice", "", 0).unwrap().items;
    assert_eq!(alice_orgs.len(), 1);
    assert_eq!(alice_orgs[0].org, "acme");
    assert!(f.store.list_orgs("", 5000).unwrap().items.len() == 2);
}
