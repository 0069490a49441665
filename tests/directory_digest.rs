//! The directory digest: the same directory gives the same digest at the same revision
//! (two stores built by replaying one change log), any change to a directory table changes it,
//! telemetry does not, and the daemon serves it (`AdminService.DirectoryDigest`,
//! `warden admin digest`) as the store computes it.

use crate::common;
use crate::store_support;

use common::directory::clients;
use common::{WARDEN, Workdir, runtime};
use std::collections::BTreeSet;
use store_support::*;
use warden::api::pb;
use warden::directory::{ApplyContext, Change, ChangeEnvelope};
use warden::store::Store;

/// The names of the tables whose digests differ between `a` and `b`.
fn differing(a: &warden::store::DirectoryDigest, b: &warden::store::DirectoryDigest) -> BTreeSet<String> {
    a.tables
        .iter()
        .zip(&b.tables)
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.name.clone())
        .collect()
}

#[test]
fn replicas_built_by_replay_agree_and_every_table_change_shows() {
    let a = Fixture::with_demo();
    let b = Fixture::new();
    for record in a.store.changes_since(0, 0).unwrap() {
        b.store
            .apply_and_index(record.envelope(), &ApplyContext::trusted(), &b.index)
            .unwrap();
    }
    let (da, db) = (a.store.digest().unwrap(), b.store.digest().unwrap());
    assert_eq!(da, db, "the same changes give the same digest");
    assert_eq!(da.revision, a.store.stats().unwrap().revision);
    assert!(da.tables.iter().any(|t| t.entries > 0));

    // Telemetry is not directory state.
    b.store
        .record_usage(20_000, &[("acme".into(), "alice".into(), 7)])
        .unwrap();
    assert_eq!(
        b.store.digest().unwrap().sha256,
        da.sha256,
        "usage counts are not digested"
    );

    // Each change moves the digest, and the tables it names are the ones it wrote.
    let trusted = ApplyContext::trusted();
    let steps: Vec<(Change, &[&str])> = vec![
        (
            Change::RenameTeam {
                org: "acme".into(),
                team: "frontend".into(),
                name: "Front".into(),
            },
            // A change inside an org moves the org's `updated_at` (and its sorted row).
            &["teams", "orgs", "sorted"],
        ),
        (
            Change::SetAppLabels {
                app: "web".into(),
                labels: vec!["public".into()],
            },
            // The org was already stamped at this time; the app's `updated_at` moves.
            &["apps", "sorted"],
        ),
        (
            Change::ChangeRole {
                org: "acme".into(),
                user: "bob".into(),
                role: "admin".into(),
            },
            &["memberships", "org_admins", "sorted"],
        ),
        (
            Change::RemoveTeamMember {
                org: "acme".into(),
                team: "frontend".into(),
                user: "carol".into(),
            },
            &["team_members", "memberships", "sorted"],
        ),
        (
            Change::UpsertUser {
                id: "dave".into(),
                email: "dave@other.example".into(),
                username: None,
                email_verified: None,
            },
            &["users", "users_by_email"],
        ),
    ];
    let mut before = b.store.digest().unwrap();
    for (change, tables) in steps {
        let kind = change.kind();
        b.store
            .apply_and_index(ChangeEnvelope::new("alice", 900, change), &trusted, &b.index)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let after = b.store.digest().unwrap();
        assert_ne!(after.sha256, before.sha256, "{kind} changes the digest");
        assert_eq!(after.revision, before.revision + 1);
        let expected: BTreeSet<String> = tables.iter().map(|t| t.to_string()).collect();
        assert_eq!(differing(&before, &after), expected, "{kind}");
        before = after;
    }
    // The stores now differ, and the digest says where.
    assert_ne!(a.store.digest().unwrap().sha256, before.sha256);
}

#[test]
fn the_daemon_serves_the_stores_digest() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let (rpc, cli) = runtime().block_on(async {
        let mut c = clients(&daemon.work.unix_target()).await;
        c.upsert_user("frank", "frank").await;
        let rpc = c
            .admin
            .directory_digest(pb::DirectoryDigestRequest {})
            .await
            .expect("DirectoryDigest")
            .into_inner();
        assert_eq!(rpc.revision, c.stats().await.revision);
        // It reads every table: an operator call, refused over TCP.
        let mut tcp = clients(&daemon.work.tcp_target()).await;
        let refused = tcp
            .admin
            .directory_digest(pb::DirectoryDigestRequest {})
            .await
            .expect_err("DirectoryDigest over TCP");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        let out = std::process::Command::new(WARDEN)
            .args(["admin", "digest", "--tables", "--connect"])
            .arg(daemon.work.unix_target())
            .output()
            .expect("run warden admin digest");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (rpc, String::from_utf8(out.stdout).unwrap())
    });
    assert!(cli.contains(&format!("revision:    {}", rpc.revision)), "{cli}");
    assert!(cli.contains(&rpc.sha256), "{cli}");
    assert!(cli.contains("memberships"), "{cli}");
    daemon.stop();
    let store = Store::open(daemon.work.data().join("warden.redb")).expect("open the daemon's store");
    let d = store.digest().unwrap();
    assert_eq!(
        (d.revision, d.sha256.as_str()),
        (rpc.revision, rpc.sha256.as_str())
    );
    let names: Vec<&str> = rpc.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, warden::store::DIGESTED_TABLES);
}
