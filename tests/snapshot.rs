//! Online snapshots through a running daemon: `warden admin snapshot` while writes keep
//! committing gives one consistent revision R; `warden import` of it into a fresh store gives
//! the source's digest at R, the source's history (WatchChanges and the audit log answer the
//! same for 1..R), an index that matches the tables, and R+1 for the next write. No telemetry
//! (tokens' last use) travels; the call is for the Unix socket only; an import into a store
//! that is not empty is refused.

use crate::common;

use common::directory::{assert_refused, clients};
use common::{WARDEN, Workdir, runtime};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tonic::Code;
use warden::api::pb;
use warden::api::pb::audit_service_client::AuditServiceClient;

const WAIT: Duration = Duration::from_secs(60);

/// Every change 1..=`until` as WatchChanges sends it.
async fn history(target: &str, until: u64) -> Vec<pb::ChangeEvent> {
    let mut a = AuditServiceClient::new(warden::api::client::connect(target).await.expect("connect"));
    let mut s = a
        .watch_changes(pb::WatchChangesRequest {
            from_revision: 1,
            ..Default::default()
        })
        .await
        .expect("WatchChanges")
        .into_inner();
    let mut out = Vec::new();
    while out.last().is_none_or(|e: &pb::ChangeEvent| e.revision < until) {
        let e = tokio::time::timeout(WAIT, s.message())
            .await
            .expect("an event within the wait")
            .expect("stream")
            .expect("not ended");
        out.push(e);
    }
    out
}

/// acme's audit entries up to `until`, newest first.
async fn acme_audit(target: &str, until: u64) -> Vec<pb::AuditEntry> {
    let mut a = AuditServiceClient::new(warden::api::client::connect(target).await.expect("connect"));
    let entries = a
        .list_audit_entries(pb::ListAuditEntriesRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .expect("ListAuditEntries")
        .into_inner()
        .entries;
    entries.into_iter().filter(|e| e.revision <= until).collect()
}

fn warden(args: &[&str], paths: &[&Path]) -> std::process::Output {
    Command::new(WARDEN)
        .args(args)
        .args(paths)
        .output()
        .expect("run warden")
}

#[test]
fn a_snapshot_taken_during_writes_imports_with_its_state_and_history() {
    let mut source = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    let unix = source.work.unix_target();
    let file = source.work.data().join("snap.json");

    // A token used by a check: its last use is telemetry, flushed at shutdown.
    rt.block_on(async {
        let (secret, _, _) = common::directory::create_demo_token(&unix).await;
        let mut c = clients(&unix).await;
        assert!(
            c.check(&format!("token:{secret}"), "acme", "apps/web", "app:read", 0)
                .await
        );
    });
    source.stop();
    source.restart();

    let (snapshot_revision, written) = rt.block_on(async {
        // Writes keep committing while the snapshot is taken.
        let stop = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn({
            let (unix, stop) = (unix.clone(), stop.clone());
            async move {
                let mut c = clients(&unix).await;
                let mut i = 0u64;
                let mut last = 0;
                while !stop.load(Ordering::Relaxed) {
                    let user = format!("u{i}");
                    c.upsert_user(&user, &user).await;
                    last = c
                        .add_member("alice", "acme", &user, "org_user")
                        .await
                        .expect("AddMember");
                    i += 1;
                }
                last
            }
        });
        let mut c = clients(&unix).await;
        let start = c.stats().await.revision;
        while c.stats().await.revision < start + 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let out = tokio::task::spawn_blocking({
            let file = file.clone();
            let unix = unix.clone();
            move || warden(&["admin", "snapshot", "--connect", &unix, "--out"], &[&file])
        })
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let revision: u64 = text
            .split("snapshot at revision ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no revision in {text:?}"));
        // And some more after it.
        while c.stats().await.revision < revision + 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let written = writer.await.unwrap();
        assert!(
            revision > start && revision < written,
            "{start} < {revision} < {written}"
        );

        // Operator only.
        let mut remote = pb::admin_service_client::AdminServiceClient::new(
            warden::api::client::connect(&source.work.tcp_target())
                .await
                .unwrap(),
        );
        assert_refused(
            remote.snapshot(pb::SnapshotRequest::default()).await,
            Code::PermissionDenied,
            &["Unix socket"],
        );
        (revision, written)
    });

    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(json["revision"], snapshot_revision);
    assert_eq!(
        json["changelog"].as_array().unwrap().len() as u64,
        snapshot_revision
    );
    assert_eq!(json["apply_version"], 1);
    assert!(
        json["policy"].as_str().is_some_and(|p| p.len() == 64),
        "{}",
        json["policy"]
    );
    assert!(json.get("log_position").is_none());
    assert!(!json["directory"]["tokens"].as_array().unwrap().is_empty());
    let text = json.to_string();
    assert!(!text.contains("last_used_ms"), "telemetry in the snapshot");

    let source_history = rt.block_on(history(&unix, snapshot_revision));
    let source_audit = rt.block_on(acme_audit(&unix, snapshot_revision));
    source.stop();
    // The offline export does carry the token's last use: the snapshot left it out.
    let export = warden(&["export", "--data"], &[&source.work.data()]);
    assert!(String::from_utf8_lossy(&export.stdout).contains("last_used_ms"));

    let fresh = Workdir::new();
    let import = warden(&["import", "--data"], &[&fresh.data(), &file]);
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    assert!(
        String::from_utf8_lossy(&import.stdout).contains(&format!("revision: {snapshot_revision}")),
        "{}",
        String::from_utf8_lossy(&import.stdout)
    );
    let mut imported = fresh.start();
    rt.block_on(async {
        let target = imported.work.unix_target();
        let mut c = clients(&target).await;
        let digest = c
            .admin
            .directory_digest(pb::DirectoryDigestRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(digest.revision, snapshot_revision);
        assert_eq!(json["digest"], digest.sha256);
        let check = c
            .admin
            .check_index(pb::CheckIndexRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(check.consistent, "{check:?}");

        assert_eq!(history(&target, snapshot_revision).await, source_history);
        assert_eq!(acme_audit(&target, snapshot_revision).await, source_audit);

        let next = c.upsert_user("zoe", "zoe").await;
        assert_eq!(next, snapshot_revision + 1);
    });
    imported.stop();
    assert!(written > snapshot_revision);

    // Not into a store that holds anything.
    let again = warden(&["import", "--data"], &[&imported.work.data(), &file]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
