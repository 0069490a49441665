//! The command line a newcomer meets first: a directory command without `--actor` says
//! so in those words, and a refused call prints the daemon's message as the README shows it, without a
//! gRPC code name in front.

use crate::common;

use common::*;
use std::process::Command;

#[test]
fn a_directory_command_without_actor_says_actor_is_required() {
    // Nothing listens there: the actor is checked before the daemon is dialled.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(WARDEN)
        .args(["org", "list", "--connect"])
        .arg(format!("unix:{}", dir.path().join("none.sock").display()))
        .env_remove("WARDEN_ACTOR")
        .env_remove("WARDEN_CONNECT")
        .output()
        .expect("run warden org list");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: --actor is required"), "{stderr}");
    assert!(!stderr.contains("must be 1 to 128 characters"), "{stderr}");
}

#[test]
fn a_refused_call_prints_the_message_without_a_grpc_code_name() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    // The README tour's refused call.
    let out = Command::new(WARDEN)
        .args([
            "member",
            "add",
            "acme",
            "erin",
            "--role",
            "admin",
            "--actor",
            "dave",
            "--connect",
        ])
        .arg(daemon.work.unix_target())
        .env_remove("WARDEN_ACTOR")
        .output()
        .expect("run warden member add");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: actor `dave` lacks `member:manage` on `org` in org `acme`"
    );
}
