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

/// `warden … | head`: the reader is gone before the command writes (here closed before it
/// starts, so the first write fails). The command ends like other Unix tools, with status 141
/// and nothing on stderr, not with a panic and a backtrace.
#[test]
fn a_closed_stdout_ends_a_command_quietly_with_status_141() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(WARDEN)
        .args(["policy", "validate"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .stdout(writer)
        .output()
        .expect("run warden");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(
        stderr.is_empty(),
        "a closed pipe should end it silently: {stderr}"
    );
}

/// Standard output on a full disk: a clear error and exit 2, not a panic.
#[test]
fn a_full_stdout_is_a_clear_error_with_exit_2() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = Command::new(WARDEN)
        .args(["policy", "validate"])
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .stdout(full)
        .output()
        .expect("run warden");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("error: writing to standard output: No space left on device"),
        "{stderr}"
    );
}
