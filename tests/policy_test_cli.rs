//! `warden policy test [DIR]`: the repository's default policies pass their own suite;
//! a wrong expectation is reported with expected, got, rule and role path (exit 1); a
//! test file that does not parse is a load error (exit 2); and `serve
//! --require-policy-tests` refuses to start on a failing suite.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

fn policy_test(dir: &Path) -> (i32, String, String) {
    let out = Command::new(WARDEN)
        .args(["policy", "test"])
        .arg(dir)
        .output()
        .expect("run warden policy test");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn suite_file(work: &Workdir) -> std::path::PathBuf {
    work.policies().join("tests/default_roles.yaml")
}

/// Flip the first expectation of `dave`'s `org:update` (an org_user may not update the
/// org) to `allow: true`.
fn break_one_expectation(work: &Workdir) {
    let path = suite_file(work);
    let text = std::fs::read_to_string(&path).unwrap();
    let cell = "{subject: dave, org: acme, resource: org, action: org:update, allow: false}";
    assert!(text.contains(cell), "the default suite covers {cell}");
    std::fs::write(&path, text.replacen(cell, &cell.replace("false", "true"), 1)).unwrap();
}

#[test]
fn default_policies_pass_their_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let (code, stdout, stderr) = policy_test(&dir);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let summary = stdout.lines().last().unwrap_or_default();
    let (passed, rest) = summary.split_once(" passed, ").expect("summary line");
    assert_eq!(rest, "0 failed", "{summary}");
    assert!(passed.parse::<u32>().unwrap() > 200, "{summary}");
}

#[test]
fn the_siloed_apps_example_passes_its_suite() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policies/hipaa");
    let (code, stdout, stderr) = policy_test(&dir);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert_eq!(summary, "21 passed, 0 failed", "{stdout}");
}

#[test]
fn embedded_suite_is_the_repository_suite() {
    let on_disk = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/tests/default_roles.yaml"),
    )
    .unwrap();
    assert_eq!(warden::policy::DEFAULT_TESTS, on_disk);
}

#[test]
fn wrong_expectation_fails_with_expected_got_rule_and_role_path() {
    let work = Workdir::new();
    break_one_expectation(&work);
    let (code, stdout, stderr) = policy_test(&work.policies());
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let file = suite_file(&work).display().to_string();
    assert!(stdout.contains(&format!("FAIL {file}:")), "{stdout}");
    assert!(stdout.contains("dave org:update org in acme"), "{stdout}");
    assert!(stdout.contains("expected allow, got deny"), "{stdout}");
    assert!(stdout.contains("effect default deny"), "{stdout}");
    assert!(stdout.contains("dave -> role:org_user, role:member"), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.ends_with(" passed, 1 failed")),
        "{stdout}"
    );

    // A rule the case hits is named by file and line.
    let policy = work.policies().join("policy.csv");
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(
        &policy,
        format!("{text}p, role:org_user, org, org:update, org, deny\n"),
    )
    .unwrap();
    let path = suite_file(&work);
    let suite = std::fs::read_to_string(&path).unwrap();
    let cell = "{subject: alice, org: acme, resource: org, action: org:update, allow: true}";
    assert!(suite.contains(cell));
    let (code, stdout, _) = policy_test(&work.policies());
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("alice org:update org in acme"), "{stdout}");
    assert!(stdout.contains("effect deny, rule"), "{stdout}");
    assert!(
        stdout.contains("p, role:org_user, org, org:update, org, deny"),
        "{stdout}"
    );
    assert!(
        stdout.contains("alice -[role:admin@acme]-> role:admin"),
        "{stdout}"
    );
}

#[test]
fn unparsable_test_file_is_a_load_error_with_its_line() {
    let work = Workdir::new();
    std::fs::write(
        work.policies().join("tests/typo.yaml"),
        "cases:\n  - {subject: a, org: o, resource: org, action: x, alow: true}\n",
    )
    .unwrap();
    let (code, stdout, stderr) = policy_test(&work.policies());
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("typo.yaml:2: "), "{stderr}");
    assert!(stderr.contains("unknown field `alow`"), "{stderr}");
}

/// Issue 11, items 2 and 15: a case whose resource is not canonical, or whose subject uses a
/// reserved prefix, is a mistake in the file (the daemon would refuse the request), not a
/// deny the suite may expect.
#[test]
fn a_case_the_daemon_would_refuse_is_a_load_error_with_its_line() {
    for (resource, subject, words) in [
        (
            "apps/web/../secrets",
            "dave",
            "cases[1].resource: `apps/web/../secrets`: segment 3 is `..`",
        ),
        (
            "apps/web//secrets",
            "dave",
            "cases[1].resource: `apps/web//secrets`: segment 3 is empty",
        ),
        (
            "apps/web",
            "role:admin",
            "cases[1].subject: `role:admin` uses the reserved prefix `role:`",
        ),
    ] {
        let work = Workdir::new();
        std::fs::write(
            work.policies().join("tests/tricks.yaml"),
            format!(
                "fixture:\n  orgs:\n    acme:\n      members: {{dave: org_user}}\n      apps: [web]\ncases:\n  \
                 - {{subject: dave, org: acme, resource: apps/web, action: app:read, allow: true}}\n  \
                 - {{subject: \"{subject}\", org: acme, resource: \"{resource}\", action: app:read, allow: false}}\n"
            ),
        )
        .unwrap();
        let (code, stdout, stderr) = policy_test(&work.policies());
        assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
        assert!(stderr.contains("tricks.yaml:8: "), "{stderr}");
        assert!(stderr.contains(words), "{stderr}");
    }
}

#[test]
fn serve_with_required_tests_refuses_a_failing_suite_before_listening() {
    let work = Workdir::new();
    break_one_expectation(&work);
    let (status, stderr) = run_to_exit(work.serve_command().arg("--require-policy-tests"));
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("fails its tests"), "{stderr}");
    assert!(stderr.contains("dave org:update org in acme"), "{stderr}");
    assert!(!work.socket().exists(), "a socket was bound");
}
