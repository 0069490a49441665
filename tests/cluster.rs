//! Cluster mode (issue 13): three real `warden serve --cluster` sidecars, each with its own
//! data directory, against three real NATS JetStream nodes started by
//! `scripts/nats-cluster.sh` (a temporary directory and a free port range per test).
//!
//! What a user would check: every sidecar ends with the same directory (digest) at the same
//! revision, its index consistent; a write answered on one sidecar is seen on another that
//! asks for its revision; racing writes get the single-node refusals; a retry with the same
//! request id returns the first outcome and writes nothing twice; the log being down fails
//! writes with UNAVAILABLE while checks keep answering, and writes resume when it returns;
//! a sidecar or a NATS node killed with -9 loses and duplicates nothing; garbage on
//! `warden.changes` is refused the same way everywhere, and an entry needing a newer build
//! halts the apply loop while checks continue.
//!
//! The cluster tests run one at a time (each starts 3 NATS nodes and 3 sidecars).

use crate::common;

use common::cluster::{
    Nats, add_member_req, add_retrying, assert_converged, connect_all, create_org, policy_entries, serial,
    sidecars, status, with_id,
};
use common::directory::{Clients, clients};
use common::{Daemon, runtime};
use std::time::Duration;
use tonic::{Code, Status};
use warden::api::pb;
use warden::api::pb::invitation_service_client::InvitationServiceClient;
use warden::api::pb::security_service_client::SecurityServiceClient;

/// Read-your-writes across sidecars, a retry by request id on another sidecar, and
/// convergence. The number of rounds is `WARDEN_CLUSTER_ROUNDS` (default 20, about half
/// a minute in debug); the 10k rounds:
/// `WARDEN_CLUSTER_ROUNDS=10000 cargo test --release --test integration cluster::writes_on_one_sidecar_are_read_on_another`.
#[test]
fn writes_on_one_sidecar_are_read_on_another() {
    let _one = serial();
    let nats = Nats::start();
    let daemons = sidecars(&nats, 3, "10s");
    let rounds: usize = std::env::var("WARDEN_CLUSTER_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs[0].upsert_user("alice", "alice").await;
        create_org(&mut cs[1], "alice", "acme").await;
        let mut stale = 0;
        for i in 0..rounds {
            let (w, r) = (i % 3, (i + 1) % 3);
            let user = format!("u{i}");
            cs[w].upsert_user("alice", &user).await;
            let rev = cs[w]
                .add_member("alice", "acme", &user, "org_user")
                .await
                .expect("AddMember");
            if !cs[r].check(&user, "acme", "org", "org:read", rev).await {
                stale += 1;
            }
            let name = format!("Acme {i}");
            let rev = cs[w]
                .org
                .update_org(pb::UpdateOrgRequest {
                    actor: "alice".into(),
                    org_id: "acme".into(),
                    name: Some(name.clone()),
                    ..Default::default()
                })
                .await
                .expect("UpdateOrg")
                .into_inner()
                .revision;
            let read = cs[r]
                .org
                .get_org(pb::GetOrgRequest {
                    org_id: "acme".into(),
                    actor: "alice".into(),
                    min_revision: rev,
                })
                .await
                .expect("GetOrg")
                .into_inner();
            if read.name != name {
                stale += 1;
            }
        }
        assert_eq!(stale, 0, "stale answers over {rounds} rounds");

        // A retry with the same request id, even on another sidecar, gets the first
        // outcome and writes nothing.
        cs[0].upsert_user("alice", "zed").await;
        let first = cs[0]
            .member
            .add_member(with_id(
                add_member_req("alice", "acme", "zed", "org_user"),
                "add-zed-1",
            ))
            .await
            .expect("AddMember")
            .into_inner()
            .revision;
        let before = assert_converged(&mut cs).await;
        let again = cs[2]
            .member
            .add_member(with_id(
                add_member_req("alice", "acme", "zed", "org_user"),
                "add-zed-1",
            ))
            .await
            .expect("the retry gets the original outcome, not ALREADY_EXISTS")
            .into_inner()
            .revision;
        assert_eq!(again, first);
        assert_eq!(assert_converged(&mut cs).await, before, "the retry wrote nothing");

        // The same request id sent to all three sidecars at the same moment (a client that
        // retries on another pod before the first answer): while one publish of the id is
        // being stored, the log answers the others "duplicate message id is in process".
        // Every caller gets the one outcome, none an error.
        for i in 0..10 {
            let user = format!("dup{i}");
            cs[0].upsert_user("alice", &user).await;
            let id = format!("add-{user}");
            let req = || with_id(add_member_req("alice", "acme", &user, "org_user"), &id);
            let (mut m0, mut m1, mut m2) = (cs[0].member.clone(), cs[1].member.clone(), cs[2].member.clone());
            let (r0, r1, r2) = tokio::join!(m0.add_member(req()), m1.add_member(req()), m2.add_member(req()));
            let revs: Vec<u64> = [r0, r1, r2]
                .into_iter()
                .map(|r| {
                    r.expect("one request id sent three times at once gets its outcome")
                        .into_inner()
                        .revision
                })
                .collect();
            assert!(
                revs.iter().all(|r| *r == revs[0]),
                "one outcome for {id}: {revs:?}"
            );
        }
        assert_converged(&mut cs).await;

        // The largest valid change (16 SAML IdPs of 64 KiB of XML, several MiB once
        // JSON-encoded, over NATS's default 1 MiB payload) goes through the log.
        let xml = format!("<{}", "\u{1}".repeat(64 * 1024 - 1));
        let idps: Vec<pb::IdentityProvider> = (0..16)
            .map(|i| pb::IdentityProvider {
                idp_id: format!("idp{i}"),
                config: Some(pb::identity_provider::Config::Saml(pb::SamlProvider {
                    metadata_url: String::new(),
                    metadata_xml: xml.clone(),
                })),
                auto_join_role: String::new(),
            })
            .collect();
        let unix = |i: usize| daemons[i].work.unix_target();
        let mut sec0 =
            SecurityServiceClient::new(warden::api::client::connect(&unix(0)).await.expect("unix"));
        let mut sec2 =
            SecurityServiceClient::new(warden::api::client::connect(&unix(2)).await.expect("unix"));
        let rev = sec0
            .set_security_settings(pb::SetSecuritySettingsRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                password: None,
                identity_providers: idps,
            })
            .await
            .expect("the largest valid change is applied")
            .into_inner()
            .revision;
        let read = sec2
            .get_security_settings(pb::GetSecuritySettingsRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                min_revision: rev,
            })
            .await
            .expect("GetSecuritySettings")
            .into_inner();
        assert_eq!(read.identity_providers.len(), 16);

        // A request id of the wrong shape is refused by name.
        let bad = cs[0]
            .member
            .add_member(with_id(add_member_req("alice", "acme", "zed", "admin"), "a b"))
            .await;
        common::directory::assert_refused(bad, Code::InvalidArgument, &["x-warden-request-id"]);
    });
}

/// Writers on all three sidecars racing on one org: last-admin demotions, one invitation
/// accepted twice, a membership-limit race, deleting an org while a member is added, and a
/// burst of adds. Every refusal reaches its submitter with
/// the single-node code, every acknowledged write is present, and all sidecars end equal.
#[test]
fn racing_writers_on_three_sidecars_converge() {
    let _one = serial();
    let nats = Nats::start();
    let daemons = sidecars(&nats, 3, "10s");
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        for u in ["alice", "bob", "carol", "dave"] {
            cs[0].upsert_user(u, u).await;
        }
        create_org(&mut cs[0], "alice", "acme").await;
        cs[0]
            .add_member("alice", "acme", "bob", "admin")
            .await
            .expect("bob admin");

        // alice demotes bob on A while bob demotes alice on B: both cannot win (the org
        // would have no admin, or the loser is no longer an admin when judged).
        let demote = |mut c: Clients, actor: &'static str, user: &'static str| async move {
            c.member
                .update_member_role(pb::UpdateMemberRoleRequest {
                    actor: actor.into(),
                    org_id: "acme".into(),
                    user_id: user.into(),
                    role: "org_user".into(),
                })
                .await
                .map(|r| r.into_inner().revision)
        };
        let (a, b) = tokio::join!(
            demote(cs[0].clone(), "alice", "bob"),
            demote(cs[1].clone(), "bob", "alice")
        );
        let results = [a, b];
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "exactly one demotion wins: {results:?}");
        for r in &results {
            if let Err(s) = r {
                assert!(
                    matches!(s.code(), Code::PermissionDenied | Code::FailedPrecondition),
                    "the loser gets the single-node refusal: {s:?}"
                );
            }
        }
        let admin = if results[0].is_ok() { "alice" } else { "bob" };

        // A burst of adds from all three sidecars at once.
        let mut tasks = Vec::new();
        for i in 0..24 {
            let mut c = cs[i % 3].clone();
            let user = format!("m{i}");
            tasks.push(tokio::spawn(async move {
                c.upsert_user(admin, &user).await;
                let r = c.add_member(admin, "acme", &user, "org_user").await;
                (user, r)
            }));
        }
        let mut acked = Vec::new();
        for t in tasks {
            let (user, r) = t.await.expect("task");
            acked.push((user, r.expect("an add by an admin succeeds")));
        }

        // The same invitation accepted on two sidecars at once: one member, one refusal.
        let daemon_unix = |i: usize| daemons[i].work.unix_target();
        let mut inv0 =
            InvitationServiceClient::new(warden::api::client::connect(&daemon_unix(0)).await.expect("unix"));
        let code = inv0
            .create_invitation(pb::CreateInvitationRequest {
                actor: admin.into(),
                org_id: "acme".into(),
                invitee: Some(pb::InvitationSpec {
                    user_id: "dave".into(),
                    role: "org_user".into(),
                    ..Default::default()
                }),
                expires_in_seconds: 3600,
            })
            .await
            .expect("CreateInvitation")
            .into_inner()
            .code;
        let accept = |i: usize| {
            let target = daemon_unix(i);
            let code = code.clone();
            async move {
                let mut inv =
                    InvitationServiceClient::new(warden::api::client::connect(&target).await.expect("unix"));
                inv.accept_invitation(pb::AcceptInvitationRequest {
                    actor: "dave".into(),
                    code,
                    accepted_terms_version: String::new(),
                })
                .await
            }
        };
        let (x, y) = tokio::join!(accept(1), accept(2));
        let accepted = [x, y];
        assert_eq!(
            accepted.iter().filter(|r| r.is_ok()).count(),
            1,
            "one acceptance wins: {accepted:?}"
        );
        for r in &accepted {
            if let Err(s) = r {
                assert!(
                    matches!(s.code(), Code::FailedPrecondition | Code::AlreadyExists),
                    "the second acceptance gets the single-node refusal: {s:?}"
                );
            }
        }

        // A membership-limit race: an org of at most 3 members (its creator and two more)
        // and six adds from the three sidecars at once.
        cs[1]
            .org
            .create_org(pb::CreateOrgRequest {
                actor: "carol".into(),
                org_id: "small".into(),
                name: "Small".into(),
                settings: Some(pb::OrgSettings {
                    max_memberships: Some(3),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("CreateOrg small");
        let mut tasks = Vec::new();
        for i in 0..6 {
            let mut c = cs[i % 3].clone();
            let user = format!("m{i}");
            tasks.push(tokio::spawn(async move {
                c.add_member("carol", "small", &user, "org_user").await
            }));
        }
        let mut joined = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => joined += 1,
                Err(s) => {
                    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
                    assert!(s.message().contains("membership limit of 3"), "{s:?}");
                }
            }
        }
        assert_eq!(joined, 2, "exactly the seats the limit leaves");

        // Delete an org on A while C adds a member to it.
        create_org(&mut cs[2], "carol", "doomed").await;
        let del = {
            let mut c = cs[0].clone();
            async move {
                c.org
                    .delete_org(pb::DeleteOrgRequest {
                        actor: "carol".into(),
                        org_id: "doomed".into(),
                        force: true,
                    })
                    .await
            }
        };
        let add = {
            let mut c = cs[2].clone();
            async move { c.add_member("carol", "doomed", "dave", "org_user").await }
        };
        let (del, add) = tokio::join!(del, add);
        let deleted_at = match &del {
            Ok(r) => r.get_ref().revision,
            Err(s) => panic!("deleting the org fails only by mistake: {s:?}"),
        };
        if let Err(s) = &add
            && s.code() == Code::NotFound
        {
            // It landed just before the delete, which this sidecar applied before it read the
            // member back for the answer: the single-node answer to that race too.
            let written: u64 = s
                .message()
                .split("written at revision ")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("a NOT_FOUND add names the revision it was written at: {s:?}"));
            assert!(written < deleted_at, "{s:?}, deleted at {deleted_at}");
        } else if let Err(s) = &add {
            // It landed after the delete: the refusal is the one the same write gets on the
            // deleted org anywhere (carol's rights went with the org: PERMISSION_DENIED, as on
            // a single node, where authorization comes before the org's existence).
            let again = cs[1]
                .add_member("carol", "doomed", "dave", "org_user")
                .await
                .expect_err("the org is gone");
            assert_eq!(
                (s.code(), s.message()),
                (again.code(), again.message()),
                "an add after the delete gets the refusal the deleted org gives"
            );
        }

        let revision = assert_converged(&mut cs).await;
        for c in cs.iter_mut() {
            for (user, rev) in &acked {
                assert!(
                    c.check(user, "acme", "org", "org:read", *rev).await,
                    "acknowledged member {user} missing"
                );
            }
            assert!(!c.check("dave", "doomed", "org", "org:read", revision).await);
        }
    });
}

/// Garbage published on `warden.changes` by a raw NATS client is refused the same way on
/// every sidecar (no panic, writes go on); an entry needing a newer apply version halts
/// every sidecar's loop while checks keep answering.
#[test]
fn garbage_is_refused_everywhere_and_a_newer_entry_halts() {
    let _one = serial();
    let nats = Nats::start();
    let daemons = sidecars(&nats, 3, "5s");
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs[0].upsert_user("alice", "alice").await;
        create_org(&mut cs[0], "alice", "acme").await;

        let client = nats.raw_client().await;
        let js = async_nats::jetstream::new(client);
        let send = |payload: &'static [u8], version: Option<&'static str>| {
            let js = js.clone();
            async move {
                let mut m = async_nats::jetstream::message::PublishMessage::build().payload(payload.into());
                if let Some(v) = version {
                    m = m.header("Warden-Apply-Version", v);
                }
                js.send_publish("warden.changes", m)
                    .await
                    .expect("publish")
                    .await
                    .expect("ack")
                    .sequence
            }
        };
        send(b"\x00\xffnot json", None).await;
        send(b"{\"format\":1}", Some("1")).await;
        send(b"[]", Some("one")).await;
        for (i, c) in cs.iter_mut().enumerate() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let s = status(c).await;
                if s.refused_entries == 3 {
                    assert!(s.halted.is_empty(), "{s:?}");
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "sidecar {i}: {s:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Writes go on after the garbage.
        let rev = cs[1].add_member("alice", "acme", "alice", "admin").await;
        common::directory::assert_refused(rev, Code::AlreadyExists, &["alice"]);
        cs[2].upsert_user("alice", "bob").await;
        let rev = cs[2]
            .add_member("alice", "acme", "bob", "org_user")
            .await
            .expect("add bob");
        assert_converged(&mut cs).await;

        // An entry for a newer build halts every loop; checks keep answering.
        send(b"{}", Some("2")).await;
        for (i, c) in cs.iter_mut().enumerate() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            loop {
                let s = status(c).await;
                if !s.halted.is_empty() {
                    assert!(s.halted.contains("apply version 2"), "{s:?}");
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "sidecar {i} never halted: {s:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(c.check("bob", "acme", "org", "org:read", rev).await);
            assert!(!c.check("carol", "acme", "org", "org:read", 0).await);
        }
        let write = cs[0].add_member("alice", "acme", "alice", "org_user").await;
        common::directory::assert_refused(write, Code::Unavailable, &["stopped applying"]);
    });
}

/// Every NATS node down: writes fail with UNAVAILABLE and say checks are unaffected,
/// checks answer as before, status shows the log unreachable; when NATS is back every
/// sidecar writes again.
#[test]
fn all_nats_down_fails_writes_not_checks_then_resumes() {
    let _one = serial();
    let nats = Nats::start();
    let daemons = sidecars(&nats, 3, "2s");
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs[0].upsert_user("alice", "alice").await;
        create_org(&mut cs[0], "alice", "acme").await;
        cs[0].upsert_user("alice", "bob").await;
        let rev = cs[0]
            .add_member("alice", "acme", "bob", "org_user")
            .await
            .expect("add bob");
        assert_converged(&mut cs).await;

        for n in 1..=3 {
            nats.kill(n);
        }
        // Until a sidecar's client notices the connection is gone, an entry handed to it may
        // still be sent on reconnect, so such a write is rightly answered "may have landed"
        // (`cluster::a_write_answered_too_late_…`); once the status shows the log
        // unreachable, nothing is handed over and the answer is "unreachable".
        for c in cs.iter_mut() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while status(c).await.log_reachable {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "status never showed the log unreachable"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        for c in cs.iter_mut() {
            let write = tokio::time::timeout(
                Duration::from_secs(60),
                c.add_member("alice", "acme", "carol", "org_user"),
            )
            .await
            .expect("a write answers within its bounded wait");
            common::directory::assert_refused(
                write,
                Code::Unavailable,
                &["directory log unreachable; checks are unaffected"],
            );
            assert!(c.check("bob", "acme", "org", "org:read", rev).await);
            assert!(!c.check("carol", "acme", "org", "org:read", 0).await);
        }

        nats.script(&["start"]);
        for (i, c) in cs.iter_mut().enumerate() {
            let user = format!("back{i}");
            let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
            loop {
                let r = c
                    .user
                    .upsert_user(with_id(
                        pb::UpsertUserRequest {
                            actor: "alice".into(),
                            user_id: user.clone(),
                            email: format!("{user}@example.com"),
                            ..Default::default()
                        },
                        &format!("back-{i}"),
                    ))
                    .await;
                match r {
                    Ok(_) => break,
                    Err(s) => {
                        assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                        assert!(
                            tokio::time::Instant::now() < deadline,
                            "writes never resumed: {s:?}"
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        assert_converged(&mut cs).await;
    });
}

/// A sidecar killed with -9 in the middle of writes comes back at its last applied entry,
/// applies nothing twice, and every retry with the same request id returns the original
/// outcome; killing a NATS follower and then the stream leader loses and duplicates nothing.
#[test]
fn kill9_of_a_sidecar_and_of_nats_nodes_loses_and_duplicates_nothing() {
    let _one = serial();
    let nats = Nats::start();
    let mut daemons = sidecars(&nats, 3, "5s");
    let rt = runtime();
    let users: Vec<String> = (0..30).map(|i| format!("k{i}")).collect();
    let base = rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs[0].upsert_user("alice", "alice").await;
        create_org(&mut cs[0], "alice", "acme").await;
        for u in &users {
            cs[1].upsert_user("alice", u).await;
        }
        assert_converged(&mut cs).await
    });

    // Writes on A while A is killed: some are answered, the rest fail at the caller.
    let target = daemons[0].work.unix_target();
    let writer = {
        let users = users[..10].to_vec();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let mut c = clients(&target).await;
                let mut answered = Vec::new();
                for u in &users {
                    let r = c
                        .member
                        .add_member(with_id(
                            add_member_req("alice", "acme", u, "org_user"),
                            &format!("add-{u}"),
                        ))
                        .await;
                    answered.push(r.map(|r| r.into_inner().revision).ok());
                }
                answered
            })
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    daemons[0].kill9();
    let first: Vec<Option<u64>> = writer.join().expect("writer thread");
    daemons[0].restart();

    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        // Every id retried on the restarted sidecar: answered ones give their revision.
        for (u, first) in users[..10].iter().zip(&first) {
            let again = add_retrying(&mut cs[0], "acme", u, &format!("add-{u}")).await;
            let again = again.unwrap_or_else(|s| panic!("retry of {u}: {s:?}"));
            if let Some(first) = first {
                assert_eq!(again, *first, "retry of {u} returns the original outcome");
            }
        }

        // Kill a NATS follower of the stream, then its leader, while writing.
        let client = nats.raw_client().await;
        let js = async_nats::jetstream::new(client);
        let leader = || {
            let js = js.clone();
            async move {
                let info = js
                    .get_stream("warden")
                    .await
                    .expect("stream")
                    .get_info()
                    .await
                    .expect("info");
                let cluster = info.cluster.expect("a clustered stream");
                let leader = cluster.leader.expect("a leader");
                let replicas: Vec<String> = cluster.replicas.into_iter().map(|r| r.name).collect();
                (leader, replicas)
            }
        };
        let node = |name: &str| -> u8 { name.trim_start_matches('n').parse().expect("node name nN") };
        let (lead, followers) = leader().await;
        nats.kill(node(&followers[0]));
        for (i, u) in users[10..20].iter().enumerate() {
            add_retrying(&mut cs[i % 3], "acme", u, &format!("add-{u}"))
                .await
                .expect("add with a follower down");
        }
        nats.start_node(node(&followers[0]));
        nats.kill(node(&lead));
        for (i, u) in users[20..].iter().enumerate() {
            add_retrying(&mut cs[i % 3], "acme", u, &format!("add-{u}"))
                .await
                .expect("add after the leader died");
        }
        nats.start_node(node(&lead));

        let revision = assert_converged(&mut cs).await;
        assert_eq!(
            revision,
            base + users.len() as u64,
            "each add applied exactly once"
        );
        for c in cs.iter_mut() {
            for u in &users {
                assert!(
                    c.check(u, "acme", "org", "org:read", revision).await,
                    "{u} missing"
                );
            }
        }
    });
}

/// Replace a policy file the way editors do (write a temp file, rename it over).
fn write_rename(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp-edit");
    std::fs::write(&tmp, text).expect("write policy file");
    std::fs::rename(&tmp, path).expect("rename policy file");
}

/// `policy.csv` of `daemon` without the lines that contain any of `drop`.
fn drop_rules(daemon: &Daemon, drop: &[&str]) {
    let path = daemon.work.policies().join("policy.csv");
    let text = std::fs::read_to_string(&path).expect("read policy.csv");
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !drop.iter().any(|d| l.contains(d)))
        .collect();
    assert!(kept.len() < text.lines().count(), "the edit must remove a rule");
    write_rename(&path, &(kept.join("\n") + "\n"));
}

const CONTRIBUTOR_CREATES_APPS: &str = "p, role:org_contributor, org, app:create, org, allow";
const CONTRIBUTOR_READS_USAGE: &str = "p, role:org_contributor, org, usage:read, org, allow";

/// Wait until every sidecar serves the same policy epoch, other than `not`; its hash.
async fn same_epoch(cs: &mut [Clients], not: &str) -> (String, u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut seen = Vec::new();
        for c in cs.iter_mut() {
            let s = status(c).await;
            seen.push((s.epoch_hash, s.epoch_seq));
        }
        if !seen[0].0.is_empty() && seen[0].0 != not && seen.iter().all(|s| *s == seen[0]) {
            return seen[0].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sidecars never agreed on a new policy epoch: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_app(c: &mut Clients, actor: &str, app: &str) -> Result<u64, Status> {
    c.app
        .create_app(pb::CreateAppRequest {
            actor: actor.into(),
            app_id: app.into(),
            owner: Some(pb::Owner {
                owner: Some(pb::owner::Owner::OrgId("acme".into())),
            }),
            name: app.into(),
            labels: vec![],
        })
        .await
        .map(|r| r.into_inner().revision)
}

/// Issue 13, policy epochs: an edit of ONE sidecar's policy files (a contributor loses
/// `app:create`) is published as one `warden.policy` entry and all three sidecars switch at
/// that log position, while contributors race app creations on all three: every sidecar ends
/// with the same directory at the same revision, and checks on the two unedited sidecars now
/// deny. The same edit given to all three sidecars is still one entry.
#[test]
fn a_policy_edit_on_one_sidecar_switches_all_three_at_one_log_position() {
    let _one = serial();
    let nats = Nats::start();
    let daemons = sidecars(&nats, 3, "10s");
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        for u in ["alice", "carl"] {
            cs[0].upsert_user(u, u).await;
        }
        create_org(&mut cs[0], "alice", "acme").await;
        let rev = cs[0]
            .add_member("alice", "acme", "carl", "org_contributor")
            .await
            .expect("carl contributor");
        for c in cs.iter_mut() {
            assert!(c.check("carl", "acme", "org", "app:create", rev).await);
            assert!(
                status(c).await.epoch_hash.is_empty(),
                "no epoch before the first edit"
            );
        }

        // Contributors create apps on all three sidecars while A's files are edited.
        let mut tasks = Vec::new();
        for (s, c) in cs.iter().enumerate() {
            let mut c = c.clone();
            tasks.push(tokio::spawn(async move {
                let mut outcomes = Vec::new();
                for i in 0..40 {
                    let app = format!("app-{s}-{i}");
                    let r = create_app(&mut c, "carl", &app).await;
                    outcomes.push((app, r.map_err(|e| (e.code(), e.message().to_string()))));
                }
                outcomes
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop_rules(&daemons[0], &[CONTRIBUTOR_CREATES_APPS]);
        let (first, first_seq) = same_epoch(&mut cs, "").await;
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.extend(t.await.expect("writer task"));
        }
        for (app, r) in &outcomes {
            if let Err((code, message)) = r {
                assert_eq!(*code, Code::PermissionDenied, "{app}: {message}");
            }
        }
        let revision = assert_converged(&mut cs).await;
        // Every acknowledged app is on every sidecar, every refused one on none.
        for c in cs.iter_mut() {
            for (app, r) in &outcomes {
                let found = c
                    .app
                    .get_app(pb::GetAppRequest {
                        app_id: app.clone(),
                        actor: "alice".into(),
                        min_revision: revision,
                    })
                    .await;
                assert_eq!(found.is_ok(), r.is_ok(), "{app}: {r:?} vs {found:?}");
            }
        }
        assert_eq!(policy_entries(&nats).await, 1, "one edit, one epoch entry");

        // The two unedited sidecars serve the log's epoch, not their files.
        for (i, c) in cs.iter_mut().enumerate() {
            assert!(
                !c.check("carl", "acme", "org", "app:create", revision).await,
                "sidecar {i} still allows what the epoch removed"
            );
            let s = status(c).await;
            assert_eq!(s.policy_drift.is_empty(), i == 0, "sidecar {i}: {s:?}");
            let refused = create_app(c, "carl", &format!("late-{i}")).await;
            assert_eq!(
                refused.map_err(|e| e.code()),
                Err(Code::PermissionDenied),
                "sidecar {i}"
            );
        }

        // The same edit on all three: one more entry, and no drift anywhere.
        for d in &daemons {
            drop_rules(d, &[CONTRIBUTOR_CREATES_APPS, CONTRIBUTOR_READS_USAGE]);
        }
        let (second, second_seq) = same_epoch(&mut cs, &first).await;
        assert!(second_seq > first_seq);
        for c in cs.iter_mut() {
            assert!(!c.check("carl", "acme", "org", "usage:read", 0).await);
            let s = status(c).await;
            assert_eq!(s.policy_drift, "", "{s:?}");
        }
        assert_converged(&mut cs).await;
        // Late publishers (a content check, a slow watcher) find the epoch already theirs.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            policy_entries(&nats).await,
            2,
            "three identical edits, one epoch entry"
        );
        assert_eq!(same_epoch(&mut cs, &first).await, (second, second_seq));
    });
}

/// Issue 13, policy epochs: a sidecar that was down while the policy changed comes back
/// with its old files: it adopts the log's epoch as it catches up, reports drift (status and
/// log), publishes nothing, and its checks follow the log; after a
/// second restart it serves the epoch recorded in its store.
#[test]
fn a_sidecar_restarted_with_stale_files_reports_drift_and_follows_the_log() {
    let _one = serial();
    let nats = Nats::start();
    let mut daemons = sidecars(&nats, 3, "10s");
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        for u in ["alice", "carl"] {
            cs[0].upsert_user(u, u).await;
        }
        create_org(&mut cs[0], "alice", "acme").await;
        cs[0]
            .add_member("alice", "acme", "carl", "org_contributor")
            .await
            .expect("carl contributor");
        assert_converged(&mut cs).await;
    });
    daemons[2].stop();
    drop_rules(&daemons[0], &[CONTRIBUTOR_CREATES_APPS]);
    let epoch = runtime().block_on(async {
        let mut cs = connect_all(&daemons[..2]).await;
        let epoch = same_epoch(&mut cs, "").await;
        // A write after the epoch, so the restarted sidecar replays past it.
        assert_eq!(
            create_app(&mut cs[1], "carl", "after")
                .await
                .map_err(|e| e.code()),
            Err(Code::PermissionDenied)
        );
        epoch
    });
    for round in 0..2 {
        if round == 1 {
            daemons[2].stop();
        }
        daemons[2].restart();
        runtime().block_on(async {
            let mut c = clients(&daemons[2].work.unix_target()).await;
            // Straight after the restart: the stored epoch (round 1) or none yet (round 0).
            let s = status(&mut c).await;
            if round == 1 {
                assert_eq!((s.epoch_hash.clone(), s.epoch_seq), epoch.clone());
                assert!(!c.check("carl", "acme", "org", "app:create", 0).await);
            }
            let mut cs = connect_all(&daemons).await;
            let revision = assert_converged(&mut cs).await;
            assert_eq!(same_epoch(&mut cs, "").await, epoch, "round {round}");
            let s = status(&mut c).await;
            assert!(
                s.policy_drift.contains(&epoch.0),
                "round {round}: drift names the log's epoch: {s:?}"
            );
            assert!(!c.check("carl", "acme", "org", "app:create", revision).await);
            assert_eq!(
                create_app(&mut c, "carl", &format!("stale-{round}"))
                    .await
                    .map_err(|e| e.code()),
                Err(Code::PermissionDenied),
                "round {round}: the stale sidecar judges writes with the log's epoch"
            );
            // Its files were not published: the cluster keeps the newer epoch.
            assert_eq!(policy_entries(&nats).await, 1);
            let s0 = status(&mut cs[0]).await;
            assert_eq!((s0.epoch_hash, s0.epoch_seq), epoch.clone());
            assert_eq!(s0.policy_drift, "");
        });
    }
    assert!(
        daemons[2].logs().contains("policy drift"),
        "the drift is in the log:\n{}",
        daemons[2].logs()
    );
}

/// Outcome unknown: a sidecar whose write timeout is shorter than the log's round trip
/// (1 ms) answers its writes UNAVAILABLE saying the write may have landed and to retry
/// with the same request id, never "unreachable" for an entry it handed to the log; the
/// retry, on another sidecar and on the same one, returns the original outcome, and each
/// change is in the directory exactly once.
#[test]
fn a_write_answered_too_late_may_have_landed_and_its_retry_returns_the_outcome() {
    let _one = serial();
    let nats = Nats::start();
    let mut daemons = sidecars(&nats, 2, "10s");
    daemons.extend(sidecars(&nats, 1, "1ms"));
    let rt = runtime();
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs[0].upsert_user("alice", "alice").await;
        create_org(&mut cs[0], "alice", "acme").await;
        let users: Vec<String> = (0..10).map(|i| format!("late{i}")).collect();
        for u in &users {
            cs[1].upsert_user("alice", u).await;
        }
        let base = assert_converged(&mut cs).await;

        let mut unknown = Vec::new();
        let mut answered = Vec::new();
        for u in &users {
            let id = format!("late-add-{u}");
            match cs[2]
                .member
                .add_member(with_id(add_member_req("alice", "acme", u, "org_user"), &id))
                .await
            {
                Ok(r) => answered.push((id, r.into_inner().revision)),
                Err(s) => {
                    assert_eq!(s.code(), Code::Unavailable, "{s:?}");
                    assert!(
                        s.message().contains("may have landed")
                            && s.message().contains("retry with the same request id")
                            && s.message().contains(&id),
                        "the answer must say the write may have landed: {s:?}"
                    );
                    unknown.push(id);
                }
            }
        }
        eprintln!(
            "1 ms write timeout: {} of {} writes answered \"may have landed\"",
            unknown.len(),
            users.len()
        );
        assert!(
            !unknown.is_empty(),
            "with a 1 ms write timeout no write was left without an answer: {answered:?}"
        );

        // The retry on a sidecar with a normal timeout gives the outcome; the same id on
        // the 1 ms sidecar, once it has applied the entry, gives the same one.
        let mut revisions = Vec::new();
        for id in &unknown {
            let user = id.trim_start_matches("late-add-");
            let rev = add_retrying(&mut cs[0], "acme", user, id)
                .await
                .unwrap_or_else(|s| panic!("retry of {id}: {s:?}"));
            let again = add_retrying(&mut cs[2], "acme", user, id)
                .await
                .unwrap_or_else(|s| panic!("retry of {id} on the 1 ms sidecar: {s:?}"));
            assert_eq!(again, rev, "both retries of {id} return the original outcome");
            revisions.push(rev);
        }
        revisions.extend(answered.iter().map(|a| a.1));
        revisions.sort_unstable();
        revisions.dedup();
        assert_eq!(
            revisions.len(),
            users.len(),
            "one revision per add: {revisions:?}"
        );

        let revision = assert_converged(&mut cs).await;
        assert_eq!(
            revision,
            base + users.len() as u64,
            "each add applied exactly once"
        );
        for c in cs.iter_mut() {
            for u in &users {
                assert!(
                    c.check(u, "acme", "org", "org:read", revision).await,
                    "{u} missing"
                );
            }
        }
    });
}

/// A token revoked on one sidecar is denied on the others within the replication lag:
/// allowed on B and C while valid, denied there at the revocation's revision, and denied
/// by a plain check (no `min_revision`) once B and C applied it (the time it took is
/// printed, not asserted).
#[test]
fn a_token_revoked_on_one_sidecar_is_denied_on_the_others() {
    let _one = serial();
    let nats = Nats::start();
    let daemons = sidecars(&nats, 3, "10s");
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs[0].upsert_user("alice", "alice").await;
        create_org(&mut cs[0], "alice", "acme").await;
        let (mut tokens, created) =
            common::cluster::create_read_token(&daemons[0].work.unix_target(), "alice").await;
        let subject = format!("token:{}", created.secret);
        for c in cs.iter_mut() {
            assert!(
                c.check(&subject, "acme", "org", "org:read", created.revision)
                    .await,
                "the token works on every sidecar"
            );
        }
        let token_id = created.token.expect("token").token_id;
        let revoked = tokens
            .revoke_token(pb::RevokeTokenRequest {
                actor: "alice".into(),
                token_id,
            })
            .await
            .expect("RevokeToken")
            .into_inner();
        let started = std::time::Instant::now();
        for (i, c) in cs.iter_mut().enumerate().skip(1) {
            // A plain check, as a caller that does not know the revocation's revision makes.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while c.check(&subject, "acme", "org", "org:read", 0).await {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "sidecar {i} still allows a revoked token"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            eprintln!(
                "sidecar {i} denied the revoked token {:?} after the revocation's answer",
                started.elapsed()
            );
            assert!(
                !c.check(&subject, "acme", "org", "org:read", revoked.revision)
                    .await
            );
        }
        assert!(
            !cs[0].check(&subject, "acme", "org", "org:read", 0).await,
            "denied where it was revoked"
        );
        assert!(
            cs[1]
                .check("alice", "acme", "org", "org:read", revoked.revision)
                .await,
            "alice herself still can"
        );
        assert_converged(&mut cs).await;
    });
}
