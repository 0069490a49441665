//! Cluster mode (issue 13), the other local writers and the rolling upgrade: three real
//! `warden serve --cluster` sidecars against three real NATS JetStream nodes
//! (`scripts/nats-cluster.sh`).
//!
//! What a user would check: three sidecars started with `--demo` at the same moment hold ONE
//! demo (the revision of a single-node demo, one log entry per demo change, the same digest on
//! all three), and a restart with `--demo` seeds nothing again; in a rolling upgrade, the
//! sidecars not yet upgraded stop at the first entry of the new apply version with a clear
//! status while their checks keep answering, and once upgraded they resume from exactly that
//! entry: every acknowledged write present once, the same directory everywhere.
//!
//! There is one build in a test run: "a newer build" is this debug build started with the test
//! hook `WARDEN_DEBUG_APPLY_VERSION=2` (`cluster::DEBUG_APPLY_VERSION_ENV`, honoured only by
//! debug builds), which stamps apply version 2 on what it publishes and applies entries up to 2.

use crate::common;

use common::cluster::{Nats, assert_converged, connect_all, digest, serial, status};
use common::directory::{Clients, clients};
use common::{Daemon, Workdir, runtime};
use std::time::{Duration, Instant};
use tonic::Code;

/// Start a sidecar per entry of `extra`, all at the same moment (one thread each), and wait
/// until every one serves.
fn start_at_once(nats: &Nats, extra: &[&[&str]]) -> Vec<Daemon> {
    let urls = nats.urls();
    std::thread::scope(|s| {
        let started: Vec<_> = extra
            .iter()
            .map(|more| {
                let urls = urls.clone();
                s.spawn(move || {
                    let mut work = Workdir::new();
                    work.env
                        .push(("WARDEN_LOG".into(), "info,warden::cluster=debug".into()));
                    let mut args = vec!["--cluster", urls.as_str(), "--cluster-write-timeout", "10s"];
                    args.extend_from_slice(more);
                    work.start_with(&args)
                })
            })
            .collect();
        started
            .into_iter()
            .map(|h| h.join().expect("sidecar start"))
            .collect()
    })
}

/// Wait until `daemon`'s log holds `needle` at least `times` times; the logs' text.
fn wait_log(daemon: &Daemon, needle: &str, times: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let logs = daemon.logs();
        if logs.matches(needle).count() >= times {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "never logged {needle:?} {times} time(s):\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SEEDED: &str = "seeded the demo directory through the directory log";
const ALREADY: &str = "the demo is already in the directory log; not seeding it again";
const NOT_EMPTY: &str = "the directory log is not empty; not seeding the demo";

/// The demo's facts a user relies on, at `revision`.
async fn assert_demo(c: &mut Clients, revision: u64) {
    assert!(c.check("bob", "acme", "org", "org:read", revision).await);
    assert!(c.check("erin", "globex", "org", "org:read", revision).await);
    assert!(!c.check("erin", "acme", "org", "org:read", revision).await);
}

/// The revision a single node's `--demo` comes to, and the number of the demo's changes.
fn single_node_demo(rt: &tokio::runtime::Runtime) -> (u64, u64) {
    let single = Workdir::new().start_with(&["--demo"]);
    let revision = rt.block_on(async {
        let mut c = clients(&single.work.unix_target()).await;
        let (revision, _) = digest(&mut c).await;
        assert_demo(&mut c, revision).await;
        revision
    });
    let entries = warden::store::demo::demo_changes(0).len() as u64;
    assert!(revision > 0 && revision <= entries);
    (revision, entries)
}

/// Three sidecars started with `--demo` at the same moment against an empty log give one demo
/// seed, applied through the log by all three; restarts with `--demo` seed nothing again.
#[test]
fn three_sidecars_started_with_demo_at_once_seed_it_once() {
    let _one = serial();
    let rt = runtime();
    let (single_revision, entries) = single_node_demo(&rt);

    let nats = Nats::start();
    let demo: &[&str] = &["--demo"];
    let mut daemons = start_at_once(&nats, &[demo, demo, demo]);
    // Each one comes to a conclusion: it seeded (some of) the demo, or found all of it there.
    for d in &daemons {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let logs = d.logs();
            assert!(
                !logs.contains(NOT_EMPTY),
                "a sidecar found the fresh log not empty:\n{logs}"
            );
            if logs.contains(SEEDED) || logs.contains(ALREADY) {
                for line in logs.lines().filter(|l| l.contains(SEEDED) || l.contains(ALREADY)) {
                    eprintln!("{line}");
                }
                break;
            }
            assert!(Instant::now() < deadline, "the demo seed never finished:\n{logs}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let revision = rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        let revision = assert_converged(&mut cs).await;
        assert_eq!(revision, single_revision, "one demo, as on a single node");
        for c in cs.iter_mut() {
            let s = status(c).await;
            assert_eq!(
                (s.log_last_seq, s.refused_entries),
                (entries, 0),
                "one log entry per demo change, none refused: {s:?}"
            );
            assert_demo(c, revision).await;
        }
        revision
    });

    // A restart with --demo finds the demo in the log and publishes nothing.
    daemons[1].stop();
    daemons[1].restart();
    wait_log(&daemons[1], ALREADY, 1);
    // After a write of someone else, a restart with --demo leaves the log alone too.
    let after_write = rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        let rev = cs[0].upsert_user("alice", "zed").await;
        assert_eq!(rev, revision + 1);
        assert_eq!(assert_converged(&mut cs).await, rev);
        rev
    });
    daemons[2].stop();
    daemons[2].restart();
    wait_log(&daemons[2], NOT_EMPTY, 1);
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        assert_eq!(assert_converged(&mut cs).await, after_write);
        for c in cs.iter_mut() {
            assert_eq!(
                status(c).await.log_last_seq,
                entries + 1,
                "nothing was seeded again"
            );
        }
    });
}

/// A seeder that died halfway (the first entries of the demo in the log, published here the way
/// a sidecar does, with the demo's message ids): the next sidecar started with `--demo` publishes
/// the rest, and the directory is the whole demo, once.
#[test]
fn a_demo_seed_cut_off_halfway_is_completed_by_the_next_sidecar_with_demo() {
    let _one = serial();
    let rt = runtime();
    let (single_revision, entries) = single_node_demo(&rt);
    let nats = Nats::start();
    rt.block_on(async {
        let js = async_nats::jetstream::new(nats.raw_client().await);
        js.get_or_create_stream(warden::cluster::stream_config("warden"))
            .await
            .expect("the stream");
        // The first five of the demo's entries, as a seeder publishes them.
        let envelopes = warden::cluster::demo::envelopes(1);
        for (i, env) in envelopes.iter().take(5).enumerate() {
            let id = warden::cluster::demo::demo_id(i + 1, envelopes.len());
            let m = async_nats::jetstream::message::PublishMessage::build()
                .payload(serde_json::to_vec(env).expect("json").into())
                .message_id(&id)
                .header(warden::cluster::APPLY_VERSION_HEADER, "1");
            js.send_publish(warden::cluster::SUBJECT_CHANGES, m)
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
    });
    let demo: &[&str] = &["--demo"];
    let daemons = start_at_once(&nats, &[demo, &[]]);
    let logs = wait_log(&daemons[0], SEEDED, 1);
    assert!(
        logs.contains(&format!("published={}", entries - 5)),
        "the rest of the demo, and only the rest:\n{logs}"
    );
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        assert_eq!(assert_converged(&mut cs).await, single_revision);
        for c in cs.iter_mut() {
            assert_eq!(status(c).await.log_last_seq, entries);
            assert_demo(c, single_revision).await;
        }
    });
}

/// The seed itself, raced: in each round, four seeders (each on its own NATS connection, each
/// with its own times, as four sidecars starting at once) seed one fresh stream at the same
/// moment (this found the log's "duplicate message id is in process" answer to a racing
/// publish, which the seed now treats as a lost race). Every round ends with the demo once, in order: one entry per demo change, the
/// demo's ids 1..n at sequences 1..n, and the seeders' published counts adding up to n.
#[test]
fn racing_demo_seeders_store_each_entry_once_and_in_order() {
    use warden::cluster::demo::{Seeded, demo_id, envelopes, seed};
    let _one = serial();
    let nats = Nats::start();
    let rt = runtime();
    rt.block_on(async {
        let mut contexts = Vec::new();
        for _ in 0..4 {
            contexts.push(async_nats::jetstream::new(nats.raw_client().await));
        }
        let n = envelopes(0).len();
        for round in 0..5 {
            let stream = format!("race{round}");
            contexts[0]
                .get_or_create_stream(warden::cluster::stream_config(&stream))
                .await
                .expect("the stream");
            let tasks: Vec<_> = contexts
                .iter()
                .enumerate()
                .map(|(k, js)| {
                    let (js, stream) = (js.clone(), stream.clone());
                    tokio::spawn(async move {
                        let envs = envelopes(1_000 + k as u64);
                        seed(&js, &stream, &envs, Duration::from_secs(10)).await
                    })
                })
                .collect();
            let mut published = 0;
            let mut outcomes = Vec::new();
            for t in tasks {
                let outcome = t.await.expect("seeder task");
                match &outcome {
                    Ok(Seeded::Published(p)) => published += p,
                    Ok(Seeded::Already) => {}
                    other => panic!("round {round}: a seeder came to {other:?}"),
                }
                outcomes.push(outcome);
            }
            eprintln!("round {round}: {outcomes:?}");
            assert_eq!(published, n, "round {round}: each entry published once");
            let mut s = contexts[0].get_stream(&stream).await.expect("stream");
            let last = s.info().await.expect("info").state.last_sequence;
            assert_eq!(last, n as u64, "round {round}: one entry per demo change");
            for seq in 1..=last {
                let m = s.get_raw_message(seq).await.expect("entry");
                let id = m
                    .headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.as_str().to_string());
                assert_eq!(id, Some(demo_id(seq as usize, n)), "round {round}: entry {seq}");
            }
            // And a seeder coming late finds the demo there.
            let again = seed(&contexts[1], &stream, &envelopes(5), Duration::from_secs(10)).await;
            assert_eq!(again, Ok(Seeded::Already));
            // The next round's stream takes the same subjects.
            contexts[0]
                .delete_stream(&stream)
                .await
                .expect("delete the round's stream");
        }
    });
}

/// Read a log entry's apply version header.
async fn entry_version(nats: &Nats, seq: u64) -> String {
    let js = async_nats::jetstream::new(nats.raw_client().await);
    let stream = js.get_stream("warden").await.expect("the warden stream");
    let message = stream.get_raw_message(seq).await.expect("the entry");
    message
        .headers
        .get(warden::cluster::APPLY_VERSION_HEADER)
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

/// Restart `daemon` as "the newer build" (apply version 2, the debug-build test hook).
fn upgrade(daemon: &mut Daemon) {
    daemon.stop();
    daemon
        .work
        .env
        .push((warden::cluster::DEBUG_APPLY_VERSION_ENV.into(), "2".into()));
    daemon.restart();
}

/// A rolling upgrade: A is upgraded first and writes (its entries carry apply version 2, and A
/// answers them); B and C halt at A's first entry with a clear status and keep answering checks;
/// upgraded, they resume from exactly that entry and all three converge with every
/// acknowledged write present once.
#[test]
fn after_an_upgrade_a_halted_sidecar_resumes_from_the_entry_it_stopped_at() {
    let _one = serial();
    let nats = Nats::start();
    let none: &[&str] = &[];
    let mut daemons = start_at_once(&nats, &[none, none, none]);
    let rt = runtime();
    let (base, base_seq) = rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs[0].upsert_user("alice", "alice").await;
        common::cluster::create_org(&mut cs[1], "alice", "acme").await;
        cs[2].upsert_user("alice", "bob").await;
        cs[2]
            .add_member("alice", "acme", "bob", "org_user")
            .await
            .expect("add bob");
        let base = assert_converged(&mut cs).await;
        (base, status(&mut cs[0]).await.log_last_seq)
    });
    assert_eq!(rt.block_on(entry_version(&nats, base_seq)), "1");

    upgrade(&mut daemons[0]);
    let users: Vec<String> = (0..4).map(|i| format!("v2-{i}")).collect();
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        // The upgraded submitter answers its writes: it applies apply version 2.
        let mut last = base;
        for u in &users {
            cs[0].upsert_user("alice", u).await;
            last = cs[0]
                .add_member("alice", "acme", u, "org_user")
                .await
                .unwrap_or_else(|s| panic!("the upgraded sidecar's write of {u}: {s:?}"));
        }
        assert_eq!(last, base + 2 * users.len() as u64);
        assert!(cs[0].check(&users[3], "acme", "org", "org:read", last).await);
        assert!(status(&mut cs[0]).await.halted.is_empty());

        // The old ones stop at A's first entry, and say why; their checks keep answering
        // from the last state they applied, and their writes are refused, not lost.
        for (i, c) in cs.iter_mut().enumerate().skip(1) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let s = loop {
                let s = status(c).await;
                if !s.halted.is_empty() {
                    break s;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "sidecar {i} never halted: {s:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert!(
                s.halted
                    .contains(&format!("entry {} needs apply version 2", base_seq + 1))
                    && s.halted.contains("this build applies 1")
                    && s.halted.contains("upgrade this Warden"),
                "sidecar {i}: {s:?}"
            );
            assert_eq!(
                s.applied_seq, base_seq,
                "sidecar {i} stopped before A's first entry"
            );
            assert_eq!(digest(c).await.0, base);
            assert!(c.check("bob", "acme", "org", "org:read", base).await);
            assert!(!c.check(&users[0], "acme", "org", "org:read", 0).await);
            let refused = c.add_member("alice", "acme", "carol", "org_user").await;
            common::directory::assert_refused(refused, Code::Unavailable, &["stopped applying"]);
        }
    });
    assert_eq!(rt.block_on(entry_version(&nats, base_seq + 1)), "2");

    upgrade(&mut daemons[1]);
    upgrade(&mut daemons[2]);
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        let revision = assert_converged(&mut cs).await;
        assert_eq!(
            revision,
            base + 2 * users.len() as u64,
            "every write once, nothing skipped"
        );
        for c in cs.iter_mut() {
            let s = status(c).await;
            assert!(s.halted.is_empty(), "{s:?}");
            for u in &users {
                assert!(c.check(u, "acme", "org", "org:read", revision).await, "{u}");
            }
        }
        // And the upgraded cluster writes on, on every sidecar.
        cs[2].upsert_user("alice", "carol").await;
        cs[1]
            .add_member("alice", "acme", "carol", "org_user")
            .await
            .expect("add carol after the upgrade");
        assert_eq!(assert_converged(&mut cs).await, revision + 2);
    });
}
