//! Limits and backpressure against the real daemon: beyond `--max-in-flight` a call is
//! refused at once with RESOURCE_EXHAUSTED (health checks still answer), a flood far
//! beyond capacity gets only answers or RESOURCE_EXHAUSTED and the daemon serves on
//! afterwards, callers waiting for a far-future `min_revision` take no capacity from
//! checks that can be answered now (and have a bound of their own), and an oversized
//! message is refused by size.

use crate::common;

use common::*;
use tonic::Code;
use warden::api::client::connect;
use warden::api::pb;
use warden::api::pb::authz_service_client::AuthzServiceClient;

fn check(min_revision: u64) -> pb::CheckRequest {
    pb::CheckRequest {
        subject: "alice".into(),
        org: "acme".into(),
        resource: "apps/web".into(),
        action: "app:read".into(),
        min_revision,
        ..Default::default()
    }
}

#[test]
fn beyond_capacity_is_resource_exhausted_never_a_queue_or_a_crash() {
    let daemon = Workdir::new().start_with(&["--demo", "--max-in-flight", "1"]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (unix, tcp) = (daemon.work.unix_target(), daemon.work.tcp_target());
    rt.block_on(async {
        let ch = connect(&unix).await.unwrap();
        let mut c = AuthzServiceClient::new(ch.clone());
        assert!(c.check(check(0)).await.unwrap().into_inner().allowed);

        // A flood: 2,000 calls at once on 8 connections, against one slot.
        let mut calls = tokio::task::JoinSet::new();
        for i in 0..2000 {
            if i % 250 == 0 {
                let target = if i % 500 == 0 { &unix } else { &tcp };
                let ch = connect(target).await.unwrap();
                for _ in 0..250 {
                    let mut c = AuthzServiceClient::new(ch.clone());
                    calls.spawn(async move { c.check(check(0)).await.map(|r| r.into_inner().allowed) });
                }
            }
        }
        // Health still answers while the daemon is flooded.
        assert_eq!(
            health(&unix, "").await,
            Some(tonic_health::ServingStatus::Serving.into())
        );
        let (mut ok, mut exhausted) = (0, 0);
        while let Some(r) = calls.join_next().await {
            match r.unwrap() {
                Ok(true) => ok += 1,
                Err(s) if s.code() == Code::ResourceExhausted => {
                    assert!(s.message().contains("at capacity"), "{}", s.message());
                    exhausted += 1
                }
                other => panic!("a flooded call got {other:?}"),
            }
        }
        println!("flood of 2000 against --max-in-flight 1: {ok} answered, {exhausted} RESOURCE_EXHAUSTED");
        assert_eq!(ok + exhausted, 2000);
        assert!(ok > 0);
        assert!(c.check(check(0)).await.unwrap().into_inner().allowed);
    });
}

#[test]
fn revision_waiters_take_no_capacity_from_checks_that_can_be_answered() {
    // 14 callers ask for a revision that will not come, as in the report (303 of 461
    // legitimate checks were refused); 10 may wait, the other 4 are refused at once.
    let daemon = Workdir::new().start_with(&[
        "--demo",
        "--max-in-flight",
        "16",
        "--max-revision-waiters",
        "10",
        "--min-revision-wait",
        "3s",
    ]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (unix, tcp) = (daemon.work.unix_target(), daemon.work.tcp_target());
    rt.block_on(async {
        let mut c = AuthzServiceClient::new(connect(&unix).await.unwrap());
        let revision = c.check(check(0)).await.unwrap().into_inner().revision;
        let far = revision + 1_000_000;

        let waiting_ch = connect(&tcp).await.unwrap();
        let waiters: Vec<_> = (0..14)
            .map(|_| {
                let mut w = AuthzServiceClient::new(waiting_ch.clone());
                tokio::spawn(async move { w.check(check(far)).await })
            })
            .collect();
        // Legitimate checks, 4 at a time, for as long as the waiters wait.
        let (mut answered, mut refused) = (0u32, 0u32);
        while !waiters.iter().all(|h| h.is_finished()) {
            let mut round = tokio::task::JoinSet::new();
            for _ in 0..4 {
                let mut c = c.clone();
                round.spawn(async move { c.check(check(0)).await });
            }
            while let Some(r) = round.join_next().await {
                match r.unwrap() {
                    Ok(r) => {
                        assert!(r.into_inner().allowed);
                        answered += 1;
                    }
                    Err(s) if s.code() == Code::ResourceExhausted => refused += 1,
                    Err(s) => panic!("a legitimate check got {s:?}"),
                }
            }
        }
        let (mut timed_out, mut too_many) = (0, 0);
        for w in waiters {
            match w.await.unwrap() {
                Err(s) if s.code() == Code::FailedPrecondition => {
                    // The configured wait, not the default 2 s.
                    assert!(s.message().contains("after waiting 3000 ms"), "{}", s.message());
                    timed_out += 1;
                }
                Err(s) if s.code() == Code::ResourceExhausted => {
                    assert!(s.message().starts_with("min_revision:"), "{}", s.message());
                    too_many += 1;
                }
                other => panic!("a far-future min_revision got {other:?}"),
            }
        }
        println!(
            "14 far-future min_revision callers: {timed_out} waited, {too_many} refused; \
             legitimate checks meanwhile: {answered} answered, {refused} refused"
        );
        assert_eq!((timed_out, too_many), (10, 4));
        assert!(answered > 0);
        assert_eq!(refused, 0, "legitimate checks refused while others waited");
    });
}

#[test]
fn an_oversized_message_is_refused_by_size() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    runtime().block_on(async {
        let mut c = AuthzServiceClient::new(connect(&daemon.work.unix_target()).await.unwrap())
            .max_encoding_message_size(64 << 20);
        let huge = pb::CheckRequest {
            subject: "a".repeat(5 << 20),
            ..check(0)
        };
        let r = c.check(huge).await;
        assert!(
            matches!(&r, Err(s) if s.code() == Code::OutOfRange || s.code() == Code::ResourceExhausted),
            "{r:?}"
        );
        // The connection and the daemon are fine.
        assert!(c.check(check(0)).await.unwrap().into_inner().allowed);
    });
}
