//! Cluster catch-up (issue 13): a sidecar stopped while N entries are written through the two
//! others catches up when it returns (same directory digest at the same revision), reports
//! its progress in the log, in `admin status` and in `/metrics` while it does, and survives a
//! kill -9 in the middle of the catch-up (while it commits in deferred batches): it resumes at
//! its stored `last_applied_seq + 1` and applies nothing twice (final revision = base + N).
//!
//! N is `WARDEN_CLUSTER_CATCHUP` (default 5,000, affordable in CI); the 100k:
//! `WARDEN_CLUSTER_CATCHUP=100000 cargo test --release --test integration cluster_catchup::`.

use crate::common;

use common::cluster::{
    Nats, assert_converged_within, connect_all, create_org, gauge, metrics, serial, sidecars, status,
};
use common::directory::clients;
use common::{Workdir, free_port, runtime};
use std::time::{Duration, Instant};

#[test]
fn a_stopped_sidecar_catches_up_and_a_kill9_mid_catch_up_applies_nothing_twice() {
    let _one = serial();
    let n: usize = std::env::var("WARDEN_CLUSTER_CATCHUP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let nats = Nats::start();
    let daemons = sidecars(&nats, 2, "30s");
    // The sidecar that falls behind: its own metrics endpoint, info-level logs (no line
    // per entry).
    let metrics_addr = free_port();
    let mut late = {
        let mut work = Workdir::new();
        work.env.push(("WARDEN_LOG".into(), "info".into()));
        work.start_with(&[
            "--cluster",
            &nats.urls(),
            "--cluster-write-timeout",
            "30s",
            "--metrics",
            &format!("tcp:{metrics_addr}"),
        ])
    };
    let rt = runtime();
    let base = rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs.extend(connect_all(std::slice::from_ref(&late)).await);
        cs[0].upsert_user("alice", "alice").await;
        create_org(&mut cs[1], "alice", "acme").await;
        assert_converged_within(&mut cs, Duration::from_secs(90)).await
    });

    // The late sidecar stops at `stopped_at`; N writes go through the two others (8 writers)
    // up to the log's entry `last`.
    let stopped_at = rt.block_on(async {
        status(&mut clients(&late.work.unix_target()).await)
            .await
            .applied_seq
    });
    late.stop();
    let written = Instant::now();
    let last = rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..8usize {
            let target = daemons[w % 2].work.unix_target();
            tasks.push(tokio::spawn(async move {
                let mut c = clients(&target).await;
                for i in (w..n).step_by(8) {
                    c.upsert_user("alice", &format!("c{i}")).await;
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer task");
        }
        status(&mut clients(&daemons[0].work.unix_target()).await)
            .await
            .applied_seq
    });
    eprintln!("{n} writes through 2 sidecars in {:?}", written.elapsed());
    let target = base + n as u64;

    // It returns and catches up; in the middle of it (position moved, still behind), the
    // status and the metrics show the position and the lag, then it is killed with -9.
    let restarted = Instant::now();
    late.restart();
    let (at_kill, lag_at_kill) = rt.block_on(async {
        let mut c = clients(&late.work.unix_target()).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let s = status(&mut c).await;
            assert!(
                s.applied_seq < last,
                "the catch-up of {n} entries ended before it could be interrupted ({s:?}); \
                 raise WARDEN_CLUSTER_CATCHUP"
            );
            // Well inside the catch-up (a fifth of it applied), where commits are deferred.
            if s.applied_seq >= stopped_at + (n as u64 / 5).max(1) && s.log_last_seq >= last {
                let m = metrics(metrics_addr);
                let (applied, lag) = (
                    gauge(&m, "warden_cluster_applied_seq"),
                    gauge(&m, "warden_cluster_lag_entries"),
                );
                assert!(applied >= s.applied_seq, "metrics {applied} behind status {s:?}");
                assert!(
                    lag > 0 && applied + lag >= last,
                    "/metrics does not show the lag during the catch-up (log at {last}):\n{m}"
                );
                return (s.applied_seq, s.log_last_seq - s.applied_seq);
            }
            assert!(Instant::now() < deadline, "the catch-up never started: {s:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    late.kill9();
    eprintln!("killed at entry {at_kill}, {lag_at_kill} behind");
    assert!(
        late.logs().contains("catching up on the directory log"),
        "no progress line in the log:\n{}",
        late.logs()
    );

    // Restarted again: it resumes from its stored position and converges with the others,
    // every write applied exactly once.
    late.restart();
    let revision = rt.block_on(async {
        let mut cs = connect_all(&daemons).await;
        cs.extend(connect_all(std::slice::from_ref(&late)).await);
        let patience = Duration::from_secs(120) + Duration::from_millis(20 * n as u64);
        assert_converged_within(&mut cs, patience).await
    });
    eprintln!(
        "caught up {n} entries (with a kill -9 in the middle) in {:?}",
        restarted.elapsed()
    );
    assert_eq!(revision, target, "every write applied exactly once");
    let logs = late.logs();
    // Where the restart resumed (the last durable position) and the catch-up lines.
    for line in logs.lines().filter(|l| {
        l.contains("catching up on the directory log") || l.contains("caught up on the directory log")
    }) {
        eprintln!("{line}");
    }
    assert!(
        logs.contains("caught up on the directory log"),
        "no end-of-catch-up line in the log:\n{logs}"
    );
}
