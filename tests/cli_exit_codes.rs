//! Exit codes scripts rely on, for the commands that need no running daemon.

use crate::common;

use common::{WARDEN, Workdir, run_to_exit};
use std::process::Command;

#[test]
fn check_without_a_daemon_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("nobody.sock");
    let (status, stderr) = run_to_exit(Command::new(WARDEN).args([
        "check",
        "--subject",
        "alice",
        "--org",
        "acme",
        "--resource",
        "org",
        "--action",
        "org:read",
        "--connect",
        &format!("unix:{}", socket.display()),
    ]));
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("nobody.sock"),
        "the error should name the target: {stderr}"
    );
}

#[test]
fn policy_validate_prints_errors_and_exits_1() {
    let work = Workdir::with_policy_files(&[
        ("model.conf", "this is not a casbin model\n"),
        ("policy.csv", "p, admin\n"),
    ]);
    let (status, stderr) = run_to_exit(
        Command::new(WARDEN)
            .arg("policy")
            .arg("validate")
            .arg(work.policies()),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("model.conf"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let (status, _) = run_to_exit(Command::new(WARDEN).args(["check", "--org", "acme"]));
    assert_eq!(status.code(), Some(2));
}
