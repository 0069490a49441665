//! `serve --decision-log` and `--audit-log` against the real daemon: what an operator
//! greps for is there (who, what, result, revision, policy hash, the deciding rule, the
//! peer and the decision id the caller got back; actor, kind, revision), secrets are not,
//! sampling and rotation do what the flags say, the audit log of a fresh demo starts at
//! revision 1 and picks up where it stopped across a restart. And the daemon's own log:
//! `--log-format json`, no colour codes in a file, `RUST_LOG` / `WARDEN_LOG`.

use crate::common;

use common::directory::clients;
use common::*;
use serde_json::Value;
use std::path::Path;
use warden::api::pb;

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The audit file's lines after its header, which must say a single node writes every
/// change committed to its directory.
fn audit_lines(path: &Path) -> Vec<Value> {
    let mut all = lines(path);
    assert!(!all.is_empty(), "an audit file starts with its header");
    let header = all.remove(0);
    assert_eq!(header["mode"], "single_node", "{header}");
    assert!(
        header["writes"]
            .as_str()
            .is_some_and(|w| w.starts_with("every change committed")),
        "{header}"
    );
    assert!(header.get("revision").is_none(), "{header}");
    all
}

fn all_text(dir: &Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            out.push_str(&String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
        }
    }
    out
}

const TOKEN: &str = "wdn_pat_9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const PRIVATE_SECRET: &str = "sk_live_5up3r53cr3t";

#[test]
fn decisions_and_mutations_are_logged_without_secrets() {
    let work = Workdir::new();
    let logs = work.dir.path().join("logs");
    let decisions = logs.join("decisions.jsonl");
    let audit = logs.join("audit.jsonl");
    let mut daemon = work.start_with(&[
        "--demo",
        "--decision-log",
        decisions.to_str().unwrap(),
        "--audit-log",
        audit.to_str().unwrap(),
    ]);
    let target = daemon.work.unix_target();
    // Each runtime ends before the daemon stops, so no idle connection holds up its drain.
    let (policy_hash, created_at, added_at, ids) = runtime().block_on(async {
        let mut c = clients(&target).await;
        let hash = c
            .admin
            .get_policy_status(pb::GetPolicyStatusRequest {})
            .await
            .unwrap()
            .into_inner()
            .content_hash;
        let ask = |subject: &str| pb::CheckRequest {
            subject: subject.into(),
            org: "acme".into(),
            resource: "apps/web".into(),
            action: "app:write".into(),
            ..Default::default()
        };
        let alice = c.authz.check(ask("alice")).await.unwrap().into_inner();
        assert!(alice.allowed);
        let dave = c.authz.check(ask("dave")).await.unwrap().into_inner();
        assert!(!dave.allowed);
        // An API-token-shaped subject: decided (deny), logged, never written out.
        assert!(!c.check(TOKEN, "acme", "apps/web", "app:read", 0).await);
        let batch = c
            .authz
            .batch_check(pb::BatchCheckRequest {
                items: vec![
                    pb::CheckRequest {
                        subject: "bob".into(),
                        org: "acme".into(),
                        resource: "apps/api".into(),
                        action: "app:write".into(),
                        ..Default::default()
                    },
                    pb::CheckRequest {
                        subject: "carol".into(),
                        org: "acme".into(),
                        resource: "apps/api".into(),
                        action: "app:read".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(batch.results.len(), 2);
        let mut ids = vec![alice.decision_id, dave.decision_id];
        for r in &batch.results {
            match &r.result {
                Some(pb::batch_check_result::Result::Decision(d)) => ids.push(d.decision_id.clone()),
                other => panic!("batch item: {other:?}"),
            }
        }

        let created = c
            .org
            .create_org(pb::CreateOrgRequest {
                actor: "alice".into(),
                org_id: "initech".into(),
                name: "Initech".into(),
                plan: "free".into(),
                private_metadata: format!("{{\"stripe_key\": \"{PRIVATE_SECRET}\"}}"),
                ..Default::default()
            })
            .await
            .expect("CreateOrg")
            .into_inner()
            .revision;
        let added = c
            .member
            .add_member(pb::AddMemberRequest {
                actor: "alice".into(),
                org_id: "initech".into(),
                user_id: "bob".into(),
                role: "org_user".into(),
            })
            .await
            .expect("AddMember")
            .into_inner()
            .revision;
        (hash, created, added, ids)
    });
    daemon.stop(); // flushes both logs

    let d = lines(&decisions);
    assert_eq!(d.len(), 5, "every decision at the default sample rate 1: {d:#?}");
    let hashed = |v: &Value| v["subject"].as_str().unwrap().starts_with("sha256:");
    assert!(d.iter().all(hashed), "subjects are hashed by default");
    assert!(d.iter().all(|v| v["policy_hash"] == policy_hash.as_str()));
    assert!(d.iter().all(|v| v["revision"].as_u64().unwrap() > 0));
    let first = &d[0];
    assert_eq!(
        (
            &first["source"],
            &first["org"],
            &first["resource"],
            &first["action"],
            &first["allowed"]
        ),
        (
            &"check".into(),
            &"acme".into(),
            &"apps/web".into(),
            &"app:write".into(),
            &true.into()
        )
    );
    assert_eq!(d[1]["allowed"], false);
    assert_eq!(d[3]["source"], "batch_check");
    assert_eq!(d[3]["allowed"], true, "bob (org contributor) writes api");
    assert_eq!(d[4]["allowed"], false, "carol's team has no grant on api");
    assert_ne!(d[0]["subject"], d[1]["subject"]);

    // Each caller-visible id is on its line, once; ids are distinct.
    assert!(ids.iter().all(|id| !id.is_empty()), "{ids:?}");
    let logged_ids: Vec<&str> = [0, 1, 3, 4]
        .iter()
        .map(|&i| d[i]["decision_id"].as_str().unwrap())
        .collect();
    assert_eq!(logged_ids, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(d[2]["decision_id"].as_str().is_some_and(|id| !id.is_empty()));
    let distinct: std::collections::BTreeSet<&str> =
        d.iter().map(|v| v["decision_id"].as_str().unwrap()).collect();
    assert_eq!(distinct.len(), d.len(), "{d:#?}");
    // The deciding rule of an allow is named by file and line; the caller is the peer.
    for i in [0, 3] {
        let rule = d[i]["rule"]
            .as_str()
            .unwrap_or_else(|| panic!("no rule: {}", d[i]));
        let (file, line) = rule.rsplit_once(':').unwrap();
        assert!(
            file.ends_with("policy.csv") && line.parse::<u32>().unwrap() > 0,
            "{rule}"
        );
    }
    for v in &d {
        let peer = v["peer"].as_str().unwrap_or_else(|| panic!("no peer: {v}"));
        assert!(peer.starts_with("unix:uid="), "{peer}");
    }

    let a = audit_lines(&audit);
    let seed = a.len() - 2;
    assert!(seed > 0, "the demo seed is in the audit log: {a:#?}");
    let seeded: Vec<u64> = a.iter().map(|v| v["revision"].as_u64().unwrap()).collect();
    assert_eq!(
        seeded,
        (1..=a.len() as u64).collect::<Vec<_>>(),
        "a fresh demo store's audit log starts at revision 1, none skipped"
    );
    assert!(
        a[..seed]
            .iter()
            .any(|v| v["kind"] == "create_org" && v["change"]["id"] == "acme"),
        "{a:#?}"
    );
    assert_eq!(a[seed]["revision"].as_u64(), Some(created_at));
    assert_eq!(a[seed]["actor"], "alice");
    assert_eq!(a[seed]["kind"], "create_org");
    assert_eq!(a[seed]["change"]["id"], "initech");
    assert_eq!(a[seed]["change"]["private_metadata"], "[redacted]");
    assert_eq!(a[seed + 1]["revision"].as_u64(), Some(added_at));
    assert_eq!(a[seed + 1]["kind"], "add_member");
    assert_eq!(a[seed + 1]["change"]["user"], "bob");

    let everything = all_text(&logs);
    assert!(!everything.contains(TOKEN), "the token reached a log file");
    assert!(
        !everything.contains(PRIVATE_SECRET),
        "private metadata reached a log file"
    );

    // Restarted: the audit log continues after its last line, without repeats.
    daemon.restart();
    let again = runtime().block_on(async {
        let mut c = clients(&daemon.work.unix_target()).await;
        c.member
            .update_member_role(pb::UpdateMemberRoleRequest {
                actor: "alice".into(),
                org_id: "initech".into(),
                user_id: "bob".into(),
                role: "org_contributor".into(),
            })
            .await
            .expect("UpdateMemberRole")
            .into_inner()
            .revision
    });
    daemon.stop();
    let revisions: Vec<u64> = audit_lines(&audit)
        .iter()
        .map(|v| v["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(
        revisions,
        (1..=again).collect::<Vec<_>>(),
        "no repeats, none skipped"
    );
}

#[test]
fn plain_subjects_sampling_and_rotation() {
    let work = Workdir::new();
    let logs = work.dir.path().join("logs");
    let decisions = logs.join("d.jsonl");
    let mut daemon = work.start_with(&[
        "--demo",
        "--decision-log",
        decisions.to_str().unwrap(),
        "--decision-log-subjects",
        "plain",
        "--log-rotate-bytes",
        "4096",
        "--log-rotate-keep",
        "2",
    ]);
    runtime().block_on(async {
        let mut c = clients(&daemon.work.unix_target()).await;
        let item = |subject: &str| pb::CheckRequest {
            subject: subject.into(),
            org: "acme".into(),
            resource: "apps/web".into(),
            action: "app:read".into(),
            ..Default::default()
        };
        for _ in 0..5 {
            let items = (0..100)
                .map(|i| item(if i % 2 == 0 { "alice" } else { TOKEN }))
                .collect();
            c.authz
                .batch_check(pb::BatchCheckRequest {
                    items,
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    });
    daemon.stop();

    // 500 lines of ~200 bytes cannot fit in 3 files of 4 KiB: the oldest were rotated away.
    let current = lines(&decisions);
    let one = lines(&logs.join("d.jsonl.1"));
    let two = lines(&logs.join("d.jsonl.2"));
    assert!(!logs.join("d.jsonl.3").exists(), "keep = 2");
    for (name, file) in [("d.jsonl.1", &one), ("d.jsonl.2", &two)] {
        let size = std::fs::metadata(logs.join(name)).unwrap().len();
        assert!(size <= 4096 && !file.is_empty(), "{name}: {size} bytes");
    }
    let kept = current.len() + one.len() + two.len();
    assert!(kept < 500, "{kept} lines kept");
    let subjects: std::collections::BTreeSet<&str> = [&current, &one, &two]
        .iter()
        .flat_map(|f| f.iter())
        .map(|v| v["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains("alice"),
        "members are written plain: {subjects:?}"
    );
    assert_eq!(subjects.len(), 2, "alice and one hash: {subjects:?}");
    assert!(subjects.iter().all(|s| *s == "alice" || s.starts_with("sha256:")));
    assert!(
        !all_text(&logs).contains(TOKEN),
        "a non-member subject is hashed even in plain mode"
    );
}

#[test]
fn sample_zero_logs_no_decision() {
    let work = Workdir::new();
    let decisions = work.dir.path().join("d.jsonl");
    let mut daemon = work.start_with(&[
        "--demo",
        "--decision-log",
        decisions.to_str().unwrap(),
        "--decision-log-sample",
        "0",
    ]);
    runtime().block_on(async {
        let mut c = clients(&daemon.work.unix_target()).await;
        for _ in 0..20 {
            assert!(c.check("alice", "acme", "apps/web", "app:read", 0).await);
        }
    });
    daemon.stop();
    assert_eq!(std::fs::read_to_string(&decisions).unwrap(), "");
}

/// An empty subject is rejected inside the `Check` span: its debug line carries the span.
fn rejected_check(target: &str) {
    runtime().block_on(async {
        let mut c = clients(target).await;
        let err = c
            .authz
            .check(pb::CheckRequest {
                subject: String::new(),
                org: "acme".into(),
                resource: "apps/web".into(),
                action: "app:read".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    });
}

#[test]
fn json_log_lines_carry_timestamp_level_target_and_span_fields() {
    let mut work = Workdir::new();
    work.env.push(("WARDEN_LOG_FORMAT".into(), "json".into()));
    let mut daemon = work.start_with(&["--demo"]);
    rejected_check(&daemon.work.unix_target());
    daemon.stop();
    let text = daemon.logs();
    let events: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(events.len() > 3, "{text}");
    for e in &events {
        assert!(
            e["timestamp"].is_string() && e["level"].is_string() && e["target"].is_string(),
            "{e}"
        );
    }
    let rejected = events
        .iter()
        .find(|e| e["fields"]["message"] == "request rejected")
        .unwrap_or_else(|| panic!("no rejected line at WARDEN_LOG=debug: {text}"));
    assert_eq!(rejected["level"], "DEBUG");
    assert_eq!(rejected["span"]["name"], "Check", "{rejected}");
    assert_eq!(rejected["span"]["org"], "acme", "{rejected}");
    assert_eq!(
        rejected["fields"]["reason"], "subject: must not be empty",
        "the status message does not collide with the event's message: {rejected}"
    );
    assert!(!text.contains('\x1b'), "no colour codes");
}

#[test]
fn text_logs_to_a_file_have_no_colour_and_rust_log_is_honoured() {
    // WARDEN_LOG empty (unset), RUST_LOG narrows to warnings: no info line is written.
    let mut work = Workdir::new();
    work.env.push(("WARDEN_LOG".into(), String::new()));
    work.env.push(("RUST_LOG".into(), "warn".into()));
    let mut daemon = work.start_with(&["--demo"]);
    rejected_check(&daemon.work.unix_target());
    daemon.stop();
    let text = daemon.logs();
    assert!(!text.contains(" INFO "), "RUST_LOG=warn drops info lines: {text}");
    assert!(!text.contains("request rejected"), "{text}");

    // Both set: WARDEN_LOG wins. stderr is a file, so plain text without escape codes.
    let mut work = Workdir::new();
    work.env.push(("WARDEN_LOG".into(), "debug".into()));
    work.env.push(("RUST_LOG".into(), "error".into()));
    let mut daemon = work.start_with(&["--demo", "--log-format", "text"]);
    rejected_check(&daemon.work.unix_target());
    daemon.stop();
    let text = daemon.logs();
    assert!(
        text.contains(" INFO ") && text.contains("request rejected"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "colour codes in a log file: {text:?}");
}
