//! Cluster faults (issue 13): network partitions made by a TCP proxy in the test process
//! (`common::proxy`, no root, no iptables) between sidecars and NATS and between NATS
//! nodes, and `warden policy publish`.
//!
//! What a user would check: a sidecar cut off from NATS refuses writes with UNAVAILABLE
//! ("directory log unreachable") within its bounded wait, keeps answering checks from its
//! last state, shows the log unreachable and stays behind the others (a `min_revision`
//! beyond it is FAILED_PRECONDITION), and after the heal holds the same directory as the
//! others; with one NATS node isolated (the stream leader: its routes and every sidecar's
//! link to it cut) the sidecars keep writing through the other two, nothing is lost or
//! applied twice, and the node rejoins. `warden policy publish` writes one epoch, says so,
//! and a second publish of the same files writes nothing.
//!
//! The cluster tests run one at a time, with those of `cluster.rs` (one lock).

use crate::common;

use common::cluster::{
    Nats, add_member_req, add_retrying, assert_converged, connect_all, create_org, digest, policy_entries,
    serial, sidecar_via_proxies, sidecars, status, with_id,
};
use common::directory::{Clients, assert_refused};
use common::proxy::{Mode, Proxy};
use common::{Daemon, WARDEN, Workdir, runtime};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use warden::api::pb;

/// Wait (generously) until `cond` holds, polling; `what` names it in the failure.
async fn wait_until<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !cond().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP server that echoes, counting the bytes it received.
async fn echo_server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    count.fetch_add(n, Ordering::SeqCst);
                    if s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, received)
}

/// A connection through `proxy` that echoes `msg` back.
async fn round_trip(s: &mut tokio::net::TcpStream, msg: &[u8]) {
    s.write_all(msg).await.expect("write");
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).await.expect("echo");
    assert_eq!(back, msg);
}

/// Read until the connection closes (EOF or reset); what was read.
async fn read_to_close(s: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), async {
        let mut buf = [0u8; 256];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was never closed");
    got
}

/// The proxy itself: `pass` forwards, `blackhole` forwards nothing on old and new
/// connections while keeping them open, and closes them when the link comes back; `cut`
/// closes existing connections and every new one.
#[test]
fn the_test_proxy_passes_blackholes_and_cuts() {
    runtime().block_on(async {
        let (target, received) = echo_server().await;
        let proxy = Proxy::start(target);
        let addr = format!("127.0.0.1:{}", proxy.port());
        let mut old = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        round_trip(&mut old, b"ping").await;
        assert_eq!(received.load(Ordering::SeqCst), 4);

        proxy.set(Mode::Blackhole);
        old.write_all(b"lost")
            .await
            .expect("a blackholed link takes writes");
        let mut new = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("a blackholed link accepts connections");
        new.write_all(b"lost too").await.expect("write");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while proxy.held() < 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the proxy never took the connection"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        proxy.set(Mode::Pass);
        assert!(read_to_close(&mut old).await.is_empty(), "nothing came back");
        assert!(read_to_close(&mut new).await.is_empty(), "nothing came back");
        assert_eq!(
            received.load(Ordering::SeqCst),
            4,
            "no blackholed byte reached the target"
        );

        let mut live = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        round_trip(&mut live, b"again").await;
        proxy.set(Mode::Cut);
        assert!(read_to_close(&mut live).await.is_empty(), "cut closes it");
        // A new connection is closed before a byte passes.
        if let Ok(mut refused) = tokio::net::TcpStream::connect(&addr).await {
            let _ = refused.write_all(b"x").await;
            assert!(read_to_close(&mut refused).await.is_empty());
        }
        assert_eq!(received.load(Ordering::SeqCst), 9);
        proxy.set(Mode::Pass);
        let mut healed = tokio::net::TcpStream::connect(&addr).await.expect("connect");
        round_trip(&mut healed, b"back").await;
    });
}

async fn check_at(c: &mut Clients, user: &str, min_revision: u64) -> Result<bool, tonic::Status> {
    c.authz
        .check(pb::CheckRequest {
            subject: user.into(),
            org: "acme".into(),
            resource: "org".into(),
            action: "org:read".into(),
            min_revision,
            explain: false,
        })
        .await
        .map(|r| r.into_inner().allowed)
}

/// `warden admin status` of `daemon`, its standard output.
fn admin_status(daemon: &Daemon) -> String {
    let out = Command::new(WARDEN)
        .args(["admin", "status", "--connect", &daemon.work.unix_target()])
        .output()
        .expect("warden admin status");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 13, partitions: one sidecar cut off from every NATS node. Its writes get
/// UNAVAILABLE ("directory log unreachable") within its bounded wait, its checks answer
/// from its last state, its status shows the log unreachable and its position behind the
/// log the others write to, a check asking for a revision beyond it is
/// FAILED_PRECONDITION; after the heal it catches up to the same directory at the same
/// revision and writes again.
#[test]
fn a_sidecar_cut_off_from_nats_refuses_writes_serves_checks_and_catches_up() {
    let _one = serial();
    let nats = Nats::start();
    let (cut, links) = sidecar_via_proxies(&nats, "2s");
    let mut daemons = vec![cut];
    daemons.extend(sidecars(&nats, 2, "10s"));
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs[1].upsert_user("alice", "alice").await;
        create_org(&mut cs[1], "alice", "acme").await;
        for u in ["bob", "carol", "dave"] {
            cs[2].upsert_user("alice", u).await;
        }
        let bob = cs[1]
            .add_member("alice", "acme", "bob", "org_user")
            .await
            .expect("add bob");
        assert_converged(&mut cs).await;
        let before = status(&mut cs[0]).await;

        for p in &links {
            p.set(Mode::Cut);
        }
        wait_until("the cut sidecar's status shows the log unreachable", || {
            let mut c = cs[0].clone();
            async move { !status(&mut c).await.log_reachable }
        })
        .await;

        let started = Instant::now();
        let write = tokio::time::timeout(
            Duration::from_secs(60),
            cs[0].add_member("alice", "acme", "carol", "org_user"),
        )
        .await
        .expect("a write answers within its bounded wait");
        eprintln!(
            "cut sidecar answered its write after {:?} (write timeout 2s)",
            started.elapsed()
        );
        assert_refused(
            write,
            Code::Unavailable,
            &["directory log unreachable; checks are unaffected"],
        );

        // The others keep writing.
        let dave = cs[1]
            .add_member("alice", "acme", "dave", "org_user")
            .await
            .expect("add dave on a connected sidecar");
        assert!(check_at(&mut cs[2], "dave", dave).await.expect("check"));

        // The cut sidecar answers checks from its last state.
        assert_eq!(check_at(&mut cs[0], "bob", bob).await.ok(), Some(true));
        assert_eq!(check_at(&mut cs[0], "dave", 0).await.ok(), Some(false));
        assert_eq!(
            check_at(&mut cs[0], "dave", dave).await.map_err(|s| s.code()),
            Err(Code::FailedPrecondition),
            "a revision beyond its state is not answered from a stale one"
        );
        let a = status(&mut cs[0]).await;
        let b = status(&mut cs[1]).await;
        assert!(!a.log_reachable && b.log_reachable, "{a:?} / {b:?}");
        assert_eq!(a.applied_seq, before.applied_seq, "nothing reached it");
        assert!(
            b.log_last_seq > a.applied_seq,
            "the log moved on without it: {a:?} / {b:?}"
        );
        eprintln!(
            "cut sidecar at entry {}, the log at {} ({} behind)",
            a.applied_seq,
            b.log_last_seq,
            b.log_last_seq - a.applied_seq
        );
        let shown = admin_status(&daemons[0]);
        assert!(
            shown.contains("log UNREACHABLE (checks unaffected; writes fail)"),
            "{shown}"
        );

        for p in &links {
            p.set(Mode::Pass);
        }
        let revision = assert_converged(&mut cs).await;
        assert_eq!(revision, dave, "caught up to the last write");
        assert_eq!(digest(&mut cs[0]).await, digest(&mut cs[1]).await);
        assert_eq!(check_at(&mut cs[0], "dave", revision).await.ok(), Some(true));
        // It writes again (retrying, same request id, while it reconnects).
        let carol = add_retrying(&mut cs[0], "acme", "carol", "carol-after-heal")
            .await
            .expect("add carol after the heal");
        assert_eq!(carol, revision + 1, "the refused write never landed");
        assert_eq!(assert_converged(&mut cs).await, carol);
        assert!(!admin_status(&daemons[0]).contains("UNREACHABLE"));
    });
}

/// The stream's leader and replica names (nN), and which replicas are current, asked
/// through a client of the nodes other than `avoid` (an isolated one cannot answer).
async fn stream_cluster(nats: &Nats, avoid: Option<u8>) -> (String, Vec<(String, bool)>) {
    let urls = nats.url_list();
    let (user, pass) = warden::cluster::url_user(&urls).expect("user and password");
    let avoid = avoid.map(|n| format!(":{}", nats.client_port(n)));
    let urls: Vec<String> = urls
        .into_iter()
        .filter(|u| avoid.as_ref().is_none_or(|a| !u.ends_with(a)))
        .collect();
    let client = async_nats::ConnectOptions::with_user_and_password(user, pass)
        .connect(urls)
        .await
        .expect("raw NATS client");
    let js = async_nats::jetstream::new(client);
    let info = js
        .get_stream("warden")
        .await
        .expect("stream")
        .get_info()
        .await
        .expect("stream info");
    let cluster = info.cluster.expect("a clustered stream");
    let leader = cluster.leader.unwrap_or_default();
    let replicas = cluster
        .replicas
        .into_iter()
        .map(|r| (r.name, r.current))
        .collect();
    (leader, replicas)
}

/// Issue 13, partitions: the stream leader's NATS node isolated (its routes cut both ways,
/// and every sidecar's link to it, as a machine that drops off the network). The sidecars,
/// which know all three URLs, move to the other two nodes; a write that meets the move
/// or the new leader's election is answered UNAVAILABLE and retried with the same request
/// id; once moved, writes on every sidecar succeed at the first attempt. Every add lands
/// exactly once, and after the heal the node rejoins (routes back, its replica current)
/// and all sidecars hold the same directory.
#[test]
fn an_isolated_nats_node_leaves_writes_to_the_majority_and_rejoins() {
    let _one = serial();
    let (nats, routes) = Nats::start_with_links();
    let mut daemons = Vec::new();
    let mut client_links: Vec<Vec<Proxy>> = Vec::new();
    for _ in 0..3 {
        let (d, links) = sidecar_via_proxies(&nats, "5s");
        daemons.push(d);
        client_links.push(links);
    }
    let node_name = |n: u8| format!("n{n}");
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs[0].upsert_user("alice", "alice").await;
        create_org(&mut cs[0], "alice", "acme").await;
        let users: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
        for u in &users {
            cs[1].upsert_user("alice", u).await;
        }
        let base = assert_converged(&mut cs).await;
        let n = &nats;
        for node in 1..=3u8 {
            let others: Vec<String> = (1..=3u8).filter(|o| *o != node).map(node_name).collect();
            let others = &others;
            wait_until("every node routes to both others", move || async move {
                n.routes_of(node) == *others
            })
            .await;
        }

        let (leader, _) = stream_cluster(&nats, None).await;
        let isolated: u8 = leader.trim_start_matches('n').parse().expect("node name nN");
        routes.isolate(isolated, Mode::Cut);
        for links in &client_links {
            links[usize::from(isolated) - 1].set(Mode::Cut);
        }
        wait_until("the isolated node has no routes", move || async move {
            n.routes_of(isolated).is_empty()
        })
        .await;
        eprintln!("isolated the stream leader {leader}");

        // Through the move and the election: retried with the same request id.
        let started = Instant::now();
        for (i, u) in users[..6].iter().enumerate() {
            add_retrying(&mut cs[i % 3], "acme", u, &format!("iso-{u}"))
                .await
                .unwrap_or_else(|s| panic!("add {u}: {s:?}"));
        }
        eprintln!(
            "the first writes after the isolation took {:?} (retries included)",
            started.elapsed()
        );
        // Every sidecar is on the majority now: no write error.
        for (i, u) in users[6..].iter().enumerate() {
            cs[i % 3]
                .member
                .add_member(with_id(
                    add_member_req("alice", "acme", u, "org_user"),
                    &format!("iso-{u}"),
                ))
                .await
                .unwrap_or_else(|s| panic!("add {u} on sidecar {}: {s:?}", i % 3));
        }
        assert!(
            nats.routes_of(isolated).is_empty(),
            "the node stayed isolated while the majority wrote"
        );
        let (new_leader, _) = stream_cluster(&nats, Some(isolated)).await;
        assert_ne!(new_leader, leader, "the majority elected another leader");

        routes.heal();
        for links in &client_links {
            links[usize::from(isolated) - 1].set(Mode::Pass);
        }
        let others: Vec<String> = (1..=3u8).filter(|o| *o != isolated).map(node_name).collect();
        let others = &others;
        wait_until(
            "the isolated node routes to both others again",
            move || async move { n.routes_of(isolated) == *others },
        )
        .await;
        let leader = &leader;
        wait_until("the rejoined node's replica is current", move || async move {
            let (now, replicas) = stream_cluster(n, None).await;
            now == *leader || replicas.iter().any(|(name, current)| name == leader && *current)
        })
        .await;

        let revision = assert_converged(&mut cs).await;
        assert_eq!(
            revision,
            base + users.len() as u64,
            "each add applied exactly once"
        );
        for c in cs.iter_mut() {
            for u in &users {
                assert_eq!(check_at(c, u, revision).await.ok(), Some(true), "{u} missing");
            }
        }
    });
}

/// `warden policy publish --connect ADDR`: (exit status, stdout, stderr).
fn publish(target: &str) -> (std::process::ExitStatus, String, String) {
    let out = Command::new(WARDEN)
        .args(["policy", "publish", "--connect", target])
        .output()
        .expect("warden policy publish");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `warden policy publish` writes the sidecar's files as one policy epoch that every
/// sidecar then serves; publishing the same files again (on the same or another sidecar)
/// writes nothing and says so; over TCP it is refused (an operator call).
#[test]
fn policy_publish_writes_one_epoch_and_the_same_files_again_nothing() {
    let _one = serial();
    let nats = Nats::start();
    let daemons = sidecars(&nats, 2, "10s");
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        assert!(status(&mut cs[0]).await.epoch_hash.is_empty(), "no epoch yet");
        let files = cs[0]
            .admin
            .get_policy_status(pb::GetPolicyStatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .content_hash;

        let (code, out, err) = publish(&daemons[0].work.unix_target());
        assert!(code.success(), "{out}{err}");
        assert!(
            out.contains("published policy epoch") && out.contains(&format!("policy-{files}")),
            "{out}"
        );
        for c in cs.iter_mut() {
            let s = status(c).await;
            assert_eq!(s.epoch_hash, files, "every sidecar serves the epoch: {s:?}");
        }
        assert_eq!(policy_entries(&nats).await, 1);

        for d in &daemons {
            let (code, out, err) = publish(&d.work.unix_target());
            assert!(code.success(), "{out}{err}");
            assert!(
                out.contains("already published") && out.contains("nothing was written"),
                "{out}"
            );
        }
        assert_eq!(policy_entries(&nats).await, 1, "the same files, one entry");

        let (code, _, err) = publish(&daemons[0].work.tcp_target());
        assert_eq!(code.code(), Some(2), "{err}");
        assert!(err.contains("Unix socket"), "{err}");
    });
}

/// Without `--cluster` there is nothing to publish to, and the command says so.
#[test]
fn policy_publish_on_a_single_node_says_there_is_no_cluster() {
    let daemon = Workdir::new().start();
    let (code, out, err) = publish(&daemon.work.unix_target());
    assert_eq!(code.code(), Some(2), "{out}{err}");
    assert!(
        err.contains("no cluster") && err.contains("warden admin reload"),
        "{err}"
    );
}

/// The audit log of a cluster sidecar says in its header that it holds every change
/// applied from the log, and does (a write made on another sidecar is in it); `warden
/// import` refuses that sidecar's data directory (its store applied the directory log),
/// naming `warden cluster init`, and writes nothing.
#[test]
fn a_cluster_sidecars_audit_log_has_every_write_and_import_refuses_its_store() {
    let _one = serial();
    let nats = Nats::start();
    let mut work = Workdir::new();
    work.env
        .push(("WARDEN_LOG".into(), "info,warden::cluster=debug".into()));
    let audit = work.dir.path().join("audit.jsonl");
    let urls = nats.urls();
    let audited = work.start_with(&[
        "--cluster",
        &urls,
        "--cluster-write-timeout",
        "10s",
        "--audit-log",
        audit.to_str().expect("utf-8 path"),
    ]);
    let mut daemons = vec![audited];
    daemons.extend(sidecars(&nats, 1, "10s"));
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        let rev = cs[1].upsert_user("bob", "bob").await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&audit).unwrap_or_default();
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).expect("audit lines are JSON"))
                .collect();
            if lines
                .iter()
                .any(|l| l["revision"].as_u64() == Some(rev) && l["actor"] == "bob")
            {
                assert_eq!(lines[0]["mode"], "cluster", "{text}");
                assert!(
                    lines[0]["writes"]
                        .as_str()
                        .is_some_and(|w| w.contains("other sidecars' writes included")),
                    "{text}"
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the other sidecar's write never reached this one's audit log: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    daemons[0].stop();
    let data = daemons[0].work.data();
    let export = |to: &std::path::Path| {
        let out = Command::new(WARDEN)
            .args(["export", "--data"])
            .arg(&data)
            .arg("--output")
            .arg(to)
            .output()
            .expect("warden export");
        assert!(out.status.success(), "{out:?}");
        std::fs::read_to_string(to).expect("export")
    };
    let dump = daemons[0].work.dir.path().join("dump.json");
    let before = export(&dump);
    let out = Command::new(WARDEN)
        .args(["import", "--data"])
        .arg(&data)
        .arg(&dump)
        .output()
        .expect("warden import");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("cluster sidecar's store") && err.contains("warden cluster init"),
        "{err}"
    );
    let after = export(&daemons[0].work.dir.path().join("again.json"));
    assert_eq!(after, before, "nothing written");
}
