//! `warden policy diff OLD NEW --fixture FILE`: the repository's policies against a copy
//! with one edited line list exactly the requests whose decision changed, each with the
//! decisive rule (`file:line`) under both policies, and exit 1; identical policies exit
//! 0; a broken policy is a load error naming `file:line` (exit 2).

use crate::common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_policies() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

fn fixture() -> PathBuf {
    repo_policies().join("tests/default_roles.yaml")
}

fn policy_diff(old: &Path, new: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new(WARDEN)
        .args(["policy", "diff"])
        .arg(old)
        .arg(new)
        .arg("--fixture")
        .arg(fixture())
        .args(extra)
        .output()
        .expect("run warden policy diff");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const READ_ALLOW: &str = "p, role:org_user, apps/:app, app:read, org, allow";

/// A copy of the repository's policies where org users (and every role above them) lose
/// read access to apps themselves, and the line number of the edit.
fn edited_copy(work: &Workdir) -> u32 {
    let path = work.policies().join("policy.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .position(|l| l == READ_ALLOW)
        .expect("the default policy has the org_user read rule") as u32
        + 1;
    std::fs::write(
        &path,
        text.replacen(READ_ALLOW, &READ_ALLOW.replace("allow", "deny"), 1),
    )
    .unwrap();
    line
}

#[test]
fn one_edited_line_lists_exactly_the_changed_requests_with_both_rules() {
    let work = Workdir::new();
    let line = edited_copy(&work);
    let (code, stdout, stderr) = policy_diff(&repo_policies(), &work.policies(), &[]);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");

    // Every role that reaches org_user, on each app itself (not its objects).
    let mut expected = vec![];
    for (user, apps, org) in [
        ("alice", &["api", "web"][..], "acme"),
        ("bob", &["api", "web"][..], "acme"),
        ("dave", &["api", "web"][..], "acme"),
        ("erin", &["ledger"][..], "globex"),
    ] {
        for app in apps {
            expected.push(format!("ALLOW→DENY {user} app:read apps/{app} in {org}"));
        }
    }
    let got: Vec<&str> = stdout.lines().filter(|l| l.contains('→')).collect();
    assert_eq!(got, expected, "{stdout}");

    let old_rule = format!(
        "old: allow, rule {}:{line} `{READ_ALLOW}`",
        repo_policies().join("policy.csv").display()
    );
    let new_rule = format!(
        "new: deny, rule {}:{line} `{}`",
        work.policies().join("policy.csv").display(),
        READ_ALLOW.replace("allow", "deny")
    );
    assert_eq!(stdout.matches(&old_rule).count(), expected.len(), "{stdout}");
    assert_eq!(stdout.matches(&new_rule).count(), expected.len(), "{stdout}");
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.ends_with(" requests compared, 0 newly allowed, 7 newly denied"),
        "{summary}"
    );
}

#[test]
fn json_output_is_one_object_per_change_and_a_summary() {
    let work = Workdir::new();
    let line = edited_copy(&work);
    let (code, stdout, stderr) = policy_diff(&repo_policies(), &work.policies(), &["--json"]);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let values: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let (summary, changes) = values.split_last().unwrap();
    assert_eq!(changes.len(), 7);
    assert_eq!(changes[0]["change"], "ALLOW→DENY");
    assert_eq!(changes[0]["subject"], "alice");
    assert_eq!(changes[0]["new"]["rule"]["line"], line);
    assert_eq!(summary["summary"]["newly_denied"], 7);
    assert_eq!(summary["summary"]["newly_allowed"], 0);
}

#[test]
fn identical_policies_exit_zero() {
    let work = Workdir::new();
    let (code, stdout, stderr) = policy_diff(&repo_policies(), &work.policies(), &[]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let summary = stdout.lines().last().unwrap_or_default();
    let (compared, rest) = summary.split_once(" requests compared, ").expect("summary line");
    assert!(compared.parse::<u64>().unwrap() > 0, "{summary}");
    assert_eq!(rest, "0 newly allowed, 0 newly denied");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
}

#[test]
fn broken_policy_or_too_many_requests_is_an_error() {
    let work = Workdir::new();
    let path = work.policies().join("policy.csv");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}p, role:admin\n")).unwrap();
    let (code, stdout, stderr) = policy_diff(&repo_policies(), &work.policies(), &[]);
    assert_eq!(code, 2, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let at = format!("{}:{}:", path.display(), text.lines().count() + 1);
    assert!(stderr.contains(&at), "{stderr}");

    let (code, _, stderr) = policy_diff(&repo_policies(), &repo_policies(), &["--limit", "10"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("more than the limit of 10; raise it with --limit"),
        "{stderr}"
    );
}

/// `--data DIR` compares over a real store (imported with `warden import`, read offline):
/// the changed requests are exactly every non-team-contributor member's `app:read` on each
/// of their org's apps, counted from the dump itself. A data directory without a store is
/// an error, not an empty (and therefore passing) comparison.
#[test]
fn diff_over_a_real_data_directory_counts_every_affected_member() {
    let work = Workdir::new();
    edited_copy(&work);
    let dump = work.data().with_file_name("dir.json");
    let (status, out) = run_to_exit(Command::new(WARDEN).args([
        "gen-directory",
        "--orgs",
        "3",
        "--members",
        "20",
        "--teams",
        "2",
        "--apps",
        "4",
        "--out",
        dump.to_str().unwrap(),
    ]));
    assert!(status.success(), "{out}");
    let (status, out) = run_to_exit(
        Command::new(WARDEN)
            .arg("import")
            .arg(&dump)
            .arg("--data")
            .arg(work.data()),
    );
    assert!(status.success(), "{out}");

    let parsed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&dump).unwrap()).unwrap();
    let apps_of = |org: &str| {
        parsed["apps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["owner"]["kind"] == "org" && a["owner"]["id"] == org)
            .count()
    };
    let expected: usize = parsed["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "team_contributor")
        .map(|m| apps_of(m["org"].as_str().unwrap()))
        .sum();
    assert!(expected > 0);

    let out = Command::new(WARDEN)
        .args(["policy", "diff"])
        .arg(repo_policies())
        .arg(work.policies())
        .arg("--data")
        .arg(work.data())
        .arg("--json")
        .output()
        .expect("run warden policy diff");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let values: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let (summary, changes) = values.split_last().unwrap();
    assert_eq!(changes.len(), expected, "{stdout}");
    assert!(
        changes
            .iter()
            .all(|c| c["change"] == "ALLOW→DENY" && c["action"] == "app:read")
    );
    assert_eq!(summary["summary"]["newly_denied"], expected as u64);

    let empty = work.data().with_file_name("no-store");
    std::fs::create_dir_all(&empty).unwrap();
    let out = Command::new(WARDEN)
        .args(["policy", "diff"])
        .arg(repo_policies())
        .arg(work.policies())
        .arg("--data")
        .arg(&empty)
        .output()
        .expect("run warden policy diff");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warden.redb"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
