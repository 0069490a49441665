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

/// Poll the status until `done` holds for it; the status that did.
async fn until_status(
    target: &str,
    what: &str,
    done: impl Fn(&pb::PolicyStatus) -> bool,
) -> pb::PolicyStatus {
    let start = Instant::now();
    loop {
        let s = status(target).await;
        if done(&s) {
            return s;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: never happened; last status {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_removed_engine_toml_is_a_failed_reload_not_a_policy_that_denies_every_member() {
    // The shipped policy: directory roles come from engine.toml.
    let metrics = free_port();
    let flag = format!("tcp:{metrics}");
    let daemon = Workdir::new().start_with(&["--demo", "--metrics", &flag]);
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        let client = warden::client::Client::connect(&target).await.expect("connect");
        assert!(
            client
                .can("alice", "acme", "apps/web", "app:write")
                .await
                .unwrap()
        );
        let before = status(&target).await;

        std::fs::remove_file(daemon.work.policies().join("engine.toml")).unwrap();
        let s = until_status(&target, "removed engine.toml reported", |s| {
            !s.last_reload_error.is_empty()
        })
        .await;
        assert!(
            s.last_reload_error
                .contains("engine.toml:0: cannot read: No such file or directory"),
            "{}",
            s.last_reload_error
        );
        assert_eq!(
            s.content_hash, before.content_hash,
            "the last good policy keeps serving"
        );
        assert_eq!(s.reloads_succeeded, before.reloads_succeeded);
        assert!(
            client
                .can("alice", "acme", "apps/web", "app:write")
                .await
                .unwrap(),
            "members keep their directory roles"
        );

        let (code, health) = crate::daemon_metrics::get(metrics, "/healthz").await;
        assert_eq!(code, 200, "{health}");
        assert!(
            health.contains("policy reload failed") && health.contains("engine.toml:0: cannot read"),
            "{health}"
        );
        let (_, body) = crate::daemon_metrics::get(metrics, "/metrics").await;
        assert!(body.contains("\nwarden_policy_last_reload_failed 1\n"), "{body}");
        assert!(
            body.lines()
                .any(|l| l.starts_with("warden_policy_reload_error_info{")
                    && l.contains("engine.toml:0: cannot read")),
            "{body}"
        );

        // Putting it back is a successful reload again.
        std::fs::write(
            daemon.work.policies().join("engine.toml"),
            warden::policy::DEFAULT_ENGINE,
        )
        .unwrap();
        until_status(&target, "restored engine.toml loaded", |s| {
            s.last_reload_error.is_empty()
        })
        .await;
        let (_, body) = crate::daemon_metrics::get(metrics, "/metrics").await;
        assert!(body.contains("\nwarden_policy_last_reload_failed 0\n"), "{body}");
    });
}

/// Copy a policy directory's regular files (the layout `cp -r` makes).
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn replacing_the_policy_directory_keeps_hot_reload_working() {
    let metrics = free_port();
    let flag = format!("tcp:{metrics}");
    let work = Workdir::with_policy_files(&[
        ("model.conf", MODEL),
        ("policy.csv", &rules(&["p, alice, acme, apps/:id, read"])),
    ]);
    let dir = work.policies();
    let daemon = work.start_with(&["--metrics", &flag]);
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        assert!(allowed(&target, "alice", "read").await);
        let s = status(&target).await;
        assert_eq!(s.watcher, "watching", "{s:?}");

        // `rm -rf policies`: the watcher cannot watch what is gone, and says so.
        let staged = daemon.work.dir.path().join("new-policies");
        copy_files(&dir, &staged);
        std::fs::write(
            staged.join("policy.csv"),
            rules(&["p, bob, acme, apps/:id, read"]),
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let s = until_status(&target, "lost watch reported", |s| s.watcher == "error").await;
        assert!(s.watcher_detail.contains("policies"), "{s:?}");
        let (_, body) = crate::daemon_metrics::get(metrics, "/metrics").await;
        assert!(body.contains("\nwarden_policy_watcher_up 0\n"), "{body}");
        let (code, health) = crate::daemon_metrics::get(metrics, "/healthz").await;
        assert!(code == 200 && health.contains("policy watcher:"), "{health}");
        assert!(
            allowed(&target, "alice", "read").await,
            "the last good policy keeps serving"
        );

        // `cp -r new policies`: watched again and loaded.
        copy_files(&staged, &dir);
        let took = until_decision(&target, "bob", "read", true).await;
        println!("re-created directory loaded after {took:?}");
        let s = until_status(&target, "watch re-established", |s| s.watcher == "watching").await;
        assert!(s.watch_restarts >= 1, "{s:?}");

        // And a later edit inside the new directory still loads.
        write_rename(
            &dir.join("policy.csv"),
            &rules(&["p, carol, acme, apps/:id, read"]),
        );
        until_decision(&target, "carol", "read", true).await;
        assert!(!allowed(&target, "bob", "read").await);
        let (_, body) = crate::daemon_metrics::get(metrics, "/metrics").await;
        assert!(body.contains("\nwarden_policy_watcher_up 1\n"), "{body}");
    });
}

#[test]
fn swapping_the_policies_symlink_to_another_directory_reloads() {
    // `--policies` is a symlink that a deploy swaps atomically (`ln -s v2 tmp && mv -T tmp policies`).
    let work = Workdir::with_policy_files(&[]);
    let root = work.dir.path().to_path_buf();
    std::fs::remove_dir_all(work.policies()).unwrap();
    for (v, who) in [("v1", "alice"), ("v2", "bob")] {
        std::fs::create_dir_all(root.join(v)).unwrap();
        std::fs::write(root.join(v).join("model.conf"), MODEL).unwrap();
        std::fs::write(
            root.join(v).join("policy.csv"),
            rules(&[&format!("p, {who}, acme, apps/:id, read")]),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("v1", work.policies()).unwrap();
    let daemon = work.start();
    let target = daemon.work.unix_target();
    runtime().block_on(async {
        assert!(allowed(&target, "alice", "read").await);
        std::os::unix::fs::symlink("v2", root.join("policies.tmp")).unwrap();
        std::fs::rename(root.join("policies.tmp"), daemon.work.policies()).unwrap();
        let took = until_decision(&target, "bob", "read", true).await;
        println!("symlink swap visible after {took:?}");
        assert!(!allowed(&target, "alice", "read").await);
        let s = until_status(&target, "watching v2", |s| s.watcher_detail.ends_with("v2")).await;
        assert_eq!(s.watcher, "watching");

        // Edits inside the new target load too.
        write_rename(
            &root.join("v2").join("policy.csv"),
            &rules(&["p, carol, acme, apps/:id, read"]),
        );
        until_decision(&target, "carol", "read", true).await;
    });
}
