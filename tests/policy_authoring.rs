//! Policy authoring catches mistakes before they ship (issue 14 §6):
//!
//! - `policy validate` fails on a rule that can never match (`role:biling_viewer`, a role
//!   nobody holds) with `file:line` and "did you mean", names a new role that is not
//!   registered in engine.toml, and passes the shipped policies; the daemon reloads such a
//!   policy (it was loadable before) and shows the finding in its policy status;
//! - `policy test` names a fixture member with an unregistered role at its line, shows the
//!   near misses of a failing case, selects cases with `--filter`, and writes JSON and JUnit
//!   XML (parsed here with Python's `xml.etree`);
//! - `policy diff --data DIR` works while `warden serve` holds that data directory, and gives
//!   the same answer as offline.

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use warden::api::client::connect;
use warden::api::pb;

fn warden(args: &[&str], dir: &Path) -> (i32, String, String) {
    let out: Output = Command::new(WARDEN)
        .args(args)
        .arg(dir)
        .output()
        .expect("run warden");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn append(path: &Path, text: &str) -> u32 {
    let old = std::fs::read_to_string(path).unwrap();
    let new = format!("{old}{text}");
    std::fs::write(path, &new).unwrap();
    new.lines().count() as u32
}

/// Register `billing_viewer` in engine.toml and give it a place in the hierarchy.
fn add_billing_viewer(work: &Workdir) {
    let engine = work.policies().join("engine.toml");
    let text = std::fs::read_to_string(&engine).unwrap();
    let roles = "roles = [\"admin\"";
    assert!(text.contains(roles), "{text}");
    std::fs::write(
        &engine,
        text.replacen(roles, "roles = [\"billing_viewer\", \"admin\"", 1),
    )
    .unwrap();
    append(
        &work.policies().join("policy.csv"),
        "g, role:billing_viewer, role:member, *\n",
    );
}

#[test]
fn the_shipped_policies_validate_without_findings() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in [repo.join("policies"), repo.join("examples/policies/hipaa")] {
        let (code, stdout, stderr) = warden(&["policy", "validate"], &dir);
        assert_eq!(code, 0, "{}: {stdout}{stderr}", dir.display());
        assert!(stdout.starts_with("OK "), "{stdout}");
        assert_eq!(stderr, "", "{}", dir.display());
    }
}

#[test]
fn a_rule_for_a_misspelt_role_fails_validate_with_its_line_and_a_suggestion() {
    let work = Workdir::new();
    add_billing_viewer(&work);
    let (code, stdout, stderr) = warden(&["policy", "validate"], &work.policies());
    assert_eq!(code, 0, "{stdout}{stderr}");

    let line = append(
        &work.policies().join("policy.csv"),
        "p, role:biling_viewer, org, usage:read, org, allow\n",
    );
    let (code, stdout, stderr) = warden(&["policy", "validate"], &work.policies());
    assert_eq!(code, 1, "{stdout}{stderr}");
    let at = format!(
        "policy.csv:{line}: error: this rule never matches: `role:biling_viewer` is a role nobody holds"
    );
    assert!(stderr.contains(&at), "{stderr}");
    assert!(stderr.contains("Did you mean `role:billing_viewer`?"), "{stderr}");
    assert!(stderr.contains("1 error"), "{stderr}");
}

#[test]
fn a_new_role_not_registered_in_engine_toml_is_named_as_such() {
    let work = Workdir::new();
    let line = append(
        &work.policies().join("policy.csv"),
        "p, role:auditor, org, audit:read, org, allow\n",
    );
    let (code, _, stderr) = warden(&["policy", "validate"], &work.policies());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("policy.csv:{line}: error:")), "{stderr}");
    assert!(
        stderr.contains("add \"auditor\" to engine.toml [directory] roles"),
        "{stderr}"
    );

    // The policy test names the fixture member at its own line with the same advice.
    std::fs::write(
        work.policies().join("tests/audit.yaml"),
        "name: auditors\nfixture:\n  orgs:\n    acme:\n      members:\n        alice: admin\n        \
         ivy: auditor\ncases:\n  - {subject: ivy, org: acme, resource: org, action: audit:read, allow: true}\n",
    )
    .unwrap();
    let (code, stdout, stderr) = warden(&["policy", "test"], &work.policies());
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stderr.contains("audit.yaml:7: fixture: org `acme`: member `ivy` has role `auditor`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("If `auditor` is a new role, add it to engine.toml [directory] roles"),
        "{stderr}"
    );
}

async fn status(target: &str) -> pb::PolicyStatus {
    let mut a = pb::admin_service_client::AdminServiceClient::new(connect(target).await.expect("connect"));
    a.get_policy_status(pb::GetPolicyStatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

#[test]
fn the_daemon_reloads_such_a_policy_and_reports_the_finding_in_its_status() {
    let daemon = Workdir::new().start();
    let target = daemon.work.unix_target();
    let rt = runtime();
    let before = rt.block_on(status(&target));
    assert!(before.warnings.is_empty(), "{:?}", before.warnings);
    let line = append(
        &daemon.work.policies().join("policy.csv"),
        "p, role:org_usr, org, usage:read, org, allow\n",
    );
    let after = rt.block_on(async {
        let start = Instant::now();
        loop {
            let s = status(&target).await;
            if s.reloads_succeeded > before.reloads_succeeded || s.reloads_failed > before.reloads_failed {
                return s;
            }
            assert!(start.elapsed() < PATIENCE, "the edit was never reloaded");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert_eq!(after.last_reload_error, "", "a loadable policy is not refused");
    assert_ne!(after.content_hash, before.content_hash);
    assert!(
        after.warnings.iter().any(
            |w| w.contains(&format!("policy.csv:{line}: this rule never matches"))
                && w.contains("Did you mean `role:org_user`?")
        ),
        "{:?}",
        after.warnings
    );
    let out = Command::new(WARDEN)
        .args(["admin", "status", "--connect", &target])
        .output()
        .expect("run warden admin status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("warnings of the serving policy"), "{stdout}");
    assert!(
        stdout.contains(&format!("policy.csv:{line}: this rule never matches")),
        "{stdout}"
    );
}

/// A copy of the repository's policies whose suite expects dave (an org user) to update
/// the org: one failing case.
fn failing_suite(work: &Workdir) {
    let path = work.policies().join("tests/default_roles.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cell = "{subject: dave, org: acme, resource: org, action: org:update, allow: false}";
    assert!(text.contains(cell));
    std::fs::write(&path, text.replacen(cell, &cell.replace("false", "true"), 1)).unwrap();
}

#[test]
fn a_failing_case_shows_the_near_misses_that_check_explain_gives() {
    let work = Workdir::new();
    failing_suite(&work);
    let (code, stdout, stderr) = warden(&["policy", "test"], &work.policies());
    assert_eq!(code, 1, "{stdout}{stderr}");
    let listed = |text: &str, indent: &str| -> Vec<String> {
        text.lines()
            .skip_while(|l| !l.trim_start().starts_with("closest rules that did not match:"))
            .skip(1)
            .take_while(|l| l.starts_with(indent))
            .map(|l| l.trim().to_string())
            .collect()
    };
    let from_test = listed(&stdout, "         ");
    assert!(
        from_test
            .iter()
            .any(|l| l == r#"failed: ("org:update" == "org:read" || "org:read" == "*")"#),
        "{stdout}"
    );

    // The same request to the daemon (the demo directory has dave as an org user of acme).
    let daemon = work.start_with(&["--demo"]);
    let out = Command::new(WARDEN)
        .args([
            "check",
            "--explain",
            "--subject",
            "dave",
            "--org",
            "acme",
            "--resource",
            "org",
        ])
        .args(["--action", "org:update", "--connect", &daemon.work.unix_target()])
        .output()
        .expect("run warden check");
    let explained = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{explained}");
    let from_check = listed(&explained, "    ");
    assert!(!from_check.is_empty(), "{explained}");
    assert_eq!(
        from_test, from_check,
        "policy test:\n{stdout}\ncheck --explain:\n{explained}"
    );
}

#[test]
fn filter_selects_cases_by_substring_or_glob() {
    let work = Workdir::new();
    std::fs::write(
        work.policies().join("tests/named.yaml"),
        "fixture:\n  orgs:\n    acme:\n      members: {alice: admin, dave: org_user}\n      apps: [web]\n\
         cases:\n  - {name: admin deletes web, subject: alice, org: acme, resource: apps/web, action: app:delete, allow: true}\n  \
         - {name: user reads web, subject: dave, org: acme, resource: apps/web, action: app:read, allow: true}\n  \
         - {name: user deletes web, subject: dave, org: acme, resource: apps/web, action: app:delete, allow: true}\n",
    )
    .unwrap();
    let run = |filter: &str| {
        warden(
            &["policy", "test", "--verbose", "--filter", filter],
            &work.policies(),
        )
    };

    let (code, stdout, _) = run("reads");
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.ends_with("1 passed, 0 failed\n"), "{stdout}");

    let (code, stdout, _) = run("user *");
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.ends_with("1 passed, 1 failed\n"), "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("user deletes web"),
        "{stdout}"
    );

    // Unnamed cases match by their request.
    let (code, stdout, _) = run("dave org:update org in acme");
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.ends_with("1 passed, 0 failed\n"), "{stdout}");

    let (code, stdout, stderr) = run("nothing like this");
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stderr.contains("no test case matches --filter"), "{stderr}");
}

#[test]
fn json_report_carries_every_case_and_the_failure_details() {
    let work = Workdir::new();
    failing_suite(&work);
    let (code, stdout, stderr) = warden(&["policy", "test", "--format", "json"], &work.policies());
    assert_eq!(code, 1, "{stderr}");
    let doc: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(doc["failed"], 1);
    let cases: Vec<&serde_json::Value> = doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["cases"].as_array().unwrap())
        .collect();
    assert_eq!(cases.len() as u64, doc["passed"].as_u64().unwrap() + 1);
    let failed = cases.iter().find(|c| c["passed"] == false).unwrap();
    assert_eq!(failed["expected"], "allow");
    assert_eq!(failed["got"], "deny");
    assert!(failed["line"].as_u64().unwrap() > 0);
    assert!(!failed["near_misses"].as_array().unwrap().is_empty(), "{failed}");
    assert!(failed["near_misses"][0]["rule"]["line"].as_u64().unwrap() > 0);
}

/// Python's `xml.etree` reads the JUnit report: the counts, one testcase per case with its
/// file and line, the failing one with a `failure` whose message and text say what failed.
#[test]
fn junit_report_parses_as_xml_with_one_testcase_per_case() {
    let work = Workdir::new();
    failing_suite(&work);
    // A case name with XML's markup characters in it.
    std::fs::write(
        work.policies().join("tests/markup.yaml"),
        "fixture:\n  orgs:\n    acme:\n      members: {alice: admin}\ncases:\n  \
         - {name: \"<admin> & 'org' \\\"update\\\"\", subject: alice, org: acme, resource: org, action: org:update, allow: true}\n",
    )
    .unwrap();
    let (code, junit, stderr) = warden(&["policy", "test", "--format", "junit"], &work.policies());
    assert_eq!(code, 1, "{stderr}");
    let script = r#"
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
cases = root.findall("./testsuite/testcase")
failures = [c for c in cases if c.find("failure") is not None]
print(json.dumps({
    "root": root.tag,
    "tests": int(root.get("tests")),
    "failures": int(root.get("failures")),
    "suites": len(root.findall("testsuite")),
    "cases": len(cases),
    "names": [c.get("name") for c in cases],
    "lines_ok": all(int(c.get("line")) > 0 for c in cases),
    "failure": [{"name": c.get("name"), "message": c.find("failure").get("message"), "text": c.find("failure").text} for c in failures],
}))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to parse the JUnit report with a real XML parser: install python3");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(junit.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{junit}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed["root"], "testsuites");
    assert_eq!(parsed["suites"], 2);
    assert_eq!(parsed["cases"], parsed["tests"]);
    assert_eq!(parsed["failures"], 1);
    assert_eq!(parsed["lines_ok"], true);
    assert!(
        parsed["names"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().starts_with("<admin> & 'org' \"update\"")),
        "{parsed}"
    );
    let failure = &parsed["failure"][0];
    assert!(
        failure["name"]
            .as_str()
            .unwrap()
            .contains("dave org:update org in acme"),
        "{failure}"
    );
    assert_eq!(failure["message"], "expected allow, got deny");
    assert!(
        failure["text"]
            .as_str()
            .unwrap()
            .contains(r#"failed: ("org:update" == "org:read" || "org:read" == "*")"#),
        "{failure}"
    );
}

/// A copy of the repository's policies, outside the daemon's directory, where org users
/// lose read access to apps themselves.
fn edited_policies(work: &Workdir) -> PathBuf {
    let dir = work.dir.path().join("edited");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.conf", "policy.csv", "engine.toml", "limits.toml"] {
        std::fs::copy(repo.join(f), dir.join(f)).unwrap();
    }
    let rule = "p, role:org_user, apps/:app, app:read, org, allow";
    let text = std::fs::read_to_string(dir.join("policy.csv")).unwrap();
    assert!(text.contains(rule));
    std::fs::write(
        dir.join("policy.csv"),
        text.replacen(rule, &rule.replace("allow", "deny"), 1),
    )
    .unwrap();
    dir
}

fn diff(old: &Path, new: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(WARDEN)
        .args(["policy", "diff"])
        .arg(old)
        .arg(new)
        .args(extra)
        .output()
        .expect("run warden policy diff");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn diff_over_a_data_directory_works_while_the_daemon_serves_it() {
    let mut daemon = Workdir::new().start_with(&["--demo"]);
    let work = &daemon.work;
    let old = work.policies();
    let new = edited_policies(work);
    let data = work.data().display().to_string();

    let (code, live, stderr) = diff(&old, &new, &["--data", &data]);
    assert_eq!(code, 1, "{live}{stderr}");
    assert!(
        stderr.contains("held by a running daemon; reading its index over unix:"),
        "{stderr}"
    );
    assert!(live.contains("ALLOW→DENY"), "{live}");

    let (code, connected, stderr) = diff(&old, &new, &["--connect", &work.unix_target()]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(connected, live);

    // The index is an operator's: not served over TCP.
    let (code, _, stderr) = diff(&old, &new, &["--connect", &work.tcp_target()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("served only on the Unix socket"), "{stderr}");

    // Offline, from the tables, the same answer.
    daemon.stop();
    let (code, offline, stderr) = diff(&old, &new, &["--data", &data]);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("running daemon"), "{stderr}");
    assert_eq!(offline, live);
}
