//! `--json` on the directory commands (issue 14 §6: CLI times are RFC 3339, raw
//! milliseconds only with `--json`): each command prints one JSON document, the call's
//! response with the proto's field names and times as integer milliseconds in the `*_ms`
//! fields; a list follows every page into one answer. Checked against the real daemon's
//! gRPC answer and against the same command's text output.

use crate::common;

use common::directory::clients;
use common::{WARDEN, Workdir, runtime};
use serde_json::Value;
use std::process::{Command, Stdio};
use warden::api::pb;

fn warden(target: &str, args: &[&str]) -> String {
    let out = Command::new(WARDEN)
        .args(args)
        .args(["--connect", target])
        .env_remove("WARDEN_CONNECT")
        .env_remove("WARDEN_ACTOR")
        .stdin(Stdio::null())
        .output()
        .expect("run warden");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "warden {args:?}:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `warden args… --json`, parsed: exactly one JSON document on stdout.
#[track_caller]
fn json(target: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let stdout = warden(target, &all);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("warden {args:?} --json: {e}:\n{stdout}"))
}

/// The ids after `prefix` on the text output's record lines (`member: alice in acme …`).
fn text_ids(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(String::from)
        .collect()
}

fn json_ids(v: &Value, list: &str, field: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no array `{list}` in {v}"))
        .iter()
        .map(|item| item[field].as_str().expect("id is a string").to_string())
        .collect()
}

/// The `revision: N` line of a text output.
fn text_revision(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("revision: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no revision line in:\n{text}"))
}

#[test]
fn list_and_get_commands_print_one_json_answer_equal_to_the_grpc_one() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();
    let rt = runtime();
    let mut c = rt.block_on(clients(&target));

    // More members than one page (100), so the CLI must follow the pages into one answer.
    for i in 0..105 {
        let id = format!("user{i:03}");
        rt.block_on(c.upsert_user(&id, &id));
        rt.block_on(c.member.add_member(pb::AddMemberRequest {
            actor: "alice".into(),
            org_id: "acme".into(),
            user_id: id,
            role: "org_user".into(),
        }))
        .expect("add member");
    }
    let grpc_members: Vec<pb::Member> = {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let r = rt
                .block_on(c.member.list_members(pb::ListMembersRequest {
                    org_id: "acme".into(),
                    actor: "alice".into(),
                    page_token,
                    ..Default::default()
                }))
                .expect("list members")
                .into_inner();
            all.extend(r.members);
            if r.next_page_token.is_empty() {
                break all;
            }
            page_token = r.next_page_token;
        }
    };
    assert!(grpc_members.len() > 100, "{} members", grpc_members.len());

    let v = json(&target, &["member", "list", "acme", "--actor", "alice"]);
    let text = warden(&target, &["member", "list", "acme", "--actor", "alice"]);
    assert_eq!(v["next_page_token"], "", "every page in one answer: {v}");
    let ids = json_ids(&v, "members", "user_id");
    assert_eq!(ids.len(), grpc_members.len());
    assert_eq!(ids, text_ids(&text, "member: "));
    for (j, g) in v["members"].as_array().unwrap().iter().zip(&grpc_members) {
        assert_eq!(j["user_id"], g.user_id.as_str());
        assert_eq!(j["role"], g.role.as_str());
        // Raw milliseconds, as a JSON number (not the proto3-JSON string form).
        assert_eq!(
            j["created_at_unix_ms"].as_u64(),
            Some(g.created_at_unix_ms),
            "{j}"
        );
        assert!(g.created_at_unix_ms > 0);
    }
    assert_eq!(v["revision"].as_u64(), Some(text_revision(&text)));

    // A get: the record itself, every field present.
    let org = rt
        .block_on(c.org.get_org(pb::GetOrgRequest {
            org_id: "acme".into(),
            actor: "alice".into(),
            min_revision: 0,
        }))
        .expect("get org")
        .into_inner();
    let v = json(&target, &["org", "get", "acme", "--actor", "alice"]);
    assert_eq!(v["org_id"], "acme");
    assert_eq!(v["name"], org.name.as_str());
    assert_eq!(v["plan"], org.plan.as_str());
    assert_eq!(v["member_count"].as_u64(), Some(u64::from(org.member_count)));
    assert_eq!(v["created_at_unix_ms"].as_u64(), Some(org.created_at_unix_ms));
    assert_eq!(v["logo_url"], "", "defaults are written out: {v}");

    // The other lists: the same records as their text output, in the same order.
    for (args, list, field, prefix) in [
        (&["org", "list", "--user", "alice"][..], "orgs", "org_id", "org: "),
        (&["team", "list", "acme"][..], "teams", "team_id", "team: "),
        (&["app", "list", "--org", "acme"][..], "apps", "app_id", "app: "),
    ] {
        let mut args = args.to_vec();
        args.extend(["--actor", "alice"]);
        let v = json(&target, &args);
        let text = warden(&target, &args);
        let ids = json_ids(&v, list, field);
        assert!(!ids.is_empty(), "{args:?}: {v}");
        assert_eq!(ids, text_ids(&text, prefix), "{args:?}");
        assert_eq!(v["revision"].as_u64(), Some(text_revision(&text)), "{args:?}");
    }
}

#[test]
fn token_invitation_domain_and_audit_json_has_millisecond_times_and_no_secrets() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let target = daemon.work.unix_target();

    let created = json(
        &target,
        &[
            "token",
            "create",
            "--user",
            "alice",
            "--name",
            "laptop",
            "--scope",
            "app:read",
            "--expires-in",
            "3600",
            "--actor",
            "alice",
        ],
    );
    let secret = created["secret"]
        .as_str()
        .expect("create answers the secret once");
    assert!(secret.starts_with("wdn_"), "{created}");
    let token_id = created["token"]["token_id"]
        .as_str()
        .expect("token id")
        .to_string();
    let expires = created["token"]["expires_at_unix_ms"]
        .as_u64()
        .expect("expiry in ms");
    let made = created["token"]["created_at_unix_ms"]
        .as_u64()
        .expect("creation in ms");
    assert!(expires >= made + 3_600_000 - 1_000, "{created}");

    let listed = warden(
        &target,
        &["token", "list", "--user", "alice", "--actor", "alice", "--json"],
    );
    assert!(
        !listed.contains(secret),
        "the list never shows the secret:\n{listed}"
    );
    let v: Value = serde_json::from_str(&listed).expect("one JSON document");
    assert_eq!(json_ids(&v, "tokens", "token_id"), [token_id]);
    assert_eq!(v["tokens"][0]["expires_at_unix_ms"].as_u64(), Some(expires));
    assert_eq!(v["tokens"][0]["revoked_at_unix_ms"].as_u64(), Some(0));

    json(
        &target,
        &[
            "invitation",
            "create",
            "acme",
            "--email",
            "new@example.com",
            "--role",
            "org_user",
            "--actor",
            "alice",
        ],
    );
    let v = json(&target, &["invitation", "list", "acme", "--actor", "alice"]);
    let text = warden(&target, &["invitation", "list", "acme", "--actor", "alice"]);
    assert_eq!(
        json_ids(&v, "invitations", "invitation_id"),
        text_ids(&text, "invitation: ")
    );
    let inv = &v["invitations"][0];
    assert_eq!(inv["email"], "new@example.com");
    assert!(
        inv["expires_at_unix_ms"].as_u64() > inv["created_at_unix_ms"].as_u64(),
        "{inv}"
    );
    assert!(
        inv.get("code").is_none(),
        "the code is shown only on create: {inv}"
    );

    json(
        &target,
        &["domain", "add", "acme", "acme.example", "--actor", "alice"],
    );
    let v = json(&target, &["domain", "list", "acme", "--actor", "alice"]);
    assert_eq!(v["domains"][0]["domain"], "acme.example", "{v}");
    assert_eq!(v["domains"][0]["verified"], false);
    let v = json(
        &target,
        &["domain", "requests", "--org", "acme", "--actor", "alice"],
    );
    assert_eq!(v["requests"], serde_json::json!([]), "{v}");

    // The audit log: the same entries as the text lines, with the times in milliseconds.
    let v = json(&target, &["audit", "acme", "--actor", "alice"]);
    let text = warden(&target, &["audit", "acme", "--actor", "alice"]);
    let entries = v["entries"].as_array().expect("entries");
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("revision: ")).collect();
    assert_eq!(entries.len(), lines.len());
    assert!(!entries.is_empty());
    for (e, line) in entries.iter().zip(&lines) {
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(
            e["revision"].as_u64().map(|r| r.to_string()).as_deref(),
            Some(fields[0])
        );
        let ms = e["at_unix_ms"].as_u64().expect("time in ms");
        assert_eq!(warden::cli::time::rfc3339(ms), fields[1], "{e}");
        assert_eq!(e["change_type"], fields[3]);
    }
    assert!(!text.contains(secret) && !v.to_string().contains(secret));
}
