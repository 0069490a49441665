//! The command line a newcomer meets first: every subcommand and argument explains
//! itself in `--help` (`--role` naming the policy's roles), a directory command without
//! `--actor` says so in those words, and a refused call prints the daemon's message as
//! the README shows it, without a gRPC code name in front.

use crate::common;

use common::*;
use std::path::Path;
use std::process::Command;

/// Walk the command tree; collect every subcommand without `about` and every argument
/// without `help` (clap's own `--help`/`--version` included, which always have one).
fn missing_help(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    for arg in cmd.get_arguments() {
        if arg.is_hide_set() {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!(
                "{path} {}",
                arg.get_long()
                    .map_or_else(|| arg.get_id().to_string(), |l| format!("--{l}"))
            ));
        }
    }
    for sub in cmd.get_subcommands() {
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            out.push(format!("{sub_path} (no about)"));
        }
        missing_help(sub, &sub_path, out);
    }
}

#[test]
fn every_subcommand_and_argument_has_help_text() {
    let mut cmd = warden::cli::command();
    cmd.build();
    let mut missing = Vec::new();
    missing_help(&cmd, "warden", &mut missing);
    assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
}

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

#[test]
fn role_help_lists_the_roles_the_default_policy_defines() {
    let engine: toml::Table = toml::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/engine.toml"))
            .expect("engine.toml"),
    )
    .expect("engine.toml parses");
    let roles: Vec<&str> = engine["directory"]["roles"]
        .as_array()
        .expect("roles")
        .iter()
        .map(|r| r.as_str().expect("role name"))
        .collect();
    assert!(!roles.is_empty());
    for cmd in [
        &["member", "add"][..],
        &["member", "role"],
        &["invitation", "create"],
        &["invitation", "bulk"],
    ] {
        let out = Command::new(WARDEN)
            .args(cmd)
            .arg("--help")
            .output()
            .expect("help");
        // Undo clap's line wrapping.
        let help = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let listed = help
            .split_once("the default policy: ")
            .unwrap_or_else(|| panic!("{cmd:?} --help lists no roles:\n{help}"))
            .1;
        let listed: Vec<&str> = listed[..listed.find(')').expect("closing parenthesis")]
            .split(", ")
            .collect();
        assert_eq!(listed, roles, "{cmd:?} --help");
    }
}

#[test]
fn without_a_daemon_the_cli_names_where_it_looked_and_how_to_point_it_elsewhere() {
    // Run from a directory with no daemon: the default socket is relative to it.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(WARDEN)
        .args(["org", "list", "--actor", "alice"])
        .current_dir(dir.path())
        .env_remove("WARDEN_CONNECT")
        .env_remove("WARDEN_ACTOR")
        .output()
        .expect("run warden org list");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let cwd = dir.path().canonicalize().expect("canonical tempdir");
    for needed in [
        format!(
            "unix:./data/warden.sock: no such file ({}/data/warden.sock)",
            cwd.display()
        ),
        "start it with `warden serve` or set --connect/WARDEN_CONNECT".to_string(),
    ] {
        assert!(stderr.contains(&needed), "lacks {needed:?}: {stderr}");
    }
}
