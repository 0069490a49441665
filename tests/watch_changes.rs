//! `AuditService.WatchChanges` through a running daemon: every committed change in revision
//! order with secrets redacted (invitation codes, token secrets), live changes as they commit,
//! resuming from any revision in the log, OUT_OF_RANGE naming the oldest revision, the org
//! filter and who may watch (operator on the Unix socket; an org's `audit:read` holder over TCP,
//! cut off when that permission goes), a reader that stops reading closed with a resumable
//! position instead of the daemon buffering without bound, shutdown ending streams, and
//! `warden watch` on the command line, and a default Python grpcio client
//! (`examples/python/watch_changes.py`) on both listeners.

use crate::common;

use common::directory::{assert_refused, clients};
use common::{WARDEN, Workdir, runtime};
use std::process::Command;
use std::time::Duration;
use tonic::Code;
use tonic::Streaming;
use warden::api::pb;
use warden::api::pb::audit_service_client::AuditServiceClient;
use warden::api::pb::invitation_service_client::InvitationServiceClient;
use warden::api::pb::token_service_client::TokenServiceClient;

type Audit = AuditServiceClient<tonic::transport::Channel>;

const WAIT: Duration = Duration::from_secs(60);

async fn audit(target: &str) -> Audit {
    AuditServiceClient::new(warden::api::client::connect(target).await.expect("connect"))
}

fn req(actor: &str, org: &str, from: u64) -> pb::WatchChangesRequest {
    pb::WatchChangesRequest {
        actor: actor.into(),
        org_id: org.into(),
        from_revision: from,
    }
}

/// The next event, waiting at most [`WAIT`].
async fn next(s: &mut Streaming<pb::ChangeEvent>) -> Result<Option<pb::ChangeEvent>, tonic::Status> {
    tokio::time::timeout(WAIT, s.message())
        .await
        .expect("no event within the wait")
}

/// Events until (and including) `until`.
async fn read_until(s: &mut Streaming<pb::ChangeEvent>, until: u64) -> Vec<pb::ChangeEvent> {
    let mut out = Vec::new();
    while out.last().is_none_or(|e: &pb::ChangeEvent| e.revision < until) {
        out.push(next(s).await.expect("stream failed").expect("stream ended"));
    }
    out
}

fn trailer(s: &tonic::Status, name: &str) -> Option<u64> {
    s.metadata().get(name)?.to_str().ok()?.parse().ok()
}

async fn create_invitation(target: &str, email: &str) -> (String, u64) {
    let ch = warden::api::client::connect(target).await.expect("connect");
    let r = InvitationServiceClient::new(ch)
        .create_invitation(pb::CreateInvitationRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            invitee: Some(pb::InvitationSpec {
                email: email.into(),
                role: "org_user".into(),
                ..Default::default()
            }),
            expires_in_seconds: 0,
        })
        .await
        .expect("CreateInvitation")
        .into_inner();
    (r.code, r.revision)
}

fn assert_gap_free(events: &[pb::ChangeEvent], first: u64) {
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.revision, first + i as u64, "gap or disorder at {i}: {events:?}");
    }
}

#[test]
fn watch_from_zero_sees_every_change_in_order_with_secrets_redacted_then_live_ones() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let unix = daemon.work.unix_target();
        let (code, _) = create_invitation(&unix, "newhire@example.com").await;
        let (secret, token_id, at) = common::directory::create_demo_token(&unix).await;
        assert!(code.len() >= 16 && secret.starts_with("wdn_"));

        let mut a = audit(&unix).await;
        let mut s = a
            .watch_changes(req("", "", 0))
            .await
            .expect("WatchChanges")
            .into_inner();
        let seen = read_until(&mut s, at).await;
        assert_gap_free(&seen, 1);
        let text = format!("{seen:?}");
        assert!(!text.contains(&code), "invitation code leaked: {text}");
        assert!(!text.contains(&secret), "token secret leaked: {text}");
        let inv = seen
            .iter()
            .find(|e| e.change_type == "create_invitation")
            .expect("create_invitation");
        assert!(inv.change_json.contains("[redacted]"), "{inv:?}");
        assert_eq!(inv.org_id, "acme");
        let tok = seen.last().expect("token");
        assert_eq!(tok.change_type, "create_token");
        assert!(tok.change_json.contains(&token_id), "{tok:?}");
        assert!(tok.change_json.contains("[redacted]"), "{tok:?}");

        // The same history as the audit log, revision by revision.
        let listed = a
            .list_audit_entries(pb::ListAuditEntriesRequest {
                actor: "alice".into(),
                page_size: 1000,
                ..Default::default()
            })
            .await
            .expect("ListAuditEntries")
            .into_inner()
            .entries;
        let mut listed: Vec<(u64, String, String)> = listed
            .into_iter()
            .map(|e| (e.revision, e.actor, e.change_type))
            .collect();
        listed.reverse();
        let watched: Vec<(u64, String, String)> = seen
            .iter()
            .map(|e| (e.revision, e.actor.clone(), e.change_type.clone()))
            .collect();
        assert_eq!(watched, listed);

        // A change committed after the stream caught up arrives on it.
        let mut c = clients(&unix).await;
        let rev = c.upsert_user("zoe", "zoe").await;
        let live = next(&mut s).await.expect("live").expect("live");
        assert_eq!((live.revision, live.change_type.as_str()), (rev, "upsert_user"));
    });

    // `warden watch` prints the same, one JSON object a line, and stops at --limit.
    let out = Command::new(WARDEN)
        .args(["watch", "--json", "--from", "2", "--limit", "3", "--connect"])
        .arg(daemon.work.unix_target())
        .output()
        .expect("warden watch");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let revs: Vec<u64> = lines.iter().map(|l| l["revision"].as_u64().unwrap()).collect();
    assert_eq!(revs, [2, 3, 4]);
    assert!(
        lines
            .iter()
            .all(|l| l["type"].is_string() && l["change"].is_object())
    );
}

#[test]
fn resume_from_a_middle_revision_and_out_of_range_names_the_oldest() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    let last = rt.block_on(async {
        let unix = daemon.work.unix_target();
        let mut a = audit(&unix).await;
        let last = clients(&unix).await.stats().await.revision;
        assert!(last > 6);

        let mut s = a
            .watch_changes(req("", "", 5))
            .await
            .expect("from 5")
            .into_inner();
        let seen = read_until(&mut s, last).await;
        assert_gap_free(&seen, 5);

        // last + 1: nothing yet, then the next write.
        let mut s = a
            .watch_changes(req("", "", last + 1))
            .await
            .expect("from last+1")
            .into_inner();
        let rev = clients(&unix).await.upsert_user("zoe", "zoe").await;
        assert_eq!(rev, last + 1);
        assert_eq!(next(&mut s).await.unwrap().unwrap().revision, rev);

        // Beyond the current revision + 1.
        let err = a.watch_changes(req("", "", rev + 2)).await.expect_err("beyond");
        assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
        assert!(err.message().contains("from_revision"), "{err:?}");
        assert_eq!(trailer(&err, "x-warden-oldest-revision"), Some(1));
        rev
    });
    daemon.stop();

    // A store imported from a plain export keeps no history before the export: its log
    // starts at the export's revision, and asking for older revisions is OUT_OF_RANGE.
    let dump = daemon.work.data().join("dump.json");
    let export = Command::new(WARDEN)
        .arg("export")
        .arg("--data")
        .arg(daemon.work.data())
        .arg("--output")
        .arg(&dump)
        .output()
        .expect("export");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let fresh = Workdir::new();
    let import = Command::new(WARDEN)
        .arg("import")
        .arg(&dump)
        .arg("--data")
        .arg(fresh.data())
        .output()
        .expect("import");
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );
    let imported = fresh.start();
    rt.block_on(async {
        let mut a = audit(&imported.work.unix_target()).await;
        let err = a.watch_changes(req("", "", 1)).await.expect_err("before the log");
        assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
        assert!(
            err.message()
                .contains(&format!("oldest revision available is {last}")),
            "{err:?}"
        );
        assert_eq!(trailer(&err, "x-warden-oldest-revision"), Some(last));
        // 0 means the oldest there is.
        let mut s = a
            .watch_changes(req("", "", 0))
            .await
            .expect("from 0")
            .into_inner();
        let first = next(&mut s).await.unwrap().unwrap();
        assert_eq!((first.revision, first.change_type.as_str()), (last, "import"));
    });
}

#[test]
fn org_filter_and_who_may_watch() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let (unix, tcp) = (daemon.work.unix_target(), daemon.work.tcp_target());
        let (_, token_id, _) = common::directory::create_demo_token(&unix).await;
        // Revoking names only the token: the org comes from the state before the change.
        let revoked = TokenServiceClient::new(warden::api::client::connect(&unix).await.unwrap())
            .revoke_token(pb::RevokeTokenRequest {
                actor: "alice".into(),
                token_id,
            })
            .await
            .expect("RevokeToken")
            .into_inner()
            .revision;
        let mut c = clients(&unix).await;
        c.upsert_user("zoe", "zoe").await;
        let globex = c
            .add_member("erin", "globex", "zoe", "org_user")
            .await
            .expect("globex");

        let mut a = audit(&unix).await;
        let mut s = a
            .watch_changes(req("", "acme", 0))
            .await
            .expect("acme")
            .into_inner();
        let acme = read_until(&mut s, revoked).await;
        assert!(acme.iter().all(|e| e.org_id == "acme"), "{acme:?}");
        assert!(acme.iter().any(|e| e.change_type == "revoke_token"));
        assert!(acme.windows(2).all(|w| w[0].revision < w[1].revision));
        // The globex write is not on acme's stream; the next acme write is.
        let acme_rev = c
            .add_member("alice", "acme", "zoe", "org_user")
            .await
            .expect("acme");
        let e = next(&mut s).await.unwrap().unwrap();
        assert_eq!(e.revision, acme_rev);
        assert!(acme_rev > globex);

        // Over TCP: an org is required, and `audit:read` in it.
        let mut remote = audit(&tcp).await;
        assert_refused(
            remote.watch_changes(req("alice", "", 0)).await,
            Code::PermissionDenied,
            &["org_id", "Unix socket"],
        );
        assert_refused(
            remote.watch_changes(req("bob", "acme", 0)).await,
            Code::PermissionDenied,
            &["bob", "audit:read"],
        );
        assert_refused(
            remote.watch_changes(req("", "acme", 0)).await,
            Code::InvalidArgument,
            &["actor"],
        );
        let mut s = remote
            .watch_changes(req("alice", "acme", acme_rev))
            .await
            .expect("alice on acme")
            .into_inner();
        assert_eq!(next(&mut s).await.unwrap().unwrap().revision, acme_rev);

        // alice hands admin to zoe and steps down: her stream ends with PERMISSION_DENIED.
        let r1 = c
            .member
            .update_member_role(pb::UpdateMemberRoleRequest {
                actor: "alice".into(),
                org_id: "acme".into(),
                user_id: "zoe".into(),
                role: "admin".into(),
            })
            .await
            .expect("zoe admin")
            .into_inner()
            .revision;
        c.member
            .update_member_role(pb::UpdateMemberRoleRequest {
                actor: "zoe".into(),
                org_id: "acme".into(),
                user_id: "alice".into(),
                role: "org_user".into(),
            })
            .await
            .expect("alice steps down");
        let mut end = None;
        while end.is_none() {
            match next(&mut s).await {
                Ok(Some(e)) => assert!(e.revision >= r1, "{e:?}"),
                Ok(None) => panic!("ended without a status"),
                Err(status) => end = Some(status),
            }
        }
        let end = end.unwrap();
        assert_eq!(end.code(), Code::PermissionDenied, "{end:?}");
        assert!(end.message().contains("audit:read"), "{end:?}");
    });
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_reader_that_stops_reading_is_closed_with_a_resumable_position() {
    const WRITES: u64 = 1500;
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let unix = daemon.work.unix_target();
        let start = clients(&unix).await.stats().await.revision;
        let mut a = audit(&unix).await;
        // Opened, then not read while the writes happen.
        let mut slow = a
            .watch_changes(req("", "", start + 1))
            .await
            .expect("watch")
            .into_inner();
        let rss_before = rss_kib(daemon.pid());

        // 8 KiB of public metadata per change, so the transport's windows fill early too.
        let big = format!("{{\"blob\":\"{}\"}}", "x".repeat(8000));
        let mut writers = tokio::task::JoinSet::new();
        for w in 0..4u64 {
            let (unix, big) = (unix.clone(), big.clone());
            writers.spawn(async move {
                let mut c = clients(&unix).await;
                for _ in 0..WRITES / 4 {
                    c.org
                        .update_org(pb::UpdateOrgRequest {
                            actor: "alice".into(),
                            org_id: "acme".into(),
                            public_metadata: Some(big.clone()),
                            name: Some(format!("Acme {w}")),
                            ..Default::default()
                        })
                        .await
                        .expect("UpdateOrg");
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.expect("writer");
        }
        let last = start + WRITES;
        assert_eq!(clients(&unix).await.stats().await.revision, last);
        // The daemon gives up on the reader (an outcome in its log), not on a timer here.
        let deadline = std::time::Instant::now() + WAIT;
        while !daemon.logs().contains("fell behind") {
            assert!(std::time::Instant::now() < deadline, "{}", daemon.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rss_after = rss_kib(daemon.pid());
        eprintln!("daemon VmRSS: {rss_before} KiB before, {rss_after} KiB after {WRITES} writes of ~8 KiB");

        // What was buffered arrives, gap-free, then the status with where to resume.
        let mut got = Vec::new();
        let status = loop {
            match next(&mut slow).await {
                Ok(Some(e)) => got.push(e),
                Ok(None) => panic!("ended without a status after {} events", got.len()),
                Err(s) => break s,
            }
        };
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        let resume = trailer(&status, "x-warden-resume-revision").expect("resume trailer");
        assert!(
            status
                .message()
                .contains(&format!("resume from revision {resume}")),
            "{status:?}"
        );
        assert_gap_free(&got, start + 1);
        assert_eq!(resume, start + 1 + got.len() as u64);
        assert!(
            (got.len() as u64) < WRITES,
            "the daemon held all {WRITES} changes for a reader that did not read"
        );

        // Resuming yields the rest without a gap.
        let mut s = a
            .watch_changes(req("", "", resume))
            .await
            .expect("resume")
            .into_inner();
        let rest = read_until(&mut s, last).await;
        assert_gap_free(&rest, resume);
    });
}

#[test]
fn shutdown_ends_streams_with_where_to_resume() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    rt.block_on(async {
        let unix = daemon.work.unix_target();
        let last = clients(&unix).await.stats().await.revision;
        let mut a = audit(&unix).await;
        let mut s = a.watch_changes(req("", "", 0)).await.expect("watch").into_inner();
        read_until(&mut s, last).await;
        daemon.signal(libc::SIGTERM);
        let end = next(&mut s).await.expect_err("a status, not a clean end");
        assert_eq!(end.code(), Code::Unavailable, "{end:?}");
        assert!(end.message().contains("shutting down"), "{end:?}");
        assert_eq!(trailer(&end, "x-warden-resume-revision"), Some(last + 1));
    });
    // The client's connection must answer the daemon's goodbye; a runtime nobody drives
    // would hold it open, so close it.
    drop(rt);
    let status = daemon.wait_exit();
    assert!(status.success(), "{status}; logs:\n{}", daemon.logs());
    assert!(
        !daemon.logs().contains("calls still in flight"),
        "the stream held up the drain:\n{}",
        daemon.logs()
    );
}

#[test]
fn a_default_python_grpcio_client_follows_the_changes() {
    use crate::python_client::{repo, run, stubs, venv};
    let venv = venv();
    let gen_dir = stubs(&venv);
    let daemon = Workdir::new().start_with(&["--demo"]);
    let rt = runtime();
    let (code, last) = rt.block_on(create_invitation(&daemon.work.unix_target(), "py@example.com"));
    // What the Rust client sees, all changes and acme's (the invitation, the last write, is acme's).
    let lines = |org: &'static str| {
        rt.block_on(async {
            let mut s = audit(&daemon.work.unix_target())
                .await
                .watch_changes(req("", org, 1))
                .await
                .expect("watch")
                .into_inner();
            read_until(&mut s, last)
                .await
                .iter()
                .map(|e| {
                    let org = if e.org_id.is_empty() { "-" } else { &e.org_id };
                    format!("{} {} {} {}", e.revision, e.change_type, org, e.actor)
                })
                .collect::<Vec<String>>()
        })
    };
    let (all, acme) = (lines(""), lines("acme"));
    assert!(acme.len() < all.len());
    for (target, args, expected) in [
        (daemon.work.unix_target(), vec![], &all),
        (
            daemon.work.tcp_target(),
            vec!["--org", "acme", "--actor", "alice"],
            &acme,
        ),
    ] {
        let out = run(
            "watch_changes.py",
            Command::new(venv.join("bin/python"))
                .arg(repo().join("examples/python/watch_changes.py"))
                .args(["--target", &target, "--from", "1"])
                .args(&args)
                .args(["--limit", &expected.len().to_string()])
                .env("PYTHONPATH", gen_dir.path()),
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        assert!(!stdout.contains(&code), "invitation code leaked: {stdout}");
        let got: Vec<&str> = stdout.lines().collect();
        assert_eq!(&got, expected, "{target}");
    }
}
