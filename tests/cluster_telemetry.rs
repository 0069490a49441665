//! Cluster telemetry (issue 13, "Telemetry"): usage counts and token last-use travel on the
//! telemetry stream (`warden-telemetry`), not the directory log, and every sidecar merges
//! every other's flushes exactly once. Three real NATS nodes and three real sidecars; the
//! sidecars flush every 30 s, so each wait below is for an outcome, with a generous bound.
//!
//! What a user would check: the org usage report and a token's `last_used` read the same on
//! every sidecar although the checks and the token uses happened on different ones; garbage
//! on the telemetry subject changes nothing; a sidecar killed with -9 after a flush and
//! restarted counts nothing twice, and its later flushes still reach the others; counts
//! flushed while every NATS node is down (and kept across a kill -9) reach the others once
//! NATS is back.

use crate::common;

use common::cluster::{Nats, assert_converged, connect_all, create_org, serial, sidecars, status};
use common::directory::Clients;
use common::{Workdir, free_port, runtime};
use std::time::{Duration, Instant};
use warden::api::pb;
use warden::api::pb::token_service_client::TokenServiceClient;
use warden::api::pb::usage_service_client::UsageServiceClient;

/// Long enough for a 30 s flush interval, the publish and the merge on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

/// (total checks, bob's, alice's) in acme's usage report on `target`.
async fn usage(target: &str) -> (u64, u64, u64) {
    let mut u = UsageServiceClient::new(warden::api::client::connect(target).await.expect("connect"));
    let r = u
        .get_org_usage(pb::GetOrgUsageRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            days: 0,
        })
        .await
        .expect("GetOrgUsage")
        .into_inner();
    let of = |user: &str| {
        r.members
            .iter()
            .find(|m| m.user_id == user)
            .map_or(0, |m| m.checks)
    };
    (r.total_checks, of("bob"), of("alice"))
}

/// alice's token's `last_used` on `target`.
async fn last_used(target: &str) -> u64 {
    let mut t = TokenServiceClient::new(warden::api::client::connect(target).await.expect("connect"));
    let r = t
        .list_tokens(pb::ListTokensRequest {
            actor: "alice".into(),
            owner: Some(pb::Owner {
                owner: Some(pb::owner::Owner::UserId("alice".into())),
            }),
            page_size: 10,
            ..Default::default()
        })
        .await
        .expect("ListTokens")
        .into_inner();
    r.tokens.first().expect("alice's token").last_used_at_unix_ms
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// alice owns acme, bob is a member, on every sidecar (the usage report has no
/// `min_revision`); the revision of the last write.
async fn setup(cs: &mut [Clients]) -> u64 {
    cs[0].upsert_user("alice", "alice").await;
    cs[0].upsert_user("alice", "bob").await;
    create_org(&mut cs[0], "alice", "acme").await;
    cs[0]
        .add_member("alice", "acme", "bob", "org_user")
        .await
        .expect("AddMember");
    assert_converged(cs).await
}

/// Wait until every sidecar's acme report reads `want`; fail at once when one reads more
/// (a double count never goes back down).
async fn wait_for_usage(targets: &[String], want: (u64, u64, u64)) -> Duration {
    let started = Instant::now();
    loop {
        let mut seen = Vec::new();
        for t in targets {
            seen.push(usage(t).await);
        }
        assert!(
            seen.iter()
                .all(|s| s.0 <= want.0 && s.1 <= want.1 && s.2 <= want.2),
            "counted twice: {seen:?}, want {want:?} on every sidecar"
        );
        if seen.iter().all(|s| *s == want) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "usage never converged: {seen:?}, want {want:?} on every sidecar"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn usage_and_token_last_use_read_the_same_on_every_sidecar() {
    let _one = serial();
    let nats = Nats::start();
    let daemons = sidecars(&nats, 3, "10s");
    let targets: Vec<String> = daemons.iter().map(|d| d.work.unix_target()).collect();
    runtime().block_on(async {
        let mut cs = connect_all(&daemons).await;
        let rev = setup(&mut cs).await;

        // Garbage on the telemetry subject (a trusted publisher's mistake): logged, skipped.
        let js = async_nats::jetstream::new(nats.raw_client().await);
        let started = Instant::now();
        loop {
            let sent = js
                .publish(
                    warden::cluster::telemetry::SUBJECT_TELEMETRY,
                    "not a batch".into(),
                )
                .await;
            if let Ok(ack) = sent
                && ack.await.is_ok()
            {
                break;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the telemetry stream never appeared"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        let (_, created) = common::cluster::create_read_token(&targets[0], "alice").await;
        let subject = format!("token:{}", created.secret);

        // Checks on A and B; the token used on A, then (later) on C.
        for _ in 0..5 {
            assert!(cs[0].check("bob", "acme", "org", "org:read", rev).await);
        }
        for _ in 0..3 {
            assert!(cs[1].check("bob", "acme", "org", "org:read", rev).await);
        }
        for _ in 0..2 {
            assert!(cs[1].check("alice", "acme", "org", "org:read", rev).await);
        }
        assert!(
            cs[0]
                .check(&subject, "acme", "org", "org:read", created.revision)
                .await
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let before_c = now_ms();
        assert!(
            cs[2]
                .check(&subject, "acme", "org", "org:read", created.revision)
                .await
        );

        let took = wait_for_usage(&targets, (10, 8, 2)).await;
        eprintln!("usage read the same on all three sidecars {took:?} after the last check");
        let started = Instant::now();
        let used = loop {
            let mut seen = Vec::new();
            for t in &targets {
                seen.push(last_used(t).await);
            }
            if seen.iter().all(|u| *u == seen[0]) && seen[0] >= before_c {
                break seen[0];
            }
            assert!(
                started.elapsed() < PATIENCE,
                "last_used never converged on C's use (at or after {before_c}): {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        eprintln!(
            "the token's last_used ({used}) read the same on all three {:?} after usage did",
            started.elapsed()
        );

        // Telemetry never went through the directory log, and directory writes still work.
        let log = js.get_stream("warden").await.expect("the directory stream");
        assert!(
            !log.cached_info()
                .config
                .subjects
                .iter()
                .any(|s| s == warden::cluster::telemetry::SUBJECT_TELEMETRY)
        );
        cs[1].upsert_user("alice", "carl").await;
    });
}

#[test]
fn a_sidecar_killed_after_a_flush_and_restarted_counts_nothing_twice() {
    let _one = serial();
    let nats = Nats::start();
    let mut daemons = sidecars(&nats, 3, "10s");
    let targets: Vec<String> = daemons.iter().map(|d| d.work.unix_target()).collect();
    let rt = runtime();
    let rev = rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        let rev = setup(&mut cs).await;
        for _ in 0..4 {
            assert!(cs[0].check("bob", "acme", "org", "org:read", rev).await);
        }
        // B and C read A's flush: A flushed and published.
        let took = wait_for_usage(&targets, (4, 4, 0)).await;
        eprintln!("A's flush reached B and C after {took:?}");
        rev
    });
    daemons[0].kill9();
    daemons[0].restart();
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        // A reads its own flush from its store, not once more from the stream.
        assert_eq!(usage(&targets[0]).await, (4, 4, 0));
        for _ in 0..3 {
            assert!(cs[0].check("bob", "acme", "org", "org:read", rev).await);
        }
        for _ in 0..2 {
            assert!(cs[2].check("alice", "acme", "org", "org:read", rev).await);
        }
        // A's next flush number is new (a reused one would be skipped as already merged),
        // and nothing from before the kill is added again.
        let took = wait_for_usage(&targets, (9, 7, 2)).await;
        eprintln!("after the restart, usage read the same on all three after {took:?}");
    });
}

/// A gauge (no labels) from `/metrics` of a daemon started with `--metrics tcp:<addr>`.
fn gauge(addr: std::net::SocketAddr, name: &str) -> u64 {
    common::cluster::gauge(&common::cluster::metrics(addr), name)
}

/// Wait until `name` on `addr` reaches `at_least`.
async fn wait_for_gauge(addr: std::net::SocketAddr, name: &str, at_least: u64) {
    let started = Instant::now();
    while gauge(addr, name) < at_least {
        assert!(started.elapsed() < PATIENCE, "{name} never reached {at_least}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn usage_flushed_while_nats_is_down_reaches_the_others_when_it_returns() {
    let _one = serial();
    let nats = Nats::start();
    // A with a metrics endpoint (its telemetry outbox), then B and C.
    let metrics = free_port();
    let a = Workdir::new().start_with(&[
        "--cluster",
        &nats.urls(),
        "--cluster-write-timeout",
        "2s",
        "--metrics",
        &format!("tcp:{metrics}"),
    ]);
    let mut daemons = vec![a];
    daemons.extend(sidecars(&nats, 2, "2s"));
    let targets: Vec<String> = daemons.iter().map(|d| d.work.unix_target()).collect();
    let rt = runtime();
    rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        let rev = setup(&mut cs).await;
        for n in 1..=3 {
            nats.kill(n);
        }
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while status(&mut cs[0]).await.log_reachable {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log never showed unreachable"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for _ in 0..6 {
            assert!(cs[0].check("bob", "acme", "org", "org:read", rev).await);
        }
        assert_eq!(
            usage(&targets[0]).await,
            (6, 6, 0),
            "A counts its checks with NATS down"
        );
        // A's next flush (every 30 s) goes to its store and its outbox, not to the stream.
        wait_for_gauge(metrics, "warden_cluster_telemetry_outbox", 1).await;
        assert_eq!(
            usage(&targets[1]).await,
            (0, 0, 0),
            "nothing reached B with NATS down"
        );
    });
    // The outbox is in A's store: a kill -9 before NATS returns loses nothing.
    daemons[0].kill9();
    daemons[0].restart();
    nats.script(&["start"]);
    rt.block_on(async {
        connect_all(&daemons).await;
        assert_eq!(usage(&targets[0]).await, (6, 6, 0), "A kept its flushed counts");
        let took = wait_for_usage(&targets, (6, 6, 0)).await;
        eprintln!("the counts flushed while NATS was down reached B and C {took:?} after A reconnected");
        assert_eq!(
            gauge(metrics, "warden_cluster_telemetry_outbox"),
            0,
            "the outbox is empty once published"
        );
        // Garbage on the telemetry subject: skipped and counted, nothing else moves.
        let js = async_nats::jetstream::new(nats.raw_client().await);
        js.publish(warden::cluster::telemetry::SUBJECT_TELEMETRY, "{}".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        wait_for_gauge(metrics, "warden_cluster_telemetry_rejected", 1).await;
        assert_eq!(usage(&targets[0]).await, (6, 6, 0));
        let mut cs = connect_all(&daemons).await;
        cs[0].upsert_user("alice", "carl").await;
    });
}
