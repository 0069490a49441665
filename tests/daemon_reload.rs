//! Live policy reload against the real daemon: a saved edit takes effect without a
//! restart (the time it took is printed, not asserted); a broken, truncated or deleted
//! file leaves the last good policy serving with the error in status; SIGHUP and a
//! Kubernetes-style `..data` symlink swap reload too.

use crate::common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};
use warden::api::client::connect;
use warden::api::pb;

const MODEL: &str = "[request_definition]\nr = sub, dom, obj, act\n\n[policy_definition]\np = sub, dom, obj, act\n\n\
[policy_effect]\ne = some(where (p.eft == allow))\n\n[matchers]\nm = r.sub == p.sub && r.dom == p.dom && keyMatch2(r.obj, p.obj) && r.act == p.act\n";

fn rules(lines: &[&str]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

async fn allowed(target: &str, sub: &str, act: &str) -> bool {
    let mut c = pb::authz_service_client::AuthzServiceClient::new(connect(target).await.expect("connect"));
    c.check(pb::CheckRequest {
        subject: sub.into(),
        org: "acme".into(),
        resource: "apps/web".into(),
        action: act.into(),
        ..Default::default()
    })
    .await
    .expect("check")
    .into_inner()
    .allowed
}

async fn status(target: &str) -> pb::PolicyStatus {
    let mut a = pb::admin_service_client::AdminServiceClient::new(connect(target).await.expect("connect"));
    a.get_policy_status(pb::GetPolicyStatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

/// Poll until `sub`'s `act` gets `want`; how long it took.
async fn until_decision(target: &str, sub: &str, act: &str, want: bool) -> Duration {
    let start = Instant::now();
    while allowed(target, sub, act).await != want {
        assert!(start.elapsed() < PATIENCE, "{sub} {act} never became {want}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

/// Replace a file the way editors do: write a temp file, rename over.
fn write_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn saved_edits_take_effect_and_broken_ones_never_do() {
    let work = Workdir::with_policy_files(&[
        ("model.conf", MODEL),
        ("policy.csv", &rules(&["p, alice, acme, apps/:id, read"])),
    ]);
    let policy = work.policies().join("policy.csv");
    let daemon = work.start();
    let target = daemon.work.unix_target();
    let rt = runtime();
    rt.block_on(async {
        assert!(allowed(&target, "alice", "read").await);
        assert!(!allowed(&target, "bob", "read").await);

        // In-place write.
        std::fs::write(
            &policy,
            rules(&["p, alice, acme, apps/:id, read", "p, bob, acme, apps/:id, read"]),
        )
        .unwrap();
        let took = until_decision(&target, "bob", "read", true).await;
        println!("in-place edit visible after {took:?}");

        // Editor-style write + rename.
        write_rename(&policy, &rules(&["p, bob, acme, apps/:id, read"]));
        let took = until_decision(&target, "alice", "read", false).await;
        println!("write-rename edit visible after {took:?}");
        let good = status(&target).await.content_hash;

        // Broken in several ways: each keeps the last good policy serving.
        type Breaker<'a> = (&'a str, Box<dyn Fn() + 'a>);
        let broken: Vec<Breaker<'_>> = vec![
            (
                "wrong arity",
                Box::new(|| std::fs::write(&policy, "p, bob, acme\n").unwrap()),
            ),
            ("unknown function", {
                let m = daemon.work.policies().join("model.conf");
                Box::new(move || std::fs::write(&m, MODEL.replace("keyMatch2", "keyMatch9")).unwrap())
            }),
            ("truncated", Box::new(|| std::fs::write(&policy, "").unwrap())),
            ("deleted", Box::new(|| std::fs::remove_file(&policy).unwrap())),
        ];
        for (what, breakit) in broken {
            breakit();
            let start = Instant::now();
            loop {
                let s = status(&target).await;
                if !s.last_reload_error.is_empty() {
                    assert_eq!(
                        s.content_hash, good,
                        "{what}: a broken policy replaced the good one"
                    );
                    println!("{what}: reported as {:?}", s.last_reload_error);
                    break;
                }
                assert!(start.elapsed() < PATIENCE, "{what}: never reported");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert!(
                allowed(&target, "bob", "read").await,
                "{what}: the last good policy must keep serving"
            );
            assert!(
                !allowed(&target, "alice", "read").await,
                "{what}: no decision from a broken policy"
            );
            // Repair for the next round.
            std::fs::write(daemon.work.policies().join("model.conf"), MODEL).unwrap();
            write_rename(&policy, &rules(&["p, bob, acme, apps/:id, read"]));
            let start = Instant::now();
            while !status(&target).await.last_reload_error.is_empty() {
                assert!(start.elapsed() < PATIENCE, "{what}: repair never loaded");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let s = status(&target).await;
        assert!(s.last_reload_error.is_empty());
        assert_eq!(s.content_hash, good);
    });
}

#[test]
fn the_error_names_file_and_line() {
    let work = Workdir::with_policy_files(&[
        ("model.conf", MODEL),
        ("policy.csv", &rules(&["p, alice, acme, apps/:id, read"])),
    ]);
    let policy = work.policies().join("policy.csv");
    let daemon = work.start();
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        std::fs::write(
            &policy,
            rules(&["p, alice, acme, apps/:id, read", "# fine", "p, bob, acme"]),
        )
        .unwrap();
        let start = Instant::now();
        let s = loop {
            let s = status(&target).await;
            if !s.last_reload_error.is_empty() {
                break s;
            }
            assert!(start.elapsed() < PATIENCE);
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(
            s.last_reload_error.contains("policy.csv:3: `p` takes 4 values"),
            "{}",
            s.last_reload_error
        );
    });
}

#[test]
fn sighup_reloads() {
    let work = Workdir::with_policy_files(&[
        ("model.conf", MODEL),
        ("policy.csv", &rules(&["p, alice, acme, apps/:id, read"])),
    ]);
    let daemon = work.start();
    let target = daemon.work.unix_target();
    let rt = runtime();
    let before = rt.block_on(status(&target)).reloads_succeeded;
    daemon.signal(libc::SIGHUP);
    rt.block_on(async {
        let start = Instant::now();
        while status(&target).await.reloads_succeeded <= before {
            assert!(start.elapsed() < PATIENCE, "SIGHUP did not reload");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(allowed(&target, "alice", "read").await);
    });
}

#[test]
fn configmap_symlink_swap_reloads() {
    // Kubernetes mounts a ConfigMap as `..data -> ..<timestamp>/` with each file a
    // symlink through `..data`; an update swaps `..data` atomically.
    let work = Workdir::with_policy_files(&[]);
    let dir = work.policies();
    let v1 = dir.join("..v1");
    std::fs::create_dir_all(&v1).unwrap();
    std::fs::write(v1.join("model.conf"), MODEL).unwrap();
    std::fs::write(v1.join("policy.csv"), rules(&["p, alice, acme, apps/:id, read"])).unwrap();
    std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
    for f in ["model.conf", "policy.csv"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), dir.join(f)).unwrap();
    }
    let daemon = work.start();
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        assert!(allowed(&target, "alice", "read").await);
        let v2 = dir.join("..v2");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("model.conf"), MODEL).unwrap();
        std::fs::write(v2.join("policy.csv"), rules(&["p, carol, acme, apps/:id, read"])).unwrap();
        std::os::unix::fs::symlink("..v2", dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        let took = until_decision(&target, "carol", "read", true).await;
        println!("ConfigMap swap visible after {took:?}");
        assert!(!allowed(&target, "alice", "read").await);
    });
}
