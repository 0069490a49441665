//! Cluster snapshots, purge and bootstrap (issue 13, "Snapshots and catch-up"), with three
//! real NATS JetStream nodes and real `warden serve --cluster` sidecars.
//!
//! What a user would check: `warden admin snapshot --publish` stores a snapshot and the log
//! is purged behind it; a sidecar started with an empty data directory, and one that was
//! stopped while the log was purged past it (its old file moved aside), both end with the
//! same directory, revision and history as the others; `warden cluster init` turns a
//! single-node directory into a new stream's first snapshot that empty sidecars load; a
//! non-empty store that never followed a log refuses to start in cluster mode; a stream
//! deleted and recreated under the sidecars halts their apply loops with a clear status while
//! checks keep answering.

use crate::common;

use common::cluster::{Nats, assert_converged, connect_all, create_org, digest, serial, sidecars, status};
use common::directory::{Clients, clients};
use common::{Daemon, WARDEN, Workdir, run_to_exit, runtime};
use std::process::Command;
use std::time::Duration;

/// Some directory: `owner`'s org `org` with members m0..m{n}.
async fn seed(c: &mut Clients, owner: &str, org: &str, n: usize) -> u64 {
    c.upsert_user(owner, owner).await;
    let mut rev = create_org(c, owner, org).await;
    for i in 0..n {
        let user = format!("{org}-m{i}");
        c.upsert_user(owner, &user).await;
        rev = c
            .add_member(owner, org, &user, "org_user")
            .await
            .expect("AddMember");
    }
    rev
}

/// Run the `warden` CLI to its end: (success, stdout, stderr).
fn warden(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(WARDEN)
        .args(args)
        .env_remove("WARDEN_CONFIG")
        .output()
        .expect("running warden");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `warden admin snapshot --publish` on `d`: the log position published.
fn publish(d: &Daemon) -> u64 {
    let target = d.work.unix_target();
    let (ok, out, err) = warden(&["admin", "snapshot", "--publish", "--connect", &target]);
    assert!(ok, "admin snapshot --publish failed: {out}{err}");
    assert!(out.contains("published as snapshot-"), "{out}");
    let seq = out
        .split("log entry ")
        .nth(1)
        .and_then(|t| t.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no log entry in {out:?}"));
    eprintln!("{}", out.trim());
    seq
}

/// Seed `org` through `d` (see [`seed`]), then publish a snapshot there: its log position.
fn seed_then_publish(rt: &tokio::runtime::Runtime, d: &Daemon, owner: &str, org: &str, n: usize) -> u64 {
    rt.block_on(async {
        let mut c = clients(&d.work.unix_target()).await;
        seed(&mut c, owner, org, n).await;
    });
    publish(d)
}

/// The stream's (first, last) sequence and the snapshot objects in its bucket.
async fn log_state(nats: &Nats, stream: &str) -> (u64, u64, Vec<String>) {
    let js = async_nats::jetstream::new(nats.raw_client().await);
    let mut s = js.get_stream(stream).await.expect("stream");
    let info = s.info().await.expect("stream info").clone();
    let mut names = Vec::new();
    if let Ok(bucket) = js.get_object_store(warden::cluster::bucket_name(stream)).await {
        use tokio_stream::StreamExt;
        let mut list = bucket.list().await.expect("list snapshots");
        while let Some(o) = list.next().await {
            names.push(o.expect("object").name);
        }
    }
    names.sort();
    (info.state.first_sequence, info.state.last_sequence, names)
}

/// Purge up to the older kept snapshot, whatever the entries' age (the default keeps the
/// last 10 minutes, all of a test's log).
const NO_RETAIN: &[&str] = &["--cluster-retain", "0s"];

/// An extra sidecar with an empty data directory.
fn empty_sidecar(nats: &Nats, extra: &[&str]) -> Daemon {
    let mut work = Workdir::new();
    work.env
        .push(("WARDEN_LOG".into(), "info,warden::cluster=debug".into()));
    let urls = nats.urls();
    let mut args = vec!["--cluster", &urls, "--cluster-write-timeout", "10s"];
    args.extend_from_slice(extra);
    work.start_with(&args)
}

/// The audit history a user reads (`warden audit` of org acme by its owner, oldest entries included).
fn audit(d: &Daemon) -> String {
    let (ok, out, err) = warden(&[
        "audit",
        "acme",
        "--actor",
        "alice",
        "--connect",
        &d.work.unix_target(),
        "--limit",
        "10000",
    ]);
    assert!(ok, "warden audit failed: {out}{err}");
    out
}

#[test]
fn a_published_snapshot_purges_the_log_and_new_and_left_behind_sidecars_bootstrap_from_it() {
    let _one = serial();
    let nats = Nats::start();
    let mut daemons = vec![empty_sidecar(&nats, NO_RETAIN), empty_sidecar(&nats, NO_RETAIN)];
    let rt = runtime();
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        seed(&mut cs[0], "alice", "acme", 5).await;
        assert_converged(&mut cs).await;
    });

    // Published from sidecar 0: the log is purged behind it.
    let s1 = publish(&daemons[0]);
    let (first, last, names) = rt.block_on(log_state(&nats, "warden"));
    assert_eq!(names, vec![warden::cluster::object_name(s1)]);
    assert_eq!(
        (first, last),
        (s1 + 1, s1),
        "the log is purged up to the snapshot"
    );
    // Publishing the same position again (as a second sidecar would) changes nothing.
    assert_eq!(publish(&daemons[1]), s1);
    assert_eq!(rt.block_on(log_state(&nats, "warden")).2, names);

    // Sidecar 1 stops; two more snapshots with writes between purge past its position.
    daemons[1].stop();
    let behind_at = s1;
    let s2 = seed_then_publish(&rt, &daemons[0], "bob", "beta", 3);
    rt.block_on(async {
        let mut c = clients(&daemons[0].work.unix_target()).await;
        c.upsert_user("alice", "late").await;
        c.add_member("alice", "acme", "late", "org_user")
            .await
            .expect("AddMember");
    });
    let s3 = publish(&daemons[0]);
    let (first, _, names) = rt.block_on(log_state(&nats, "warden"));
    assert_eq!(
        names,
        vec![warden::cluster::object_name(s2), warden::cluster::object_name(s3)],
        "the 2 newest are kept"
    );
    assert_eq!(first, s2 + 1, "purged behind the older kept snapshot");
    assert!(
        first > behind_at + 1,
        "sidecar 1's next entry is gone from the log"
    );

    // A new, empty sidecar bootstraps; the stopped one re-bootstraps.
    daemons.push(empty_sidecar(&nats, NO_RETAIN));
    daemons[1].restart();
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        let revision = assert_converged(&mut cs).await;
        for c in cs.iter_mut() {
            let s = status(c).await;
            assert_eq!(s.halted, "", "{s:?}");
            assert!(c.check("late", "acme", "org", "org:read", revision).await);
        }
        // Both are full members: a write through the new one reaches all.
        seed(&mut cs[2], "carol", "gamma", 1).await;
        let after = assert_converged(&mut cs).await;
        assert!(after > revision);
        assert_eq!(digest(&mut cs[2]).await, digest(&mut cs[1]).await);
    });
    let fresh = daemons[2].logs();
    assert!(
        fresh.contains("bootstrapped from a directory snapshot"),
        "the new sidecar names the snapshot it loaded:\n{fresh}"
    );
    let left = daemons[1].logs();
    assert!(
        left.contains("re-bootstrapped from a directory snapshot"),
        "{left}"
    );
    assert!(left.contains("moved_aside"), "{left}");
    let aside: Vec<_> = std::fs::read_dir(daemons[1].work.data())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("warden.redb.before-bootstrap-"))
        .collect();
    assert_eq!(aside.len(), 1, "the old file is kept aside");
    // History: the snapshot carries the change log, so the audit log answers the same.
    let history = audit(&daemons[0]);
    assert!(history.lines().count() > 5, "{history}");
    assert_eq!(audit(&daemons[2]), history);
    assert_eq!(audit(&daemons[1]), history);
}

/// The default `--cluster-retain` (10 minutes): snapshots are published and pruned as
/// usual, but no entry younger than that is purged, so a sidecar stopped behind two
/// snapshots catches up from the log on restart instead of re-bootstrapping.
#[test]
fn entries_younger_than_the_retain_floor_stay_and_a_returning_sidecar_tails_them() {
    let _one = serial();
    let nats = Nats::start();
    let mut daemons = vec![empty_sidecar(&nats, &[]), empty_sidecar(&nats, &[])];
    let rt = runtime();
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        seed(&mut cs[0], "alice", "acme", 3).await;
        assert_converged(&mut cs).await;
    });
    daemons[1].stop();
    let s1 = publish(&daemons[0]);
    let s2 = seed_then_publish(&rt, &daemons[0], "bob", "beta", 3);
    let s3 = seed_then_publish(&rt, &daemons[0], "carol", "gamma", 2);
    let (first, last, names) = rt.block_on(log_state(&nats, "warden"));
    assert_eq!(
        names,
        vec![warden::cluster::object_name(s2), warden::cluster::object_name(s3)],
        "the 2 newest are kept (s1 = {s1} deleted)"
    );
    assert_eq!(
        (first, last),
        (1, s3),
        "every entry is younger than the retain floor: nothing purged"
    );

    daemons[1].restart();
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        let revision = assert_converged(&mut cs).await;
        assert!(
            cs[1]
                .check("gamma-m1", "gamma", "org", "org:read", revision)
                .await
        );
    });
    let back = daemons[1].logs();
    assert!(
        !back.contains("bootstrapped from a directory snapshot"),
        "it tailed the log, no snapshot loaded:\n{back}"
    );
    assert!(
        std::fs::read_dir(daemons[1].work.data())
            .unwrap()
            .filter_map(|e| e.ok())
            .all(|e| !e.file_name().to_string_lossy().contains("before-bootstrap")),
        "no store moved aside"
    );
}

#[test]
fn cluster_init_starts_a_stream_from_a_single_node_directory_and_foreign_stores_refuse() {
    let _one = serial();
    let rt = runtime();
    // A single-node directory, seeded through its daemon.
    let mut single = Workdir::new().start();
    let (revision, sha) = rt.block_on(async {
        let mut c = clients(&single.work.unix_target()).await;
        seed(&mut c, "alice", "acme", 4).await;
        digest(&mut c).await
    });
    single.stop();
    let nats = Nats::start();
    let urls = nats.urls();

    // Not part of a log: refuses to start in cluster mode, saying what to do.
    let (exit, stderr) = run_to_exit(single.work.serve_command().args(["--cluster", &urls]));
    assert!(!exit.success());
    assert!(stderr.contains("warden cluster init"), "{stderr}");
    assert!(stderr.contains("empty data directory"), "{stderr}");

    let data = single.work.data();
    let data = data.to_str().unwrap();
    let (ok, out, err) = warden(&["cluster", "init", "--data", data, "--cluster", &urls]);
    assert!(ok, "cluster init failed: {out}{err}");
    assert!(out.contains(&warden::cluster::object_name(0)), "{out}");
    // Only once: the stream has a snapshot now.
    let (ok, _, err) = warden(&["cluster", "init", "--data", data, "--cluster", &urls]);
    assert!(!ok);
    assert!(err.contains("already"), "{err}");

    // Two empty sidecars load it.
    let mut daemons = sidecars(&nats, 2, "10s");
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        assert_eq!(assert_converged(&mut cs).await, revision);
        assert_eq!(digest(&mut cs[0]).await, (revision, sha.clone()));
        assert!(cs[1].check("acme-m3", "acme", "org", "org:read", revision).await);
        // And write on from it.
        cs[1].upsert_user("alice", "next").await;
        let rev = cs[1]
            .add_member("alice", "acme", "next", "org_user")
            .await
            .unwrap();
        assert_eq!(rev, revision + 2);
        assert_converged(&mut cs).await;
    });
    for d in &daemons {
        assert!(
            d.logs().contains("bootstrapped from a directory snapshot"),
            "{}",
            d.logs()
        );
    }

    // The stream deleted and recreated under them: they halt, checks go on.
    rt.block_on(async {
        let js = async_nats::jetstream::new(nats.raw_client().await);
        js.delete_stream("warden").await.expect("delete stream");
        let mut cs = connect_all(&daemons).await;
        for c in cs.iter_mut() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            let halted = loop {
                let s = status(c).await;
                if !s.halted.is_empty() {
                    break s.halted;
                }
                assert!(tokio::time::Instant::now() < deadline, "never halted: {s:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            assert!(halted.contains("recreated"), "{halted}");
            assert!(halted.contains("empty data directory"), "{halted}");
            assert!(c.check("acme-m3", "acme", "org", "org:read", 0).await);
        }
    });
    // Another stream's store refuses to start.
    daemons[0].stop();
    let (exit, stderr) =
        run_to_exit(
            daemons[0]
                .work
                .serve_command()
                .args(["--cluster", &urls, "--cluster-stream", "other"]),
        );
    assert!(!exit.success());
    assert!(
        stderr.contains("follows directory log stream `warden`"),
        "{stderr}"
    );
}

#[test]
fn sidecars_publish_snapshots_every_n_entries_and_the_log_stays_bounded() {
    let _one = serial();
    let nats = Nats::start();
    let every = ["--cluster-snapshot-every", "4", "--cluster-retain", "0s"];
    let mut daemons = vec![empty_sidecar(&nats, &every), empty_sidecar(&nats, &every)];
    let rt = runtime();
    let newest = rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        // 2 + 2 × 6 = 14 entries.
        seed(&mut cs[0], "alice", "acme", 6).await;
        assert_converged(&mut cs).await;
        // A snapshot is taken at the position the sidecar has reached when it runs (at or
        // after the multiple of 4 that triggered it); the log is purged behind the older kept.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            let (first, last, names) = log_state(&nats, "warden").await;
            let seqs: Vec<u64> = names
                .iter()
                .filter_map(|n| n.strip_prefix("snapshot-")?.parse().ok())
                .collect();
            // On a loaded machine the publishes triggered at 4, 8 and 12 may all run once the
            // position is 14 (one object); at most 2 are ever kept.
            if seqs.last().is_some_and(|s| *s >= 12) && first == seqs[0] + 1 {
                assert!(seqs.len() <= 2, "{names:?}");
                assert_eq!(last, 14);
                break names[names.len() - 1].clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no periodic snapshots: first {first}, last {last}, {names:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // One sidecar publishes each periodic snapshot (the first to claim it): at most one per
    // multiple of 4 reached (4, 8, 12) over both sidecars, not one per sidecar.
    let published: usize = daemons
        .iter()
        .map(|d| d.logs().matches("published a directory snapshot").count())
        .sum();
    assert!(
        (1..=3).contains(&published),
        "{published} snapshots published for 3 multiples of 4:\n{}\n{}",
        daemons[0].logs(),
        daemons[1].logs()
    );
    // A new sidecar starts from the newest and catches up with the rest.
    daemons.push(empty_sidecar(&nats, &every));
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        assert_converged(&mut cs).await;
    });
    // It loaded the newest seen above or one published after it (a slow sidecar's publish
    // triggered at 8 or 12 may land later, at its position then).
    let logs = daemons[2].logs();
    let loaded = logs
        .lines()
        .find(|l| l.contains("bootstrapped from a directory snapshot"))
        .and_then(|l| l.split("object=\"snapshot-").nth(1))
        .and_then(|t| t.split('"').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no bootstrap line:\n{logs}"));
    let newest: u64 = newest
        .trim_start_matches("snapshot-")
        .parse()
        .expect("object name");
    assert!(
        loaded >= newest,
        "loaded snapshot {loaded}, the newest was {newest}:\n{logs}"
    );
}
