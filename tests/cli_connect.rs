//! One name for the daemon's address: `--connect` / `WARDEN_CONNECT`, then `connect` in
//! `./warden.toml`, then in `$XDG_CONFIG_HOME/warden/config.toml`, then the default socket.
//! The CLI finds a running daemon from any working directory once one of them names it, and
//! when nothing answers it says what is missing, where the address came from and what to do.

use crate::common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};

/// `warden ARGS` run in `cwd` with a config home of its own (so the machine's
/// `~/.config/warden` cannot answer) and no address in the environment unless `env` sets one.
fn warden_in(cwd: &Path, config_home: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(WARDEN)
        .args(args)
        .current_dir(cwd)
        .env_remove("WARDEN_CONNECT")
        .env_remove("WARDEN_ACTOR")
        .env("XDG_CONFIG_HOME", config_home)
        .envs(env.iter().copied())
        .output()
        .expect("run warden")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A check, a directory read and an admin call: each kind of client-side command.
fn assert_reaches_the_demo(cwd: &Path, config_home: &Path, env: &[(&str, &str)], how: &str) {
    let out = warden_in(
        cwd,
        config_home,
        env,
        &[
            "check",
            "--subject",
            "alice",
            "--org",
            "acme",
            "--resource",
            "apps/web",
            "--action",
            "app:write",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "check via {how}: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "allow", "{how}");
    let out = warden_in(cwd, config_home, env, &["org", "get", "acme", "--actor", "alice"]);
    assert!(out.status.success(), "org get via {how}: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("org: acme"),
        "{how}: {}",
        text(&out)
    );
    let out = warden_in(cwd, config_home, env, &["admin", "stats"]);
    assert!(out.status.success(), "admin stats via {how}: {}", text(&out));
}

#[test]
fn warden_connect_and_the_flag_reach_the_daemon_from_another_directory() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let config_home = tempfile::tempdir().expect("tempdir");
    let unix = daemon.work.unix_target();
    let tcp = daemon.work.tcp_target();
    assert_reaches_the_demo(
        elsewhere.path(),
        config_home.path(),
        &[("WARDEN_CONNECT", &unix)],
        "WARDEN_CONNECT",
    );
    assert_reaches_the_demo(
        elsewhere.path(),
        config_home.path(),
        &[("WARDEN_CONNECT", &tcp)],
        "WARDEN_CONNECT=tcp",
    );

    // The flag wins over the variable, on every command (it is global to subcommands).
    let dead = format!("unix:{}", elsewhere.path().join("nothing.sock").display());
    let out = warden_in(
        elsewhere.path(),
        config_home.path(),
        &[("WARDEN_CONNECT", &dead)],
        &["org", "list", "--actor", "alice", "--connect", &unix],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = warden_in(
        elsewhere.path(),
        config_home.path(),
        &[("WARDEN_CONNECT", &dead)],
        &["admin", "--connect", &unix, "status"],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_config_file_names_the_daemon_when_no_flag_or_variable_does() {
    let daemon = Workdir::new().start_with(&["--demo"]);
    let unix = daemon.work.unix_target();

    // ./warden.toml in the working directory (other keys, the daemon's, are ignored).
    let project = tempfile::tempdir().expect("tempdir");
    let empty_home = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        project.path().join("warden.toml"),
        format!("policies = \"./policies\"\nconnect = \"{unix}\"\n"),
    )
    .unwrap();
    assert_reaches_the_demo(project.path(), empty_home.path(), &[], "./warden.toml");

    // $XDG_CONFIG_HOME/warden/config.toml, from a directory with no warden.toml.
    let home = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(home.path().join("warden")).unwrap();
    std::fs::write(
        home.path().join("warden/config.toml"),
        format!("connect = \"{unix}\"\n"),
    )
    .unwrap();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    assert_reaches_the_demo(elsewhere.path(), home.path(), &[], "XDG config");

    // The variable wins over a file that names a dead address.
    std::fs::write(
        elsewhere.path().join("warden.toml"),
        "connect = \"unix:/nonexistent/warden.sock\"\n",
    )
    .unwrap();
    assert_reaches_the_demo(
        elsewhere.path(),
        home.path(),
        &[("WARDEN_CONNECT", &unix)],
        "env over file",
    );

    // ... and without the variable the file's address is tried and named.
    let out = warden_in(elsewhere.path(), home.path(), &[], &["admin", "status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr.contains("unix:/nonexistent/warden.sock: no such file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("came from `connect` in ./warden.toml"),
        "{stderr}"
    );

    // A broken config file is an error naming it, not a silent fall-through to the default.
    std::fs::write(elsewhere.path().join("warden.toml"), "connect = 5\n").unwrap();
    let out = warden_in(elsewhere.path(), home.path(), &[], &["admin", "status"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr.contains("./warden.toml: `connect` must be a daemon address"),
        "{stderr}"
    );
}

#[test]
fn with_no_daemon_every_client_command_says_what_is_missing_and_where_it_looked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config_home = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path().canonicalize().expect("canonical tempdir");
    let user_config = config_home.path().join("warden/config.toml");
    for args in [
        &[
            "check",
            "--subject",
            "a",
            "--org",
            "o",
            "--resource",
            "apps/x",
            "--action",
            "app:read",
        ][..],
        &["admin", "status"],
        &["org", "list", "--actor", "alice"],
        &["token", "list", "--org", "acme", "--actor", "alice"],
        &["bench", "--requests", "1"],
    ] {
        let out = warden_in(&cwd, config_home.path(), &[], args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        for needed in [
            format!(
                "unix:./data/warden.sock: no such file ({}/data/warden.sock)",
                cwd.display()
            ),
            "is warden serve running? start it with `warden serve` or set --connect/WARDEN_CONNECT".into(),
            format!(
                "looked at --connect, WARDEN_CONNECT, `connect` in ./warden.toml and {}",
                user_config.display()
            ),
            "so this is the default".into(),
        ] {
            assert!(stderr.contains(&needed), "{args:?} lacks {needed:?}:\n{stderr}");
        }
    }

    // A socket file nobody listens on (a daemon that was killed) is told apart from none.
    let stale = cwd.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    let target = format!("unix:{}", stale.display());
    let out = warden_in(
        &cwd,
        config_home.path(),
        &[("WARDEN_CONNECT", &target)],
        &["admin", "status"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        stderr.contains(&format!("{target}: nothing listens on")),
        "{stderr}"
    );
    assert!(stderr.contains("came from --connect/WARDEN_CONNECT"), "{stderr}");
}
